"""``sslm-ci status``: every service's curr/next expiry and when it renews or rolls.

Gathering reads only public files (certs, info): status never needs a decryption key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sslm_ci.config.model import Inventory, Service
from sslm_ci.policy import CertFacts, Due, RenewDecision, RenewInput, renew_at, renewal_decision
from sslm_ci.store import Slot, Store


@dataclass(frozen=True)
class ServiceStatus:
    ident: str
    group: str
    service: str
    signing_ca: str
    curr_expires: datetime | None
    curr_days_left: float | None
    next_expires: datetime | None
    next_issued_at: datetime | None
    renew_due: bool
    renew_reason: str
    renew_at: datetime | None
    roll_state: str
    # Added for the reports (markdown, metrics, page); defaults keep older constructors working.
    curr_not_before: datetime | None = None
    curr_issued_at: datetime | None = None  # curr's info: when it was issued into next
    curr_rolled_at: datetime | None = None  # curr's info: when it became curr
    due_since: datetime | None = None  # set when renew_due: see _due_since


def _roll_state(
    next_issued: datetime | None,
    now: datetime,
    min_roll_mins: int,
    dane_ttl: int | None = None,
    retired_at: datetime | None = None,
    retire_mins: int = 60,
) -> str:
    """Roll state from the time gates only (status never queries DNS or decrypts)."""
    parts: list[str] = []
    if next_issued is not None:
        verb = "published" if dane_ttl is not None else "issued"
        gates = [("min_roll_mins", next_issued + timedelta(minutes=min_roll_mins))]
        if dane_ttl is not None:
            gates.append(("2×TTL", next_issued + timedelta(seconds=2 * dane_ttl)))
        pending = [(name, at) for name, at in gates if now < at]
        if pending:
            name, at = max(pending, key=lambda g: g[1])
            gate = f"{name} in {_span(at - now)}"
        else:
            gate = "ready to roll" + (" once every NS serves next's TLSA" if dane_ttl else "")
        parts.append(f"next {verb} {_span(now - next_issued)} ago, gate: {gate}")
    if retired_at is not None:
        until = retired_at + timedelta(minutes=retire_mins)
        when = f"in {_span(until - now)}" if now < until else "at the next roll run"
        parts.append(f"retired key's TLSA removed {when}")
    return "; ".join(parts) or "-"


def _span(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    if secs < 3600:
        return f"{max(secs, 0) // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"
    return f"{secs // 86400}d"


def _due_since(decision: RenewDecision, inp: RenewInput) -> datetime | None:
    """When a due service became due, as far as its certificate tells.

    Expiry-driven reasons have a stable instant in the past (the certificate's own renewal
    time), so "overdue for more than a day" can be alerted on. Reasons with no such instant
    (forced, no-current-cert, spec-changed) are due from ``now``; never later than ``now``.
    """
    if not isinstance(decision, Due):
        return None
    facts: CertFacts | None = inp.next if decision.reason.startswith("next-") else inp.curr
    if facts is None:
        return inp.now
    return min(inp.now, renew_at(facts, inp))


def service_status(
    inv: Inventory, store: Store, svc: Service, now: datetime, renew_input: RenewInput
) -> ServiceStatus:
    curr = store.read_cert(svc.group, svc.service, Slot.CURR)
    nxt = store.read_cert(svc.group, svc.service, Slot.NEXT)
    curr_info = store.read_info(svc.group, svc.service, Slot.CURR)
    next_info = store.read_info(svc.group, svc.service, Slot.NEXT)
    retired_info = store.read_info(svc.group, svc.service, Slot.RETIRED)
    decision = renewal_decision(renew_input)
    curr_exp = curr.not_valid_after_utc if curr else None
    return ServiceStatus(
        ident=svc.ident,
        group=svc.group,
        service=svc.service,
        signing_ca=svc.signing_ca,
        curr_expires=curr_exp,
        curr_days_left=(curr_exp - now).total_seconds() / 86400 if curr_exp else None,
        next_expires=nxt.not_valid_after_utc if nxt else None,
        next_issued_at=next_info.issued_at if next_info else None,
        renew_due=isinstance(decision, Due),
        renew_reason=decision.reason,
        renew_at=None if isinstance(decision, Due) else decision.renew_at,
        roll_state=_roll_state(
            next_info.issued_at if next_info else None,
            now,
            inv.globals.min_roll_mins,
            svc.dane_tls_ttl if svc.dane_tls else None,
            retired_info.rolled_at if retired_info else None,
            inv.globals.tlsa_retire_mins,
        ),
        curr_not_before=curr.not_valid_before_utc if curr else None,
        curr_issued_at=curr_info.issued_at if curr_info else None,
        curr_rolled_at=curr_info.rolled_at if curr_info else None,
        due_since=_due_since(decision, renew_input),
    )


def render_text(rows: list[ServiceStatus], now: datetime) -> str:
    header = ("service", "ca", "curr expires", "days", "next expires", "renewal", "roll")
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        renewal = f"DUE ({r.renew_reason})" if r.renew_due else r.renew_reason
        if not r.renew_due and r.renew_at:
            renewal += f" ({r.renew_at:%Y-%m-%d})"
        table.append(
            (
                r.ident,
                r.signing_ca,
                f"{r.curr_expires:%Y-%m-%d %H:%M}" if r.curr_expires else "-",
                f"{r.curr_days_left:.1f}" if r.curr_days_left is not None else "-",
                f"{r.next_expires:%Y-%m-%d %H:%M}" if r.next_expires else "-",
                renewal,
                r.roll_state,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"status at {now.isoformat()}"]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_json(rows: list[ServiceStatus], now: datetime) -> str:
    def conv(value: object) -> object:
        return value.isoformat() if isinstance(value, datetime) else value

    services = [{k: conv(v) for k, v in asdict(r).items()} for r in rows]
    return json.dumps({"now": now.isoformat(), "services": services}, indent=2)


# -- shared by the reports (markdown, metrics, page) ------------------------------------------


def is_ready(row: ServiceStatus, now: datetime) -> bool:
    """curr exists and is inside its validity period at ``now``."""
    if row.curr_expires is None or now >= row.curr_expires:
        return False
    return row.curr_not_before is None or row.curr_not_before <= now


def health(row: ServiceStatus, now: datetime) -> str:
    """One word for colouring and counting: ``missing``, ``expired`` (or not yet valid),
    ``due`` or ``ok``."""
    if row.curr_expires is None:
        return "missing"
    if not is_ready(row, now):
        return "expired"
    return "due" if row.renew_due else "ok"


def renewal_time(row: ServiceStatus) -> datetime | None:
    """When the service renews: its scheduled date, or for a due one when it became due."""
    return row.due_since if row.renew_due else row.renew_at


def count_line(rows: list[ServiceStatus], now: datetime) -> str:
    """``5 services, 3 due for renewal (1 expired, 1 without a certificate), 1 next waiting``."""
    states = [health(r, now) for r in rows]
    text = f"{len(rows)} service{'s' if len(rows) != 1 else ''}"
    text += f", {sum(1 for r in rows if r.renew_due)} due for renewal"
    worst = [
        f"{n} {label}"
        for state, label in (("expired", "expired"), ("missing", "without a certificate"))
        if (n := states.count(state))
    ]
    if worst:
        text += f" ({', '.join(worst)})"
    waiting = sum(1 for r in rows if r.next_expires is not None)
    return text + f", {waiting} with next waiting to roll"
