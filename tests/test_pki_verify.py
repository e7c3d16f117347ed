"""verify_chain against good and broken chains; openssl verify must agree on each verdict."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import PrivateKey, generate_private_key
from sslm_ci.pki.pem import cert_pem, certs_pem
from sslm_ci.pki.verify import VerifyResult, verify_chain

EC = KeyOpts(ktype="ec", ec_algo="secp256r1")
WWW = X509Name(CN="www.example.com")


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


@dataclass(frozen=True)
class Pki:
    root_key: PrivateKey
    root: x509.Certificate
    inter_key: PrivateKey
    inter: x509.Certificate
    leaf: x509.Certificate


def make_pki(now: datetime, name: X509Name = WWW) -> Pki:
    root_key = generate_private_key(EC)
    root = issue_root(root_key, X509Name(CN="Verify Root"), 365, "sha256", now)
    inter_key = generate_private_key(EC)
    inter = issue_intermediate(
        build_csr(inter_key, X509Name(CN="Verify Issuing CA"), is_ca=True),
        root,
        root_key,
        200,
        "sha256",
        now,
    )
    leaf_csr = build_csr(generate_private_key(EC), name)
    leaf = issue_leaf(leaf_csr, inter, inter_key, 90, "sha256", now)
    return Pki(root_key, root, inter_key, inter, leaf)


def raw_cert(
    subject: str,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    now: datetime,
    *,
    ca: bool,
) -> tuple[PrivateKey, x509.Certificate]:
    """A cert our issuing code would refuse to make, to see the verifiers catch it."""
    key = generate_private_key(EC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(subject))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("x.example.com")]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return key, cert


def openssl_verify(
    tmp_path: Path,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    root: x509.Certificate,
    at: datetime,
) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "root.pem").write_bytes(cert_pem(root))
    (tmp_path / "chain.pem").write_bytes(certs_pem(chain))
    (tmp_path / "cert.pem").write_bytes(cert_pem(cert))
    return openssl(
        "verify",
        "-attime",
        str(int(at.timestamp())),
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-untrusted",
        str(tmp_path / "chain.pem"),
        str(tmp_path / "cert.pem"),
    )


def reasons_text(result: VerifyResult) -> str:
    return "\n".join(result.reasons)


@pytest.fixture(scope="module")
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(now: datetime) -> Pki:
    return make_pki(now)


def test_good_chain_passes_both_modes(tmp_path: Path, pki: Pki, now: datetime) -> None:
    full = verify_chain(pki.leaf, [pki.inter, pki.root], [pki.root], now)
    assert full == VerifyResult(ok=True, reasons=(), path_checked=True)
    links = verify_chain(pki.leaf, [pki.inter], None, now)
    assert links == VerifyResult(ok=True, reasons=(), path_checked=False)
    # the chain may stop below the root when the root is supplied as trusted
    assert verify_chain(pki.leaf, [pki.inter], [pki.root], now).ok
    assert openssl_verify(tmp_path, pki.leaf, [pki.inter], pki.root, now).returncode == 0


def test_chain_of_another_ca_with_the_same_names_fails(
    tmp_path: Path, pki: Pki, now: datetime
) -> None:
    other = make_pki(now)
    result = verify_chain(pki.leaf, [other.inter], None, now)
    assert not result.ok
    assert "signature does not verify" in reasons_text(result)
    with_root = verify_chain(pki.leaf, [other.inter, other.root], [other.root], now)
    assert not with_root.ok
    assert "path validation failed" in reasons_text(with_root)
    out = openssl_verify(tmp_path, pki.leaf, [other.inter], other.root, now)
    assert out.returncode != 0
    # the AKI names the real issuer's key, so openssl does not even take the impostor
    assert b"unable to get local issuer certificate" in out.stdout + out.stderr


def test_aki_pointing_at_the_wrong_key_fails_like_in_openssl(
    tmp_path: Path, pki: Pki, now: datetime
) -> None:
    """ssl-mgr's bug: the intermediate's AKI held its own key id. Signatures still verify."""
    inter_key = generate_private_key(EC)
    name = x509.Name.from_rfc4514_string("CN=Buggy Issuing CA")
    buggy = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(pki.root.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()),
            critical=False,
        )
        .sign(pki.root_key, hashes.SHA256())
    )
    buggy.verify_directly_issued_by(pki.root)
    leaf_csr = build_csr(generate_private_key(EC), WWW)
    leaf = issue_leaf(leaf_csr, buggy, inter_key, 5, "sha256", now)
    result = verify_chain(leaf, [buggy, pki.root], [pki.root], now)
    assert not result.ok
    assert "authority key id" in reasons_text(result)
    assert not verify_chain(leaf, [buggy, pki.root], None, now).ok
    out = openssl_verify(tmp_path, leaf, [buggy], pki.root, now)
    assert out.returncode != 0
    assert b"unable to get local issuer certificate" in out.stdout + out.stderr


def test_chain_in_wrong_order_fails(pki: Pki, now: datetime) -> None:
    result = verify_chain(pki.leaf, [pki.root, pki.inter], None, now)
    assert not result.ok
    assert "names issuer 'CN=Verify Issuing CA'" in reasons_text(result)


def test_untrusted_root_fails(tmp_path: Path, pki: Pki, now: datetime) -> None:
    stranger = make_pki(now).root
    result = verify_chain(pki.leaf, [pki.inter, pki.root], [stranger], now)
    assert not result.ok
    assert "is not a trusted root" in reasons_text(result)
    assert openssl_verify(tmp_path, pki.leaf, [pki.inter], stranger, now).returncode != 0
    assert not verify_chain(pki.leaf, [pki.inter], [], now).ok


@pytest.mark.parametrize(
    ("offset", "message", "openssl_error"),
    [
        (timedelta(days=91), "expired at", b"certificate has expired"),
        (timedelta(minutes=-10), "is not valid before", b"certificate is not yet valid"),
    ],
)
def test_validity_is_checked_at_now(
    tmp_path: Path,
    pki: Pki,
    now: datetime,
    offset: timedelta,
    message: str,
    openssl_error: bytes,
) -> None:
    when = now + offset
    result = verify_chain(pki.leaf, [pki.inter, pki.root], [pki.root], when)
    assert not result.ok
    assert message in reasons_text(result)
    assert not verify_chain(pki.leaf, [pki.inter], None, when).ok
    out = openssl_verify(tmp_path, pki.leaf, [pki.inter], pki.root, when)
    assert out.returncode != 0
    assert openssl_error in out.stdout + out.stderr


def test_issuer_that_is_not_a_ca_fails(tmp_path: Path, pki: Pki, now: datetime) -> None:
    leaf_key = generate_private_key(EC)
    leaf_as_issuer = issue_leaf(
        build_csr(leaf_key, X509Name(CN="y.example.com")),
        pki.inter,
        pki.inter_key,
        30,
        "sha256",
        now,
    )
    _, victim = raw_cert("CN=x.example.com", leaf_as_issuer, leaf_key, now, ca=False)
    result = verify_chain(victim, [leaf_as_issuer, pki.inter, pki.root], [pki.root], now)
    assert not result.ok
    assert "is not a CA (CA:FALSE)" in reasons_text(result)
    out = openssl_verify(tmp_path, victim, [leaf_as_issuer, pki.inter], pki.root, now)
    assert out.returncode != 0


def test_path_length_violation_fails(tmp_path: Path, pki: Pki, now: datetime) -> None:
    sub_key, sub_ca = raw_cert("CN=Too Deep CA", pki.inter, pki.inter_key, now, ca=True)
    _, leaf = raw_cert("CN=x.example.com", sub_ca, sub_key, now, ca=False)
    result = verify_chain(leaf, [sub_ca, pki.inter, pki.root], [pki.root], now)
    assert not result.ok
    assert "allows pathlen 0, but 1 CAs follow it" in reasons_text(result)
    out = openssl_verify(tmp_path, leaf, [sub_ca, pki.inter], pki.root, now)
    assert out.returncode != 0
    assert b"path length constraint exceeded" in out.stdout + out.stderr


def test_ip_only_leaf_is_path_checked_by_its_address(now: datetime) -> None:
    pki = make_pki(now, X509Name(sans=("192.0.2.10",)))
    result = verify_chain(pki.leaf, [pki.inter], [pki.root], now)
    assert result == VerifyResult(ok=True, reasons=(), path_checked=True)


def test_leaf_without_names_gets_link_and_anchor_checks_only(now: datetime) -> None:
    pki = make_pki(now, X509Name(CN="Internal Service"))
    result = verify_chain(pki.leaf, [pki.inter], [pki.root], now)
    assert result == VerifyResult(ok=True, reasons=(), path_checked=False)
    stranger = make_pki(now).root
    assert not verify_chain(pki.leaf, [pki.inter], [stranger], now).ok


def test_ca_certificates_verify_against_their_issuer(pki: Pki, now: datetime) -> None:
    assert verify_chain(pki.inter, [pki.root], [pki.root], now).ok
    assert verify_chain(pki.root, [], [pki.root], now).ok
    assert verify_chain(pki.root, [], None, now).ok
    assert not verify_chain(pki.inter, [], [make_pki(now).root], now).ok


def test_naive_now_is_rejected(pki: Pki, now: datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_chain(pki.leaf, [pki.inter], None, now.replace(tzinfo=None))
