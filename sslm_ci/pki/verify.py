"""Chain checks: signature links cert -> chain (ssl-mgr's ``sslm-verify``) and, with trusted
roots, a full path validation through cryptography's X.509 verifier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import PolicyBuilder, Store, Subject, VerificationError

from sslm_ci.pki.csr import cert_sans


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reasons: tuple[str, ...]
    # True when the full path validation (trusted root, name, EKU, profile) ran and passed
    # or failed; False when only the signature links could be checked.
    path_checked: bool = False


def _label(index: int, cert: x509.Certificate) -> str:
    who = "cert" if index == 0 else f"chain[{index - 1}]"
    return f"{who} ({cert.subject.rfc4514_string() or '<empty subject>'})"


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _validity_reasons(label: str, cert: x509.Certificate, now: datetime) -> list[str]:
    if now < cert.not_valid_before_utc:
        return [f"{label} is not valid before {cert.not_valid_before_utc.isoformat()}"]
    if now > cert.not_valid_after_utc:
        return [f"{label} expired at {cert.not_valid_after_utc.isoformat()}"]
    return []


def _link_reasons(
    child_label: str, child: x509.Certificate, issuer_label: str, issuer: x509.Certificate
) -> list[str]:
    if child.issuer != issuer.subject:
        return [
            f"{child_label} names issuer {child.issuer.rfc4514_string()!r}, "
            f"but the next cert is {issuer_label}"
        ]
    try:
        child.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return [f"{child_label} signature does not verify with the key of {issuer_label}"]
    except (ValueError, TypeError) as exc:
        return [f"{child_label} cannot be checked against {issuer_label}: {exc}"]
    return _key_id_reasons(child_label, child, issuer_label, issuer)


def _key_id_reasons(
    child_label: str, child: x509.Certificate, issuer_label: str, issuer: x509.Certificate
) -> list[str]:
    """openssl picks issuers by AKI: a valid signature under a mismatched AKI (ssl-mgr's
    intermediate bug) still fails ``openssl verify``, so it is an error here too."""
    try:
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return []
    if aki.key_identifier is None or aki.key_identifier == ski.digest:
        return []
    return [
        f"{child_label} authority key id {aki.key_identifier.hex()} does not match "
        f"the subject key id {ski.digest.hex()} of {issuer_label}"
    ]


def _ca_reasons(label: str, cert: x509.Certificate, cas_below: int) -> list[str]:
    """Issuer-side rules: CA flag, keyCertSign and pathlen over the CAs below it."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return [f"{label} signs certificates but has no basicConstraints"]
    if not bc.ca:
        return [f"{label} signs certificates but is not a CA (CA:FALSE)"]
    reasons: list[str] = []
    if bc.path_length is not None and cas_below > bc.path_length:
        reasons.append(f"{label} allows pathlen {bc.path_length}, but {cas_below} CAs follow it")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not ku.key_cert_sign:
        reasons.append(f"{label} lacks keyUsage keyCertSign")
    return reasons


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _server_subject(cert: x509.Certificate) -> Subject | None:
    sans = cert_sans(cert)
    for san in sans:
        if isinstance(san, x509.DNSName):
            return san
    for san in sans:
        if isinstance(san, x509.IPAddress):
            return san
    return None


def _anchor_reasons(
    top_index: int, top: x509.Certificate, roots: list[x509.Certificate], now: datetime
) -> list[str]:
    """The top of cert + chain must be a trusted root or be issued directly by one."""
    if top in roots:
        return []
    top_label = _label(top_index, top)
    for root in roots:
        if root.subject != top.issuer:
            continue
        root_label = f"root ({root.subject.rfc4514_string()})"
        link = _link_reasons(top_label, top, root_label, root)
        if link:
            continue
        # The chain certs between the end cert and the root all count against its pathlen.
        return _validity_reasons(root_label, root, now) + _ca_reasons(root_label, root, top_index)
    return [f"{top_label} is not a trusted root and no trusted root issued it"]


def verify_chain(
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    roots: list[x509.Certificate] | None,
    now: datetime,
) -> VerifyResult:
    """Check ``cert`` against ``chain`` (issuer first). Without ``roots`` only the signature
    links, validity at ``now`` and the issuers' CA flags are checked; a self-signed chain end
    is trusted only when the caller passes it in ``roots``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    path = [cert, *chain]
    reasons: list[str] = []
    for index, item in enumerate(path):
        reasons += _validity_reasons(_label(index, item), item, now)
    for index in range(len(path) - 1):
        child, issuer = path[index], path[index + 1]
        issuer_label = _label(index + 1, issuer)
        reasons += _link_reasons(_label(index, child), child, issuer_label, issuer)
        reasons += _ca_reasons(issuer_label, issuer, cas_below=index)
    top = path[-1]
    if top.issuer == top.subject and not _is_self_signed(top):
        reasons.append(f"{_label(len(path) - 1, top)} is self-issued but its signature is bad")

    path_checked = False
    if roots is not None:
        if not roots:
            reasons.append("no trusted roots given")
        else:
            reasons += _anchor_reasons(len(path) - 1, top, roots, now)
            subject = None if _is_ca(cert) else _server_subject(cert)
            if subject is not None:
                path_checked = True
                verifier = (
                    PolicyBuilder().store(Store(roots)).time(now).build_server_verifier(subject)
                )
                try:
                    verifier.verify(cert, chain)
                except VerificationError as exc:
                    reasons.append(f"path validation failed: {exc}")
    return VerifyResult(ok=not reasons, reasons=tuple(reasons), path_checked=path_checked)
