"""DNSSEC for the rig: trust anchors read from named's key directory, answers that must be
secure (AD) or are refused, and an independent dnspython validator as an oracle.

The anchors come from the key files on disk, not from a DNSKEY query: an anchor taken from
the server it is meant to check would prove nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS
import dns.rdtypes.ANY.TLSA
import dns.rrset
from dns.exception import ValidationFailure

from tests.rig.process import RigError

# DNSKEY flags 257: zone key + SEP, i.e. a KSK or (dnssec-policy default) a CSK
SEP_FLAG = 0x0001
ZONE_FLAG = 0x0100
_DS_DIGESTS = {1: "SHA1", 2: "SHA256", 4: "SHA384"}


class DnssecError(RigError):
    """An answer that is not DNSSEC-secure where it must be, with what the resolver said."""

    def __init__(
        self,
        name: str,
        rdtype: str,
        reason: str,
        *,
        rcode: str | None = None,
        flags: str | None = None,
        log_tail: str = "",
    ) -> None:
        self.name = name
        self.rdtype = rdtype
        self.rcode = rcode
        self.flags = flags
        detail = f"{name} {rdtype}: {reason}"
        if rcode is not None:
            detail += f" (rcode {rcode}, flags [{flags or ''}])"
        super().__init__("dnssec", detail, log_tail)


class BogusAnswer(DnssecError):
    """The validating resolver refused the data (SERVFAIL): signatures or chain are bad."""


class InsecureAnswer(DnssecError):
    """An answer without the AD flag: unsigned zone, no anchor, or a non-validating resolver."""


@dataclass(frozen=True)
class ZoneKey:
    """One DNSKEY from a ``K<apex>.+<alg>+<tag>.key`` file."""

    apex: str
    path: Path
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY

    @property
    def key_tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @property
    def is_sep(self) -> bool:
        """KSK or CSK: the keys a trust anchor may name."""
        return bool(self.dnskey.flags & SEP_FLAG)

    def ds(self, digest: str = "SHA256") -> dns.rdtypes.ANY.DS.DS:
        ds = dns.dnssec.make_ds(f"{self.apex}.", self.dnskey, digest)
        assert isinstance(ds, dns.rdtypes.ANY.DS.DS)
        return ds


def zone_keys(key_dir: Path, apex: str) -> list[ZoneKey]:
    """Every DNSKEY named wrote for ``apex`` into ``key_dir``, sorted by key tag."""
    apex = apex.rstrip(".").lower()
    keys: list[ZoneKey] = []
    for path in sorted(key_dir.glob(f"K{apex}.+*.key")):
        for line in path.read_text().splitlines():
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            fields = line.split()
            if "DNSKEY" not in fields:
                continue
            rdata_text = " ".join(fields[fields.index("DNSKEY") + 1 :])
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, rdata_text)
            assert isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY)
            keys.append(ZoneKey(apex, path, rdata))
    return sorted(keys, key=lambda key: key.key_tag)


def trust_anchor_ds(key_dir: Path, apex: str) -> list[str]:
    """``<apex>. DS <tag> <alg> 2 <hex>`` for every SEP key: unbound ``trust-anchor:`` lines."""
    anchors = [
        f"{key.apex}. DS {key.ds().to_text()}" for key in zone_keys(key_dir, apex) if key.is_sep
    ]
    if not anchors:
        raise RigError("dnssec", f"no KSK/CSK for {apex} in {key_dir} (zone not signed yet?)")
    return anchors


def corrupt_ds(anchor: str) -> str:
    """The same DS anchor line with the first digest digit changed: a wrong trust anchor."""
    fields = anchor.split()
    digest = fields[-1]
    fields[-1] = ("1" if digest[0] == "0" else "0") + digest[1:]
    return " ".join(fields)


def parse_ds(anchor: str) -> tuple[dns.name.Name, dns.rdtypes.ANY.DS.DS]:
    fields = anchor.split()
    at = fields.index("DS")
    ds = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, " ".join(fields[at + 1 :]))
    assert isinstance(ds, dns.rdtypes.ANY.DS.DS)
    return dns.name.from_text(fields[0]), ds


# ------------------------------------------------------------------------------- answers
def flags_text(response: dns.message.Message) -> str:
    return dns.flags.to_text(response.flags).lower()


def is_secure(response: dns.message.Message) -> bool:
    return bool(response.flags & dns.flags.AD)


def require_secure(
    response: dns.message.Message, name: str, rdtype: str, *, log_tail: str = ""
) -> None:
    """Raises :class:`BogusAnswer` on SERVFAIL, :class:`InsecureAnswer` without AD, and
    :class:`DnssecError` for any other failure rcode."""
    rcode = response.rcode()
    rcode_text = dns.rcode.to_text(rcode)
    flags = flags_text(response)
    if rcode == dns.rcode.SERVFAIL:
        raise BogusAnswer(
            name,
            rdtype,
            "validation failed (bogus)",
            rcode=rcode_text,
            flags=flags,
            log_tail=log_tail,
        )
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DnssecError(
            name, rdtype, "resolver error", rcode=rcode_text, flags=flags, log_tail=log_tail
        )
    if not is_secure(response):
        raise InsecureAnswer(
            name,
            rdtype,
            "answer is not authenticated (no AD)",
            rcode=rcode_text,
            flags=flags,
            log_tail=log_tail,
        )


def answer_rrset(
    response: dns.message.Message, name: str, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    qname = dns.name.from_text(name)
    with contextlib.suppress(KeyError):
        return response.find_rrset(response.answer, qname, dns.rdataclass.IN, rdtype)
    return None


def rrsig_for(
    response: dns.message.Message, name: str, covered: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    qname = dns.name.from_text(name)
    with contextlib.suppress(KeyError):
        return response.find_rrset(
            response.answer, qname, dns.rdataclass.IN, dns.rdatatype.RRSIG, covered
        )
    return None


def tlsa_text(rdata: dns.rdata.Rdata) -> str:
    """``u s m hex`` with lower-case hex in one piece (dnspython splits long data)."""
    assert isinstance(rdata, dns.rdtypes.ANY.TLSA.TLSA)
    return f"{rdata.usage} {rdata.selector} {rdata.mtype} {rdata.cert.hex()}"


def normalise_tlsa(texts: Iterable[str]) -> list[str]:
    """Sorted ``u s m hex`` of TLSA rdata given as zone text (any case, any spacing)."""
    out = []
    for text in texts:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, text)
        out.append(tlsa_text(rdata))
    return sorted(out)


# ------------------------------------------------------------------------------- oracle
def _failure(reason: str) -> ValidationFailure:
    return ValidationFailure(reason)  # type: ignore[no-untyped-call]


def fetch_signed(
    host: str, port: int, name: str, rdtype: dns.rdatatype.RdataType, *, timeout: float = 3.0
) -> tuple[dns.rrset.RRset, dns.rrset.RRset]:
    """``name``/``rdtype`` and its RRSIG, asked with DO and CD (raw data even from a
    validating resolver); TCP when the UDP answer is truncated."""
    request = dns.message.make_query(name, rdtype, want_dnssec=True)
    request.flags |= dns.flags.CD
    response = dns.query.udp(request, host, port=port, timeout=timeout)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(request, host, port=port, timeout=timeout)
    rrset = answer_rrset(response, name, rdtype)
    sig = rrsig_for(response, name, rdtype)
    kind = dns.rdatatype.to_text(rdtype)
    if rrset is None:
        raise _failure(f"no {kind} RRset for {name}")
    if sig is None:
        raise _failure(f"no RRSIG over {name} {kind}")
    return rrset, sig


def validated_dnskeys(
    host: str, port: int, anchors: Sequence[str], *, timeout: float = 3.0
) -> tuple[dns.name.Name, dns.rrset.RRset]:
    """The zone's DNSKEY RRset, checked against DS ``anchors`` (all for one zone) and
    validated by an anchored key. Raises ``dns.exception.ValidationFailure``."""
    parsed = [parse_ds(anchor) for anchor in anchors]
    zones = {zone for zone, _ in parsed}
    if len(zones) != 1:
        raise ValueError(f"anchors must name exactly one zone, got {sorted(map(str, zones))}")
    zone = parsed[0][0]
    dnskeys, sig = fetch_signed(host, port, zone.to_text(), dns.rdatatype.DNSKEY, timeout=timeout)
    anchored = [
        key
        for key in dnskeys
        for _, ds in parsed
        if dns.dnssec.make_ds(zone, key, _DS_DIGESTS[ds.digest_type]) == ds
    ]
    if not anchored:
        raise _failure(f"no DNSKEY of {zone} matches the DS anchor")
    anchor_set = dns.rrset.from_rdata_list(zone, dnskeys.ttl, anchored)
    dns.dnssec.validate(dnskeys, sig, {zone: anchor_set})
    return zone, dnskeys


def validate_rrset(
    host: str,
    port: int,
    anchors: Sequence[str],
    name: str,
    rdtype: str,
    *,
    timeout: float = 3.0,
) -> tuple[dns.rrset.RRset, dns.rrset.RRset]:
    """DS anchor → DNSKEY → ``name``/``rdtype``, checked by dnspython alone (single zone, no
    denial proofs). Returns the validated RRset and its RRSIG."""
    zone, dnskeys = validated_dnskeys(host, port, anchors, timeout=timeout)
    kind = dns.rdatatype.from_text(rdtype)
    rrset, sig = fetch_signed(host, port, name, kind, timeout=timeout)
    dns.dnssec.validate(rrset, sig, {zone: dnskeys})
    return rrset, sig


def tampered(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """A copy of ``rrset`` with one bit of the first rdata's wire form flipped (the last bit
    that still leaves well-formed rdata, e.g. a letter of an MX target)."""
    rdatas = sorted(rrset, key=lambda rd: rd.to_digestable())
    original = rdatas[0].to_digestable()
    for at in reversed(range(len(original))):
        wire = bytearray(original)
        wire[at] ^= 0x01
        try:
            changed = dns.rdata.from_wire(rrset.rdclass, rrset.rdtype, bytes(wire), 0, len(wire))
        except dns.exception.DNSException:
            continue
        if changed != rdatas[0]:
            return dns.rrset.from_rdata_list(rrset.name, rrset.ttl, [changed, *rdatas[1:]])
    raise ValueError(f"cannot tamper with {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}")


def signature_valid(
    rrset: dns.rrset.RRset, sig: dns.rrset.RRset, zone: dns.name.Name, keys: dns.rrset.RRset
) -> bool:
    try:
        dns.dnssec.validate(rrset, sig, {zone: keys})
    except ValidationFailure:
        return False
    return True


def signed_at(
    host: str, port: int, name: str, rdtype: dns.rdatatype.RdataType, *, timeout: float
) -> bool:
    """True when the authoritative answer for ``name``/``rdtype`` carries an RRSIG."""
    try:
        fetch_signed(host, port, name, rdtype, timeout=timeout)
    except (ValidationFailure, dns.exception.DNSException, OSError):
        return False
    return True
