"""Human-readable summaries of PEM files (ssl-mgr's ``sslm-info``) and expiry helpers.

Private keys are summarised by type, size and public-key fingerprint only: nothing derived from
the secret part is ever printed.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from sslm_ci.pki.csr import cert_sans, csr_sans
from sslm_ci.pki.dh import DH_PEM_LABELS, dh_params_from_der, named_group_of
from sslm_ci.pki.keys import key_description, public_key_fingerprint, spki_der
from sslm_ci.pki.pem import CERT_LABELS, PemBlock, cert_from_block, pem_blocks

_CSR_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
_KEY_LABELS = frozenset({"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"})
_PUBLIC_KEY_LABELS = frozenset({"PUBLIC KEY"})
_ENCRYPTED_KEY_LABELS = frozenset({"ENCRYPTED PRIVATE KEY"})

_WIDTH = 13


def cert_expiry(cert: x509.Certificate) -> datetime:
    return cert.not_valid_after_utc


def days_left(cert: x509.Certificate, now: datetime) -> float:
    """Days until expiry (negative once expired)."""
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def serial_hex(cert: x509.Certificate) -> str:
    """Upper-case hex in whole bytes, as ``openssl x509 -serial`` prints it."""
    serial = cert.serial_number
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex().upper()


def sha256_fingerprint(cert: x509.Certificate) -> str:
    """``AB:CD:...``, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _fmt_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_names(names: list[x509.GeneralName]) -> str:
    parts: list[str] = []
    for name in names:
        if isinstance(name, x509.DNSName):
            parts.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            parts.append(f"IP:{name.value}")
        else:
            parts.append(f"{type(name).__name__}:{name.value}")
    return ", ".join(parts) if parts else "(none)"


def _row(key: str, value: str) -> str:
    return f"  {key + ':':<{_WIDTH}} {value}"


def _ca_text(cert: x509.Certificate) -> str:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "no (no basicConstraints)"
    if not bc.ca:
        return "no"
    return "yes" if bc.path_length is None else f"yes (pathlen {bc.path_length})"


def _signed_by(cert: x509.Certificate, following: x509.Certificate | None) -> str | None:
    if cert.issuer == cert.subject:
        try:
            cert.verify_directly_issued_by(cert)
        except (InvalidSignature, ValueError, TypeError):
            return "self-issued, signature does not verify"
        return "self-signed"
    if following is None:
        return None
    try:
        cert.verify_directly_issued_by(following)
    except (InvalidSignature, ValueError, TypeError):
        return "NOT the next certificate in this file"
    return "the next certificate in this file"


def _describe_cert(
    cert: x509.Certificate,
    following: x509.Certificate | None,
    heading: str,
    now: datetime | None,
) -> list[str]:
    lines = [
        heading,
        _row("Subject", cert.subject.rfc4514_string() or "(empty)"),
        _row("Issuer", cert.issuer.rfc4514_string() or "(empty)"),
        _row("Serial", serial_hex(cert)),
        _row("Not before", _fmt_time(cert.not_valid_before_utc)),
        _row("Not after", _fmt_time(cert.not_valid_after_utc)),
    ]
    if now is not None:
        lines.append(_row("Days left", f"{days_left(cert, now):.1f}"))
    lines += [
        _row("SANs", _fmt_names(cert_sans(cert))),
        _row("Key", key_description(cert)),
        _row("Key SHA-256", public_key_fingerprint(cert)),
        _row("CA", _ca_text(cert)),
        _row("SHA-256", sha256_fingerprint(cert)),
    ]
    signed_by = _signed_by(cert, following)
    if signed_by is not None:
        lines.append(_row("Signed by", signed_by))
    return lines


def _describe_csr(block: PemBlock, heading: str) -> list[str]:
    csr = x509.load_der_x509_csr(block.der)
    return [
        heading,
        _row("Subject", csr.subject.rfc4514_string() or "(empty)"),
        _row("SANs", _fmt_names(csr_sans(csr))),
        _row("Key", key_description(csr)),
        _row("Key SHA-256", public_key_fingerprint(csr)),
        _row("Signature", "valid" if csr.is_signature_valid else "INVALID"),
    ]


def _describe_dh(block: PemBlock, heading: str) -> list[str]:
    p, g = dh_params_from_der(block.der)
    group = named_group_of(p, g)
    return [
        heading,
        _row("Prime", f"{p.bit_length()} bits"),
        _row("Generator", str(g)),
        _row("Group", group or "(not an RFC 7919 named group)"),
    ]


def describe(data: bytes, now: datetime | None = None) -> str:
    """Summary of every PEM block in ``data``: certs, chains, CSRs, keys, bundles, DH params."""
    blocks = pem_blocks(data)
    if not blocks:
        raise ValueError("no PEM blocks found")
    cert_blocks = [i for i, b in enumerate(blocks) if b.label in CERT_LABELS]
    certs: dict[int, x509.Certificate] = {}
    for number, index in enumerate(cert_blocks, 1):
        try:
            certs[index] = cert_from_block(blocks[index])
        except ValueError:
            raise ValueError(f"certificate {number} cannot be parsed") from None

    sections: list[list[str]] = []
    key_spkis: list[bytes] = []
    for index, block in enumerate(blocks):
        if index in certs:
            number = cert_blocks.index(index) + 1
            later = cert_blocks[number] if number < len(cert_blocks) else None
            following = certs[later] if later is not None else None
            heading = f"Certificate {number} of {len(cert_blocks)}"
            sections.append(_describe_cert(certs[index], following, heading, now))
        elif block.label in _KEY_LABELS:
            sections.append(_describe_private_key(block, key_spkis))
        elif block.label in _ENCRYPTED_KEY_LABELS:
            sections.append(["Private key", _row("Key", "encrypted, not inspected")])
        elif block.label in _PUBLIC_KEY_LABELS:
            pub = serialization.load_der_public_key(block.der)
            sections.append(
                [
                    "Public key",
                    _row("Key", key_description(pub)),
                    _row("Key SHA-256", public_key_fingerprint(pub)),
                ]
            )
        elif block.label in _CSR_LABELS:
            try:
                sections.append(_describe_csr(block, "Certificate request"))
            except ValueError:
                raise ValueError("certificate request cannot be parsed") from None
        elif block.label in DH_PEM_LABELS:
            sections.append(_describe_dh(block, f"DH parameters ({block.label})"))
        else:
            sections.append([f"Unsupported PEM block {block.label!r}"])

    if key_spkis and certs:
        first_cert = certs[cert_blocks[0]]
        matches = spki_der(first_cert) in key_spkis
        summary = [
            f"Bundle: private key + {len(certs)} certificate(s)",
            _row("Key matches", "certificate 1" if matches else "NO: differs from certificate 1"),
        ]
        sections.insert(0, summary)
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def _describe_private_key(block: PemBlock, key_spkis: list[bytes]) -> list[str]:
    try:
        key = serialization.load_der_private_key(block.der, password=None)
    except (ValueError, TypeError):
        # Never echo the parser's message: it may quote the input.
        return ["Private key", _row("Key", "unreadable (encrypted or malformed), not inspected")]
    public = key.public_key()
    key_spkis.append(spki_der(public))
    return [
        "Private key",
        _row("Key", key_description(public)),
        _row("Key SHA-256", public_key_fingerprint(public)),
    ]
