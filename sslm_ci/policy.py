"""Pure decisions: is a service due for renewal, may its ``next`` roll to ``curr``?

Every decision is an ordered chain of small checks over facts gathered beforehand and an
explicit ``now``; the first check with an opinion wins and names its reason. Reasons are short
machine-friendly strings (``expires-in-29d``, ``min-roll-mins: 75m left``) that flow into
output, commit trailers and status. Nothing here reads files, the clock or the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

# ssl-mgr 7.x renews by certificate lifetime: (lifetime days, renew this many days before
# expiry), linearly interpolated; beyond the last point 20 % of the lifetime.
_RENEW_CURVE: tuple[tuple[float, float], ...] = (
    (0, 0.25),
    (1, 0.5),
    (2, 1),
    (5, 2),
    (10, 5),
    (45, 10),
    (60, 20),
    (90, 30),
    (120, 45),
    (300, 60),
)


@dataclass(frozen=True)
class CertFacts:
    """What renewal needs to know about one issued certificate."""

    not_before: datetime
    not_after: datetime
    names: frozenset[str]
    key_desc: str  # e.g. "ec:secp384r1", "rsa:4096"
    signing_ca: str  # the CA name recorded when it was issued
    serial: int


@dataclass(frozen=True)
class Wanted:
    """What the inventory asks for now."""

    names: frozenset[str]
    key_desc: str
    signing_ca: str


@dataclass(frozen=True)
class RenewInput:
    ident: str  # "group:service"; seeds the deterministic spread
    now: datetime
    force: bool
    wanted: Wanted
    curr: CertFacts | None
    next: CertFacts | None
    renew_expire_days: float | None  # None: lifetime-based default
    spread_days: float = 0.0


@dataclass(frozen=True)
class Due:
    reason: str


@dataclass(frozen=True)
class NotDue:
    reason: str
    renew_at: datetime | None = None


RenewDecision = Due | NotDue


def default_renew_days(lifetime: timedelta) -> float:
    """Days before expiry to renew a certificate of this lifetime (ssl-mgr's curve)."""
    days = lifetime.total_seconds() / 86400
    if days <= 0:
        return _RENEW_CURVE[0][1]
    for (x0, y0), (x1, y1) in pairwise(_RENEW_CURVE):
        if days <= x1:
            return y0 + (y1 - y0) * (days - x0) / (x1 - x0)
    return max(_RENEW_CURVE[-1][1], 0.2 * days)


def spread_offset(ident: str, serial: int, spread_days: float) -> float:
    """A stable offset in [-spread, +spread] days for one certificate.

    ssl-mgr draws a fresh random number each run, so a certificate's renewal date moves every
    time it is checked. Hashing the service and serial keeps the average and the spread but
    makes the date stable and the decision repeatable.
    """
    if spread_days <= 0:
        return 0.0
    digest = hashlib.sha256(f"{ident}/{serial}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
    return (2 * unit - 1) * spread_days


def renew_at(facts: CertFacts, inp: RenewInput) -> datetime:
    """When this certificate becomes due."""
    before = inp.renew_expire_days
    if before is None:
        before = default_renew_days(facts.not_after - facts.not_before)
    before += spread_offset(inp.ident, facts.serial, inp.spread_days)
    return facts.not_after - timedelta(days=max(before, 0.0))


def _spec_mismatch(facts: CertFacts, wanted: Wanted) -> str | None:
    if facts.names != wanted.names:
        return "sans"
    if facts.key_desc != wanted.key_desc:
        return "key"
    if facts.signing_ca != wanted.signing_ca:
        return "signing-ca"
    return None


def _days(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 86400)}d"


RenewCheck = Callable[[RenewInput], RenewDecision | None]


def _check_forced(inp: RenewInput) -> RenewDecision | None:
    return Due("forced") if inp.force else None


def _check_next_pending(inp: RenewInput) -> RenewDecision | None:
    """A valid next waits for roll: renewing again would throw away a published key."""
    nxt = inp.next
    if nxt is None:
        return None
    changed = _spec_mismatch(nxt, inp.wanted)
    if changed:
        return Due(f"next-spec-changed:{changed}")
    if inp.now >= renew_at(nxt, inp):
        return Due(f"next-expires-in-{_days(nxt.not_after - inp.now)}")
    return NotDue("next-awaiting-roll", renew_at(nxt, inp))


def _check_no_curr(inp: RenewInput) -> RenewDecision | None:
    return Due("no-current-cert") if inp.curr is None else None


def _check_spec_changed(inp: RenewInput) -> RenewDecision | None:
    assert inp.curr is not None
    changed = _spec_mismatch(inp.curr, inp.wanted)
    return Due(f"spec-changed:{changed}") if changed else None


def _check_expiry(inp: RenewInput) -> RenewDecision:
    curr = inp.curr
    assert curr is not None
    if inp.now >= curr.not_after:
        return Due("expired")
    when = renew_at(curr, inp)
    if inp.now >= when:
        return Due(f"expires-in-{_days(curr.not_after - inp.now)}")
    return NotDue(f"renews-in-{_days(when - inp.now)}", when)


RENEW_CHAIN: tuple[RenewCheck, ...] = (
    _check_forced,
    _check_next_pending,
    _check_no_curr,
    _check_spec_changed,
    _check_expiry,
)


def renewal_decision(inp: RenewInput, chain: Sequence[RenewCheck] = RENEW_CHAIN) -> RenewDecision:
    for check in chain:
        result = check(inp)
        if result is not None:
            return result
    raise AssertionError("renewal chain ended without a decision")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Roll


@dataclass(frozen=True)
class NextFacts:
    """What the roll gates need about a service's ``next``."""

    issued_at: datetime
    key_matches_cert: bool
    chain_problem: str | None  # None when next's cert chains to its CA


@dataclass(frozen=True)
class DaneFacts:
    """What the DANE gates need; None for a service without ``dane_tls``."""

    has_primary: bool  # a [[dns_primary]] to verify publication against
    tlsa_unchanged: bool  # next's TLSA records are already published for curr (-r, selector 1)
    published_at: datetime | None  # tagger time of the tag that published next's TLSA
    ttl: int  # seconds (largest dane_tls_ttl of the service)
    not_served: str | None  # None: every nameserver serves next's TLSA; else who does not
    unsigned: str | None = None  # None: the TLSA RRsets verify under the zone's DNSKEYs


@dataclass(frozen=True)
class RollInput:
    ident: str
    now: datetime
    force: bool
    next: NextFacts | None
    min_roll_mins: int
    dane: DaneFacts | None = None


@dataclass(frozen=True)
class Roll:
    reason: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hold:
    reason: str
    overridable: bool = True


RollDecision = Roll | Hold
RollCheck = Callable[[RollInput], Hold | None]


def _gate_next_exists(inp: RollInput) -> Hold | None:
    return Hold("no-next", overridable=False) if inp.next is None else None


def _gate_next_valid(inp: RollInput) -> Hold | None:
    assert inp.next is not None
    if not inp.next.key_matches_cert:
        return Hold("next-invalid: cert does not match key", overridable=False)
    if inp.next.chain_problem:
        return Hold(f"next-invalid: {inp.next.chain_problem}", overridable=False)
    return None


def _gate_min_roll_mins(inp: RollInput) -> Hold | None:
    assert inp.next is not None
    ready_at = inp.next.issued_at + timedelta(minutes=inp.min_roll_mins)
    if inp.now < ready_at:
        left = ready_at - inp.now
        mins = int(-(-left.total_seconds() // 60))  # round up: never claim "0m left" early
        return Hold(f"min-roll-mins: {mins}m left")
    return None


def _gate_dns_primary(inp: RollInput) -> Hold | None:
    if inp.dane is None or inp.dane.tlsa_unchanged or inp.dane.has_primary:
        return None
    return Hold("no-dns-primary: cannot verify that next's TLSA is published")


def _gate_two_ttl(inp: RollInput) -> Hold | None:
    dane = inp.dane
    if dane is None or dane.tlsa_unchanged:
        return None
    if dane.published_at is None:
        return Hold("tlsa-unpublished: no tag published next's TLSA")
    ready_at = dane.published_at + timedelta(seconds=2 * dane.ttl)
    if inp.now < ready_at:
        left = int(-(-(ready_at - inp.now).total_seconds() // 60))
        return Hold(f"tlsa-2xttl: {left}m left (TTL {dane.ttl}s)")
    return None


def _gate_tlsa_served(inp: RollInput) -> Hold | None:
    dane = inp.dane
    if dane is None or dane.tlsa_unchanged or dane.not_served is None:
        return None
    return Hold(f"tlsa-not-served: {dane.not_served}")


def _gate_tlsa_signed(inp: RollInput) -> Hold | None:
    dane = inp.dane
    if dane is None or dane.tlsa_unchanged or dane.unsigned is None:
        return None
    return Hold(f"tlsa-unsigned: {dane.unsigned}")


ROLL_CHAIN: tuple[RollCheck, ...] = (
    _gate_next_exists,
    _gate_next_valid,
    _gate_min_roll_mins,
    _gate_dns_primary,
    _gate_two_ttl,
    _gate_tlsa_served,
    _gate_tlsa_signed,
)


def retire_due(retired_at: datetime, now: datetime, retire_mins: int) -> bool:
    """May the retired key's TLSA records go? Servers pull on their own schedule, so the old
    key may still be presented for a while after the roll tag."""
    return now >= retired_at + timedelta(minutes=retire_mins)


def roll_decision(inp: RollInput, chain: Sequence[RollCheck] = ROLL_CHAIN) -> RollDecision:
    """Roll when every gate passes; ``force`` overrides only the overridable gates."""
    overridden: list[str] = []
    for gate in chain:
        hold = gate(inp)
        if hold is None:
            continue
        if inp.force and hold.overridable:
            overridden.append(hold.reason)
            continue
        return hold
    if overridden:
        return Roll("forced", tuple(f"forced past gate: {r}" for r in overridden))
    return Roll("ready")
