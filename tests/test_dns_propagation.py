"""Propagation checks against in-process authoritative servers (tests/nanoserver.py).

Servers live on 127.0.0.1-127.0.0.4 sharing one port, like real NS addresses on port 53.
Deadlines run on a fake clock that only the injected sleep advances; real time is spent only
in query timeouts of deliberately silent servers (0.1-0.3 s each).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.flags
import pytest

from sslm_ci.dns.fragments import acme_owner
from sslm_ci.dns.propagation import (
    DiscoveryError,
    Expected,
    Lag,
    PropagationTimeout,
    QueryRefused,
    QueryTimeout,
    Server,
    ZoneCheck,
    canonical_value,
    check_zone_once,
    discover_servers,
    query,
    serial_at_least,
    wait_for_propagation,
)
from tests.nanoserver import NanoServer, nameservers

APEX = "example.test"
OWNER = acme_owner(APEX)
VALUE_A = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo"
VALUE_B = "Wk3nXc9Zq8rT1uVbYpQeR5sLmN0oJhGfDcBa7zX-_yw"
QT = 0.3  # query timeout for tests that expect answers
DEAD_QT = 0.1  # query timeout where a server is meant to be silent


class FakeTime:
    """``clock``/``sleep`` pair: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def trio() -> Iterator[list[NanoServer]]:
    """ns1 (the primary) + ns2 + ns3, all listed as NS with glue, on one shared port."""
    with nameservers(APEX, ["127.0.0.1", "127.0.0.2", "127.0.0.3"], serial=5) as servers:
        yield servers


def server_of(ns: NanoServer) -> Server:
    return Server(ns.name, ns.address, ns.port)


def txt_check(primary: NanoServer, *expected: Expected, require_serial: bool = True) -> ZoneCheck:
    return ZoneCheck(
        apex=APEX,
        primary=server_of(primary),
        check_port=primary.port,
        expected=expected,
        require_serial=require_serial,
    )


def want(*values: str, present: bool = True, owner: str = OWNER) -> Expected:
    return Expected(owner, "TXT", frozenset(values), present=present)


def publish(servers: list[NanoServer], *values: str, owner: str = OWNER) -> None:
    for ns in servers:
        ns.add_txt(owner, *values)


# ---- query -------------------------------------------------------------------------------


def test_query_is_direct_without_recursion_or_edns(trio: list[NanoServer]) -> None:
    primary = trio[0]
    publish([primary], VALUE_A)
    response = query(server_of(primary), OWNER, "TXT", QT)
    assert response.flags & dns.flags.AA
    assert [seen.transport for seen in primary.seen] == ["udp"]
    assert not primary.seen[0].recursion_desired
    assert not primary.seen[0].edns


def test_query_retries_truncated_answers_over_tcp(trio: list[NanoServer]) -> None:
    primary = trio[0]
    values = [f"{i:02d}{VALUE_A[2:]}" for i in range(12)]  # > 8 values overflow 512 bytes
    publish([primary], *values)
    response = query(server_of(primary), OWNER, "TXT", QT)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 12
    assert [seen.transport for seen in primary.seen] == ["udp", "tcp"]


def test_query_raises_typed_errors(trio: list[NanoServer]) -> None:
    ns2, ns3 = trio[1], trio[2]
    ns2.refuse = True
    ns3.dead = True
    with pytest.raises(QueryRefused) as refused:
        query(server_of(ns2), OWNER, "TXT", QT)
    assert refused.value.reason == "REFUSED"
    with pytest.raises(QueryTimeout) as silent:
        query(server_of(ns3), OWNER, "TXT", DEAD_QT)
    assert silent.value.reason == "no answer (timeout)"
    assert "127.0.0.3" in str(silent.value)


# ---- discovery ---------------------------------------------------------------------------


