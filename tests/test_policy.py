"""The pure decision chains, table-driven with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sslm_ci.policy import (
    CertFacts,
    Due,
    Hold,
    NextFacts,
    NotDue,
    RenewInput,
    Roll,
    RollInput,
    Wanted,
    default_renew_days,
    renewal_decision,
    roll_decision,
    spread_offset,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NAMES = frozenset({"example.com", "www.example.com"})
WANTED = Wanted(names=NAMES, key_desc="ec:secp256r1", signing_ca="my-int")


def facts(days_left: float, lifetime: float = 90, **kw: object) -> CertFacts:
    not_after = NOW + timedelta(days=days_left)
    base = {
        "not_before": not_after - timedelta(days=lifetime),
        "not_after": not_after,
        "names": NAMES,
        "key_desc": "ec:secp256r1",
        "signing_ca": "my-int",
        "serial": 12345,
    }
    base.update(kw)
    return CertFacts(**base)  # type: ignore[arg-type]


def inp(curr: CertFacts | None, nxt: CertFacts | None = None, **kw: object) -> RenewInput:
    base: dict[str, object] = {
        "ident": "example.com:web-ec",
        "now": NOW,
        "force": False,
        "wanted": WANTED,
        "curr": curr,
        "next": nxt,
        "renew_expire_days": None,
    }
    base.update(kw)
    return RenewInput(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [(90, 30.0), (45, 10.0), (120, 45.0), (300, 60.0), (1000, 200.0), (0.5, 0.375), (75, 25.0)],
)
def test_default_renew_curve_follows_lifetime(lifetime: float, expected: float) -> None:
    assert default_renew_days(timedelta(days=lifetime)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("case", "expected_type", "expected_reason"),
    [
        (inp(None), Due, "no-current-cert"),
        (inp(facts(60)), NotDue, "renews-in-30d"),
        (inp(facts(29.5)), Due, "expires-in-29d"),
        (inp(facts(-1)), Due, "expired"),
        (inp(facts(60), force=True), Due, "forced"),
        (inp(facts(60, names=frozenset({"example.com"}))), Due, "spec-changed:sans"),
        (inp(facts(60, key_desc="rsa:2048")), Due, "spec-changed:key"),
        (inp(facts(60, signing_ca="other")), Due, "spec-changed:signing-ca"),
        (inp(facts(60), renew_expire_days=61), Due, "expires-in-60d"),
        (inp(facts(10), facts(89)), NotDue, "next-awaiting-roll"),
        (inp(facts(10), facts(89, key_desc="rsa:2048")), Due, "next-spec-changed:key"),
        (inp(facts(10), facts(5)), Due, "next-expires-in-5d"),
        (inp(None, facts(89)), NotDue, "next-awaiting-roll"),
    ],
)
def test_renewal_chain(case: RenewInput, expected_type: type, expected_reason: str) -> None:
    decision = renewal_decision(case)
    assert isinstance(decision, expected_type)
    assert decision.reason == expected_reason


def test_not_due_reports_the_renewal_date() -> None:
    decision = renewal_decision(inp(facts(60)))
    assert isinstance(decision, NotDue)
    assert decision.renew_at == NOW + timedelta(days=30)


def test_spread_is_bounded_stable_and_varies_by_certificate() -> None:
    offsets = [spread_offset("g:s", serial, 5) for serial in range(200)]
    assert all(-5 <= o <= 5 for o in offsets)
    assert min(offsets) < -3 and max(offsets) > 3  # actually spreads
    assert spread_offset("g:s", 7, 5) == spread_offset("g:s", 7, 5)  # repeatable
    assert spread_offset("g:s", 7, 0) == 0


def test_spread_moves_the_decision_deterministically() -> None:
    c = facts(31)
    plain = renewal_decision(inp(c))
    spread = renewal_decision(inp(c, spread_days=5))
    assert isinstance(plain, NotDue)
    again = renewal_decision(inp(c, spread_days=5))
    assert type(spread) is type(again) and spread.reason == again.reason


NEXT_OK = NextFacts(
    issued_at=NOW - timedelta(minutes=100), key_matches_cert=True, chain_problem=None
)


def rin(nxt: NextFacts | None, force: bool = False, mins: int = 90) -> RollInput:
    return RollInput("example.com:mail-ec", NOW, force, nxt, mins)


def test_roll_when_every_gate_passes() -> None:
    assert roll_decision(rin(NEXT_OK)) == Roll("ready")


def test_roll_holds_until_min_roll_mins() -> None:
    young = NextFacts(NOW - timedelta(minutes=30), True, None)
    decision = roll_decision(rin(young))
    assert decision == Hold("min-roll-mins: 60m left")


def test_force_overrides_time_gate_with_a_warning() -> None:
    young = NextFacts(NOW - timedelta(minutes=30), True, None)
    decision = roll_decision(rin(young, force=True))
    assert isinstance(decision, Roll)
    assert decision.reason == "forced"
    assert decision.warnings == ("forced past gate: min-roll-mins: 60m left",)


@pytest.mark.parametrize(
    ("nxt", "reason"),
    [
        (None, "no-next"),
        (NextFacts(NOW - timedelta(days=1), False, None), "next-invalid: cert does not match key"),
        (NextFacts(NOW - timedelta(days=1), True, "bad signature"), "next-invalid: bad signature"),
    ],
)
def test_force_never_overrides_match_and_chain(nxt: NextFacts | None, reason: str) -> None:
    decision = roll_decision(rin(nxt, force=True))
    assert isinstance(decision, Hold)
    assert decision.reason == reason
    assert not decision.overridable


def test_order_budget_is_per_ca_and_counts_recent_orders() -> None:
    from sslm_ci.config.model import Service
    from sslm_ci.stages import split_by_order_budget

    def svc(name: str) -> Service:
        return Service("example.com", name, name, "le", file=Path("x"))

    due = [(svc("a"), "r", "le"), (svc("b"), "r", "le"), (svc("c"), "r", "other")]
    allowed, deferred = split_by_order_budget(due, cap=3, used={"le": 2})
    assert [s.service for s, _ in allowed] == ["a", "c"]
    assert [s.service for s, _ in deferred] == ["b"]
    assert "2 orders at le in the last 3 h, cap 3" in deferred[0][1]
