"""The DANE rig works end to end on loopback: named inline-signs the zone, TLSA records from
the ``$INCLUDE`` fragment are published by dns-refresh and validated by unbound (AD), bogus
and insecure answers are refused, and openssl s_client's DANE check passes for the served key
and fails for any other - also across a "curr, then next" key rollover."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sslm_ci.config.model import KeyOpts, X509Name
from sslm_ci.dns.tlsa_zone import TlsaRecord, render
from sslm_ci.pki.ca import issue_intermediate, issue_leaf, issue_root
from sslm_ci.pki.csr import build_csr
from sslm_ci.pki.keys import generate_private_key, private_key_pem
from sslm_ci.pki.pem import cert_pem
from sslm_ci.pki.tlsa import tlsa_data
from tests.rig.bind import Bind, ZoneSpec
from tests.rig.dnssec import (
    BogusAnswer,
    DnssecError,
    InsecureAnswer,
    corrupt_ds,
    parse_ds,
    signature_valid,
    tampered,
    validate_rrset,
    validated_dnskeys,
    zone_keys,
)
from tests.rig.fixtures import DANE_INSECURE_APEX, DaneRig
from tests.rig.process import LOOPBACK, pid_running, port_is_free
from tests.rig.tls import (
    ServedIdentity,
    TlsServer,
    dane_match,
    dane_ok,
    dane_passed,
    dane_verify,
    write_identity,
)
from tests.rig.unbound import Unbound

HOST = "mail.example.com"
APEX = "example.com"
NOW = datetime.now(UTC).replace(microsecond=0)  # s_client checks validity on the real clock
TLSA_TTL = 2


@dataclass(frozen=True)
class Leaf:
    cert: x509.Certificate
    identity: ServedIdentity  # leaf, key, chain (the intermediate) as files


@dataclass(frozen=True)
class Pki:
    intermediate: x509.Certificate
    leaves: dict[str, Leaf]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Root → intermediate → one leaf per key tag, all for ``mail.example.com``."""
    directory = tmp_path_factory.mktemp("dane-pki")
    opts = KeyOpts(ktype="ec", ec_algo="secp256r1")
    root_key = generate_private_key(opts)
    root = issue_root(root_key, X509Name(CN="DANE Rig Root"), 30, "sha256", NOW)
    inter_key = generate_private_key(opts)
    inter_csr = build_csr(inter_key, X509Name(CN="DANE Rig Issuing CA"), is_ca=True)
    inter = issue_intermediate(inter_csr, root, root_key, 30, "sha256", NOW)
    leaves = {}
    for tag in ("curr", "next", "other"):
        key = generate_private_key(opts)
        csr = build_csr(key, X509Name(CN=HOST, sans=(HOST,)))
        cert = issue_leaf(csr, inter, inter_key, 30, "sha256", NOW)
        identity = write_identity(
            directory, tag, cert_pem(cert), private_key_pem(key), cert_pem(inter)
        )
        leaves[tag] = Leaf(cert, identity)
    return Pki(inter, leaves)


def ee(owner: str, leaf: Leaf) -> TlsaRecord:
    return TlsaRecord(owner, TLSA_TTL, 3, 1, 1, tlsa_data(leaf.cert, 1, 1))


def ta(owner: str, pki: Pki) -> TlsaRecord:
    return TlsaRecord(owner, TLSA_TTL, 2, 1, 1, tlsa_data(pki.intermediate, 1, 1))


def rdata(record: TlsaRecord) -> str:
    return f"{record.usage} {record.selector} {record.match} {record.data}"


def publish(rig: DaneRig, *records: TlsaRecord, apex: str = APEX) -> None:
    rig.publish_tlsa(render(apex, records), apex)


