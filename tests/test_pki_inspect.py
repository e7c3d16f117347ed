"""describe() output against openssl's view of the same files; keys never leak."""

from __future__ import annotations

import math
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.dh import named_group_pem
from sslm_ci.pki.inspect import cert_expiry, days_left, describe, serial_hex, sha256_fingerprint
from sslm_ci.pki.keys import PrivateKey, generate_private_key, private_key_pem
from sslm_ci.pki.pem import build_outputs, cert_pem, csr_pem


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


class Files:
    def __init__(self, leaf_opts: KeyOpts) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        ca_opts = KeyOpts(ktype="ec", ec_algo="secp256r1")
        self.root_key = generate_private_key(ca_opts)
        self.root = issue_root(self.root_key, X509Name(CN="Info Root"), 60, "sha256", self.now)
        inter_key = generate_private_key(ca_opts)
        inter_csr = build_csr(inter_key, X509Name(CN="Info Issuing CA"), is_ca=True)
        self.inter = issue_intermediate(inter_csr, self.root, self.root_key, 60, "sha256", self.now)
        self.key: PrivateKey = generate_private_key(leaf_opts)
        name = X509Name(CN="www.example.com", O="Example", sans=("192.0.2.1",))
        self.csr = build_csr(self.key, name)
        self.leaf = issue_leaf(self.csr, self.inter, inter_key, 45, "sha256", self.now)
        self.outputs = build_outputs(self.key, self.csr, self.leaf, [self.inter, self.root])


@pytest.fixture(scope="module", params=["ec", "rsa"])
def files(request: pytest.FixtureRequest) -> Files:
    if request.param == "ec":
        return Files(KeyOpts(ktype="ec", ec_algo="secp384r1"))
    return Files(KeyOpts(ktype="rsa", rsa_bits=2048))


def secret_strings(key: PrivateKey) -> list[str]:
    """Text that would betray the key: its PEM body lines and the private number in hex."""
    lines = private_key_pem(key).decode().splitlines()[1:-1]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        secret = key.private_numbers().private_value
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        secret = key.private_numbers().d
    hex_secret = f"{secret:x}"
    return [*lines, hex_secret[:32], hex_secret[:32].upper()]


def assert_no_key_material(text: str, key: PrivateKey) -> None:
    for secret in secret_strings(key):
        assert secret not in text
    # no base64 run of any key either; hex fingerprints and serials are all that is allowed
    for run in re.findall(r"[A-Za-z0-9+/=]{24,}", text):
        assert re.fullmatch(r"[0-9a-f]+|[0-9A-F]+", run), run


def test_private_key_summary_has_type_size_and_fingerprint_only(files: Files) -> None:
    text = describe(files.outputs["privkey.pem"])
    assert_no_key_material(text, files.key)
    size = "RSA 2048 bits" if isinstance(files.key, rsa.RSAPrivateKey) else "EC secp384r1"
    assert size in text
    pub_der = openssl("pkey", "-pubout", "-outform", "DER", stdin=files.outputs["privkey.pem"])
    digest = openssl("dgst", "-sha256", "-r", stdin=pub_der.stdout).stdout.split()[0].decode()
    assert f"Key SHA-256:  {digest}" in text


def test_bundle_summary_matches_key_and_certs_without_key_material(files: Files) -> None:
    text = describe(files.outputs["bundle.pem"], files.now)
    assert_no_key_material(text, files.key)
    assert text.startswith("Bundle: private key + 3 certificate(s)\n  Key matches:  certificate 1")
    assert text.count("Certificate 1 of 3") == 1 and "Certificate 3 of 3" in text
    assert "Signed by:    the next certificate in this file" in text
    assert "Signed by:    self-signed" in text


def test_bundle_with_a_foreign_key_is_flagged(files: Files) -> None:
    other = generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))
    text = describe(private_key_pem(other) + files.outputs["fullchain.pem"])
    assert "NO: differs from certificate 1" in text
    assert_no_key_material(text, other)


def test_traditional_and_encrypted_keys(files: Files) -> None:
    trad = openssl("pkey", "-traditional", stdin=files.outputs["privkey.pem"]).stdout
    assert trad.startswith(b"-----BEGIN EC PRIVATE KEY") or trad.startswith(
        b"-----BEGIN RSA PRIVATE KEY"
    )
    text = describe(trad)
    assert_no_key_material(text, files.key)
    assert "Key SHA-256" in text
    enc = openssl("pkey", "-aes256", "-passout", "pass:pw", stdin=files.outputs["privkey.pem"])
    assert enc.stdout.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    enc_text = describe(enc.stdout)
    assert "encrypted, not inspected" in enc_text
    legacy = openssl(
        "pkey", "-traditional", "-aes256", "-passout", "pass:pw", stdin=files.outputs["privkey.pem"]
    ).stdout
    assert b"Proc-Type: 4,ENCRYPTED" in legacy
    assert "not inspected" in describe(legacy)


