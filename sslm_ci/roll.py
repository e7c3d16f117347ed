"""The roll stage: next → curr once every gate passes, DANE-safe.

For a DANE service the gates (see :data:`sslm_ci.policy.ROLL_CHAIN`) also require that the tag
which published next's TLSA is at least 2 × TTL old and that the primary and every
authoritative nameserver serve next's TLSA now. The previous curr stays as ``retired/`` so its
TLSA records remain published until the servers have switched keys; a later run retires them
(``tlsa_retire_mins``) in a commit of its own (tag ``sslm/tlsa/<stamp>``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sslm_ci.config.model import Service
from sslm_ci.dns.lookup import resolve_address, tlsa_signature_problem
from sslm_ci.dns.propagation import (
    DnsQueryError,
    Expected,
    Server,
    ZoneCheck,
    check_zone_once,
    discover_servers,
)
from sslm_ci.errors import OperationalError
from sslm_ci.pki import keys as pki_keys
from sslm_ci.pki.verify import verify_chain
from sslm_ci.policy import DaneFacts, NextFacts, Roll, RollInput, retire_due, roll_decision
from sslm_ci.stages import (
    Context,
    StageResult,
    ca_order,
    land,
    publish_tlsa_locally,
    refresh_tlsa,
    service_tlsa,
    state_transaction,
)
from sslm_ci.store import Slot


def next_facts(ctx: Context, svc: Service) -> NextFacts | None:
    g, s = svc.group, svc.service
    cert = ctx.store.read_cert(g, s, Slot.NEXT)
    info = ctx.store.read_info(g, s, Slot.NEXT)
    if cert is None or info is None:
        return None
    try:
        key = pki_keys.load_private_key(ctx.store.read_secret(g, s, Slot.NEXT, "privkey.pem"))
        matches = pki_keys.key_matches_cert(key, cert)
    except OperationalError as exc:
        return NextFacts(info.issued_at, False, f"cannot read next's key: {exc}")
    chain = ctx.store.read_chain(g, s, Slot.NEXT)
    problem: str | None = None
    if chain or not svc.is_self_signed:
        verdict = verify_chain(cert, chain, None, ctx.now)
        if not verdict.ok:
            problem = "; ".join(verdict.reasons) or "chain does not verify"
    return NextFacts(issued_at=info.issued_at, key_matches_cert=matches, chain_problem=problem)


def tlsa_published_at(ctx: Context, svc: Service) -> datetime | None:
    """Tagger time of the tag on the commit that added next's certificate (its renew tag)."""
    rel = f"{ctx.store.slot_rel(svc.group, svc.service, Slot.NEXT)}/cert.pem"
    sha = subprocess.run(
        ["git", "log", "-1", "--diff-filter=A", "--format=%H", "--", rel],
        cwd=ctx.root,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not sha:
        return None
    times = [t.tagger_time for t in ctx.git.tags("sslm/**") if t.target_sha == sha]
    return min(times) if times else None


def dane_facts(ctx: Context, svc: Service) -> DaneFacts | None:
    if not svc.dane_tls:
        return None
    nxt = service_tlsa(ctx, svc, Slot.NEXT)
    curr = service_tlsa(ctx, svc, Slot.CURR)
    return DaneFacts(
        has_primary=ctx.inventory.dns_primary_for(svc.group) is not None,
        tlsa_unchanged=bool(curr) and nxt <= curr,
        published_at=tlsa_published_at(ctx, svc),
        ttl=svc.dane_tls_ttl,
        not_served=None,  # filled in only when every other gate passes (it queries DNS)
    )


def tlsa_not_served(ctx: Context, svc: Service) -> str | None:
    """Who does not serve next's TLSA right now (primary and every NS); None if all do."""
    primary = ctx.inventory.dns_primary_for(svc.group)
    if primary is None:
        return "no DNS primary"
    by_owner: dict[str, set[str]] = {}
    for rec in service_tlsa(ctx, svc, Slot.NEXT):
        by_owner.setdefault(rec.owner, set()).add(
            f"{rec.usage} {rec.selector} {rec.match} {rec.data}"
        )
    dns = ctx.inventory.servers["dns"]
    zone = ZoneCheck(
        apex=svc.group,
        primary=Server(primary.server, resolve_address(primary.server), primary.port),
        check_port=dns.check_port,
        extra_servers=tuple(
            Server(ns, resolve_address(ns), dns.check_port)
            for ns in ctx.inventory.globals.dns_xtra_ns
        ),
        expected=tuple(Expected(o, "TLSA", frozenset(v)) for o, v in sorted(by_owner.items())),
        require_serial=False,
    )
    try:
        servers = discover_servers(zone, timeout=3.0)
        lags, _serial = check_zone_once(zone, servers, timeout=3.0)
    except (DnsQueryError, OperationalError) as exc:
        return str(exc)
    if not lags:
        return None
    return "; ".join(f"{lag.server}: {lag.reason}" for lag in lags[:3]) + (
        f" (+{len(lags) - 3} more)" if len(lags) > 3 else ""
    )


def tlsa_unsigned(ctx: Context, svc: Service) -> str | None:
    """Whether next's TLSA records are DNSSEC-signed at the primary (DANE needs it)."""
    primary = ctx.inventory.dns_primary_for(svc.group)
    if primary is None:
        return "no DNS primary"
    owners = sorted({rec.owner for rec in service_tlsa(ctx, svc, Slot.NEXT)})
    server = Server(primary.server, resolve_address(primary.server), primary.port)
    try:
        return tlsa_signature_problem(server, svc.group, owners)
    except OperationalError as exc:
        return str(exc)


def _decide(ctx: Context, svc: Service, force: bool, mins: int) -> tuple[NextFacts | None, object]:
    facts = next_facts(ctx, svc)
    if facts is None:
        return None, None
    inp = RollInput(svc.ident, ctx.now, force, facts, mins, dane_facts(ctx, svc))
    decision = roll_decision(inp)
    dane = inp.dane
    if (
        isinstance(decision, Roll)
        and dane is not None
        and dane.has_primary
        and (not dane.tlsa_unchanged)
    ):
        # Everything else passed: now ask the nameservers (skipped by -f like the other
        # publication gates, but still reported).
        served = replace(
            dane, not_served=tlsa_not_served(ctx, svc), unsigned=tlsa_unsigned(ctx, svc)
        )
        decision = roll_decision(replace(inp, dane=served))
    return facts, decision


def run_roll(
    ctx: Context,
    selection: Sequence[Service],
    force: bool = False,
    min_roll_mins: int | None = None,
) -> StageResult:
    result = StageResult("roll")
    inv = ctx.inventory
    mins = inv.globals.min_roll_mins if min_roll_mins is None else min_roll_mins
    with state_transaction(ctx):
        touched: list[str] = []
        for svc in ca_order(inv, selection):
            facts, decision = _decide(ctx, svc, force, mins)
            if facts is None:
                continue  # nothing waiting: not worth a line per service
            if not isinstance(decision, Roll):
                reason = getattr(decision, "reason", "held")
                result.skipped.append((svc.ident, reason))
                ctx.echo(f"  {svc.ident}: held ({reason})")
                continue
            for warning in decision.warnings:
                result.warnings.append(f"{svc.ident}: {warning}")
                ctx.echo(f"  WARNING {svc.ident}: {warning}")
            ctx.store.promote_next(svc.group, svc.service, ctx.now, keep_retired=bool(svc.dane_tls))
            result.done.append((svc.ident, decision.reason))
            touched.append(svc.group)
            ctx.echo(f"  {svc.ident}: rolled next -> curr ({decision.reason})")
        tlsa_changed = refresh_tlsa(ctx, touched)
        if result.done:
            body = "\n".join(f"{i}: {r}" for i, r in result.done)
            if tlsa_changed:
                body += (
                    "\n\nTLSA updated: new curr, and the retired keys until they are retired: "
                    + ", ".join(tlsa_changed)
                )
            n = len(result.done)
            land(ctx, "roll", f"{n} service{'s' if n != 1 else ''} next -> curr", body, result)
            publish_tlsa_locally(ctx, tlsa_changed)
    retire = run_retire(ctx, selection)
    result.warnings += retire.warnings
    return result


def run_retire(ctx: Context, selection: Sequence[Service]) -> StageResult:
    """Drop retired keys' TLSA records once ``tlsa_retire_mins`` have passed since the roll."""
    result = StageResult("tlsa")
    wait = ctx.inventory.globals.tlsa_retire_mins
    with state_transaction(ctx):
        touched: list[str] = []
        for svc in selection:
            info = ctx.store.read_info(svc.group, svc.service, Slot.RETIRED)
            if info is None or info.rolled_at is None:
                continue
            if not retire_due(info.rolled_at, ctx.now, wait):
                ctx.echo(f"  {svc.ident}: retired key's TLSA kept (tlsa_retire_mins={wait})")
                continue
            ctx.store.drop_retired(svc.group, svc.service)
            result.done.append((svc.ident, f"retired-key-tlsa-removed after {wait}m"))
            touched.append(svc.group)
            ctx.echo(f"  {svc.ident}: retired key's TLSA removed")
        changed = refresh_tlsa(ctx, touched)
        if result.done:
            body = "\n".join(f"{i}: {r}" for i, r in result.done)
            body += "\n\nTLSA now covers curr only: " + ", ".join(changed)
            land(ctx, "tlsa", "retire old TLSA", body, result)
            publish_tlsa_locally(ctx, changed)
    return result
