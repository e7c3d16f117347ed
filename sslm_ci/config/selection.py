"""ssl-mgr's command-line selection of services: ``group[:svc1,svc2,...]`` arguments."""

from __future__ import annotations

from collections.abc import Sequence

from sslm_ci.config.model import Inventory, Service
from sslm_ci.config.validate import did_you_mean
from sslm_ci.errors import UsageError

# ssl-mgr spells "every service of the group" either way.
_ALL = ("ALL", "*")


def parse_selection(args: Sequence[str], inv: Inventory) -> list[Service]:
    """Services named by ``args`` in config order, each once; no args: all active services.

    ``example.com:mail-ec,mail-rsa`` picks two services, ``example.com`` or
    ``example.com:ALL`` the whole group. A group named explicitly is selected even when it is
    not active: the command line overrides the config.
    """
    if not args:
        return inv.active_services()
    by_domain = {g.domain: g for g in inv.groups}
    wanted: set[tuple[str, str]] = set()
    for arg in args:
        group_name, colon, svc_text = arg.strip().partition(":")
        group_name = group_name.strip()
        if not group_name:
            raise UsageError(f"selection {arg!r}: expected group[:service,...], the group is empty")
        group = by_domain.get(group_name)
        if group is None:
            raise UsageError(
                f"selection {arg!r}: unknown group {group_name!r}"
                + did_you_mean(group_name, list(by_domain))
            )
        names = [n.strip() for n in svc_text.split(",")] if colon else []
        names = [n for n in names if n]
        if colon and not names:
            raise UsageError(
                f"selection {arg!r}: no service after ':' (name services, or use {group_name}:ALL)"
            )
        if not names or any(n in _ALL for n in names):
            wanted.update((group.domain, s) for s in group.services)
            continue
        for name in names:
            if name not in group.services:
                raise UsageError(
                    f"selection {arg!r}: group {group_name!r} has no service {name!r}"
                    + did_you_mean(name, group.services)
                )
            wanted.add((group.domain, name))
    return [
        inv.services[(g.domain, s)]
        for g in inv.groups
        for s in g.services
        if (g.domain, s) in wanted
    ]
