"""A validating unbound on a free loopback port that stubs the rig's zones to named.

Its only trust anchors are the ones it is given (normally the DS of the rig's signed zones,
computed from named's key files), so answers for those zones must validate (AD) and every
other name is insecure. No remote control: the cache empties by TTL, as a real one does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype

from tests.rig.bind import Bind
from tests.rig.dnssec import (
    DnssecError,
    answer_rrset,
    is_secure,
    normalise_tlsa,
    require_secure,
    tlsa_text,
)
from tests.rig.process import (
    LOOPBACK,
    ProcessService,
    RigError,
    chosen_port,
    claim_port,
    port_is_free,
    require_tool,
)

# unbound answers these itself (RFC 6761 and friends) unless told "nodefault"
_BUILTIN_LOCAL_ZONES = ("test", "invalid", "localhost", "onion", "local")


def _apex(name: str) -> str:
    return name.rstrip(".").lower()


class Unbound(ProcessService):
    """unbound for ``stubs`` (apex → authoritative port on 127.0.0.1).

    ``trust_anchors``: DS or DNSKEY lines (``example.com. DS 123 13 2 ab...``).
    ``validate=False`` runs the iterator only: answers never carry AD.
    ``wait_secure``: apexes whose SOA must come back with AD before :meth:`start` returns;
    by default every apex named by an anchor (pass ``()`` for a deliberately bogus anchor).
    ``cache_max_ttl`` caps every cached TTL (fast tests); by default TTLs are honoured.
    """

    def __init__(
        self,
        workdir: Path,
        stubs: Mapping[str, int],
        *,
        trust_anchors: Sequence[str] = (),
        validate: bool = True,
        port: int | None = None,
        wait_secure: Collection[str] | None = None,
        cache_max_ttl: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        if not stubs:
            raise ValueError("Unbound needs at least one stub zone")
        for anchor in trust_anchors:
            if '"' in anchor or "\n" in anchor:
                raise ValueError(f"trust anchor must be one unquoted line: {anchor!r}")
        super().__init__("unbound", workdir, startup_timeout)
        self.stubs = {_apex(apex): stub_port for apex, stub_port in stubs.items()}
        self.trust_anchors = list(trust_anchors)
        self.validate = validate
        anchored = {_apex(anchor.split()[0]) for anchor in self.trust_anchors}
        if wait_secure is None:
            wait_secure = sorted(anchored) if validate else []
        self.wait_secure = [_apex(apex) for apex in wait_secure]
        self._port = port
        self._cache_max_ttl = cache_max_ttl

    @classmethod
    def for_bind(
        cls,
        workdir: Path,
        bind: Bind,
        *,
        trust_anchors: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Unbound:
        """Stubs every zone of a started ``bind``; anchors default to its signed zones'."""
        anchors = bind.trust_anchors() if trust_anchors is None else trust_anchors
        return cls(workdir, dict.fromkeys(bind.zones, bind.port), trust_anchors=anchors, **kwargs)

    # ---------------------------------------------------------------- paths and ports
    @property
    def port(self) -> int:
        return chosen_port(self._port, "unbound")

    @property
    def conf_path(self) -> Path:
        return self.workdir / "unbound.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "unbound.log"

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._refuse_second_start()
        unbound = require_tool("unbound", "unbound")
        checkconf = require_tool("unbound-checkconf", "unbound")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = claim_port(self._port, "unbound", udp=True)
        self.conf_path.write_text(self.render_config())
        self._run_checked([checkconf, str(self.conf_path)], "unbound-checkconf")
        self._launch(
            [unbound, "-d", "-c", str(self.conf_path)],
            pid_path=self.workdir / "unbound.rig-pid",
        )

    def render_config(self) -> str:
        lines = [
            "server:",
            f"    interface: {LOOPBACK}@{self.port}",
            f"    port: {self.port}",
            "    do-ip6: no",
            "    do-daemonize: no",
            '    chroot: ""',
            '    username: ""',
            f'    directory: "{self.workdir}"',
            '    pidfile: ""',
            '    logfile: ""',  # stderr, i.e. the rig's log file
            "    use-syslog: no",
            "    verbosity: 1",
            "    val-log-level: 2",
            "    log-servfail: yes",
            "    access-control: 127.0.0.0/8 allow",
            # without it unbound never asks a server on 127.0.0.1: the stubs would be dead
            "    do-not-query-localhost: no",
            # per-name caching only: no NXDOMAIN synthesised from cached NSEC ranges, so a
            # name published after a neighbour was asked is visible at once
            "    aggressive-nsec: no",
            "    qname-minimisation: no",
            "    trust-anchor-signaling: no",
            # after a named restart the stub must be asked again soon, not after 15 minutes
            "    infra-host-ttl: 5",
            "    infra-keep-probing: yes",
            # a bogus verdict is cached for 60 s by default; a rig test repairs faster
            "    val-bogus-ttl: 5",
            f'    module-config: "{"validator iterator" if self.validate else "iterator"}"',
        ]
        if self._cache_max_ttl is not None:
            lines += [
                f"    cache-max-ttl: {self._cache_max_ttl}",
                f"    cache-max-negative-ttl: {self._cache_max_ttl}",
            ]
        tlds = sorted({apex.rsplit(".", 1)[-1] for apex in self.stubs})
        lines += [
            f'    local-zone: "{tld}." nodefault' for tld in tlds if tld in _BUILTIN_LOCAL_ZONES
        ]
        lines += [f'    trust-anchor: "{anchor}"' for anchor in self.trust_anchors]
        for apex, stub_port in self.stubs.items():
            lines += [
                "stub-zone:",
                f'    name: "{apex}."',
                f"    stub-addr: {LOOPBACK}@{stub_port}",
            ]
        lines += ["remote-control:", "    control-enable: no"]
        return "\n".join(lines) + "\n"

    def _wait_ready(self) -> None:
        first = next(iter(self.stubs))
        pending = list(self.wait_secure)
        answered = False
        last: str = "no answer"

        def not_validating() -> str | None:
            nonlocal answered, last
            with contextlib.suppress(dns.exception.DNSException, OSError):
                # a UDP query sent before unbound reads its socket is lost, not refused:
                # short timeouts and retries instead of one long wait
                if not answered and not port_is_free(self.port):
                    self.query(first, "SOA", timeout=0.1)
                    answered = True
                for apex in list(pending):
                    response = self.query(apex, "SOA", timeout=0.2)
                    last = f"{apex} SOA: {dns.rcode.to_text(response.rcode())}, " + (
                        dns.flags.to_text(response.flags).lower()
                    )
                    if is_secure(response):
                        pending.remove(apex)
            if answered and not pending:
                return None
            return (
                f"not validating within {self._startup_timeout}s: "
                f"{sorted(pending) or 'no answer'} ({last})"
            )

        self._poll_until_ready(not_validating)

    # ---------------------------------------------------------------- queries
    def query(
        self,
        name: str,
        rdtype: str | dns.rdatatype.RdataType,
        *,
        checking_disabled: bool = False,
        timeout: float = 3.0,
    ) -> dns.message.Message:
        """One recursive query (RD) with EDNS and DO; TCP when the UDP answer is truncated.
        The returned message carries the resolver's flags (``AD``) and rcode."""
        kind = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
        request = dns.message.make_query(name, kind, want_dnssec=True)
        if checking_disabled:
            request.flags |= dns.flags.CD
        response = dns.query.udp(
            request, LOOPBACK, port=self.port, timeout=timeout, ignore_trailing=True
        )
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(request, LOOPBACK, port=self.port, timeout=timeout)
        return response

    def secure_records(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The rdata of ``name``/``rdtype`` from an authenticated (AD) answer; ``[]`` for an
        authenticated denial. Raises BogusAnswer (SERVFAIL) or InsecureAnswer (no AD)."""
        response = self.query(name, rdtype)
        if not is_secure(response) or response.rcode() not in (
            dns.rcode.NOERROR,
            dns.rcode.NXDOMAIN,
        ):
            require_secure(response, name, rdtype, log_tail=self.log_tail(12))
        rrset = answer_rrset(response, name, dns.rdatatype.from_text(rdtype))
        return list(rrset) if rrset is not None else []

    def tlsa_with_ad(self, name: str) -> list[str]:
        """TLSA rdata (``u s m hex``, lower case, sorted) of ``name``, only from an answer
        with AD; raises :class:`~tests.rig.dnssec.DnssecError` subclasses otherwise."""
        return sorted(tlsa_text(rdata) for rdata in self.secure_records(name, "TLSA"))

    def wait_tlsa(self, name: str, expected: Collection[str], *, timeout: float = 30.0) -> float:
        """Polls until the resolver's validated TLSA set for ``name`` equals ``expected``
        (what a cached old set turns into after its TTL). Returns the seconds waited."""
        want = normalise_tlsa(expected)
        started = time.monotonic()
        seen: list[str] | str = "nothing"
        while True:
            with contextlib.suppress(DnssecError, dns.exception.DNSException, OSError):
                seen = self.tlsa_with_ad(name)
                if seen == want:
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RigError(
                    "unbound",
                    f"{name} TLSA: resolver still returns {seen}, want {want} after {timeout}s",
                    self.log_tail(12),
                )
            time.sleep(0.1)