# ------------------------------------------------------------------------------ signing
def test_signed_zone_is_served_and_matches_the_key_files(dane_rig: DaneRig) -> None:
    bind = dane_rig.bind
    assert bind.is_signed(APEX)
    anchors = dane_rig.trust_anchors
    keys = zone_keys(bind.key_dir(APEX), APEX)
    # dnssec-policy default: one CSK (flags 257), ECDSAP256SHA256
    assert [(key.dnskey.flags, int(key.dnskey.algorithm)) for key in keys] == [(257, 13)]
    assert [parse_ds(anchor)[1] for anchor in anchors] == [keys[0].ds()]

    zone, dnskeys = validated_dnskeys(LOOPBACK, bind.port, anchors)
    mx, mx_sig = validate_rrset(LOOPBACK, bind.port, anchors, f"{APEX}.", "MX")
    address, _ = validate_rrset(LOOPBACK, bind.port, anchors, f"{HOST}.", "A")

    assert [rd.to_text() for rd in mx] == [f"10 {HOST}."]
    assert [rd.to_text() for rd in address] == [LOOPBACK]
    assert signature_valid(mx, mx_sig, zone, dnskeys)
    assert not signature_valid(tampered(mx), mx_sig, zone, dnskeys)
    with pytest.raises(dns.exception.ValidationFailure, match="matches the DS anchor"):
        validated_dnskeys(LOOPBACK, bind.port, [corrupt_ds(anchor) for anchor in anchors])


def test_unbound_validates_the_zone_and_not_the_unsigned_one(dane_rig: DaneRig) -> None:
    secure = dane_rig.unbound.query(f"{HOST}.", "A")
    insecure = dane_rig.unbound.query(f"www.{DANE_INSECURE_APEX}.", "A")

    assert secure.rcode() == dns.rcode.NOERROR
    assert secure.flags & dns.flags.AD
    assert insecure.rcode() == dns.rcode.NOERROR
    assert not insecure.flags & dns.flags.AD
    # an authenticated denial is secure and empty, not an error
    absent = f"_9._tcp.{HOST}."
    assert dane_rig.unbound.query(absent, "TLSA").rcode() == dns.rcode.NXDOMAIN
    assert dane_rig.unbound.tlsa_with_ad(absent) == []
    with pytest.raises(DnssecError, match="no TLSA records"):
        dane_verify(dane_rig.unbound, HOST, 9, 1)


# ------------------------------------------------------------------------------ publishing
def test_tlsa_from_the_fragment_is_published_by_dns_refresh_and_validated(
    dane_rig: DaneRig, pki: Pki
) -> None:
    bind, unbound = dane_rig.bind, dane_rig.unbound
    owner = f"_25._tcp.{HOST}."
    records = [ee(owner, pki.leaves["curr"]), ta(owner, pki)]
    served_before = bind.serial(APEX)
    dane_rig.tlsa_fragment.write_text(render(APEX, records))

    result = dane_rig.run_refresh(APEX)

    assert result.returncode == 0, result.stderr
    # the file serial went past the signed one, so named took it over as the public serial
    assert bind.serial(APEX) == bind.file_serial(APEX) > served_before
    assert f"{APEX} serves serial {bind.file_serial(APEX)}" in result.stdout
    signed, _ = validate_rrset(LOOPBACK, bind.port, dane_rig.trust_anchors, owner, "TLSA")
    assert signed.ttl == TLSA_TTL
    answer = unbound.query(owner, "TLSA")
    assert answer.flags & dns.flags.AD
    assert unbound.tlsa_with_ad(owner) == sorted(rdata(r) for r in records)


