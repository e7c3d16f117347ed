"""Small direct lookups at the DNS primary (no recursive resolver)."""

from __future__ import annotations

import socket

import dns.rdatatype

from sslm_ci.dns.propagation import DnsQueryError, Server, query
from sslm_ci.errors import OperationalError


def mx_hosts(primary: Server, apex: str, timeout: float = 3.0) -> list[str]:
    """The apex's MX targets as the primary serves them, sorted by preference then name."""
    qname = apex.rstrip(".") + "."
    try:
        msg = query(primary, qname, "MX", timeout)
    except DnsQueryError as exc:
        raise OperationalError(
            f"MX lookup for {apex} at the DNS primary {primary} failed: {exc}"
        ) from None
    found: list[tuple[int, str]] = []
    for rrset in msg.answer:
        if rrset.rdtype != dns.rdatatype.MX:
            continue
        for rd in rrset:
            target = rd.exchange.to_text().rstrip(".").lower()
            if target:
                found.append((int(rd.preference), target))
    return [name for _, name in sorted(set(found))]


def resolve_address(host: str) -> str:
    """An IP literal stays as it is; a name gets its first address (the primary and extra
    nameservers are configured by name or address)."""
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0])
    except OSError:
        return host
