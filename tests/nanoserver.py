"""A tiny in-process authoritative nameserver for tests, with knobs to misbehave.

Sockets are bound in the constructor (port 0 picks a free port; UDP and TCP share it), so a
test knows the address before anything runs and no other process can take the port in between.
One thread serves UDP and TCP; answers follow RFC 1035 size rules (512 bytes without EDNS, TC
set with a partial RRset when larger, the way BIND answers pebble's VA).
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

_UDP_PLAIN_LIMIT = 512
_TCP_IO_TIMEOUT = 1.0
_BIND_ATTEMPTS = 20


@dataclass(frozen=True)
class SeenQuery:
    qname: str
    rdtype: str
    transport: str  # "udp" | "tcp"
    edns: bool
    recursion_desired: bool


def _fqdn(name: str) -> str:
    return name.strip().lower().rstrip(".") + "."


def txt(value: str) -> str:
    """Rdata text for a TXT value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NanoServer:
    """Authoritative for ``apex``; records map ``(owner, rdtype)`` to rdata texts.

    Knobs (safe to flip while running): ``dead`` (drop everything: clients time out),
    ``refuse`` (REFUSED), ``authoritative`` (AA flag), ``serial``, :meth:`serve_after`.
    """

    def __init__(
        self,
        apex: str,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        serial: int = 1,
        ttl: int = 60,
        name: str | None = None,
    ) -> None:
        self.apex = _fqdn(apex)
        self.address = address
        self.ttl = ttl
        self.name = _fqdn(name) if name else f"ns1.{self.apex}"
        self.dead = False
        self.refuse = False
        self.authoritative = True
        self._lock = threading.Lock()
        self._serial = serial
        self._records: dict[tuple[str, str], list[str]] = {
            (self.apex, "NS"): [self.name],
        }
        if self.name.endswith("." + self.apex) and ":" not in address:
            self._records[(self.name, "A")] = [address]
        self._hidden: dict[tuple[str, str], int] = {}
        self._seen: list[SeenQuery] = []
        self._parked: list[socket.socket] = []
        self.errors: list[BaseException] = []  # raised again by stop(): a crash must fail the test
        self._udp, self._tcp = self._bind(address, port)
        self.port: int = self._udp.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve, name=f"nanoserver {address}", daemon=True
        )
        self._started = False

    # ---- sockets -------------------------------------------------------------------------

    @staticmethod
    def _bind(address: str, port: int) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for _ in range(_BIND_ATTEMPTS if port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((address, port))
                tcp.bind((address, udp.getsockname()[1]))
                tcp.listen(16)
                return udp, tcp
            except OSError as exc:
                udp.close()
                tcp.close()
                if exc.errno != errno.EADDRINUSE or port != 0:
                    raise
        raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {address}")

    def start(self) -> NanoServer:
        self._started = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._started and self._thread.is_alive():
            self._wake_w.send(b"x")
            self._thread.join(timeout=5)
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w, *self._parked):
            sock.close()
        if self.errors:
            raise RuntimeError(f"nanoserver {self.address} failed: {self.errors[0]!r}")

    def __enter__(self) -> NanoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- zone content and knobs ----------------------------------------------------------

    @property
    def serial(self) -> int:
        return self._serial

    @serial.setter
    def serial(self, value: int) -> None:
        with self._lock:
            self._serial = value

    def set(self, owner: str, rdtype: str, values: Sequence[str]) -> None:
        """Replace the RRset (rdata texts); an empty list deletes it."""
        key = (_fqdn(owner), rdtype.upper())
        for value in values:  # fail in the test, not in the server thread
            dns.rdata.from_text(dns.rdataclass.IN, key[1], value, origin=dns.name.root)
        with self._lock:
            if values:
                self._records[key] = list(values)
            else:
                self._records.pop(key, None)

    def add_txt(self, owner: str, *values: str) -> None:
        key = (_fqdn(owner), "TXT")
        with self._lock:
            current = list(self._records.get(key, []))
        self.set(owner, "TXT", current + [txt(v) for v in values])

    def serve_after(self, owner: str, rdtype: str, queries: int) -> None:
        """Answer as if ``(owner, rdtype)`` did not exist for the next ``queries`` queries for
        it - a secondary that has not transferred the change yet."""
        with self._lock:
            self._hidden[(_fqdn(owner), rdtype.upper())] = queries

    @property
    def seen(self) -> list[SeenQuery]:
        with self._lock:
            return list(self._seen)

    # ---- answering -----------------------------------------------------------------------

    def _visible(self, key: tuple[str, str]) -> bool:
        left = self._hidden.get(key, 0)
        return key in self._records and left <= 0

    def _exists(self, qname: str) -> bool:
        return (
            any(
                (owner == qname or owner.endswith("." + qname)) and self._visible((owner, rdtype))
                for owner, rdtype in self._records
            )
            or qname == self.apex
        )

    def _rrset(self, owner: str, rdtype: str, texts: Sequence[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(owner, self.ttl, "IN", rdtype, list(texts))

    def _soa(self) -> dns.rrset.RRset:
        text = f"{self.name} hostmaster.{self.apex} {self._serial} 60 60 600 5"
        return self._rrset(self.apex, "SOA", [text])

    def _answer(self, request: dns.message.Message, transport: str) -> bytes | None:
        if self.dead:
            return None
        response = dns.message.make_response(request)
        if len(request.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = request.question[0]
        qname = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self._seen.append(
                SeenQuery(
                    qname,
                    rdtype,
                    transport,
                    request.edns >= 0,
                    bool(request.flags & dns.flags.RD),
                )
            )
            key = (qname, rdtype)
            visible = self._visible(key)
            if key in self._hidden:
                self._hidden[key] -= 1
            if self.refuse or not (qname == self.apex or qname.endswith("." + self.apex)):
                response.set_rcode(dns.rcode.REFUSED)
                return response.to_wire()
            if self.authoritative:
                response.flags |= dns.flags.AA
            if key == (self.apex, "SOA"):
                response.answer.append(self._soa())
            elif visible and key[1] != "SOA":
                response.answer.append(self._rrset(qname, rdtype, self._records[key]))
            else:
                if not self._exists(qname):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa())
        if transport == "tcp":
            return response.to_wire()
        limit = _UDP_PLAIN_LIMIT if request.edns < 0 else max(_UDP_PLAIN_LIMIT, request.payload)
        return _fit(response, limit)

    # ---- loop ----------------------------------------------------------------------------

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ)
            selector.register(self._tcp, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        if key.fileobj is self._udp:
                            self._serve_udp()
                        else:
                            self._serve_tcp()
                    except Exception as exc:  # keep serving; stop() reports it
                        self.errors.append(exc)

    def _serve_udp(self) -> None:
        wire, peer = self._udp.recvfrom(65535)
        try:
            request = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return
        reply = self._answer(request, "udp")
        if reply is not None:
            self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        conn, _ = self._tcp.accept()
        if self.dead:
            self._parked.append(conn)  # held open and silent: the client times out
            return
        with conn:
            conn.settimeout(_TCP_IO_TIMEOUT)
            try:
                header = _recv_exact(conn, 2)
                wire = _recv_exact(conn, struct.unpack("!H", header)[0])
                request = dns.message.from_wire(wire)
            except (OSError, EOFError, dns.exception.DNSException):
                return
            reply = self._answer(request, "tcp")
            if reply is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def _fit(response: dns.message.Message, limit: int) -> bytes:
    """The response, or - when too big - TC set and as much of the answer RRset as fits."""
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.flags |= dns.flags.TC
    response.authority = []
    full = response.answer[0] if response.answer else None
    response.answer = []
    if full is not None:
        for keep in range(len(full) - 1, 0, -1):
            partial = dns.rrset.RRset(full.name, full.rdclass, full.rdtype)
            partial.update_ttl(full.ttl)
            for rdata in list(full)[:keep]:
                partial.add(rdata)
            response.answer = [partial]
            try:
                return response.to_wire(max_size=limit)
            except dns.exception.TooBig:
                continue
        response.answer = []
    return response.to_wire(max_size=limit)


@contextlib.contextmanager
def nameservers(
    apex: str, addresses: Sequence[str], *, serial: int = 1, ttl: int = 60
) -> Iterator[list[NanoServer]]:
    """Running servers for ``apex`` on ``addresses`` (e.g. 127.0.0.2, 127.0.0.3) sharing ONE
    free port - what a checker sees when it asks every NS address on the same port. Server
    ``i`` is named ``ns<i+1>.<apex>``; every server lists all of them as NS with A glue."""
    for _ in range(_BIND_ATTEMPTS):
        servers: list[NanoServer] = []
        try:
            first = NanoServer(apex, address=addresses[0], serial=serial, ttl=ttl)
            servers.append(first)
            for index, address in enumerate(addresses[1:], start=2):
                servers.append(
                    NanoServer(
                        apex,
                        address=address,
                        port=first.port,
                        serial=serial,
                        ttl=ttl,
                        name=f"ns{index}.{_fqdn(apex)}",
                    )
                )
        except OSError as exc:
            for server in servers:
                server.stop()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        names = [server.name for server in servers]
        for server in servers:
            server.set(apex, "NS", names)
            for other in servers:
                if ":" not in other.address:
                    server.set(other.name, "A", [other.address])
        try:
            for server in servers:
                server.start()
            yield servers
        finally:
            failures = []
            for server in servers:
                try:
                    server.stop()
                except RuntimeError as exc:
                    failures.append(exc)
            if failures:
                raise failures[0]
        return
    raise OSError(errno.EADDRINUSE, f"no common free port on {', '.join(addresses)}")