def test_changed_signed_zone_needs_a_serial_bump_and_failures_stay_closed(
    dane_rig: DaneRig, pki: Pki
) -> None:
    bind = dane_rig.bind
    owner = f"_26._tcp.{HOST}."
    curr, nxt = ee(owner, pki.leaves["curr"]), ee(owner, pki.leaves["next"])
    publish(dane_rig, curr)
    anchors = dane_rig.trust_anchors

    def served() -> list[str]:
        rrset, _ = validate_rrset(LOOPBACK, bind.port, anchors, owner, "TLSA")
        return sorted(f"{rd.usage} {rd.selector} {rd.mtype} {rd.cert.hex()}" for rd in rrset)

    # new content, reload without a bump: named refuses the changed unsigned zone
    refusals = bind.log_path.read_text().count("not loaded due to errors")
    dane_rig.tlsa_fragment.write_text(render(APEX, [nxt]))
    no_bump = subprocess.run(
        dane_rig.refresh_command(APEX)[:3],  # script --bind-dir DIR, no --serial_bump
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert no_bump.returncode == 0, no_bump.stderr  # rndc and the serial check both "pass"
    assert f"warning: {APEX} is inline-signed" in no_bump.stderr
    wait_for(lambda: bind.log_path.read_text().count("not loaded due to errors") > refusals)
    assert "ixfr-from-differences: new serial" in bind.log_path.read_text()
    assert served() == [rdata(curr)]

    bumped = dane_rig.run_refresh(APEX)
    assert bumped.returncode == 0, bumped.stderr
    assert served() == [rdata(nxt)]

    # a fragment named cannot load: dns-refresh fails, the old signed data stays served
    dane_rig.tlsa_fragment.write_text(f"{owner} 2 IN TLSA 3 1 1 zz\n")
    broken = dane_rig.run_refresh(APEX, extra_env={"SSLM_RIG_REFRESH_TIMEOUT": "1.5"})
    assert broken.returncode == 1
    assert "not served" in broken.stderr
    assert served() == [rdata(nxt)]

    publish(dane_rig, curr)
    assert served() == [rdata(curr)]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ negatives
def test_bogus_anchor_and_missing_validation_are_refused(
    dane_rig: DaneRig, pki: Pki, tmp_path: Path
) -> None:
    owner = f"_27._tcp.{HOST}."
    publish(dane_rig, ee(owner, pki.leaves["curr"]))
    server = dane_rig.tls_server(pki.leaves["curr"].identity)
    assert dane_ok(dane_rig.unbound, HOST, 27, server.port, owner)
    wrong = [corrupt_ds(anchor) for anchor in dane_rig.trust_anchors]

    with Unbound.for_bind(
        tmp_path / "bogus", dane_rig.bind, trust_anchors=wrong, wait_secure=()
    ) as bogus:
        with pytest.raises(BogusAnswer) as bogus_error:
            bogus.tlsa_with_ad(owner)
        assert bogus_error.value.rcode == "SERVFAIL"
        with pytest.raises(BogusAnswer):
            dane_verify(bogus, HOST, 27, server.port, owner)
        assert "DS hash mismatches key" in bogus.log_tail()

    with Unbound.for_bind(tmp_path / "noval", dane_rig.bind, validate=False) as plain:
        answer = plain.query(owner, "TLSA")
        assert answer.rcode() == dns.rcode.NOERROR
        assert answer.answer  # the data is there, only unauthenticated
        with pytest.raises(InsecureAnswer) as insecure_error:
            plain.tlsa_with_ad(owner)
        assert insecure_error.value.rcode == "NOERROR"
        with pytest.raises(InsecureAnswer):
            dane_ok(plain, HOST, 27, server.port, owner)


def test_tlsa_in_an_unsigned_zone_is_insecure(dane_rig: DaneRig, pki: Pki) -> None:
    owner = f"_25._tcp.mail.{DANE_INSECURE_APEX}."
    publish(dane_rig, ee(owner, pki.leaves["curr"]), apex=DANE_INSECURE_APEX)

    assert dane_rig.bind.records(owner, "TLSA")  # served, just not signed
    with pytest.raises(InsecureAnswer):
        dane_rig.unbound.tlsa_with_ad(owner)


# ------------------------------------------------------------------------------ DANE checks
def test_s_client_dane_passes_for_the_served_key_and_fails_otherwise(
    dane_rig: DaneRig, pki: Pki
) -> None:
    curr, other = pki.leaves["curr"], pki.leaves["other"]
    matching, mismatching, by_ta = (f"_{port}._tcp.{HOST}." for port in (30, 31, 32))
    publish(dane_rig, ee(matching, curr), ee(mismatching, other), ta(by_ta, pki))
    server = dane_rig.tls_server(curr.identity)

    ok = dane_verify(dane_rig.unbound, HOST, 30, server.port, matching)
    failed = dane_verify(dane_rig.unbound, HOST, 31, server.port, mismatching)
    via_ta = dane_verify(dane_rig.unbound, HOST, 32, server.port, by_ta)

    assert ok.returncode == 0, ok.stderr
    assert dane_passed(ok)
    assert dane_match(ok) is not None
    assert "matched EE certificate at depth 0" in str(dane_match(ok))
    assert failed.returncode == 1
    assert not dane_passed(failed)
    assert "no matching DANE TLSA records" in failed.stdout + failed.stderr
    assert dane_passed(via_ta)
    assert "matched TA certificate at depth 1" in str(dane_match(via_ta))


def test_rollover_curr_then_next_waits_for_the_resolver_cache(dane_rig: DaneRig, pki: Pki) -> None:
    curr, nxt = pki.leaves["curr"], pki.leaves["next"]
    owner = f"_465._tcp.{HOST}."
    unbound = dane_rig.unbound
    publish(dane_rig, ee(owner, curr))
    server = dane_rig.tls_server(curr.identity)
    assert dane_ok(unbound, HOST, 465, server.port, owner)

    # next key served before it is published: DANE fails
    server.restart(nxt.identity)
    assert server.served_certificate() == nxt.cert.public_bytes(Encoding.DER)
    assert not dane_ok(unbound, HOST, 465, server.port, owner)

    # publish curr + next; the resolver keeps the cached set until its TTL runs out
    publish(dane_rig, ee(owner, curr), ee(owner, nxt))
    waited = unbound.wait_tlsa(owner, [rdata(ee(owner, curr)), rdata(ee(owner, nxt))])
    assert waited <= 2 * TLSA_TTL + 1
    assert dane_ok(unbound, HOST, 465, server.port, owner)
    server.restart(curr.identity)
    assert dane_ok(unbound, HOST, 465, server.port, owner)

    # next only: the old key fails once the resolver sees the new set
    publish(dane_rig, ee(owner, nxt))
    unbound.wait_tlsa(owner, [rdata(ee(owner, nxt))])
    assert not dane_ok(unbound, HOST, 465, server.port, owner)
    server.restart(nxt.identity)
    assert dane_ok(unbound, HOST, 465, server.port, owner)


# ------------------------------------------------------------------------------ lifecycle
def test_tls_server_restart_keeps_the_port_and_stop_frees_it(pki: Pki, tmp_path: Path) -> None:
    curr, nxt = pki.leaves["curr"], pki.leaves["next"]
    server = TlsServer(tmp_path, curr.identity.cert, curr.identity.key, curr.identity.chain)
    with server:
        port, first_pid = server.port, server.pid
        assert server.served_certificate() == curr.cert.public_bytes(Encoding.DER)
        server.restart(nxt.identity)
        assert server.port == port
        assert server.served_certificate() == nxt.cert.public_bytes(Encoding.DER)
        second_pid = server.pid
    assert first_pid is not None and second_pid is not None and first_pid != second_pid
    assert not pid_running(first_pid)
    assert not pid_running(second_pid)
    assert port_is_free(port)


def test_signed_zone_restart_keeps_keys_and_serves_edits_made_while_down(
    pki: Pki, tmp_path: Path
) -> None:
    owner = f"_25._tcp.{HOST}."
    bind = Bind(tmp_path / "bind", {APEX: ZoneSpec(dnssec=True, ttl=2)}, tmp_path / "inc")
    curr, nxt = ee(owner, pki.leaves["curr"]), ee(owner, pki.leaves["next"])
    with bind:
        anchors = bind.trust_anchors()
        bind.tlsa_fragment(APEX).write_text(render(APEX, [curr]))
        bind.bump_serial(APEX)  # a live reload: named now keeps journals for the zone
        rrset, _ = validate_rrset(LOOPBACK, bind.port, anchors, owner, "TLSA")
        assert [rd.to_text() for rd in rrset] == [rdata(curr)]
    # the generator ran while named was down and did not bump the serial
    bind.tlsa_fragment(APEX).write_text(render(APEX, [nxt]))
    with bind:
        assert bind.trust_anchors() == anchors
        rrset, _ = validate_rrset(LOOPBACK, bind.port, anchors, owner, "TLSA")
        assert [rd.to_text() for rd in rrset] == [rdata(nxt)]