def test_discovery_uses_ns_and_glue_at_the_primary_on_the_check_port() -> None:
    # A hidden primary on its own port; the public NS answer on the shared check port.
    with (
        nameservers(APEX, ["127.0.0.2", "127.0.0.3"]) as (ns2, ns3),
        NanoServer(APEX, address="127.0.0.1", name="hidden.example.test") as hidden,
    ):
        hidden.set(APEX, "NS", ["ns2.example.test.", "ns3.example.test.", "localhost."])
        hidden.set("ns2.example.test", "A", ["127.0.0.2"])
        hidden.set("ns3.example.test", "A", ["127.0.0.3"])
        extra = Server("resolver", "127.0.0.4", 53)
        zone = ZoneCheck(
            apex=APEX,
            primary=server_of(hidden),
            check_port=ns2.port,
            expected=(want(VALUE_A),),
            extra_servers=(extra, Server("dup", "127.0.0.2", ns2.port)),
        )
        found = discover_servers(zone, QT)
    assert ns2.port != hidden.port
    endpoints = [(s.name, s.address, s.port) for s in found]
    assert ("ns2.example.test.", "127.0.0.2", ns2.port) in endpoints
    assert ("ns3.example.test.", "127.0.0.3", ns2.port) in endpoints
    # an out-of-zone NS name: REFUSED at the primary, found through getaddrinfo
    assert ("localhost.", "127.0.0.1", ns2.port) in endpoints
    assert endpoints[-1] == ("resolver", "127.0.0.4", 53)
    assert len({(address, port) for _, address, port in endpoints}) == len(endpoints)
    # glue was asked at the primary (A and AAAA), never at the NS themselves
    assert ("ns2.example.test.", "A") in {(q.qname, q.rdtype) for q in hidden.seen}
    assert not ns2.seen and not ns3.seen


def test_discovery_leaves_out_the_primary_endpoint(trio: list[NanoServer]) -> None:
    found = discover_servers(txt_check(trio[0], want(VALUE_A)), QT)
    assert [(s.address, s.port) for s in found] == [
        ("127.0.0.2", trio[0].port),
        ("127.0.0.3", trio[0].port),
    ]


def test_discovery_fails_closed(trio: list[NanoServer]) -> None:
    primary = trio[0]
    primary.set(APEX, "NS", ["ns1.example.test.", "nowhere.example.test."])
    with pytest.raises(DiscoveryError, match=r"no address for NS nowhere\.example\.test\."):
        discover_servers(txt_check(primary, want(VALUE_A)), QT)
    primary.authoritative = False
    with pytest.raises(DiscoveryError, match="not authoritative"):
        discover_servers(txt_check(primary, want(VALUE_A)), QT)


# ---- one pass ----------------------------------------------------------------------------


def one_pass(trio: list[NanoServer], *expected: Expected) -> tuple[list[Lag], int | None]:
    zone = txt_check(trio[0], *expected)
    return check_zone_once(zone, discover_servers(zone, QT), QT)


def reasons(lags: list[Lag]) -> dict[str, str]:
    return {lag.server.split()[0]: lag.reason for lag in lags}


def test_all_servers_serving_pass(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A, VALUE_B)
    assert one_pass(trio, want(VALUE_A, VALUE_B)) == ([], 5)


def test_primary_missing_a_value_lags(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A)
    lags, _ = one_pass(trio, want(VALUE_A, VALUE_B))
    assert lags[0].server == f"ns1.example.test. (127.0.0.1:{trio[0].port})"
    assert lags[0].reason == f"missing TXT value {VALUE_B[:16] + '…'!r} at {OWNER}"
    assert len(lags) == 3


def test_other_values_at_the_owner_are_fine(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A, "from-a-concurrent-run")
    assert one_pass(trio, want(VALUE_A))[0] == []


def test_old_serial_non_aa_refused_and_missing_record_are_named(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A)
    trio[1].serial = 3
    lags, serial = one_pass(trio, want(VALUE_A))
    assert serial == 5
    assert reasons(lags) == {"ns2.example.test.": "serial 3 < primary 5"}

    trio[1].serial = 5
    trio[1].authoritative = False
    trio[2].refuse = True
    assert reasons(one_pass(trio, want(VALUE_A))[0]) == {
        "ns2.example.test.": "not authoritative",
        "ns3.example.test.": "REFUSED",
    }


def test_newer_serial_is_fine_and_serial_check_can_be_off(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A)
    trio[1].serial = 9
    trio[2].serial = 1
    zone = txt_check(trio[0], want(VALUE_A), require_serial=False)
    assert check_zone_once(zone, discover_servers(zone, QT), QT) == ([], 5)
    assert reasons(one_pass(trio, want(VALUE_A))[0]) == {
        "ns3.example.test.": "serial 1 < primary 5"
    }


def test_serial_comparison_wraps_per_rfc_1982() -> None:
    assert serial_at_least(5, 5)
    assert serial_at_least(6, 5)
    assert not serial_at_least(3, 5)
    assert serial_at_least(2, 2**32 - 2)  # wrapped past 0: newer
    assert not serial_at_least(2**32 - 2, 2)


def test_absence_checks(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A)
    publish(trio[2:], VALUE_B)  # ns3 still has the old value
    lags, _ = one_pass(trio, want(VALUE_B, present=False))
    assert reasons(lags) == {
        "ns3.example.test.": f"old TXT value {VALUE_B[:16] + '…'!r} still at {OWNER}"
    }
    lags, _ = one_pass(trio, want(present=False))  # no TXT at all
    assert set(reasons(lags)) == {"ns1.example.test.", "ns2.example.test.", "ns3.example.test."}
    gone = want(present=False, owner="_acme-challenge.gone.example.test")
    assert one_pass(trio, gone)[0] == []  # NXDOMAIN counts as absent


