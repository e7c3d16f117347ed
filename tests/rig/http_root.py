"""In-process http-01 responder: ``http://<host>/.well-known/acme-challenge/<token>`` is
served from ``<webroot>/<apex>/.well-known/acme-challenge/<token>`` (ssl-mgr's
``server_dir`` layout), where ``<apex>`` is the configured apex that ``<host>`` falls under."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.rig.process import LOOPBACK, RigError, RigService, chosen_port, claim_port

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def apex_for(host: str, apexes: Iterable[str]) -> str | None:
    """The longest apex that ``host`` (port and trailing dot ignored) equals or falls under."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".").lower()
    matches = [a for a in apexes if name == a or name.endswith(f".{a}")]
    return max(matches, key=len) if matches else None


@dataclass(frozen=True)
class ServedRequest:
    host: str
    path: str
    status: int


class HttpRoot(RigService):
    """Threaded static responder on 127.0.0.1:``port``; only challenge tokens are served."""

    def __init__(self, webroot: Path, apexes: Iterable[str], *, port: int | None = None) -> None:
        self.webroot = webroot.resolve()
        self.apexes = tuple(a.rstrip(".").lower() for a in apexes)
        if not self.apexes:
            raise ValueError("HttpRoot needs at least one apex")
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[ServedRequest] = []

    @property
    def port(self) -> int:
        return chosen_port(self._port, "http-root")

    @property
    def requests(self) -> list[ServedRequest]:
        """Every request answered so far (pebble makes several GETs per token)."""
        with self._lock:
            return list(self._requests)

    def challenge_dir(self, apex: str) -> Path:
        return self.webroot / apex / ".well-known" / "acme-challenge"

    def challenge_path(self, domain: str, token: str) -> Path:
        apex = apex_for(domain, self.apexes)
        if apex is None:
            raise KeyError(f"{domain!r} is under none of {self.apexes}")
        return self.challenge_dir(apex) / token

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._server is not None:
            raise RigError("http-root", "already started")
        for apex in self.apexes:
            self.challenge_dir(apex).mkdir(parents=True, exist_ok=True)
        self._port = claim_port(self._port, "http-root")
        handler = self._handler_class()
        try:
            server = ThreadingHTTPServer((LOOPBACK, self._port), handler)
        except OSError as exc:
            raise RigError("http-root", f"cannot listen on {LOOPBACK}:{self._port}: {exc}") from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def _record(self, request: ServedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        root = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(with_body=True)

            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def _answer(self, *, with_body: bool) -> None:
                host = self.headers.get("Host", "")
                path = self.path.split("?", 1)[0]
                body = root._lookup(host, path)
                status = 404 if body is None else 200
                root._record(ServedRequest(host, path, status))
                payload = body if body is not None else b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if with_body:
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass  # requests are kept in HttpRoot.requests instead of stderr

        return Handler

    def _lookup(self, host: str, path: str) -> bytes | None:
        if not path.startswith(CHALLENGE_PREFIX):
            return None
        token = path[len(CHALLENGE_PREFIX) :]
        apex = apex_for(host, self.apexes)
        if apex is None or not _TOKEN.fullmatch(token):
            return None
        try:
            return (self.challenge_dir(apex) / token).read_bytes()
        except OSError:
            return None
