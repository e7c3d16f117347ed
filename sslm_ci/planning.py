"""``sslm-ci plan``: what a change to the inventory means, before it is merged.

Compares the inventory at a base revision with the one in the work tree and says, per service:
new / removed / changed (names, key, CA, DANE), whether ``renew`` would issue it now and why,
whether its TLSA records change, and which hosts would receive its key. Pure over loaded
inventories, renewal decisions and host maps; the CLI gathers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sslm_ci.config.model import Inventory, Service


@dataclass(frozen=True)
class ServicePlan:
    ident: str
    change: str  # "new" | "removed" | "changed" | "unchanged"
    details: tuple[str, ...] = ()
    renew: str = ""  # "" when nothing happens; else the renewal reason
    tlsa_change: bool = False
    hosts: tuple[str, ...] = ()
    hosts_added: tuple[str, ...] = ()
    hosts_removed: tuple[str, ...] = ()


@dataclass
class Plan:
    services: list[ServicePlan] = field(default_factory=list)
    base: str = ""

    @property
    def changes(self) -> list[ServicePlan]:
        return [s for s in self.services if s.change != "unchanged" or s.renew]


def _describe(svc: Service) -> dict[str, str]:
    key = f"ec {svc.key.ec_algo}" if svc.key.ktype == "ec" else f"rsa {svc.key.rsa_bits}"
    dane = ", ".join(f"{d.port}/{d.proto} {d.usage} {d.selector} {d.match}" for d in svc.dane_tls)
    return {
        "names": ", ".join(svc.names) or "-",
        "key": key,
        "ca": svc.signing_ca,
        "dane": dane or "none",
    }


def build_plan(
    base: Inventory | None,
    head: Inventory,
    renew_reasons: Mapping[str, str],
    hosts_head: Mapping[str, tuple[str, ...]],
    hosts_base: Mapping[str, tuple[str, ...]],
    base_label: str = "",
) -> Plan:
    """``renew_reasons``: ident → reason for services renew would issue now (due ones only)."""
    plan = Plan(base=base_label)
    base_services = {s.ident: s for s in base.services.values()} if base else {}
    head_services = {s.ident: s for s in head.services.values()}
    for ident in sorted(set(base_services) | set(head_services)):
        old, new = base_services.get(ident), head_services.get(ident)
        hosts = hosts_head.get(ident, ())
        before = hosts_base.get(ident, ())
        added = tuple(h for h in hosts if h not in before)
        removed = tuple(h for h in before if h not in hosts)
        if new is None:
            assert old is not None
            plan.services.append(
                ServicePlan(
                    ident,
                    "removed",
                    ("its certificates stay in git history",),
                    tlsa_change=bool(old.dane_tls),
                    hosts_removed=before,
                )
            )
            continue
        if old is None:
            desc = _describe(new)
            details = tuple(f"{k}: {v}" for k, v in desc.items())
            plan.services.append(
                ServicePlan(
                    ident,
                    "new",
                    details,
                    renew_reasons.get(ident, ""),
                    tlsa_change=bool(new.dane_tls),
                    hosts=hosts,
                    hosts_added=added,
                )
            )
            continue
        a, b = _describe(old), _describe(new)
        details = tuple(f"{k}: {a[k]} -> {b[k]}" for k in a if a[k] != b[k])
        plan.services.append(
            ServicePlan(
                ident,
                "changed" if details or added or removed else "unchanged",
                details,
                renew_reasons.get(ident, ""),
                tlsa_change=a["dane"] != b["dane"] or bool(new.dane_tls and ident in renew_reasons),
                hosts=hosts,
                hosts_added=added,
                hosts_removed=removed,
            )
        )
    return plan


def render_text(plan: Plan) -> str:
    lines = [f"plan against {plan.base or 'HEAD'}:"]
    if not plan.changes:
        lines.append("  no changes: renew would issue nothing")
    for sp in plan.changes:
        lines.append(f"  {sp.ident}: {sp.change}")
        lines += [f"      {d}" for d in sp.details]
        if sp.renew:
            lines.append(f"      renew would issue a certificate ({sp.renew})")
        if sp.tlsa_change:
            lines.append("      TLSA records change (DNS refresh, DANE roll gates apply)")
        if sp.hosts_added:
            lines.append(f"      key newly readable by: {', '.join(sp.hosts_added)}")
        if sp.hosts_removed:
            lines.append(
                f"      no longer deployed to: {', '.join(sp.hosts_removed)} "
                "(old ciphertexts in history stay readable to them: re-key)"
            )
    return "\n".join(lines)


def render_markdown(plan: Plan) -> str:
    out = [f"### sslm-ci plan (against `{plan.base or 'HEAD'}`)", ""]
    if not plan.changes:
        return "\n".join([*out, "No changes: renew would issue nothing.", ""])
    out += ["| service | change | details | renew | TLSA | hosts |", "|---|---|---|---|---|---|"]
    for sp in plan.changes:
        hosts = ", ".join(sp.hosts) or "-"
        if sp.hosts_added:
            hosts += " (new: " + ", ".join(sp.hosts_added) + ")"
        cells = [
            f"`{sp.ident}`",
            sp.change,
            "<br>".join(sp.details) or "-",
            sp.renew or "-",
            "changes" if sp.tlsa_change else "-",
            hosts,
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*out, ""])
