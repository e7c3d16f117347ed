"""DANE roll gates and TLSA placement: pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sslm_ci.config.model import DaneTls, Service, X509Name
from sslm_ci.dns.tlsa_zone import owners_for
from sslm_ci.policy import DaneFacts, Hold, NextFacts, Roll, RollInput, retire_due, roll_decision

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NEXT = NextFacts(issued_at=NOW - timedelta(hours=3), key_matches_cert=True, chain_problem=None)


def dane(**kw: object) -> DaneFacts:
    base: dict[str, object] = {
        "has_primary": True,
        "tlsa_unchanged": False,
        "published_at": NOW - timedelta(hours=3),
        "ttl": 1800,
        "not_served": None,
    }
    base.update(kw)
    return DaneFacts(**base)  # type: ignore[arg-type]


def decide(d: DaneFacts | None, force: bool = False, nxt: NextFacts = NEXT) -> Roll | Hold:
    return roll_decision(RollInput("example.com:mail-ec", NOW, force, nxt, 90, d))


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (dane(), None),
        (dane(has_primary=False), "no-dns-primary: cannot verify that next's TLSA is published"),
        (dane(published_at=NOW - timedelta(minutes=40)), "tlsa-2xttl: 20m left (TTL 1800s)"),
        (dane(published_at=None), "tlsa-unpublished: no tag published next's TLSA"),
        (
            dane(not_served="ns2 (127.0.0.2:53): missing TLSA"),
            "tlsa-not-served: ns2 (127.0.0.2:53): missing TLSA",
        ),
        (
            dane(unsigned="zone example.com is not DNSSEC-signed at the primary"),
            "tlsa-unsigned: zone example.com is not DNSSEC-signed at the primary",
        ),
        # key reuse with selector 1: nothing new to publish, no wait
        (dane(tlsa_unchanged=True, published_at=None, has_primary=False, not_served="x"), None),
    ],
)
def test_dane_gates_in_order(facts: DaneFacts, reason: str | None) -> None:
    decision = decide(facts)
    if reason is None:
        assert decision == Roll("ready")
    else:
        assert decision == Hold(reason)


def test_min_roll_mins_comes_before_the_dns_gates() -> None:
    young = NextFacts(NOW - timedelta(minutes=10), True, None)
    assert decide(dane(has_primary=False), nxt=young) == Hold("min-roll-mins: 80m left")


def test_services_without_dane_are_not_gated_on_dns() -> None:
    assert decide(None) == Roll("ready")


def test_force_passes_publication_gates_loudly_but_never_a_bad_key() -> None:
    forced = decide(dane(not_served="ns2: old set", published_at=NOW), force=True)
    assert isinstance(forced, Roll) and forced.reason == "forced"
    assert any("tlsa-2xttl" in w for w in forced.warnings)
    assert any("tlsa-not-served" in w for w in forced.warnings)
    bad = NextFacts(NOW - timedelta(days=1), False, None)
    assert decide(dane(), force=True, nxt=bad) == Hold(
        "next-invalid: cert does not match key", overridable=False
    )


def test_retire_waits_for_the_configured_minutes() -> None:
    assert not retire_due(NOW - timedelta(minutes=59), NOW, 60)
    assert retire_due(NOW - timedelta(minutes=60), NOW, 60)


def svc(dane_tls: tuple[DaneTls, ...], sans: tuple[str, ...]) -> Service:
    return Service(
        "example.com",
        "mail-ec",
        "m",
        "my-int",
        Path("x"),
        dane_tls=dane_tls,
        x509=X509Name(CN=sans[0], sans=sans),
    )


SANS = ("example.com", "smtp.example.com", "*.example.com")


def test_port_25_goes_to_the_mx_hosts() -> None:
    entry = DaneTls(25, "tcp", 3, 1, 1)
    owners = owners_for(svc((entry,), SANS), entry, ["mx1.example.com", "mx2.example.net"])
    assert owners == [
        "_25._tcp.example.com.",
        "_25._tcp.mx1.example.com.",
        "_25._tcp.mx2.example.net.",
    ]


def test_other_ports_go_to_the_names_and_wildcards_are_skipped() -> None:
    entry = DaneTls(443, "tcp", 3, 1, 1)
    assert owners_for(svc((entry,), SANS), entry, ["mx1.example.com"]) == [
        "_443._tcp.example.com.",
        "_443._tcp.smtp.example.com.",
    ]


def test_subtypes_override_the_port_rule() -> None:
    mx = DaneTls(587, "tcp", 3, 1, 1, "MX")
    names = DaneTls(25, "tcp", 3, 1, 1, "SANS")
    service = svc((mx, names), SANS)
    assert owners_for(service, mx, ["mx1.example.com"])[-1] == "_587._tcp.mx1.example.com."
    assert owners_for(service, names, ["mx1.example.com"])[-1] == "_25._tcp.smtp.example.com."


def test_without_a_primary_port_25_falls_back_to_the_names() -> None:
    entry = DaneTls(25, "tcp", 3, 1, 1)
    assert owners_for(svc((entry,), SANS), entry, None) == [
        "_25._tcp.example.com.",
        "_25._tcp.smtp.example.com.",
    ]
