"""Our TLSA data equals, byte for byte, what hash-slinger (``tlsa --create``), ``ldns-dane
create`` and an openssl pipeline make of the same certificates; a fragment rendered by our
code loads in named-checkzone through the rig's zone ``$INCLUDE``."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from cryptography import x509

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.dns.tlsa_zone import TlsaRecord, render
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import generate_private_key
from sslm_ci.pki.pem import cert_pem, certs_pem
from sslm_ci.pki.tlsa import tlsa_cert_for_usage, tlsa_data, tlsa_owner, tlsa_rr
from tests.rig.bind import SERIAL_TOKEN, ZoneSpec, render_zone_template
from tests.rig.dnssec import tlsa_text

HOST = "mail.example.com"
APEX = "example.com"
NOW = datetime.now(UTC).replace(microsecond=0)
VARIANTS = [(3, 1, 1), (3, 1, 2), (3, 0, 1), (2, 1, 1)]


@dataclass(frozen=True)
class Chain:
    leaf: x509.Certificate
    intermediate: x509.Certificate
    leaf_pem: Path  # the leaf alone
    intermediate_pem: Path  # the intermediate alone
    served_pem: Path  # leaf + intermediate, what a server sends


def make_chain(directory: Path, leaf_opts: KeyOpts) -> Chain:
    ca_opts = KeyOpts(ktype="ec", ec_algo="secp384r1")
    root_key = generate_private_key(ca_opts)
    root = issue_root(root_key, X509Name(CN="DANE Tools Root"), 30, "sha384", NOW)
    inter_key = generate_private_key(ca_opts)
    inter_csr = build_csr(inter_key, X509Name(CN="DANE Tools Issuing CA"), is_ca=True)
    inter = issue_intermediate(inter_csr, root, root_key, 30, "sha384", NOW)
    leaf_csr = build_csr(generate_private_key(leaf_opts), X509Name(CN=HOST, sans=(HOST,)))
    leaf = issue_leaf(leaf_csr, inter, inter_key, 30, "sha256", NOW)
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "leaf.pem", directory / "inter.pem", directory / "served.pem")
    paths[0].write_bytes(cert_pem(leaf))
    paths[1].write_bytes(cert_pem(inter))
    paths[2].write_bytes(certs_pem([leaf, inter]))
    return Chain(leaf, inter, *paths)


@pytest.fixture(scope="module", params=["ec", "rsa"])
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    opts = (
        KeyOpts(ktype="ec", ec_algo="secp256r1")
        if request.param == "ec"
        else KeyOpts(ktype="rsa", rsa_bits=2048)
    )
    return make_chain(tmp_path_factory.mktemp(f"dane-tools-{request.param}"), opts)


def run(argv: list[str], *, stdin: bytes = b"") -> bytes:
    result = subprocess.run(argv, input=stdin, capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result.stdout


def tlsa_fields(output: bytes) -> str:
    """``u s m hex`` from the one zone line with a TLSA record in a tool's output."""
    lines = [line.split() for line in output.decode().splitlines() if "TLSA" in line.split()]
    assert len(lines) == 1, output
    fields = lines[0]
    at = fields.index("TLSA")
    return " ".join([*fields[at + 1 : at + 4], "".join(fields[at + 4 :]).lower()])


def hash_slinger(chain: Chain, usage: int, selector: int, match: int) -> str:
    # the cert to match must be the LAST in the file, else it prompts per cert: give usage 2
    # the intermediate alone. Its defaults (-s 0, -p 443) are overridden explicitly.
    cert_file = chain.intermediate_pem if usage == 2 else chain.leaf_pem
    return tlsa_fields(
        run(
            [
                "tlsa",
                "--create",
                "-u",
                str(usage),
                "-s",
                str(selector),
                "-m",
                str(match),
                "-p",
                "25",
                "--certificate",
                str(cert_file),
                HOST,
            ]
        )
    )


def ldns_dane(chain: Chain, usage: int, selector: int, match: int) -> str:
    # usage 2: the served chain and "-o 0" (its default -o -1 wants a self-signed end
    # certificate; the intermediate alone fails the name check against the host)
    argv = ["ldns-dane"]
    if usage == 2:
        argv += ["-o", "0", "-c", str(chain.served_pem)]
    else:
        argv += ["-c", str(chain.leaf_pem)]
    argv += ["create", HOST, "25", str(usage), str(selector), str(match)]
    return tlsa_fields(run(argv))


def openssl_pipeline(chain: Chain, usage: int, selector: int, match: int) -> str:
    pem = chain.intermediate_pem.read_bytes() if usage == 2 else chain.leaf_pem.read_bytes()
    if selector == 1:
        pubkey = run(["openssl", "x509", "-noout", "-pubkey"], stdin=pem)
        blob = run(["openssl", "pkey", "-pubin", "-outform", "DER"], stdin=pubkey)
    else:
        blob = run(["openssl", "x509", "-outform", "DER"], stdin=pem)
    if match == 0:
        data = blob.hex()
    else:
        digest = "-sha256" if match == 1 else "-sha512"
        data = run(["openssl", "dgst", digest, "-r"], stdin=blob).split()[0].decode()
    return f"{usage} {selector} {match} {data}"


