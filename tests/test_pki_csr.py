"""CSR subject and SAN rules, checked with ``openssl req``."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.csr import build_csr, csr_sans, san_names, subject_name
from sslm_ci.pki.keys import PrivateKey, generate_private_key
from sslm_ci.pki.pem import csr_pem


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


@pytest.fixture(scope="module")
def ec_key() -> PrivateKey:
    return generate_private_key(KeyOpts(ktype="ec", ec_algo="secp256r1"))


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return generate_private_key(KeyOpts(ktype="rsa", rsa_bits=2048))


FULL_NAME = X509Name(
    CN="mail.example.com",
    O="Example Org",
    OU="Mail",
    L="Springfield",
    ST="Some State",
    C="us",
    email="hostmaster@example.com",
    sans=("mail.example.com", "smtp.example.com", "192.0.2.25", "2001:db8::25"),
)


def test_subject_has_every_field_in_conventional_order_and_no_email(
    tmp_path: Path, ec_key: PrivateKey
) -> None:
    csr = build_csr(ec_key, FULL_NAME)
    assert [(a.oid, a.value) for a in csr.subject] == [
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Some State"),
        (NameOID.LOCALITY_NAME, "Springfield"),
        (NameOID.ORGANIZATION_NAME, "Example Org"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Mail"),
        (NameOID.COMMON_NAME, "mail.example.com"),
    ]
    out = openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", stdin=csr_pem(csr))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == (
        "subject=CN=mail.example.com,OU=Mail,O=Example Org,L=Springfield,ST=Some State,C=US"
    )
    text = openssl("req", "-noout", "-text", stdin=csr_pem(csr)).stdout
    assert b"hostmaster" not in text
    assert b"emailAddress" not in text


def test_empty_fields_are_left_out_not_encoded_empty(ec_key: PrivateKey) -> None:
    csr = build_csr(ec_key, X509Name(CN="www.example.com", O="Example", OU="", L="", C=""))
    assert [a.oid for a in csr.subject] == [NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]
    assert all(a.value for a in csr.subject)
    out = openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", stdin=csr_pem(csr))
    assert out.stdout.decode().strip() == "subject=CN=www.example.com,O=Example"


@pytest.mark.parametrize("key_fixture", ["ec_key", "rsa_key"])
def test_openssl_verifies_the_csr_signature(
    request: pytest.FixtureRequest, key_fixture: str
) -> None:
    key: PrivateKey = request.getfixturevalue(key_fixture)
    csr = build_csr(key, FULL_NAME, "sha384")
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA384)
    out = openssl("req", "-verify", "-noout", stdin=csr_pem(csr))
    assert out.returncode == 0, out.stderr
    # openssl 3.0 exits 0 even on a bad signature, so the message is what counts
    assert b"verify OK" in out.stdout + out.stderr
    assert b"failure" not in out.stdout + out.stderr


def test_openssl_rejects_a_tampered_csr(ec_key: PrivateKey) -> None:
    csr = build_csr(ec_key, FULL_NAME)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    # flip a bit inside the signed subject: the structure still parses, the signature fails
    der[der.index(b"Springfield")] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    assert not tampered.is_signature_valid
    out = openssl("req", "-verify", "-noout", stdin=csr_pem(tampered))
    # openssl 3.0 exits 0 here; only the message tells
    assert b"verify failure" in out.stdout + out.stderr
    assert b"verify OK" not in out.stdout + out.stderr


def test_sans_include_ips_and_dns_names_in_openssl_text(ec_key: PrivateKey) -> None:
    csr = build_csr(ec_key, FULL_NAME)
    assert csr_sans(csr) == [
        x509.DNSName("mail.example.com"),
        x509.DNSName("smtp.example.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.25")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::25")),
    ]
    text = openssl("req", "-noout", "-text", stdin=csr_pem(csr)).stdout.decode()
    assert (
        "DNS:mail.example.com, DNS:smtp.example.com, IP Address:192.0.2.25, "
        "IP Address:2001:DB8:0:0:0:0:0:25"
    ) in text


def test_cn_is_added_first_as_san_when_missing(ec_key: PrivateKey) -> None:
    name = X509Name(CN="www.example.com", sans=("example.com", "*.example.com"))
    csr = build_csr(ec_key, name)
    assert csr_sans(csr) == [
        x509.DNSName("www.example.com"),
        x509.DNSName("example.com"),
        x509.DNSName("*.example.com"),
    ]


def test_cn_only_leaf_gets_a_san_and_duplicates_collapse() -> None:
    assert san_names(X509Name(CN="Www.Example.com.")) == [x509.DNSName("www.example.com")]
    dup = X509Name(CN="a.example.com", sans=("A.example.com", "a.example.com", "192.0.2.1"))
    assert san_names(dup) == [
        x509.DNSName("a.example.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
    ]


def test_non_hostname_cn_is_not_made_a_san(ec_key: PrivateKey) -> None:
    csr = build_csr(ec_key, X509Name(CN="Example Mail Service", sans=("mail.example.com",)))
    assert csr_sans(csr) == [x509.DNSName("mail.example.com")]


def test_ca_csr_without_sans_has_no_san_extension(ec_key: PrivateKey) -> None:
    csr = build_csr(ec_key, X509Name(CN="ca.example.com", O="Example"), is_ca=True)
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    text = openssl("req", "-noout", "-text", stdin=csr_pem(csr)).stdout
    assert b"Subject Alternative Name" not in text


def test_internationalized_san_becomes_a_label() -> None:
    assert san_names(X509Name(sans=("bücher.example",))) == [x509.DNSName("xn--bcher-kva.example")]


def test_san_only_request_has_empty_subject_and_critical_san(ec_key: PrivateKey) -> None:
    csr = build_csr(ec_key, X509Name(sans=("www.example.com",)))
    assert len(csr.subject) == 0
    ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ext.critical
    out = openssl("req", "-verify", "-noout", stdin=csr_pem(csr))
    assert b"verify OK" in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (X509Name(CN="x.example.com", C="Germany"), "x509 C"),
        (X509Name(CN="x.example.com", C="D1"), "two-letter"),
        (X509Name(CN="a" * 65), "longer than 64"),
        (X509Name(CN="x.example.com", sans=("not a name",)), "neither an IP address"),
        (X509Name(CN="x.example.com", sans=("-bad.example.com",)), "neither an IP address"),
        (X509Name(email="only@example.com"), "neither a subject field nor a SAN"),
    ],
)
def test_bad_names_are_rejected(ec_key: PrivateKey, name: X509Name, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_csr(ec_key, name)


def test_subject_name_strips_whitespace() -> None:
    subject = subject_name(X509Name(CN="  host.example.com ", O="   "))
    assert subject.rfc4514_string() == "CN=host.example.com"
