"""Small direct lookups at the DNS primary (no recursive resolver)."""

from __future__ import annotations

import socket

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.query
import dns.rdataset
import dns.rdatatype
import dns.rrset

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


def _signed_answer(
    primary: Server, qname: str, rdtype: str, timeout: float
) -> tuple[dns.rrset.RRset | None, dns.rrset.RRset | None]:
    """(RRset, its RRSIG set) from the primary, asked with the DO bit."""
    request = dns.message.make_query(qname, rdtype, want_dnssec=True)
    request.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(request, primary.address, port=primary.port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(request, primary.address, port=primary.port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        raise OperationalError(f"{rdtype} {qname} at the DNS primary {primary}: {exc}") from None
    name = dns.name.from_text(qname)
    wanted = dns.rdatatype.from_text(rdtype)
    rrset = rrsig = None
    for candidate in response.answer:
        if candidate.name != name:
            continue
        if candidate.rdtype == wanted:
            rrset = candidate
        elif candidate.rdtype == dns.rdatatype.RRSIG and candidate.covers == wanted:
            rrsig = candidate
    return rrset, rrsig


def tlsa_signature_problem(
    primary: Server, apex: str, owners: list[str], timeout: float = 3.0
) -> str | None:
    """DANE needs DNSSEC: the apex must be signed and each TLSA RRset's signature must verify
    against the zone's DNSKEYs. None when so; else what is wrong.

    Like the queries themselves this observes the present: signatures are checked at the
    wall clock, not at an injected ``--now`` (a gathered fact, not a decision)."""
    zone = apex.rstrip(".") + "."
    dnskey, dnskey_sig = _signed_answer(primary, zone, "DNSKEY", timeout)
    if dnskey is None:
        return f"zone {apex} is not DNSSEC-signed at the primary (DANE needs DNSSEC)"
    keys: dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset] = {
        dns.name.from_text(zone): dnskey
    }
    try:
        if dnskey_sig is None:
            return f"DNSKEY of {apex} carries no RRSIG"
        dns.dnssec.validate(dnskey, dnskey_sig, keys)
        for owner in owners:
            rrset, rrsig = _signed_answer(primary, owner, "TLSA", timeout)
            if rrset is None:
                return f"no TLSA at {owner} on the primary"
            if rrsig is None:
                return f"TLSA at {owner} carries no RRSIG"
            dns.dnssec.validate(rrset, rrsig, keys)
    except dns.exception.ValidationFailure as exc:
        return f"DNSSEC signature does not verify ({exc})"
    return None
