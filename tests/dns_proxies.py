"""Fake secondary nameservers for tests: bind 127.0.0.2 on the primary's port (so they are
checked on ``check_port``) and misbehave in one of three ways, forwarding to the primary
otherwise."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.query
import dns.rcode


class FakeSecondary:
    """``refuse_first=N``: SERVFAIL the first N queries, then forward (a lagging secondary).
    ``dead``: never answer. ``stale``: forward each question once and repeat that answer
    forever (a secondary that stopped transferring)."""

    def __init__(
        self,
        upstream_port: int,
        *,
        refuse_first: int = 0,
        dead: bool = False,
        stale: bool = False,
    ) -> None:
        self.port = upstream_port
        self.refuse_first = refuse_first
        self.dead = dead
        self.stale = stale
        self.queries = 0
        self._cache: dict[tuple[str, int], bytes] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.2", upstream_port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        if self.queries <= self.refuse_first:
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.SERVFAIL)
            return reply
        if not self.stale:
            return dns.query.udp(query, "127.0.0.1", port=self.port, timeout=2)
        q = query.question[0]
        key = (q.name.to_text().lower(), q.rdtype)
        if key not in self._cache:
            upstream = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=2)
            self._cache[key] = upstream.to_wire()
        reply = dns.message.from_wire(self._cache[key])
        reply.id = query.id
        return reply

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            self.queries += 1
            if self.dead:
                continue
            self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
