"""Where certbot's hooks meet the parent: a Unix socket that collects every challenge of every
certificate in flight and holds each certificate's LAST auth hook until the whole batch is
published and propagated.

certbot runs a certificate's auth hooks one after another and answers the CA only after the
last one returns, so holding only the last hook (``CERTBOT_REMAINING_CHALLENGES == 0``) parks
every order right before it would be answered, without deadlocking the earlier hooks.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Challenge:
    service: str  # group:service
    kind: str  # "dns-01" | "http-01"
    domain: str  # CERTBOT_DOMAIN: for *.example.com it is example.com
    validation: str  # TXT value (dns-01) or file content (http-01)
    token: str  # http-01 file name; "" for dns-01


@dataclass
class _ServiceState:
    challenges: list[Challenge] = field(default_factory=list)
    delivered_all: bool = False
    held: list[socket.socket] = field(default_factory=list)
    cleanups: int = 0


class HookServer:
    """Accepts hook connections on ``path`` in a background thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._services: dict[str, _ServiceState] = {}
        self._verdict: str | None = None  # "ok" or "abort: ..."
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(128)
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # -- parent side ---------------------------------------------------------------------------
    def expect(self, service: str) -> None:
        with self._lock:
            self._services.setdefault(service, _ServiceState())

    def delivered_all(self, service: str) -> bool:
        with self._lock:
            return self._services[service].delivered_all

    def challenges(self) -> list[Challenge]:
        with self._lock:
            return [c for st in self._services.values() for c in st.challenges]

    def challenges_of(self, service: str) -> list[Challenge]:
        with self._lock:
            return list(self._services[service].challenges)

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def release(self, verdict: str) -> None:
        """Answer every held hook (and any that arrives later) with ``verdict``."""
        with self._lock:
            self._verdict = verdict
            held = [s for st in self._services.values() for s in st.held]
            for st in self._services.values():
                st.held.clear()
        for conn in held:
            _answer(conn, verdict)

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        finally:
            self.path.unlink(missing_ok=True)
        self.release(self._verdict or "abort: sslm-ci is shutting down")

    # -- hook side -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            msg = json.loads(data or b"{}")
        except (OSError, ValueError):
            conn.close()
            return
        service = str(msg.get("service", ""))
        phase = msg.get("phase")
        with self._lock:
            state = self._services.get(service)
            if state is None:
                verdict: str | None = f"abort: unknown service {service!r}"
            elif phase == "cleanup":
                state.cleanups += 1
                verdict = "ok"  # the parent cleans up the whole batch itself afterwards
            else:
                state.challenges.append(
                    Challenge(
                        service=service,
                        kind=str(msg.get("kind", "")),
                        domain=str(msg.get("domain", "")),
                        validation=str(msg.get("validation", "")),
                        token=str(msg.get("token", "")),
                    )
                )
                if int(msg.get("remaining", 0)) > 0:
                    verdict = "ok"  # let certbot hand over its next challenge
                elif self._verdict is not None:
                    verdict = self._verdict
                else:
                    state.delivered_all = True
                    state.held.append(conn)
                    verdict = None
            self._changed.notify_all()
        if verdict is not None:
            _answer(conn, verdict)


def _answer(conn: socket.socket, verdict: str) -> None:
    try:
        conn.sendall(verdict.encode() + b"\n")
    except OSError:
        pass
    finally:
        conn.close()
