"""Certificate issuance for locally operated CAs: self-signed roots, intermediates, leaves."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from sslm_ci.config.model import X509Name
from sslm_ci.pki.csr import csr_sans, subject_name
from sslm_ci.pki.keys import PrivateKey, key_matches_cert, signing_hash

# Clients whose clock runs a little behind must not see a brand-new cert as "not yet valid".
CLOCK_SKEW = timedelta(minutes=5)

_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _require_days(days: int) -> None:
    if days < 1:
        raise ValueError(f"validity must be at least 1 day, got {days}")


def _leaf_key_usage(public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    # keyEncipherment only means something for RSA key transport; on EC keys it is wrong.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(
    issuer_cert: x509.Certificate, issuer_key: PrivateKey
) -> x509.AuthorityKeyIdentifier:
    """AKI that matches the issuer's SKI byte for byte, whatever method made that SKI."""
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        # Only reached after the key was checked to belong to issuer_cert.
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _check_issuer(
    issuer_cert: x509.Certificate, issuer_key: PrivateKey, now: datetime, *, for_ca: bool
) -> None:
    if not key_matches_cert(issuer_key, issuer_cert):
        raise ValueError("issuer key does not belong to the issuer certificate")
    try:
        bc = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ValueError("issuer certificate is not a CA (basicConstraints CA:FALSE or absent)")
    if for_ca and bc.path_length == 0:
        raise ValueError("issuer certificate has pathlen 0: it may not sign another CA")
    try:
        ku = issuer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("issuer certificate lacks keyUsage keyCertSign")
    if not issuer_cert.not_valid_before_utc <= now <= issuer_cert.not_valid_after_utc:
        raise ValueError(
            f"issuer certificate is not valid at {now.isoformat()} "
            f"(valid {issuer_cert.not_valid_before_utc.isoformat()} to "
            f"{issuer_cert.not_valid_after_utc.isoformat()})"
        )


def _check_csr(csr: x509.CertificateSigningRequest) -> None:
    if not csr.is_signature_valid:
        raise ValueError("CSR signature is invalid")


def _validity(
    now: datetime, days: int, issuer_cert: x509.Certificate | None
) -> tuple[datetime, datetime]:
    not_before = now - CLOCK_SKEW
    not_after = now + timedelta(days=days)
    if issuer_cert is not None:
        # A cert cannot be trusted outside its issuer's validity, so do not claim more.
        not_before = max(not_before, issuer_cert.not_valid_before_utc)
        not_after = min(not_after, issuer_cert.not_valid_after_utc)
    return not_before, not_after


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def issue_root(
    key: PrivateKey,
    name: X509Name,
    days: int,
    digest: str,
    now: datetime,
    path_length: int | None = 1,
) -> x509.Certificate:
    """Self-signed CA certificate; ``path_length=1`` allows one intermediate below it."""
    _require_aware(now)
    _require_days(days)
    subject = subject_name(name)
    if not len(subject):
        raise ValueError("a CA certificate needs a subject (set at least CN)")
    not_before, not_after = _validity(now, days, None)
    public_key = key.public_key()
    builder = (
        _base_builder(subject, subject, public_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
    )
    return builder.sign(key, signing_hash(digest))


def issue_intermediate(
    csr: x509.CertificateSigningRequest,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    days: int,
    digest: str,
    now: datetime,
    path_length: int | None = 0,
) -> x509.Certificate:
    """Subordinate CA certificate. The AKI names the issuer's key; ssl-mgr put the subject's
    own key id there, and chains then failed ``openssl verify``."""
    _require_aware(now)
    _require_days(days)
    _check_csr(csr)
    _check_issuer(issuer_cert, issuer_key, now, for_ca=True)
    if not len(csr.subject):
        raise ValueError("a CA certificate needs a subject (set at least CN)")
    not_before, not_after = _validity(now, days, issuer_cert)
    builder = (
        _base_builder(csr.subject, issuer_cert.subject, csr.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(_authority_key_id(issuer_cert, issuer_key), critical=False)
    )
    return builder.sign(issuer_key, signing_hash(digest))


def issue_leaf(
    csr: x509.CertificateSigningRequest,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    days: int,
    digest: str,
    now: datetime,
) -> x509.Certificate:
    """End-entity TLS certificate (server and client auth), valid from ``now`` minus the
    clock-skew margin until ``now + days`` or the issuer's expiry, whichever is first."""
    _require_aware(now)
    _require_days(days)
    _check_csr(csr)
    _check_issuer(issuer_cert, issuer_key, now, for_ca=False)
    sans = csr_sans(csr)
    if not sans and not len(csr.subject):
        raise ValueError("CSR has neither a subject nor SANs")
    not_before, not_after = _validity(now, days, issuer_cert)
    public_key = csr.public_key()
    builder = (
        _base_builder(csr.subject, issuer_cert.subject, public_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(public_key), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_authority_key_id(issuer_cert, issuer_key), critical=False)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(sans), critical=not len(csr.subject)
        )
    return builder.sign(issuer_key, signing_hash(digest))