def test_tlsa_values_compare_canonically(trio: list[NanoServer]) -> None:
    owner = "_25._tcp.mail.example.test."
    digest = "8CB0FC6C527506A053F4F14C8464BEBBD6DEDE2738D11468DD953D7D6A3021F1"
    for ns in trio:
        ns.set(owner, "TLSA", [f"3 1 1 {digest}"])
    assert canonical_value("tlsa", f"3  1 1 {digest}") == f"3 1 1 {digest.lower()}"
    tlsa = Expected(owner, "tlsa", frozenset([f"3 1 1 {digest}"]))
    assert one_pass(trio, tlsa)[0] == []
    other = Expected(owner, "TLSA", frozenset([f"3 1 1 {'0' * 64}"]))
    assert "missing TLSA value '3 1 1 0000000000…' at" in one_pass(trio, other)[0][0].reason


def test_truncated_answers_are_read_over_tcp(trio: list[NanoServer]) -> None:
    values = [f"{i:02d}{VALUE_A[2:]}" for i in range(12)]
    publish(trio, *values)
    assert one_pass(trio, want(*values))[0] == []
    assert "tcp" in {seen.transport for seen in trio[2].seen}


def test_servers_are_asked_concurrently(trio: list[NanoServer]) -> None:
    publish(trio, VALUE_A)
    zone = txt_check(trio[0], want(VALUE_A))
    servers = discover_servers(zone, QT)
    trio[1].dead = trio[2].dead = True
    started = time.monotonic()
    lags, _ = check_zone_once(zone, servers, 0.5)
    elapsed = time.monotonic() - started
    assert [lag.reason for lag in lags] == ["no answer (timeout)"] * 2
    assert elapsed < 0.9  # one timeout (0.5 s), not two in a row


def test_expected_validates_its_input() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        Expected(OWNER, "TXT", frozenset())
    with pytest.raises(ValueError, match="not valid TLSA"):
        Expected(OWNER, "TLSA", frozenset(["3 1 1 xyz"]))
    with pytest.raises(ValueError, match="unknown record type"):
        Expected(OWNER, "NOPE", frozenset(["x"]))
    assert Expected("_ACME-Challenge.Example.Test", "txt", frozenset(["v"])).owner == OWNER


# ---- the wait ----------------------------------------------------------------------------


def test_everything_in_place_passes_in_one_round(trio: list[NanoServer], fake: FakeTime) -> None:
    publish(trio, VALUE_A)
    lines: list[str] = []
    report = wait_for_propagation(
        [txt_check(trio[0], want(VALUE_A))],
        timeout=60,
        query_timeout=QT,
        clock=fake.clock,
        sleep=fake.sleep,
        progress=lines.append,
    )
    assert (report.rounds, report.servers_checked, report.waited) == (1, 3, 0.0)
    assert fake.sleeps == []
    assert lines == []


def test_lagging_secondary_passes_later_with_progress(
    trio: list[NanoServer], fake: FakeTime
) -> None:
    publish(trio, VALUE_A)
    trio[2].serve_after(OWNER, "TXT", 3)
    lines: list[str] = []
    report = wait_for_propagation(
        [txt_check(trio[0], want(VALUE_A))],
        timeout=60,
        min_delay=7,
        query_timeout=QT,
        clock=fake.clock,
        sleep=fake.sleep,
        progress=lines.append,
    )
    assert report.rounds == 4
    assert fake.sleeps == pytest.approx([7, 0.2, 0.3, 0.45])
    assert report.waited == pytest.approx(7.95)
    assert len(lines) == 3
    port = trio[0].port
    assert lines[0] == (
        f"waiting for 1 server(s): example.test ns3.example.test. (127.0.0.3:{port}): "
        f"missing TXT value {VALUE_A[:16] + '…'!r} at {OWNER} (NXDOMAIN)"
    )


def test_lagging_secondary_with_real_clock(trio: list[NanoServer]) -> None:
    publish(trio[:2], VALUE_A)
    trio[2].serve_after(OWNER, "TXT", 2)
    publish(trio[2:], VALUE_A)
    started = time.monotonic()
    report = wait_for_propagation([txt_check(trio[0], want(VALUE_A))], timeout=5, query_timeout=QT)
    assert report.rounds == 3
    assert 0.45 <= report.waited < 2.0
    assert time.monotonic() - started < 2.5