def ours(chain: Chain, usage: int, selector: int, match: int) -> str:
    cert = tlsa_cert_for_usage(chain.leaf, [chain.intermediate], usage)
    return f"{usage} {selector} {match} {tlsa_data(cert, selector, match)}"


def zone_tlsa(text: str) -> dict[str, set[str]]:
    """TLSA rdata (``u s m hex``) per owner in zone text, as dnspython parses it."""
    zone = dns.zone.from_text(text, origin=f"{APEX}.", relativize=False, check_origin=False)
    return {
        name.to_text(): {tlsa_text(rdata) for rdata in rdataset}
        for name, rdataset in zone.iterate_rdatasets(dns.rdatatype.TLSA)
    }


def wire(rdata_text: str) -> bytes:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, rdata_text).to_digestable()


@pytest.mark.parametrize(("usage", "selector", "match"), VARIANTS)
def test_tlsa_data_agrees_with_hash_slinger_ldns_dane_and_openssl(
    chain: Chain, usage: int, selector: int, match: int
) -> None:
    mine = ours(chain, usage, selector, match)
    others = {
        "hash-slinger": hash_slinger(chain, usage, selector, match),
        "ldns-dane": ldns_dane(chain, usage, selector, match),
        "openssl": openssl_pipeline(chain, usage, selector, match),
    }

    assert others == dict.fromkeys(others, mine)
    assert {tool: wire(text) for tool, text in others.items()} == dict.fromkeys(others, wire(mine))
    # the zone text our code writes (parenthesised over lines when long) carries that rdata
    owner = tlsa_owner(25, "tcp", HOST)
    line = tlsa_rr(owner, 2, usage, selector, match, mine.split()[3])
    assert zone_tlsa(line) == {owner: {mine}}


def test_usage_2_pins_the_intermediate_not_the_leaf(chain: Chain) -> None:
    ta = ours(chain, 2, 1, 1)
    ee = ours(chain, 3, 1, 1)
    assert ta.split()[3] != ee.split()[3]
    assert ta.split()[3] == tlsa_data(chain.intermediate, 1, 1)


def checkzone(zone_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["named-checkzone", "-D", "-o", "-", APEX, str(zone_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def write_zone(directory: Path, fragment: str) -> Path:
    acme = directory / f"acme-challenge.{APEX}"
    tlsa = directory / f"tlsa.{APEX}"
    acme.write_text("")
    tlsa.write_text(fragment)
    template = render_zone_template(APEX, ZoneSpec(mx=((10, "mail"),)), acme, tlsa)
    zone = directory / f"db.{APEX}"
    zone.write_text(template.replace(SERIAL_TOKEN, "7"))
    return zone


def test_rendered_fragment_passes_named_checkzone(chain: Chain, tmp_path: Path) -> None:
    owners = [tlsa_owner(25, "tcp", HOST), tlsa_owner(443, "tcp", APEX)]
    records = [
        TlsaRecord(owner, 2, usage, selector, match, ours(chain, usage, selector, match).split()[3])
        for owner in owners
        for usage, selector, match in VARIANTS
    ]
    zone = write_zone(tmp_path, render(APEX, records))

    result = checkzone(zone)

    assert result.returncode == 0, result.stdout + result.stderr
    # what named loaded (its canonical dump), not what we wrote
    expected = {ours(chain, *variant) for variant in VARIANTS}
    assert zone_tlsa(result.stdout) == dict.fromkeys(owners, expected)
    dumped = dns.zone.from_text(result.stdout, origin=f"{APEX}.", relativize=False)
    ttls = {rdataset.ttl for _, rdataset in dumped.iterate_rdatasets(dns.rdatatype.TLSA)}
    assert ttls == {2}
    # the MX target got its address, so check-integrity is satisfied
    assert dumped.get_rdataset(f"{HOST}.", dns.rdatatype.A) is not None


def test_named_checkzone_catches_syntax_but_not_digest_length(tmp_path: Path) -> None:
    """Why the byte-for-byte comparison above matters: named loads a 3 1 1 record whose
    SHA-256 is one byte short, so a zone check alone would not catch a generator bug."""
    owner = tlsa_owner(25, "tcp", HOST)
    short = checkzone(write_zone(tmp_path, f"{owner} 2 IN TLSA 3 1 1 {'ab' * 31}\n"))
    odd = checkzone(write_zone(tmp_path, f"{owner} 2 IN TLSA 3 1 1 {'ab' * 31}a\n"))

    assert short.returncode == 0, short.stdout + short.stderr
    assert odd.returncode != 0
    assert "bad hex" in (odd.stdout + odd.stderr).lower() or "tlsa" in odd.stderr.lower()
    with pytest.raises(ValueError, match="64 hex digits"):
        tlsa_rr(owner, 2, 3, 1, 1, "ab" * 31)
