"""An authoritative BIND9 (named) on a free loopback port, one zone file per apex.

Each zone ``$INCLUDE``s ``<include_dir>/acme-challenge.<apex>`` and ``<tlsa_dir>/tlsa.<apex>``
by absolute path (named-checkzone resolves relative includes against its own cwd). The SOA
serial lives in ``serial.<apex>``; the zone file is rendered from a template stored in
``rig.json``, which is also how the ``dns-refresh`` script finds everything.

``ZoneSpec(dnssec=True)`` zones are inline-signed by ``dnssec-policy default`` (one CSK, keys
in ``keys/<apex>/``). named then serves its own signed serial, which only follows the file's
serial when that is higher: bumps go past the served serial, and a changed zone whose serial
did not grow is rejected while ``rndc reload`` still exits 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT

from tests.rig.dnssec import signed_at, trust_anchor_ds, zone_keys
from tests.rig.process import (
    LOOPBACK,
    ProcessService,
    RigError,
    chosen_port,
    claim_port,
    require_tool,
)

RIG_STATE_FILE = "rig.json"
LOCK_FILE = "refresh.lock"
SERIAL_TOKEN = "@@SERIAL@@"
RNDC_KEY_NAME = "sslm-rig-rndc"


@dataclass(frozen=True)
class ZoneSpec:
    """Contents of one test zone. Names are relative to the apex, ``@``, or end with ``.``.

    There is deliberately no AAAA: pebble's VA looks up AAAA first and dials it, and nothing
    in the rig listens on ``::1``.
    """

    ns: Mapping[str, str] = field(default_factory=lambda: {"ns1": LOOPBACK})
    a: Mapping[str, str] = field(
        default_factory=lambda: {"@": LOOPBACK, "www": LOOPBACK},
    )
    mx: Sequence[tuple[int, str]] = ()
    ttl: int = 5
    initial_serial: int = 1
    hostmaster: str = "hostmaster"
    extra_records: Sequence[str] = ()
    dnssec: bool = False

    def __post_init__(self) -> None:
        if not self.ns:
            raise ValueError("a zone needs at least one NS")
        if self.ttl <= 0:
            raise ValueError(f"ttl must be positive, got {self.ttl}")
        if not 0 < self.initial_serial < 2**32:
            raise ValueError(f"serial out of range: {self.initial_serial}")


def fqdn(name: str, apex: str) -> str:
    """``www`` → ``www.<apex>.``; ``@`` → ``<apex>.``; absolute names unchanged."""
    if name == "@":
        return f"{apex}."
    if name.endswith("."):
        return name
    return f"{name}.{apex}."


def _in_zone(absolute: str, apex: str) -> bool:
    name = absolute.rstrip(".").lower()
    return name == apex or name.endswith(f".{apex}")


def render_zone_template(apex: str, spec: ZoneSpec, acme_include: Path, tlsa_include: Path) -> str:
    """Zone text with ``SERIAL_TOKEN`` where the SOA serial goes."""
    for path in (acme_include, tlsa_include):
        if not path.is_absolute() or '"' in str(path):
            raise ValueError(f"$INCLUDE path must be absolute and quote-free: {path}")
    ns_names = [fqdn(name, apex) for name in spec.ns]
    lines = [
        "; rendered by tests/rig (Bind) and dns-refresh from rig.json; do not edit",
        f"$TTL {spec.ttl}",
        f"@ IN SOA {ns_names[0]} {fqdn(spec.hostmaster, apex)} "
        f"( {SERIAL_TOKEN} 60 60 600 {spec.ttl} )",
    ]
    lines += [f"@ IN NS {name}" for name in ns_names]
    addresses = {fqdn(name, apex): addr for name, addr in spec.a.items()}
    for name, addr in spec.ns.items():
        absolute = fqdn(name, apex)
        # glue only for in-zone NS names not already given an address
        if _in_zone(absolute, apex):
            addresses.setdefault(absolute, addr)
    for _, host in spec.mx:
        absolute = fqdn(host, apex)
        # an in-zone MX target without an address fails check-integrity and SMTP alike
        if _in_zone(absolute, apex):
            addresses.setdefault(absolute, LOOPBACK)
    lines += [f"{name} IN A {addr}" for name, addr in addresses.items()]
    lines += [f"@ IN MX {pref} {fqdn(host, apex)}" for pref, host in spec.mx]
    lines += list(spec.extra_records)
    lines += [f'$INCLUDE "{acme_include}"', f'$INCLUDE "{tlsa_include}"']
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Bind(ProcessService):
    """named for ``zones`` on 127.0.0.1; use as a context manager or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        zones: Mapping[str, ZoneSpec],
        include_dir: Path,
        *,
        tlsa_dir: Path | None = None,
        port: int | None = None,
        rndc_port: int | None = None,
        user: str | None = None,
        querylog: bool = False,
        startup_timeout: float = 10.0,
    ) -> None:
        if not zones:
            raise ValueError("Bind needs at least one zone")
        super().__init__("named", workdir, startup_timeout)
        self.zones = {apex.rstrip(".").lower(): spec for apex, spec in zones.items()}
        self.include_dir = include_dir.resolve()
        self.tlsa_dir = (tlsa_dir or include_dir).resolve()
        self._port = port
        self._rndc_port = rndc_port
        self._user = user
        self._querylog = querylog

    # ---------------------------------------------------------------- paths and ports
    @property
    def port(self) -> int:
        return chosen_port(self._port, "named")

    @property
    def rndc_port(self) -> int:
        return chosen_port(self._rndc_port, "named", "rndc")

    @property
    def named_conf(self) -> Path:
        return self.workdir / "named.conf"

    @property
    def rndc_conf(self) -> Path:
        return self.workdir / "rndc.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "named.log"

    @property
    def state_path(self) -> Path:
        """``rig.json``: what ``dns-refresh`` reads (via ``SSLM_RIG_BIND_DIR``)."""
        return self.workdir / RIG_STATE_FILE

    def zone_file(self, apex: str) -> Path:
        return self.workdir / f"db.{self._known(apex)}"

    def serial_file(self, apex: str) -> Path:
        return self.workdir / f"serial.{self._known(apex)}"

    def acme_fragment(self, apex: str) -> Path:
        return self.include_dir / f"acme-challenge.{self._known(apex)}"

    def tlsa_fragment(self, apex: str) -> Path:
        return self.tlsa_dir / f"tlsa.{self._known(apex)}"

    def key_dir(self, apex: str) -> Path:
        """Where named keeps the DNSSEC keys of a signed zone (kept across restarts)."""
        return self.workdir / "keys" / self._known(apex)

    @property
    def signed_zones(self) -> tuple[str, ...]:
        return tuple(apex for apex, spec in self.zones.items() if spec.dnssec)

    def trust_anchors(self, apex: str | None = None) -> list[str]:
        """DS trust-anchor lines (``<apex>. DS ...``) of one signed zone, or of all of them,
        computed from the key files, not from what named serves."""
        apexes = [self._known(apex)] if apex is not None else list(self.signed_zones)
        anchors: list[str] = []
        for key in apexes:
            if not self.zones[key].dnssec:
                raise RigError("named", f"{key} is not a signed zone (ZoneSpec(dnssec=True))")
            anchors += trust_anchor_ds(self.key_dir(key), key)
        return anchors

    def _known(self, apex: str) -> str:
        key = apex.rstrip(".").lower()
        if key not in self.zones:
            raise KeyError(f"not a rig zone: {apex!r} (zones: {sorted(self.zones)})")
        return key

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._refuse_second_start()
        named = require_tool("named", "bind9")
        for tool in ("named-checkconf", "named-checkzone"):
            require_tool(tool, "bind9-utils")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.include_dir.mkdir(parents=True, exist_ok=True)
        self.tlsa_dir.mkdir(parents=True, exist_ok=True)
        for apex in self.signed_zones:
            self.key_dir(apex).mkdir(parents=True, exist_ok=True)
            self._discard_signed_state(apex)
        # chosen once: a restart keeps the ports pebble and clients were told about
        self._port = claim_port(self._port, "named", udp=True)
        self._rndc_port = claim_port(self._rndc_port, "named (rndc)")
        self._write_config()
        self._check_config()
        argv = [named, "-g", "-n", "1", "-c", str(self.named_conf)]
        if self._user is not None:
            argv += ["-u", self._user]
        self._launch(argv, pid_path=self.workdir / "named.rig-pid")

    def _discard_signed_state(self, apex: str) -> None:
        """Journals and the signed copy go before every start; the keys stay. Fragments
        edited while named was down are otherwise rolled back by the journal or, without a
        serial bump, never signed (the old set is served). Re-signing takes well under 1 s."""
        zone = self.zone_file(apex)
        for suffix in (".jnl", ".jbk", ".signed", ".signed.jnl", ".signed.jbk"):
            zone.with_name(zone.name + suffix).unlink(missing_ok=True)

    def _write_config(self) -> None:
        key_path = self.workdir / "rndc.key"
        if not key_path.exists():
            self._run_checked(
                [
                    require_tool("rndc-confgen", "bind9-utils"),
                    "-a",
                    "-A",
                    "hmac-sha256",
                    "-k",
                    RNDC_KEY_NAME,
                    "-c",
                    str(key_path),
                ],
                "rndc-confgen",
            )
        d = self.workdir
        self.rndc_conf.write_text(
            f'include "{key_path}";\n'
            f'options {{ default-key "{RNDC_KEY_NAME}"; default-server {LOOPBACK}; '
            f"default-port {self.rndc_port}; }};\n"
        )
        zone_stanzas = "".join(self._zone_stanza(apex) for apex in self.zones)
        self.named_conf.write_text(
            f'include "{key_path}";\n'
            f"controls {{ inet {LOOPBACK} port {self.rndc_port} allow {{ {LOOPBACK}; }} "
            f'keys {{ "{RNDC_KEY_NAME}"; }}; }};\n'
            "options {\n"
            f'    directory "{d}";\n'
            f'    pid-file "{d}/named.pid";\n'
            # without it named (as root) overwrites the system's /run/named/session.key
            f'    session-keyfile "{d}/session.key";\n'
            f'    managed-keys-directory "{d}";\n'
            f"    listen-on port {self.port} {{ {LOOPBACK}; }};\n"
            "    listen-on-v6 { none; };\n"
            "    recursion no;\n"
            "    dnssec-validation no;\n"
            "    notify no;\n"
            "    allow-transfer { none; };\n"
            f"    querylog {'yes' if self._querylog else 'no'};\n"
            "};\n" + zone_stanzas
        )
        zones_state: dict[str, dict[str, str | bool]] = {}
        for apex, spec in self.zones.items():
            for fragment in (self.acme_fragment(apex), self.tlsa_fragment(apex)):
                fragment.touch(exist_ok=True)  # an empty $INCLUDE file is a valid zone part
            template = render_zone_template(
                apex, spec, self.acme_fragment(apex), self.tlsa_fragment(apex)
            )
            zones_state[apex] = {
                "zone_file": str(self.zone_file(apex)),
                "serial_file": str(self.serial_file(apex)),
                "template": template,
                "dnssec": spec.dnssec,
            }
            serial_file = self.serial_file(apex)
            if not serial_file.exists():
                _atomic_write(serial_file, f"{spec.initial_serial}\n")
            serial = int(serial_file.read_text().strip())
            _atomic_write(self.zone_file(apex), template.replace(SERIAL_TOKEN, str(serial)))
        state = {
            "version": 1,
            "bind_dir": str(d),
            "named_conf": str(self.named_conf),
            "rndc_conf": str(self.rndc_conf),
            "named_log": str(self.log_path),
            "dns_host": LOOPBACK,
            "dns_port": self.port,
            "lock_file": str(d / LOCK_FILE),
            "serial_token": SERIAL_TOKEN,
            "zones": zones_state,
        }
        _atomic_write(self.state_path, json.dumps(state, indent=2) + "\n")

    def _zone_stanza(self, apex: str) -> str:
        options = f'type primary; file "{self.zone_file(apex)}";'
        if self.zones[apex].dnssec:
            options += (
                f' key-directory "{self.key_dir(apex)}"; dnssec-policy default; inline-signing yes;'
            )
        return f'zone "{apex}" {{ {options} }};\n'

    def _check_config(self) -> None:
        self._run_checked(["named-checkconf", str(self.named_conf)], "named-checkconf")
        for apex in self.zones:
            self._run_checked(
                ["named-checkzone", apex, str(self.zone_file(apex))], f"named-checkzone {apex}"
            )

    def _wait_ready(self) -> None:
        pending = {apex: self.file_serial(apex) for apex in self.zones}

        def zones_not_served() -> str | None:
            for apex, want in list(pending.items()):
                with contextlib.suppress(RigError, OSError, dns.exception.DNSException):
                    if self.zones[apex].dnssec:
                        # named serves its own signed serial, never below the file's
                        if self.serial(apex, timeout=0.2) >= want and self.is_signed(apex):
                            del pending[apex]
                    elif self.serial(apex, timeout=0.2) == want:
                        del pending[apex]
            if not pending:
                return None
            return f"zones not served within {self._startup_timeout}s: {sorted(pending)}"

        self._poll_until_ready(zones_not_served)

    # ---------------------------------------------------------------- control
    def rndc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs ``rndc`` against this named; raises on a non-zero exit."""
        argv = [require_tool("rndc", "bind9-utils"), "-c", str(self.rndc_conf), *args]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=15)
        if result.returncode != 0:
            raise RigError(
                "named",
                f"rndc {' '.join(args)} failed (exit {result.returncode}): "
                f"{(result.stdout + result.stderr).strip()}",
                self.log_tail(),
            )
        return result

    def reload(self, apex: str | None = None) -> None:
        """``rndc reload [apex]``. Asynchronous and exit 0 even when the load fails: confirm
        with a query (or use :meth:`bump_serial`, which does)."""
        if apex is None:
            self.rndc("reload")
        else:
            self.rndc("reload", self._known(apex))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The lock ``dns-refresh`` also takes around serial bumps and reloads."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def file_serial(self, apex: str) -> int:
        return int(self.serial_file(apex).read_text().strip())

    def bump_serial(self, apex: str, *, timeout: float = 10.0) -> int:
        """Serial + 1 in the zone file, reload, wait until served. Returns the new serial.
        A signed zone's file serial jumps past the served (signed) one, so named adopts it."""
        key = self._known(apex)
        with self.locked():
            new = self.file_serial(key) + 1
            if self.zones[key].dnssec:
                with contextlib.suppress(RigError, OSError, dns.exception.DNSException):
                    new = max(new, self.serial(key, timeout=1.0) + 1)
            _atomic_write(self.serial_file(key), f"{new}\n")
            template = json.loads(self.state_path.read_text())["zones"][key]["template"]
            _atomic_write(self.zone_file(key), template.replace(SERIAL_TOKEN, str(new)))
            self.reload(key)
            self.wait_serial(key, new, timeout=timeout)
        return new

    def wait_serial(self, apex: str, at_least: int, *, timeout: float = 10.0) -> int:
        """Polls until the served serial is ``>= at_least``; re-issues the reload each second
        in case named judged the files unchanged."""
        key = self._known(apex)
        deadline = time.monotonic() + timeout
        next_reload = time.monotonic() + 1.0
        served: int | None = None
        while True:
            with contextlib.suppress(RigError, OSError, dns.exception.DNSException):
                served = self.serial(key, timeout=0.3)
                if served >= at_least:
                    return served
            now = time.monotonic()
            if now > deadline:
                raise RigError(
                    "named",
                    f"{key}: serial {at_least} not served after {timeout}s "
                    f"(serving {served}); the zone probably failed to load",
                    self.log_tail(),
                )
            if now > next_reload:
                self.reload(key)
                next_reload = now + 1.0
            time.sleep(0.02)

    # ---------------------------------------------------------------- queries
    def query(
        self,
        name: str,
        rdtype: str | dns.rdatatype.RdataType,
        *,
        tcp: bool = False,
        edns: bool = False,
        dnssec: bool = False,
        timeout: float = 2.0,
    ) -> dns.message.Message:
        """One query straight to this named. Default: UDP without EDNS, as pebble's VA asks;
        ``dnssec`` sets EDNS with DO (RRSIGs in the answer)."""
        kind = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
        request = dns.message.make_query(name, kind, use_edns=edns or dnssec, want_dnssec=dnssec)
        if tcp:
            return dns.query.tcp(request, LOOPBACK, port=self.port, timeout=timeout)
        return dns.query.udp(
            request,
            LOOPBACK,
            port=self.port,
            timeout=timeout,
            ignore_trailing=True,
            raise_on_truncation=False,
        )

    def records(self, name: str, rdtype: str) -> list[str]:
        """Answer rdata for ``name``/``rdtype`` as zone-file text, sorted."""
        response = self.query(name, rdtype)
        kind = dns.rdatatype.from_text(rdtype)
        return sorted(
            rdata.to_text() for rrset in response.answer if rrset.rdtype == kind for rdata in rrset
        )

    def txt_values(self, name: str) -> set[str]:
        response = self.query(name, "TXT")
        values: set[str] = set()
        for rrset in response.answer:
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
                    values.add(b"".join(rdata.strings).decode())
        return values

    def serial(self, apex: str, *, timeout: float = 2.0) -> int:
        """The SOA serial named serves for ``apex`` (authoritative answer required)."""
        key = self._known(apex)
        response = self.query(key, "SOA", timeout=timeout)
        if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
            raise RigError(
                "named",
                f"{key} SOA: {dns.rcode.to_text(response.rcode())}, not authoritative "
                "(zone not loaded?)",
            )
        for rrset in response.answer:
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
                    return int(rdata.serial)
        raise RigError("named", f"{key} SOA: no SOA in the answer")

    def is_signed(self, apex: str, *, timeout: float = 0.5) -> bool:
        """True once named serves the zone fully signed: the on-disk KSK in the DNSKEY set,
        and RRSIGs over SOA, DNSKEY, the apex NSEC and every A record of the spec. Initial
        signing commits several versions; the NSEC chain and A records come last."""
        key = self._known(apex)
        spec = self.zones[key]
        if not spec.dnssec:
            return False
        try:
            # named may be writing the key file right now
            on_disk = {k.dnskey for k in zone_keys(self.key_dir(key), key) if k.is_sep}
            response = self.query(key, "DNSKEY", dnssec=True, tcp=True, timeout=timeout)
        except (dns.exception.DNSException, OSError):
            return False
        served = {
            rd for rrset in response.answer if rrset.rdtype == dns.rdatatype.DNSKEY for rd in rrset
        }
        dnskey_signed = any(
            rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == dns.rdatatype.DNSKEY
            for rrset in response.answer
        )
        if not on_disk or not on_disk <= served or not dnskey_signed:
            return False
        probes = [(f"{key}.", dns.rdatatype.SOA), (f"{key}.", dns.rdatatype.NSEC)]
        probes += [(fqdn(name, key), dns.rdatatype.A) for name in spec.a]
        return all(
            signed_at(LOOPBACK, self.port, name, kind, timeout=timeout) for name, kind in probes
        )

    def wait_signed(self, apex: str, *, timeout: float = 10.0) -> None:
        """Polls :meth:`is_signed` (by query, never a blind sleep)."""
        key = self._known(apex)
        deadline = time.monotonic() + timeout
        while not self.is_signed(key):
            if time.monotonic() > deadline:
                raise RigError(
                    "named", f"{key}: not served signed after {timeout}s", self.log_tail()
                )
            time.sleep(0.02)
