"""Wait once per run until every authoritative nameserver of every affected zone serves the
records we published.

Every address of every NS (plus configured extras) is asked directly: UDP with RD=0 and no EDNS,
the way pebble's VA asks, falling back to TCP on truncation; answers must carry the AA flag. No
recursive resolver is involved, so nothing is answered from a (negative) cache.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.tlsabase import TLSABase
from dns.rdtypes.txtbase import TXTBase

from sslm_ci.errors import OperationalError

_BACKOFF_START = 0.2
_BACKOFF_FACTOR = 1.5
# A poll is a handful of direct UDP queries: a short cap keeps the wait close to the moment the
# last server catches up without loading anyone.
_BACKOFF_CAP = 2.0
_MAX_WORKERS = 32
_PROGRESS_MAX_LAGS = 3
_SHORT_VALUE = 16


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.name} ({host}:{self.port})"


def canonical_value(rdtype: str, text: str) -> str:
    """Rdata in the form :class:`Expected` compares: TXT as the bare string, TLSA as
    ``u s m hex`` (lower case, one blank), anything else as dnspython's canonical text.

    :raises ValueError: text that is not valid rdata of that type.
    """
    kind = rdtype.upper()
    if kind == "TXT":
        return text
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, kind, text)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"{text!r} is not valid {kind} rdata: {exc}") from exc
    return _rdata_text(rdata)


def _rdata_text(rdata: dns.rdata.Rdata) -> str:
    if isinstance(rdata, TXTBase):
        return b"".join(rdata.strings).decode("utf-8", "backslashreplace")
    if isinstance(rdata, TLSABase):
        return f"{rdata.usage} {rdata.selector} {rdata.mtype} {rdata.cert.hex()}"
    return rdata.to_text().lower()


@dataclass(frozen=True)
class Expected:
    """What one server must serve at ``owner``.

    ``present=True``: every value is in the RRset (other values may be there too: wildcard +
    apex and concurrent runs share a name); ``values`` must not be empty.
    ``present=False``: none of the values is there; empty ``values`` means no RRset at all.
    """

    owner: str
    rdtype: str
    values: frozenset[str]
    present: bool = True

    def __post_init__(self) -> None:
        owner = self.owner.strip().lower().rstrip(".") + "."
        if owner == ".":
            raise ValueError("Expected.owner must not be empty")
        kind = self.rdtype.strip().upper()
        try:
            dns.rdatatype.from_text(kind)
        except dns.exception.DNSException as exc:
            raise ValueError(f"unknown record type {self.rdtype!r}") from exc
        if self.present and not self.values:
            raise ValueError(f"Expected {kind} at {owner}: present=True needs at least one value")
        values = frozenset(canonical_value(kind, v) for v in self.values)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "rdtype", kind)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class ZoneCheck:
    """One zone to wait for.

    ``primary`` is asked for the NS set; discovered NS addresses are checked on ``check_port``.
    ``wait_instead`` (seconds) skips all queries for this zone and just waits (split horizon,
    firewalled NS). ``require_serial`` off drops the SOA comparison for setups whose servers
    number their serials independently (every NS loading the zone from git).
    """

    apex: str
    primary: Server
    check_port: int
    expected: tuple[Expected, ...]
    extra_servers: tuple[Server, ...] = ()
    wait_instead: float | None = None
    require_serial: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "apex", self.apex.strip().lower().rstrip(".") + ".")
        if self.wait_instead is not None and self.wait_instead < 0:
            raise ValueError(f"wait_instead for {self.apex} must be >= 0")


@dataclass(frozen=True)
class Lag:
    apex: str
    server: str
    reason: str

    def __str__(self) -> str:
        return f"{self.apex.rstrip('.')} {self.server}: {self.reason}"


@dataclass(frozen=True)
class PropagationReport:
    rounds: int
    waited: float
    servers_checked: int


class DnsQueryError(OperationalError):
    """A direct query got no usable answer; ``reason`` is the short text a :class:`Lag` shows."""

    def __init__(self, server: Server, qname: str, rdtype: str, reason: str) -> None:
        self.server = server
        self.qname = qname
        self.rdtype = rdtype
        self.reason = reason
        super().__init__(f"{server}: {rdtype} {qname}: {reason}")


class QueryTimeout(DnsQueryError):
    pass


class QueryRefused(DnsQueryError):
    pass


class PropagationTimeout(OperationalError):
    def __init__(self, laggards: list[Lag], waited: float) -> None:
        self.laggards = laggards
        self.waited = waited
        listing = "; ".join(str(lag) for lag in laggards)
        super().__init__(
            f"DNS records not on every authoritative server after {waited:.1f} s: {listing}"
        )


def query(
    server: Server,
    qname: str,
    rdtype: str,
    timeout: float,
    *,
    edns: bool = False,
    tcp_fallback: bool = True,
) -> dns.message.Message:
    """One direct, non-recursive query (RD=0) over UDP, retried over TCP when truncated.

    :raises QueryTimeout: no answer within ``timeout`` (per transport attempt).
    :raises QueryRefused: rcode REFUSED.
    :raises DnsQueryError: any other rcode but NOERROR/NXDOMAIN, network or wire errors.
    """
    request = dns.message.make_query(qname, rdtype, use_edns=0 if edns else False)
    request.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(request, server.address, timeout=timeout, port=server.port)
        if tcp_fallback and response.flags & dns.flags.TC:
            response = dns.query.tcp(request, server.address, timeout=timeout, port=server.port)
    except dns.exception.Timeout as exc:
        raise QueryTimeout(server, qname, rdtype, "no answer (timeout)") from exc
    except (dns.exception.DNSException, OSError) as exc:
        raise DnsQueryError(server, qname, rdtype, f"bad answer ({exc})") from exc
    rcode = response.rcode()
    if rcode == dns.rcode.REFUSED:
        raise QueryRefused(server, qname, rdtype, "REFUSED")
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DnsQueryError(server, qname, rdtype, dns.rcode.to_text(rcode))
    return response


def _answer(response: dns.message.Message, qname: str, rdtype: str) -> dns.rrset.RRset | None:
    return response.get_rrset(
        response.answer,
        dns.name.from_text(qname),
        dns.rdataclass.IN,
        dns.rdatatype.from_text(rdtype),
    )


class _NotAuthoritative(Exception):
    pass


def _authoritative(
    server: Server, qname: str, rdtype: str, timeout: float
) -> tuple[dns.message.Message, dns.rrset.RRset | None]:
    response = query(server, qname, rdtype, timeout)
    if not response.flags & dns.flags.AA:
        raise _NotAuthoritative()
    return response, _answer(response, qname, rdtype)


def serial_at_least(serial: int, reference: int) -> bool:
    """RFC 1982 ``serial >= reference``, so a wrapped serial still counts as newer."""
    return serial == reference or (serial - reference) % 2**32 < 2**31


def _lookup_addresses(primary: Server, apex: str, name: str, timeout: float) -> list[str]:
    """Addresses of an NS name: the primary's authoritative A/AAAA first. Only when the primary
    cannot speak for the name (out of zone, delegated, unreachable) the system resolver is
    asked; an authoritative "no such address" for an in-zone name is final."""
    addresses: list[str] = []
    primary_is_final = name == apex or name.endswith("." + apex)
    for rdtype in ("A", "AAAA"):
        try:
            _, rrset = _authoritative(primary, name, rdtype, timeout)
        except (DnsQueryError, _NotAuthoritative):
            primary_is_final = False
            continue
        if rrset is not None:
            addresses.extend(rdata.to_text() for rdata in rrset)
    if addresses or primary_is_final:
        return addresses
    try:
        infos = socket.getaddrinfo(name.rstrip("."), None, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class DiscoveryError(OperationalError):
    def __init__(self, apex: str, reason: str) -> None:
        self.apex = apex
        self.reason = reason
        super().__init__(f"{apex}: {reason}")


def discover_servers(zone: ZoneCheck, timeout: float) -> list[Server]:
    """Every address of every NS of ``zone.apex`` (asked at the primary) on ``zone.check_port``,
    plus ``zone.extra_servers``; de-duplicated, without the primary's own endpoint.

    :raises DiscoveryError: the primary gives no authoritative NS set, or an NS name has no
        address (fail closed: the CA may ask exactly that server).
    """
    try:
        _, ns_rrset = _authoritative(zone.primary, zone.apex, "NS", timeout)
    except DnsQueryError as exc:
        raise DiscoveryError(zone.apex, f"NS query: {exc.reason}") from exc
    except _NotAuthoritative as exc:
        raise DiscoveryError(zone.apex, "NS query: not authoritative") from exc
    if ns_rrset is None:
        raise DiscoveryError(zone.apex, "no NS records at the apex")
    ns_names = sorted({rdata.to_text().lower() for rdata in ns_rrset})
    seen = {(zone.primary.address, zone.primary.port)}
    servers: list[Server] = []
    for ns_name in ns_names:
        addresses = _lookup_addresses(zone.primary, zone.apex, ns_name, timeout)
        if not addresses:
            raise DiscoveryError(zone.apex, f"no address for NS {ns_name}")
        for address in addresses:
            if (address, zone.check_port) not in seen:
                seen.add((address, zone.check_port))
                servers.append(Server(ns_name, address, zone.check_port))
    for extra in zone.extra_servers:
        if (extra.address, extra.port) not in seen:
            seen.add((extra.address, extra.port))
            servers.append(extra)
    return servers


def _short(value: str) -> str:
    return repr(value if len(value) <= _SHORT_VALUE else value[:_SHORT_VALUE] + "…")


def _content_problem(expected: Expected, found: set[str], nxdomain: bool) -> str | None:
    if expected.present:
        missing = sorted(expected.values - found)
        if not missing:
            return None
        what = f"value {_short(missing[0])}"
        if len(missing) > 1:
            what = f"values {_short(missing[0])} (+{len(missing) - 1} more)"
        suffix = " (NXDOMAIN)" if nxdomain else ""
        return f"missing {expected.rdtype} {what} at {expected.owner}{suffix}"
    if not expected.values:
        return f"{expected.rdtype} records still at {expected.owner}" if found else None
    stale = sorted(expected.values & found)
    if not stale:
        return None
    more = f" (+{len(stale) - 1} more)" if len(stale) > 1 else ""
    return f"old {expected.rdtype} value {_short(stale[0])}{more} still at {expected.owner}"


@dataclass
class _ServerResult:
    server: Server
    problem: str | None = None
    serial: int | None = None


def _check_server(zone: ZoneCheck, server: Server, timeout: float) -> _ServerResult:
    """SOA first (a dead server costs one timeout, not one per name), then each owner once."""
    result = _ServerResult(server)
    try:
        _, soa = _authoritative(server, zone.apex, "SOA", timeout)
        if soa is None:
            result.problem = f"no SOA for {zone.apex}"
            return result
        first = soa[0]
        if not isinstance(first, SOA):  # pragma: no cover - get_rrset matched the type
            raise TypeError(f"SOA RRset holds {type(first).__name__}")
        result.serial = int(first.serial)
        groups: dict[tuple[str, str], list[Expected]] = {}
        for expected in zone.expected:
            groups.setdefault((expected.owner, expected.rdtype), []).append(expected)
        for (owner, rdtype), wanted in groups.items():
            response, rrset = _authoritative(server, owner, rdtype, timeout)
            found = {_rdata_text(rdata) for rdata in rrset} if rrset is not None else set()
            nxdomain = response.rcode() == dns.rcode.NXDOMAIN
            for expected in wanted:
                problem = _content_problem(expected, found, nxdomain)
                if problem is not None:
                    result.problem = problem
                    return result
    except DnsQueryError as exc:
        result.problem = exc.reason
    except _NotAuthoritative:
        result.problem = "not authoritative"
    return result


def _without_primary(zone: ZoneCheck, servers: Sequence[Server]) -> list[Server]:
    primary = (zone.primary.address, zone.primary.port)
    return [s for s in servers if (s.address, s.port) != primary]


def check_zone_once(
    zone: ZoneCheck, servers: Sequence[Server], timeout: float
) -> tuple[list[Lag], int | None]:
    """One pass over the primary and ``servers`` (concurrently).

    Every server must answer authoritatively with all :class:`Expected` satisfied; the others
    must also have an SOA serial at least the primary's (RFC 1982 comparison). Returns the
    laggards (primary first) and the primary's serial (``None`` if it had none to give).
    """
    everyone = [zone.primary, *_without_primary(zone, servers)]
    with ThreadPoolExecutor(max_workers=max(1, min(_MAX_WORKERS, len(everyone)))) as pool:
        results = list(pool.map(lambda s: _check_server(zone, s, timeout), everyone))
    return _judge(zone, results)


def _judge(zone: ZoneCheck, results: list[_ServerResult]) -> tuple[list[Lag], int | None]:
    primary, *others = results
    lags: list[Lag] = []
    if primary.problem is not None:
        lags.append(Lag(zone.apex, str(primary.server), primary.problem))
    primary_serial = primary.serial
    for result in others:
        problem = result.problem
        if (
            problem is None
            and zone.require_serial
            and primary_serial is not None
            and result.serial is not None
            and not serial_at_least(result.serial, primary_serial)
        ):
            problem = f"serial {result.serial} < primary {primary_serial}"
        if problem is not None:
            lags.append(Lag(zone.apex, str(result.server), problem))
    return lags, primary_serial


def _progress_line(lags: list[Lag]) -> str:
    shown = "; ".join(str(lag) for lag in lags[:_PROGRESS_MAX_LAGS])
    more = f"; +{len(lags) - _PROGRESS_MAX_LAGS} more" if len(lags) > _PROGRESS_MAX_LAGS else ""
    return f"waiting for {len(lags)} server(s): {shown}{more}"


def wait_for_propagation(
    zones: Sequence[ZoneCheck],
    *,
    timeout: float,
    min_delay: float = 0.0,
    query_timeout: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] = lambda s: None,
) -> PropagationReport:
    """One wait across all zones: sleep ``min_delay``, then poll every checked zone with back-off
    (0.2 s, x1.5, capped at 2 s) until all pass; zones with ``wait_instead`` only wait, counted
    from the call, in parallel with the polling.

    ``timeout`` counts from the end of ``min_delay``; a round started before the deadline may
    overrun it by about ``query_timeout`` per query a slow server still answers. A ``wait_instead``
    longer than ``min_delay + timeout`` is honoured: it was asked for explicitly.

    :raises PropagationTimeout: with every laggard of the last round.
    """
    start = clock()
    blind_until = max(
        (start + z.wait_instead for z in zones if z.wait_instead is not None), default=start
    )
    if min_delay > 0:
        sleep(min_delay)
    deadline = clock() + timeout
    pending = [i for i, z in enumerate(zones) if z.wait_instead is None]
    discovered: dict[int, list[Server]] = {}
    checked: set[tuple[str, int]] = set()
    rounds = 0
    backoff = _BACKOFF_START
    with ThreadPoolExecutor(max_workers=_MAX_WORKERS) as pool:
        while pending:
            rounds += 1
            lags = _poll_round(pool, zones, pending, discovered, checked, query_timeout)
            pending = [i for i in pending if lags[i]]
            if not pending:
                break
            laggards = [lag for i in pending for lag in lags[i]]
            now = clock()
            if now >= deadline:
                raise PropagationTimeout(laggards, now - start)
            progress(_progress_line(laggards))
            sleep(min(backoff, deadline - now))
            backoff = min(backoff * _BACKOFF_FACTOR, _BACKOFF_CAP)
    remaining = blind_until - clock()
    if remaining > 0:
        blind = ", ".join(z.apex.rstrip(".") for z in zones if z.wait_instead is not None)
        progress(f"waiting {remaining:.1f} s more instead of checking: {blind}")
        sleep(remaining)
    return PropagationReport(rounds=rounds, waited=clock() - start, servers_checked=len(checked))


def _poll_round(
    pool: ThreadPoolExecutor,
    zones: Sequence[ZoneCheck],
    pending: list[int],
    discovered: dict[int, list[Server]],
    checked: set[tuple[str, int]],
    query_timeout: float,
) -> dict[int, list[Lag]]:
    """Discover where still needed (a failed discovery is retried next round), then check every
    pending zone's servers; all queries of the round share one pool."""
    discovery = {
        i: pool.submit(discover_servers, zones[i], query_timeout)
        for i in pending
        if i not in discovered
    }
    lags: dict[int, list[Lag]] = {}
    for i, future in discovery.items():
        try:
            discovered[i] = future.result()
        except DiscoveryError as exc:
            lags[i] = [Lag(zones[i].apex, str(zones[i].primary), f"discovery: {exc.reason}")]
    jobs: dict[int, list[Future[_ServerResult]]] = {}
    for i in pending:
        if i in lags:
            continue
        zone = zones[i]
        everyone = [zone.primary, *_without_primary(zone, discovered[i])]
        checked.update((s.address, s.port) for s in everyone)
        jobs[i] = [pool.submit(_check_server, zone, s, query_timeout) for s in everyone]
    for i, futures in jobs.items():
        lags[i] = _judge(zones[i], [f.result() for f in futures])[0]
    return lags