def test_certificate_fields_agree_with_openssl(files: Files) -> None:
    text = describe(files.outputs["cert.pem"], files.now)
    pem = files.outputs["cert.pem"]
    serial = openssl("x509", "-noout", "-serial", stdin=pem).stdout.decode().strip()
    assert serial == f"serial={serial_hex(files.leaf)}"
    assert f"Serial:       {serial_hex(files.leaf)}" in text
    fp = openssl("x509", "-noout", "-fingerprint", "-sha256", stdin=pem).stdout.decode().strip()
    assert fp.split("=", 1)[1] == sha256_fingerprint(files.leaf)
    assert f"SHA-256:      {sha256_fingerprint(files.leaf)}" in text
    assert "Subject:      CN=www.example.com,O=Example" in text
    assert "Issuer:       CN=Info Issuing CA" in text
    assert "SANs:         DNS:www.example.com, IP:192.0.2.1" in text
    assert "CA:           no" in text
    assert "Days left:    45.0" in text
    assert f"Not after:    {files.leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC" in text
    chain_text = describe(files.outputs["chain.pem"])
    assert "CA:           yes (pathlen 0)" in chain_text
    assert "CA:           yes (pathlen 1)" in chain_text


def test_trusted_certificate_and_surrounding_text(tmp_path: Path, files: Files) -> None:
    trusted = openssl("x509", "-addtrust", "serverAuth", stdin=cert_pem(files.root)).stdout
    dump = openssl("x509", "-text", stdin=cert_pem(files.leaf)).stdout
    text = describe(b"# comment line\n" + dump + trusted)
    assert "Certificate 1 of 2" in text and "Certificate 2 of 2" in text
    assert "Subject:      CN=Info Root" in text


def test_csr_and_dh_and_unknown_blocks(files: Files) -> None:
    csr_text = describe(csr_pem(files.csr))
    assert "Certificate request" in csr_text
    assert "SANs:         DNS:www.example.com, IP:192.0.2.1" in csr_text
    assert "Signature:    valid" in csr_text
    dh_text = describe(named_group_pem("ffdhe3072"))
    assert "Group:        ffdhe3072" in dh_text and "3072 bits" in dh_text
    odd = describe(b"-----BEGIN SOMETHING ELSE-----\nAAAA\n-----END SOMETHING ELSE-----\n")
    assert "Unsupported PEM block 'SOMETHING ELSE'" in odd


def test_input_without_pem_is_an_error() -> None:
    with pytest.raises(ValueError, match="no PEM blocks"):
        describe(b"hello\n")
    with pytest.raises(ValueError, match="invalid base64"):
        describe(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")


def test_cert_expiry_matches_openssl_enddate(files: Files) -> None:
    expiry = cert_expiry(files.leaf)
    assert expiry.tzinfo is not None and expiry.utcoffset() == timedelta(0)
    end = openssl("x509", "-noout", "-enddate", stdin=files.outputs["cert.pem"]).stdout.decode()
    parsed = datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    assert parsed.replace(tzinfo=UTC) == expiry


def test_days_left_agrees_with_openssl_checkend(files: Files) -> None:
    now = datetime.now(UTC)
    remaining = days_left(files.leaf, now) * 86400
    # openssl reads its own clock: leave a minute either side for the time between calls
    below, above = math.floor(remaining) - 60, math.ceil(remaining) + 60
    pem = files.outputs["cert.pem"]
    assert openssl("x509", "-noout", "-checkend", str(below), stdin=pem).returncode == 0
    assert openssl("x509", "-noout", "-checkend", str(above), stdin=pem).returncode == 1
    assert days_left(files.leaf, files.leaf.not_valid_after_utc) == 0
    later = files.leaf.not_valid_after_utc + timedelta(days=2)
    assert days_left(files.leaf, later) == -2


def test_describe_reports_each_certificate_of_a_list(files: Files) -> None:
    certs: list[x509.Certificate] = [files.leaf, files.inter, files.root]
    text = describe(b"".join(cert_pem(c) for c in certs))
    for cert in certs:
        assert sha256_fingerprint(cert) in text
