"""Which server needs what: pure functions over the inventory's server classes.

A host appears in ``servers`` of one or more classes (``[smtp]``, ``[web]``, ...). A class's
``svc_depends`` lists ``[domain, [services]]`` pairs (``domain = 'any'`` matches every active
domain group); a class without ``svc_depends`` (ssl-mgr's ``[other]``: "these servers get copies
of certs") gets every active non-CA service. CA private keys never go to servers.
"""

from __future__ import annotations

from sslm_ci.config.model import CA_GROUP, Inventory, ServerClass, Service


def classes_for_host(inv: Inventory, host: str) -> list[ServerClass]:
    return [cls for cls in inv.servers.values() if host in cls.servers]


def class_services(inv: Inventory, cls: ServerClass) -> list[Service]:
    """Services whose keys and certs a server of this class installs."""
    if cls.name == "dns":
        return []  # DNS hosts install TLSA and challenge fragments, never private keys
    active = [s for s in inv.active_services() if s.group != CA_GROUP]
    if not cls.svc_depends:
        return active
    wanted: list[Service] = []
    for svc in active:
        for dep in cls.svc_depends:
            if dep.domain in ("any", svc.group) and svc.service in dep.services:
                wanted.append(svc)
                break
    return wanted


def services_for_host(inv: Inventory, host: str) -> list[Service]:
    seen: dict[tuple[str, str], Service] = {}
    for cls in classes_for_host(inv, host):
        for svc in class_services(inv, cls):
            seen.setdefault((svc.group, svc.service), svc)
    return list(seen.values())


def hosts_for_service(inv: Inventory, svc: Service) -> list[str]:
    hosts: set[str] = set()
    for cls in inv.servers.values():
        if any(s.group == svc.group and s.service == svc.service for s in class_services(inv, cls)):
            hosts.update(cls.servers)
    return sorted(hosts)


def all_hosts(inv: Inventory) -> list[str]:
    return sorted({h for cls in inv.servers.values() for h in cls.servers})