def test_dead_server_times_out_naming_it(trio: list[NanoServer], fake: FakeTime) -> None:
    publish(trio, VALUE_A)
    trio[1].dead = True
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_propagation(
            [txt_check(trio[0], want(VALUE_A))],
            timeout=2,
            query_timeout=DEAD_QT,
            clock=fake.clock,
            sleep=fake.sleep,
            progress=lines.append,
        )
    port = trio[0].port
    assert caught.value.laggards == [
        Lag("example.test.", f"ns2.example.test. (127.0.0.2:{port})", "no answer (timeout)")
    ]
    assert f"ns2.example.test. (127.0.0.2:{port}): no answer (timeout)" in str(caught.value)
    assert caught.value.exit_code == 1
    assert sum(fake.sleeps) == pytest.approx(2.0)  # the last sleep is cut to the deadline
    assert lines and all("ns2.example.test." in line for line in lines)
    assert time.monotonic() - started < 3


def test_unreachable_primary_is_retried_until_it_answers(
    trio: list[NanoServer], fake: FakeTime
) -> None:
    publish(trio, VALUE_A)
    trio[0].dead = True
    lines: list[str] = []

    def sleep_then_revive(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.sleeps) == 2:
            trio[0].dead = False

    report = wait_for_propagation(
        [txt_check(trio[0], want(VALUE_A))],
        timeout=30,
        query_timeout=DEAD_QT,
        clock=fake.clock,
        sleep=sleep_then_revive,
        progress=lines.append,
    )
    assert report.rounds == 3
    assert "discovery: NS query: no answer (timeout)" in lines[0]


def test_unreachable_primary_times_out_as_laggard(trio: list[NanoServer], fake: FakeTime) -> None:
    trio[0].dead = True
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_propagation(
            [txt_check(trio[0], want(VALUE_A))],
            timeout=1,
            query_timeout=DEAD_QT,
            clock=fake.clock,
            sleep=fake.sleep,
        )
    [lag] = caught.value.laggards
    assert lag.server.startswith("ns1.example.test. (127.0.0.1:")
    assert lag.reason == "discovery: NS query: no answer (timeout)"


def test_wait_instead_sends_no_queries_and_overlaps_the_checks(
    trio: list[NanoServer], fake: FakeTime
) -> None:
    with nameservers("example.org", ["127.0.0.4"]) as (blind,):
        publish(trio, VALUE_A)
        trio[2].serve_after(OWNER, "TXT", 1)
        blind_zone = ZoneCheck(
            apex="example.org",
            primary=server_of(blind),
            check_port=blind.port,
            expected=(want(VALUE_A, owner=acme_owner("example.org")),),
            wait_instead=12.0,
        )
        lines: list[str] = []
        report = wait_for_propagation(
            [blind_zone, txt_check(trio[0], want(VALUE_A))],
            timeout=60,
            query_timeout=QT,
            clock=fake.clock,
            sleep=fake.sleep,
            progress=lines.append,
        )
        assert blind.seen == []
    assert report.rounds == 2
    assert report.waited == pytest.approx(12.0)  # max(12, checks), not the sum
    assert fake.sleeps == pytest.approx([0.2, 11.8])
    assert lines[-1] == "waiting 11.8 s more instead of checking: example.org"


def test_only_blind_zones_just_wait(fake: FakeTime) -> None:
    with NanoServer("example.org") as blind:
        zone = ZoneCheck("example.org", server_of(blind), blind.port, (), wait_instead=30)
        report = wait_for_propagation([zone], timeout=5, clock=fake.clock, sleep=fake.sleep)
        assert blind.seen == []
    assert (report.rounds, report.waited, fake.sleeps) == (0, 30.0, [30.0])


def test_several_zones_share_one_wait(trio: list[NanoServer], fake: FakeTime) -> None:
    with nameservers("example.org", ["127.0.0.4"]) as (org,):
        publish(trio, VALUE_A)
        org_owner = acme_owner("*.example.org")
        org.add_txt(org_owner, VALUE_B)
        org.serve_after(org_owner, "TXT", 2)
        org_zone = ZoneCheck(
            "example.org", server_of(org), org.port, (want(VALUE_B, owner=org_owner),)
        )
        report = wait_for_propagation(
            [txt_check(trio[0], want(VALUE_A)), org_zone],
            timeout=60,
            query_timeout=QT,
            clock=fake.clock,
            sleep=fake.sleep,
        )
        # example.test passed in round 1 and was not asked again
        assert len([q for q in trio[1].seen if q.qname == OWNER]) == 1
    assert report.rounds == 3
    assert report.servers_checked == 4
