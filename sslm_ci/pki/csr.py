"""Certificate signing requests and the subject / SAN rules shared with the CA code."""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from sslm_ci.config.model import X509Name
from sslm_ci.pki.keys import PrivateKey, signing_hash

# Most significant first, the order openssl and every CA print; the email field is left out on
# purpose: ssl-mgr uses it only for ACME account registration.
_SUBJECT_FIELDS: tuple[tuple[str, x509.ObjectIdentifier], ...] = (
    ("C", NameOID.COUNTRY_NAME),
    ("ST", NameOID.STATE_OR_PROVINCE_NAME),
    ("L", NameOID.LOCALITY_NAME),
    ("O", NameOID.ORGANIZATION_NAME),
    ("OU", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("CN", NameOID.COMMON_NAME),
)

# RFC 5280 upper bounds (ub-common-name etc.); longer values make CAs reject the request.
_MAX_LEN = {"C": 2, "ST": 128, "L": 128, "O": 64, "OU": 64, "CN": 64}

_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}\.?$")

GeneralName = x509.DNSName | x509.IPAddress


def is_dns_name(value: str) -> bool:
    return len(value) <= 253 and _DNS_NAME.match(value) is not None


def subject_name(name: X509Name) -> x509.Name:
    """Subject from the non-empty fields only: an empty RDN string is invalid DER for
    PrintableString/UTF8String constraints and made ssl-mgr's requests fail at some CAs."""
    attrs: list[x509.NameAttribute[str]] = []
    for field_name, oid in _SUBJECT_FIELDS:
        value = getattr(name, field_name).strip()
        if not value:
            continue
        if len(value) > _MAX_LEN[field_name]:
            raise ValueError(
                f"x509 {field_name} {value!r} is longer than {_MAX_LEN[field_name]} characters"
            )
        if field_name == "C" and not (len(value) == 2 and value.isascii() and value.isalpha()):
            raise ValueError(f"x509 C {value!r} is not a two-letter country code")
        attrs.append(x509.NameAttribute(oid, value.upper() if field_name == "C" else value))
    return x509.Name(attrs)


def general_name(value: str) -> GeneralName:
    """An IP address literal becomes an iPAddress SAN, anything else must be a DNS name."""
    text = value.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text.isascii():
        # Certificates carry A-labels only (RFC 5280 7.2).
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"SAN {value!r} is not a valid internationalized name") from None
    if not is_dns_name(text):
        raise ValueError(f"SAN {value!r} is neither an IP address nor a DNS name")
    return x509.DNSName(text.rstrip(".").lower())


def san_names(name: X509Name, *, is_ca: bool = False) -> list[GeneralName]:
    """SANs in config order, duplicates dropped. A leaf's CN, when it is a host name or IP,
    goes first if the list lacks it: clients ignore the CN and match SANs only."""
    out: list[GeneralName] = []
    for san in name.sans:
        entry = general_name(san)
        if entry not in out:
            out.append(entry)
    cn = name.CN.strip()
    if not is_ca and cn and is_dns_name(cn):
        entry = general_name(cn)
        if entry not in out:
            out.insert(0, entry)
    return out


def build_csr(
    key: PrivateKey, name: X509Name, digest: str = "sha256", *, is_ca: bool = False
) -> x509.CertificateSigningRequest:
    subject = subject_name(name)
    sans = san_names(name, is_ca=is_ca)
    if not sans and not len(subject):
        raise ValueError("x509 section gives neither a subject field nor a SAN")
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        # Critical when the subject is empty (RFC 5280 4.2.1.6).
        builder = builder.add_extension(
            x509.SubjectAlternativeName(sans), critical=not len(subject)
        )
    return builder.sign(key, signing_hash(digest))


def csr_sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)


def cert_sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)
