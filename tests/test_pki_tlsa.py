"""TLSA association data equals the openssl pipelines; records parse as zone-file data."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import dns.rdatatype
import dns.zone
import pytest
from cryptography import x509

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import generate_private_key
from sslm_ci.pki.pem import cert_pem
from sslm_ci.pki.tlsa import tlsa_cert_for_usage, tlsa_data, tlsa_owner, tlsa_rr


def openssl(*args: str, stdin: bytes) -> bytes:
    out = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def openssl_tlsa(cert: x509.Certificate, selector: int, match: int) -> str:
    """The classic shell pipeline, one openssl call per stage."""
    pem = cert_pem(cert)
    if selector == 1:
        pub_pem = openssl("x509", "-pubkey", "-noout", stdin=pem)
        blob = openssl("pkey", "-pubin", "-outform", "DER", stdin=pub_pem)
    else:
        blob = openssl("x509", "-outform", "DER", stdin=pem)
    if match == 0:
        return blob.hex()
    algo = "-sha256" if match == 1 else "-sha512"
    return openssl("dgst", algo, "-r", stdin=blob).split()[0].decode()


@pytest.fixture(scope="module", params=["ec", "rsa"])
def certs(request: pytest.FixtureRequest) -> tuple[x509.Certificate, list[x509.Certificate]]:
    now = datetime.now(UTC)
    ec = KeyOpts(ktype="ec", ec_algo="secp384r1")
    root_key = generate_private_key(ec)
    root = issue_root(root_key, X509Name(CN="TLSA Root"), 30, "sha384", now)
    inter_key = generate_private_key(ec)
    inter_csr = build_csr(inter_key, X509Name(CN="TLSA Issuing CA"), is_ca=True)
    inter = issue_intermediate(inter_csr, root, root_key, 30, "sha384", now)
    leaf_opts = ec if request.param == "ec" else KeyOpts(ktype="rsa", rsa_bits=2048)
    leaf_csr = build_csr(generate_private_key(leaf_opts), X509Name(CN="mail.example.com"))
    leaf = issue_leaf(leaf_csr, inter, inter_key, 30, "sha256", now)
    return leaf, [inter, root]


@pytest.mark.parametrize(
    ("usage", "selector", "match"),
    [(3, 1, 1), (3, 1, 2), (3, 0, 1), (2, 1, 1), (3, 0, 2), (3, 1, 0), (2, 0, 1), (1, 1, 1)],
)
def test_tlsa_data_equals_openssl_pipeline(
    certs: tuple[x509.Certificate, list[x509.Certificate]], usage: int, selector: int, match: int
) -> None:
    leaf, chain = certs
    target = tlsa_cert_for_usage(leaf, chain, usage)
    ours = tlsa_data(target, selector, match)
    assert ours == openssl_tlsa(target, selector, match)
    assert ours == ours.lower()


def test_usage_picks_leaf_or_issuer(certs: tuple[x509.Certificate, list[x509.Certificate]]) -> None:
    leaf, chain = certs
    assert tlsa_cert_for_usage(leaf, chain, 3) is leaf
    assert tlsa_cert_for_usage(leaf, chain, 1) is leaf
    assert tlsa_cert_for_usage(leaf, chain, 2) is chain[0]
    assert tlsa_cert_for_usage(leaf, chain, 0) is chain[0]
    assert tlsa_data(leaf, 1, 1) != tlsa_data(chain[0], 1, 1)
    with pytest.raises(ValueError, match="chain is empty"):
        tlsa_cert_for_usage(leaf, [], 2)
    with pytest.raises(ValueError, match="usage 4"):
        tlsa_cert_for_usage(leaf, chain, 4)


def test_record_line_format() -> None:
    data = "0123456789abcdef" * 4
    assert tlsa_rr("_25._tcp.mail.example.com", 1800, 3, 1, 1, data) == (
        f"_25._tcp.mail.example.com. 1800 IN TLSA 3 1 1 {data}"
    )
    assert tlsa_rr("_25._tcp.mail.example.com.", 60, 3, 1, 1, data.upper()).endswith(data)
    assert tlsa_owner(25, "tcp", "mail.example.com") == "_25._tcp.mail.example.com."
    assert tlsa_owner(853, "udp", "ns.example.com.") == "_853._udp.ns.example.com."


def test_long_data_wraps_in_parentheses_and_parses_as_zone_data(
    certs: tuple[x509.Certificate, list[x509.Certificate]],
) -> None:
    leaf, _ = certs
    sha512 = tlsa_data(leaf, 1, 2)
    full = tlsa_data(leaf, 0, 0)
    records = [
        tlsa_rr("_25._tcp.mail.example.com", 1800, 3, 1, 2, sha512),
        tlsa_rr("_443._tcp.www.example.com", 1800, 3, 0, 0, full),
        tlsa_rr("_25._tcp.mail.example.com", 1800, 3, 1, 1, tlsa_data(leaf, 1, 1)),
    ]
    assert records[0].splitlines()[0].endswith("3 1 2 (")
    assert records[0].endswith(" )")
    assert all(len(line.strip()) <= 72 for rr in records[:2] for line in rr.splitlines()[1:])
    assert "\n" not in records[2]
    zone_text = (
        "$ORIGIN example.com.\n"
        "@ 3600 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300\n"
        "@ 3600 IN NS ns.example.com.\n"
        "ns 3600 IN A 192.0.2.53\n" + "\n".join(records) + "\n"
    )
    zone = dns.zone.from_text(zone_text, origin="example.com.")
    mail = zone.get_rdataset("_25._tcp.mail", dns.rdatatype.TLSA)
    assert mail is not None and mail.ttl == 1800
    assert {(r.usage, r.selector, r.mtype, r.cert.hex()) for r in mail} == {
        (3, 1, 2, sha512),
        (3, 1, 1, tlsa_data(leaf, 1, 1)),
    }
    www = zone.get_rdataset("_443._tcp.www", dns.rdatatype.TLSA)
    assert www is not None
    assert [r.cert.hex() for r in www] == [full]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, 1, 1, "ab" * 32), "usage 4"),
        ((3, 2, 1, "ab" * 32), "selector 2"),
        ((3, 1, 3, "ab" * 32), "matching type 3"),
        ((3, 1, 1, "ab" * 31), "needs 64 hex digits"),
        ((3, 1, 2, "ab" * 32), "needs 128 hex digits"),
        ((3, 1, 0, "xyz0"), "hex string"),
        ((3, 1, 0, "abc"), "even-length"),
    ],
)
def test_record_arguments_are_validated(args: tuple[int, int, int, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tlsa_rr("_25._tcp.mail.example.com", 1800, *args)


def test_tlsa_data_arguments_are_validated(
    certs: tuple[x509.Certificate, list[x509.Certificate]],
) -> None:
    with pytest.raises(ValueError, match="selector 2"):
        tlsa_data(certs[0], 2, 1)
    with pytest.raises(ValueError, match="matching type 3"):
        tlsa_data(certs[0], 1, 3)
    with pytest.raises(ValueError, match="port 0"):
        tlsa_owner(0, "tcp", "x.example.com")
    with pytest.raises(ValueError, match="protocol"):
        tlsa_owner(25, "icmp", "x.example.com")
