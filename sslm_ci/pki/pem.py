"""PEM parsing and the ssl-mgr output file set (privkey, csr, cert, chain, fullchain, bundle)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sslm_ci.pki import _der
from sslm_ci.pki.keys import PrivateKey, key_matches_cert, private_key_pem, spki_der

_BLOCK = re.compile(
    rb"-----BEGIN ([^\r\n]+?)-----\r?\n(.*?)-----END \1-----",
    re.DOTALL,
)

CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})


@dataclass(frozen=True)
class PemBlock:
    label: str
    der: bytes


def pem_blocks(data: bytes) -> list[PemBlock]:
    """Every PEM block in ``data``; text around the blocks (comments, ``openssl x509 -text``
    dumps, bundle headers) is ignored. Encapsulated headers (``Proc-Type:``) are skipped."""
    blocks: list[PemBlock] = []
    for match in _BLOCK.finditer(data):
        label = match.group(1).decode("ascii")
        lines = [ln.strip() for ln in match.group(2).splitlines()]
        body = b"".join(ln for ln in lines if ln and b":" not in ln)
        try:
            der = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise ValueError(f"PEM block {label!r} has invalid base64") from None
        blocks.append(PemBlock(label, der))
    return blocks


def cert_from_block(block: PemBlock) -> x509.Certificate:
    # "TRUSTED CERTIFICATE" is the certificate followed by openssl's trust settings.
    der = _der.first_element(block.der) if block.label == "TRUSTED CERTIFICATE" else block.der
    return x509.load_der_x509_certificate(der)


def pem_certs(data: bytes) -> list[x509.Certificate]:
    """Certificates of a PEM file in file order; other block types are ignored."""
    certs: list[x509.Certificate] = []
    for index, block in enumerate(pem_blocks(data)):
        if block.label not in CERT_LABELS:
            continue
        try:
            certs.append(cert_from_block(block))
        except ValueError as exc:
            raise ValueError(f"PEM block {index + 1} is not a valid certificate: {exc}") from None
    return certs


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certs_pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(cert_pem(c) for c in certs)


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(data)


OUTPUT_FILES: tuple[str, ...] = (
    "privkey.pem",
    "csr.pem",
    "cert.pem",
    "chain.pem",
    "fullchain.pem",
    "bundle.pem",
)


def build_outputs(
    key: PrivateKey,
    csr: x509.CertificateSigningRequest,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
) -> dict[str, bytes]:
    """The ssl-mgr file set. ``chain`` is issuer first, root last: the order TLS servers send
    and ``openssl verify -untrusted`` walks."""
    # A mismatched set would install cleanly and fail only at the first TLS handshake.
    if not key_matches_cert(key, cert):
        raise ValueError("private key does not match the certificate")
    if spki_der(csr) != spki_der(cert):
        raise ValueError("CSR public key does not match the certificate")
    key_pem = private_key_pem(key)
    leaf = cert_pem(cert)
    chain_pem = certs_pem(chain)
    return {
        "privkey.pem": key_pem,
        "csr.pem": csr_pem(csr),
        "cert.pem": leaf,
        "chain.pem": chain_pem,
        "fullchain.pem": leaf + chain_pem,
        "bundle.pem": key_pem + leaf + chain_pem,
    }
