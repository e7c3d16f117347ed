"""DANE TLSA association data (RFC 6698) and zone-file records."""

from __future__ import annotations

import hashlib
import re
import textwrap

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sslm_ci.pki.keys import spki_der

USAGES = (0, 1, 2, 3)  # PKIX-TA, PKIX-EE, DANE-TA, DANE-EE
SELECTORS = (0, 1)  # full certificate, SubjectPublicKeyInfo
MATCHES = (0, 1, 2)  # exact, SHA-256, SHA-512

_HEX_LEN = {1: 64, 2: 128}
_HEX = re.compile(r"^[0-9a-f]+$")
# Longer data goes in parentheses over several lines so zone files stay readable.
_ONE_LINE_MAX = 72
_CHUNK = 64


def _check(usage: int | None, selector: int, match: int) -> None:
    if usage is not None and usage not in USAGES:
        raise ValueError(f"TLSA usage {usage} not in 0..3")
    if selector not in SELECTORS:
        raise ValueError(f"TLSA selector {selector} not in 0..1")
    if match not in MATCHES:
        raise ValueError(f"TLSA matching type {match} not in 0..2")


def tlsa_data(cert: x509.Certificate, selector: int, match: int) -> str:
    """Certificate association data as lower-case hex."""
    _check(None, selector, match)
    blob = cert.public_bytes(serialization.Encoding.DER) if selector == 0 else spki_der(cert)
    if match == 1:
        return hashlib.sha256(blob).hexdigest()
    if match == 2:
        return hashlib.sha512(blob).hexdigest()
    return blob.hex()


def tlsa_cert_for_usage(
    leaf: x509.Certificate, chain: list[x509.Certificate], usage: int
) -> x509.Certificate:
    """The certificate a record of this usage pins: the leaf for EE usages (1, 3), the leaf's
    issuer for TA usages (0, 2) - the CA cert the server itself sends as ``chain[0]``."""
    _check(usage, 0, 0)
    if usage in (1, 3):
        return leaf
    if not chain:
        raise ValueError(f"TLSA usage {usage} pins the issuing CA, but the chain is empty")
    return chain[0]


def tlsa_owner(port: int, proto: str, host: str) -> str:
    """``_25._tcp.mail.example.com.``"""
    if not 0 < port < 65536:
        raise ValueError(f"TLSA port {port} out of range")
    if proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"TLSA protocol {proto!r}: expected tcp, udp or sctp")
    return f"_{port}._{proto}.{host.rstrip('.')}."


def tlsa_rr(owner: str, ttl: int, usage: int, selector: int, match: int, data: str) -> str:
    """One zone-file line (or a parenthesised block for long data), without a newline."""
    _check(usage, selector, match)
    if ttl < 0:
        raise ValueError(f"TTL {ttl} is negative")
    hex_data = data.lower()
    if not _HEX.match(hex_data) or len(hex_data) % 2:
        raise ValueError("TLSA data must be an even-length hex string")
    expected = _HEX_LEN.get(match)
    if expected is not None and len(hex_data) != expected:
        raise ValueError(
            f"TLSA matching type {match} needs {expected} hex digits, got {len(hex_data)}"
        )
    name = owner if owner.endswith(".") else f"{owner}."
    head = f"{name} {ttl} IN TLSA {usage} {selector} {match}"
    if len(hex_data) <= _ONE_LINE_MAX:
        return f"{head} {hex_data}"
    lines = textwrap.wrap(hex_data, _CHUNK)
    body = "\n".join(f"\t{line}" for line in lines)
    return f"{head} (\n{body} )"
