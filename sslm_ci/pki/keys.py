"""Private keys: generation from :class:`KeyOpts`, PEM in and out, public-key identity."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sslm_ci.config.model import KeyOpts

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
# Every CA and client in use expects F4; other exponents only cause interop trouble.
RSA_EXPONENT = 65537

SigningHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

DIGESTS: dict[str, type[SigningHash]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# Objects whose public key we can name: keys themselves, certificates and CSRs.
HasPublicKey = PrivateKey | PublicKeyTypes | x509.Certificate | x509.CertificateSigningRequest


def signing_hash(digest: str) -> SigningHash:
    """Hash object for an ssl-mgr ``digest`` name (``sha256``, ``sha384``, ``sha512``)."""
    try:
        return DIGESTS[digest.lower()]()
    except KeyError:
        raise ValueError(
            f"unsupported digest {digest!r}: expected one of {', '.join(DIGESTS)}"
        ) from None


def generate_private_key(opts: KeyOpts) -> PrivateKey:
    if opts.ktype == "ec":
        curve = EC_CURVES.get(opts.ec_algo.lower())
        if curve is None:
            raise ValueError(
                f"unsupported ec_algo {opts.ec_algo!r}: expected one of {', '.join(EC_CURVES)}"
            )
        return ec.generate_private_key(curve())
    if opts.ktype == "rsa":
        bits = opts.rsa_bits
        if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS or bits % 8:
            raise ValueError(
                f"unsupported rsa_bits {bits}: expected a multiple of 8 "
                f"from {RSA_MIN_BITS} to {RSA_MAX_BITS}"
            )
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=bits)
    raise ValueError(f"unsupported key type {opts.ktype!r}: expected 'ec' or 'rsa'")


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: encryption at rest is sops' job, servers need it plain."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> PrivateKey:
    # The parser's own messages can quote input; keep ours free of key material.
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}: expected EC or RSA")
    return key


def _public_key(obj: HasPublicKey) -> PublicKeyTypes:
    if isinstance(obj, x509.Certificate | x509.CertificateSigningRequest):
        return obj.public_key()
    if isinstance(obj, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return obj.public_key()
    return obj


def spki_der(obj: HasPublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of the object's public key."""
    return _public_key(obj).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_fingerprint(obj: HasPublicKey) -> str:
    """Lower-case hex SHA-256 of the SubjectPublicKeyInfo (the DANE 3 1 1 value)."""
    return hashlib.sha256(spki_der(obj)).hexdigest()


def key_matches_cert(key: PrivateKey, cert: x509.Certificate) -> bool:
    return spki_der(key) == spki_der(cert)


def key_description(obj: HasPublicKey) -> str:
    """``EC secp384r1 (384 bits)`` / ``RSA 2048 bits``: type and size, nothing secret."""
    pub = _public_key(obj)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"EC {pub.curve.name} ({pub.curve.key_size} bits)"
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA {pub.key_size} bits"
    return type(pub).__name__.removeprefix("_")
