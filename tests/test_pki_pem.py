"""PEM parsing and the ssl-mgr output file set, read back by openssl."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import PrivateKey, generate_private_key, private_key_pem
from sslm_ci.pki.pem import (
    OUTPUT_FILES,
    build_outputs,
    cert_pem,
    certs_pem,
    csr_pem,
    load_csr,
    pem_blocks,
    pem_certs,
)

EC = KeyOpts(ktype="ec", ec_algo="secp256r1")


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


class Set:
    def __init__(self) -> None:
        now = datetime.now(UTC)
        root_key = generate_private_key(EC)
        self.root = issue_root(root_key, X509Name(CN="Pem Root"), 30, "sha256", now)
        inter_key = generate_private_key(EC)
        inter_csr = build_csr(inter_key, X509Name(CN="Pem Issuing CA"), is_ca=True)
        self.inter = issue_intermediate(inter_csr, self.root, root_key, 30, "sha256", now)
        self.key: PrivateKey = generate_private_key(EC)
        self.csr = build_csr(self.key, X509Name(CN="www.example.com"))
        self.leaf = issue_leaf(self.csr, self.inter, inter_key, 30, "sha256", now)
        self.chain = [self.inter, self.root]


@pytest.fixture(scope="module")
def pki() -> Set:
    return Set()


def test_output_set_is_exactly_ssl_mgrs_files(pki: Set) -> None:
    out = build_outputs(pki.key, pki.csr, pki.leaf, pki.chain)
    assert tuple(out) == OUTPUT_FILES
    assert set(out) == {
        "privkey.pem",
        "csr.pem",
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "bundle.pem",
    }
    assert out["privkey.pem"] == private_key_pem(pki.key)
    assert out["csr.pem"] == csr_pem(pki.csr)
    assert out["cert.pem"] == cert_pem(pki.leaf)
    assert out["chain.pem"] == cert_pem(pki.inter) + cert_pem(pki.root)
    assert out["fullchain.pem"] == out["cert.pem"] + out["chain.pem"]
    assert out["bundle.pem"] == out["privkey.pem"] + out["fullchain.pem"]
    assert pem_certs(out["fullchain.pem"]) == [pki.leaf, pki.inter, pki.root]
    assert load_csr(out["csr.pem"]) == pki.csr


def test_openssl_uses_the_written_files(tmp_path: Path, pki: Set) -> None:
    out = build_outputs(pki.key, pki.csr, pki.leaf, pki.chain)
    for name, data in out.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "root.pem").write_bytes(cert_pem(pki.root))
    verify = openssl(
        "verify",
        "-x509_strict",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-untrusted",
        str(tmp_path / "chain.pem"),
        str(tmp_path / "cert.pem"),
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # a bundle serves as both key and cert file (postfix smtpd_tls_chain_files style)
    bundle = str(tmp_path / "bundle.pem")
    key_mod = openssl("pkey", "-in", bundle, "-pubout").stdout
    cert_mod = openssl("x509", "-in", bundle, "-noout", "-pubkey").stdout
    assert key_mod and key_mod == cert_mod
    listed = openssl("storeutl", "-noout", "-certs", str(tmp_path / "fullchain.pem"))
    assert listed.returncode == 0
    assert b"Total found: 3" in listed.stdout + listed.stderr


def test_mismatched_parts_are_refused(pki: Set) -> None:
    other = generate_private_key(EC)
    with pytest.raises(ValueError, match="private key does not match"):
        build_outputs(other, pki.csr, pki.leaf, pki.chain)
    other_csr = build_csr(other, X509Name(CN="www.example.com"))
    with pytest.raises(ValueError, match="CSR public key does not match"):
        build_outputs(pki.key, other_csr, pki.leaf, pki.chain)


def test_pem_certs_ignores_text_and_other_blocks(pki: Set) -> None:
    dump = openssl("x509", "-text", stdin=cert_pem(pki.leaf)).stdout
    data = (
        b"subject=CN = Pem Root\n"
        + private_key_pem(generate_private_key(EC))
        + dump
        + b"trailing garbage after END\n"
        + certs_pem(pki.chain)
        + b"# the end\n"
    )
    assert pem_certs(data) == [pki.leaf, pki.inter, pki.root]


def test_pem_certs_reads_openssl_trusted_certificates(pki: Set) -> None:
    trusted = openssl(
        "x509", "-addtrust", "serverAuth", "-addreject", "emailProtection", stdin=cert_pem(pki.root)
    ).stdout
    assert trusted.startswith(b"-----BEGIN TRUSTED CERTIFICATE-----")
    assert pem_certs(trusted) == [pki.root]


def test_pem_certs_crlf_and_empty(pki: Set) -> None:
    crlf = cert_pem(pki.leaf).replace(b"\n", b"\r\n")
    assert pem_certs(crlf) == [pki.leaf]
    assert pem_certs(b"") == []
    assert pem_blocks(b"no pem here") == []


def test_pem_certs_reports_broken_certificates() -> None:
    bad = b"-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError, match="PEM block 1 is not a valid certificate"):
        pem_certs(bad)


def test_empty_chain_gives_empty_chain_file(pki: Set) -> None:
    out = build_outputs(pki.key, pki.csr, pki.leaf, [])
    assert out["chain.pem"] == b""
    assert out["fullchain.pem"] == out["cert.pem"]
    certs: list[x509.Certificate] = pem_certs(out["bundle.pem"])
    assert certs == [pki.leaf]
