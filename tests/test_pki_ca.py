"""Root, intermediate and leaf issuance, checked with ``openssl verify`` and ``x509 -text``."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import (
    PrivateKey,
    generate_private_key,
    load_private_key,
    private_key_pem,
)
from sslm_ci.pki.pem import cert_pem, certs_pem

KEY_OPTS = {
    "ec": KeyOpts(ktype="ec", ec_algo="secp256r1"),
    "rsa": KeyOpts(ktype="rsa", rsa_bits=2048),
}
LEAF_NAME = X509Name(CN="www.example.com", O="Example", sans=("example.com", "192.0.2.80"))


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


@dataclass(frozen=True)
class Pki:
    now: datetime
    root_key: PrivateKey
    root: x509.Certificate
    inter_key: PrivateKey
    inter: x509.Certificate
    leaf_key: PrivateKey
    leaf: x509.Certificate


def make_pki(kind: str, now: datetime, *, root_days: int = 3650, leaf_days: int = 90) -> Pki:
    opts = KEY_OPTS[kind]
    root_key = generate_private_key(opts)
    root = issue_root(root_key, X509Name(CN="Test Root CA", O="Example"), root_days, "sha384", now)
    inter_key = generate_private_key(opts)
    inter_csr = build_csr(inter_key, X509Name(CN="Test Issuing CA", O="Example"), is_ca=True)
    inter = issue_intermediate(inter_csr, root, root_key, 1825, "sha384", now)
    leaf_key = generate_private_key(opts)
    leaf = issue_leaf(build_csr(leaf_key, LEAF_NAME), inter, inter_key, leaf_days, "sha256", now)
    return Pki(now, root_key, root, inter_key, inter, leaf_key, leaf)


def openssl_verify(
    tmp_path: Path,
    pki: Pki,
    *extra: str,
    root: x509.Certificate | None = None,
    chain: list[x509.Certificate] | None = None,
    at: datetime | None = None,
) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "root.pem").write_bytes(cert_pem(root or pki.root))
    (tmp_path / "cert.pem").write_bytes(cert_pem(pki.leaf))
    untrusted = chain if chain is not None else [pki.inter]
    chain_args: tuple[str, ...] = ()
    if untrusted:
        (tmp_path / "chain.pem").write_bytes(certs_pem(untrusted))
        chain_args = ("-untrusted", str(tmp_path / "chain.pem"))
    when = int((at or pki.now).timestamp())
    return openssl(
        "verify",
        "-attime",
        str(when),
        "-CAfile",
        str(tmp_path / "root.pem"),
        *chain_args,
        *extra,
        str(tmp_path / "cert.pem"),
    )


def x509_text(cert: x509.Certificate) -> str:
    out = openssl("x509", "-noout", "-text", stdin=cert_pem(cert))
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def ext_line(text: str, title: str) -> str:
    """The value line under an ``openssl x509 -text`` extension heading."""
    match = re.search(rf"{re.escape(title)}:( critical)? *\n\s+(.+)\n", text)
    assert match is not None, f"{title} missing"
    return match.group(2).strip().removeprefix("keyid:")


@pytest.fixture(scope="module", params=["ec", "rsa"])
def pki(request: pytest.FixtureRequest) -> Pki:
    return make_pki(request.param, datetime.now(UTC).replace(microsecond=0))


def test_openssl_verifies_root_intermediate_leaf_strictly(tmp_path: Path, pki: Pki) -> None:
    out = openssl_verify(
        tmp_path,
        pki,
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "www.example.com",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith(b": OK")
    client = openssl_verify(tmp_path, pki, "-x509_strict", "-purpose", "sslclient")
    assert client.returncode == 0, client.stdout + client.stderr
    ip = openssl_verify(tmp_path, pki, "-verify_ip", "192.0.2.80")
    assert ip.returncode == 0, ip.stdout + ip.stderr
    wrong_host = openssl_verify(tmp_path, pki, "-verify_hostname", "other.example.net")
    assert wrong_host.returncode != 0


def test_key_identifiers_link_each_cert_to_its_issuer(pki: Pki) -> None:
    def ski(cert: x509.Certificate) -> bytes:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    def aki(cert: x509.Certificate) -> bytes | None:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        return ext.value.key_identifier

    assert aki(pki.root) == ski(pki.root)
    assert aki(pki.inter) == ski(pki.root)
    assert aki(pki.leaf) == ski(pki.inter)
    # ssl-mgr's bug: the intermediate's AKI carried its own key id
    assert aki(pki.inter) != ski(pki.inter)
    root_text, inter_text = x509_text(pki.root), x509_text(pki.inter)
    assert ext_line(inter_text, "X509v3 Authority Key Identifier") == ext_line(
        root_text, "X509v3 Subject Key Identifier"
    )


def test_root_extensions(pki: Pki) -> None:
    root = pki.root
    assert root.issuer == root.subject
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    text = x509_text(root)
    assert ext_line(text, "X509v3 Basic Constraints") == "CA:TRUE, pathlen:1"
    assert ext_line(text, "X509v3 Key Usage") == "Certificate Sign, CRL Sign"
    assert "X509v3 Basic Constraints: critical" in text
    assert "X509v3 Key Usage: critical" in text
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)


def test_intermediate_extensions(pki: Pki) -> None:
    text = x509_text(pki.inter)
    assert ext_line(text, "X509v3 Basic Constraints") == "CA:TRUE, pathlen:0"
    assert ext_line(text, "X509v3 Key Usage") == "Certificate Sign, CRL Sign"
    assert "X509v3 Subject Alternative Name" not in text
    assert pki.inter.issuer == pki.root.subject


def test_leaf_extensions(pki: Pki) -> None:
    leaf = pki.leaf
    is_rsa = isinstance(pki.leaf_key, rsa.RSAPrivateKey)
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert ku.value.key_encipherment is is_rsa
    assert not ku.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    text = x509_text(leaf)
    assert ext_line(text, "X509v3 Basic Constraints") == "CA:FALSE"
    assert ext_line(text, "X509v3 Key Usage") == (
        "Digital Signature, Key Encipherment" if is_rsa else "Digital Signature"
    )
    assert ext_line(text, "X509v3 Extended Key Usage") == (
        "TLS Web Server Authentication, TLS Web Client Authentication"
    )
    assert "Code Signing" not in text and "Time Stamping" not in text
    assert ext_line(text, "X509v3 Subject Alternative Name") == (
        "DNS:www.example.com, DNS:example.com, IP Address:192.0.2.80"
    )
    assert leaf.subject.rfc4514_string() == "CN=www.example.com,O=Example"
    assert leaf.issuer == pki.inter.subject


def test_leaf_validity_and_serial(pki: Pki) -> None:
    assert pki.leaf.not_valid_before_utc == pki.now - timedelta(minutes=5)
    assert pki.leaf.not_valid_after_utc == pki.now + timedelta(days=90)
    for cert in (pki.root, pki.inter, pki.leaf):
        assert 0 < cert.serial_number < 2**159
    assert len({pki.root.serial_number, pki.inter.serial_number, pki.leaf.serial_number}) == 3


def test_leaf_validity_is_capped_at_the_issuer_expiry(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    short = make_pki("ec", now, root_days=30, leaf_days=90)
    assert short.root.not_valid_after_utc == now + timedelta(days=30)
    assert short.inter.not_valid_after_utc == short.root.not_valid_after_utc
    assert short.leaf.not_valid_after_utc == short.root.not_valid_after_utc
    enddates = {
        openssl("x509", "-noout", "-enddate", stdin=cert_pem(c)).stdout
        for c in (short.root, short.inter, short.leaf)
    }
    assert len(enddates) == 1
    assert openssl_verify(tmp_path, short, "-x509_strict").returncode == 0


def test_intermediate_aki_follows_an_issuer_ski_made_another_way(tmp_path: Path) -> None:
    """A root whose SKI is not the SHA-1 key hash (e.g. made by another tool) still chains."""
    now = datetime.now(UTC).replace(microsecond=0)
    root_key = generate_private_key(KEY_OPTS["ec"])
    odd_ski = os.urandom(20)
    name = x509.Name.from_rfc4514_string("CN=Foreign Root")
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(odd_ski), critical=False)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    inter_key = generate_private_key(KEY_OPTS["ec"])
    inter_csr = build_csr(inter_key, X509Name(CN="Sub CA"), is_ca=True)
    inter = issue_intermediate(inter_csr, root, root_key, 50, "sha256", now)
    aki = inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == odd_ski
    leaf_key = generate_private_key(KEY_OPTS["ec"])
    leaf = issue_leaf(build_csr(leaf_key, LEAF_NAME), inter, inter_key, 10, "sha256", now)
    foreign = Pki(now, root_key, root, inter_key, inter, leaf_key, leaf)
    out = openssl_verify(tmp_path, foreign, "-x509_strict")
    assert out.returncode == 0, out.stdout + out.stderr


def test_signing_with_an_openssl_made_root(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    made = openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(tmp_path / "root.key"),
        "-subj",
        "/CN=OpenSSL Root",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-days",
        "30",
        "-out",
        str(tmp_path / "openssl-root.pem"),
    )
    assert made.returncode == 0, made.stderr
    root = x509.load_pem_x509_certificate((tmp_path / "openssl-root.pem").read_bytes())
    root_key = load_private_key((tmp_path / "root.key").read_bytes())
    leaf_key = generate_private_key(KEY_OPTS["ec"])
    leaf = issue_leaf(build_csr(leaf_key, LEAF_NAME), root, root_key, 10, "sha256", now)
    direct = Pki(now, root_key, root, root_key, root, leaf_key, leaf)
    out = openssl_verify(tmp_path, direct, "-x509_strict", chain=[])
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_csr_signature_is_refused(pki: Pki) -> None:
    csr = build_csr(generate_private_key(KEY_OPTS["ec"]), LEAF_NAME)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[der.index(b"www.example.com")] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(ValueError, match="CSR signature is invalid"):
        issue_leaf(tampered, pki.inter, pki.inter_key, 10, "sha256", pki.now)
    with pytest.raises(ValueError, match="CSR signature is invalid"):
        issue_intermediate(tampered, pki.root, pki.root_key, 10, "sha256", pki.now)


def test_issuer_checks(pki: Pki) -> None:
    csr = build_csr(generate_private_key(KEY_OPTS["ec"]), LEAF_NAME)
    with pytest.raises(ValueError, match="does not belong"):
        issue_leaf(csr, pki.inter, pki.root_key, 10, "sha256", pki.now)
    with pytest.raises(ValueError, match="not a CA"):
        issue_leaf(csr, pki.leaf, pki.leaf_key, 10, "sha256", pki.now)
    with pytest.raises(ValueError, match="pathlen 0"):
        issue_intermediate(csr, pki.inter, pki.inter_key, 10, "sha256", pki.now)
    later = pki.inter.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(ValueError, match="not valid at"):
        issue_leaf(csr, pki.inter, pki.inter_key, 10, "sha256", later)
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_leaf(csr, pki.inter, pki.inter_key, 10, "sha256", pki.now.replace(tzinfo=None))
    with pytest.raises(ValueError, match="at least 1 day"):
        issue_leaf(csr, pki.inter, pki.inter_key, 0, "sha256", pki.now)
    with pytest.raises(ValueError, match="unsupported digest"):
        issue_leaf(csr, pki.inter, pki.inter_key, 10, "sha1", pki.now)


def test_root_needs_a_subject_and_honours_digest_and_pathlen() -> None:
    key = generate_private_key(KEY_OPTS["ec"])
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="needs a subject"):
        issue_root(key, X509Name(sans=("ca.example.com",)), 10, "sha256", now)
    root = issue_root(key, X509Name(CN="R"), 10, "sha512", now, path_length=None)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA512)
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length is None
    text = x509_text(root)
    assert ext_line(text, "X509v3 Basic Constraints") == "CA:TRUE"


def test_private_keys_are_not_in_certificates(pki: Pki) -> None:
    body = private_key_pem(pki.leaf_key).decode().splitlines()[1]
    assert body.encode() not in cert_pem(pki.leaf)
