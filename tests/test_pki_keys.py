"""Key generation, PEM round trips and public-key fingerprints, checked with openssl."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.ca import issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import (
    generate_private_key,
    key_description,
    key_matches_cert,
    load_private_key,
    private_key_pem,
    public_key_fingerprint,
    signing_hash,
)


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


def write_key(tmp_path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "privkey.pem"
    path.write_bytes(private_key_pem(key))
    return path


@pytest.mark.parametrize(
    ("curve", "nist", "bits"),
    [("secp256r1", "P-256", 256), ("secp384r1", "P-384", 384), ("secp521r1", "P-521", 521)],
)
def test_ec_keys_have_the_requested_curve(tmp_path: Path, curve: str, nist: str, bits: int) -> None:
    key = generate_private_key(KeyOpts(ktype="ec", ec_algo=curve))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == curve
    assert key_description(key) == f"EC {curve} ({bits} bits)"
    text = openssl("pkey", "-in", str(write_key(tmp_path, key)), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert f"NIST CURVE: {nist}".encode() in text.stdout
    check = openssl("pkey", "-in", str(tmp_path / "privkey.pem"), "-noout", "-check")
    assert check.returncode == 0
    assert b"Key is valid" in check.stdout


@pytest.mark.parametrize("bits", [2048, 4096])
def test_rsa_keys_have_size_and_f4_exponent(tmp_path: Path, bits: int) -> None:
    key = generate_private_key(KeyOpts(ktype="rsa", rsa_bits=bits))
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == bits
    assert key.public_key().public_numbers().e == 65537
    text = openssl("pkey", "-in", str(write_key(tmp_path, key)), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert f"Private-Key: ({bits} bit".encode() in text.stdout
    assert b"publicExponent: 65537" in text.stdout


@pytest.mark.parametrize(
    "opts",
    [
        KeyOpts(ktype="ec", ec_algo="secp256k1"),
        KeyOpts(ktype="ec", ec_algo="ed25519"),
        KeyOpts(ktype="rsa", rsa_bits=1024),
        KeyOpts(ktype="rsa", rsa_bits=8192),
        KeyOpts(ktype="rsa", rsa_bits=2049),
        KeyOpts(ktype="dsa", rsa_bits=2048),  # type: ignore[arg-type]
    ],
)
def test_unsupported_key_options_are_rejected(opts: KeyOpts) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        generate_private_key(opts)


def test_private_key_pem_is_unencrypted_pkcs8_and_round_trips() -> None:
    key = generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN " + b"PRIVATE KEY-----\n")
    assert pem.rstrip().endswith(b"-----END " + b"PRIVATE KEY-----")
    loaded = load_private_key(pem)
    assert public_key_fingerprint(loaded) == public_key_fingerprint(key)
    # openssl reads it without a passphrase prompt
    assert openssl("pkey", "-noout", "-passin", "pass:", stdin=pem).returncode == 0


def test_load_private_key_accepts_traditional_openssl_format(tmp_path: Path) -> None:
    key = generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))
    trad = openssl("pkey", "-traditional", stdin=private_key_pem(key))
    assert trad.stdout.startswith(b"-----BEGIN EC " + b"PRIVATE KEY-----")
    assert public_key_fingerprint(load_private_key(trad.stdout)) == public_key_fingerprint(key)


def test_load_private_key_rejects_other_key_types_without_echoing_the_key() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="unsupported private key type") as info:
        load_private_key(pem)
    body = pem.decode().splitlines()[1]
    assert body not in str(info.value)


def test_load_private_key_rejects_encrypted_and_garbage_input() -> None:
    key = generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        load_private_key(encrypted)
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        load_private_key(
            b"-----BEGIN " + b"PRIVATE KEY-----\nAAAA\n-----END " + b"PRIVATE KEY-----\n"
        )


@pytest.mark.parametrize(
    "opts", [KeyOpts(ktype="ec", ec_algo="secp384r1"), KeyOpts(ktype="rsa", rsa_bits=2048)]
)
def test_public_key_fingerprint_equals_openssl_spki_sha256(tmp_path: Path, opts: KeyOpts) -> None:
    key = generate_private_key(opts)
    der = openssl("pkey", "-pubout", "-outform", "DER", stdin=private_key_pem(key))
    assert der.returncode == 0
    digest = openssl("dgst", "-sha256", "-r", stdin=der.stdout).stdout.split()[0].decode()
    assert public_key_fingerprint(key) == digest
    assert public_key_fingerprint(key.public_key()) == digest
    csr = build_csr(key, X509Name(CN="www.example.com"))
    assert public_key_fingerprint(csr) == digest


def test_key_matches_cert_only_for_its_own_key() -> None:
    key = generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))
    other = generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))
    cert = issue_root(key, X509Name(CN="Root"), 10, "sha256", datetime.now(UTC))
    assert key_matches_cert(key, cert)
    assert not key_matches_cert(other, cert)


def test_signing_hash_names() -> None:
    assert isinstance(signing_hash("sha256"), hashes.SHA256)
    assert isinstance(signing_hash("SHA384"), hashes.SHA384)
    assert isinstance(signing_hash("sha512"), hashes.SHA512)
    for bad in ("sha1", "md5", "sha3-256", ""):
        with pytest.raises(ValueError, match="unsupported digest"):
            signing_hash(bad)
