"""Making a batch of challenges visible to the CA: one publication per run.

* dns-01, ``[dns] publish = 'git'``: write ``zones/acme-challenge.<apex>``, commit, tag
  ``sslm/acme/<stamp>``, push. The DNS host's ``sslm-ci pull --role dns`` (timer or webhook)
  installs the fragments into its ``acme_dir`` and runs ``restart_cmd --serial_bump <apex>...``.
* dns-01, ``[dns] publish = 'local'``: write straight into ``acme_dir`` and run
  ``restart_cmd --serial_bump <apex>...`` here (ssl-mgr's way, CI on the DNS signing host).
* http-01: token files under ``<server_dir>/<apex>/.well-known/acme-challenge/<token>``.

Cleanup leaves every fragment an empty (header-only) file, so a zone's ``$INCLUDE`` never breaks.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sslm_ci.acme.rendezvous import Challenge
from sslm_ci.dns.fragments import acme_owner, render_acme_fragment
from sslm_ci.errors import OperationalError
from sslm_ci.fsutil import atomic_write, write_if_changed

ZONES_DIR = "zones"
Echo = Callable[[str], None]


def fragment_name(apex: str) -> str:
    return f"acme-challenge.{apex}"


def dns_records_by_apex(
    challenges: Sequence[Challenge], apex_of: Callable[[str], str]
) -> dict[str, list[tuple[str, str]]]:
    """(owner, TXT value) pairs per apex for the dns-01 challenges (pure)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for ch in challenges:
        if ch.kind == "dns-01":
            out.setdefault(apex_of(ch.service), []).append((acme_owner(ch.domain), ch.validation))
    return out


def run_refresh(commands: Sequence[str], apexes: Sequence[str], echo: Echo) -> None:
    """``restart_cmd --serial_bump <apex> ...`` (ssl-mgr 7.x's convention), once for the batch."""
    args = " ".join(shlex.quote(a) for a in sorted(set(apexes)))
    for command in commands:
        if not command.strip():
            continue
        full = f"{command} --serial_bump {args}".rstrip()
        proc = subprocess.run(["/bin/sh", "-c", full], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise OperationalError(f"DNS refresh {full!r} exited {proc.returncode}: {tail[0]}")
        echo(f"  dns refresh: {full}")


@dataclass
class LocalDnsPublisher:
    acme_dir: Path
    restart_cmd: tuple[str, ...]
    echo: Echo
    _apexes: set[str] = field(default_factory=set)

    def publish(self, challenges: Sequence[Challenge], apex_of: Callable[[str], str]) -> None:
        records = dns_records_by_apex(challenges, apex_of)
        for apex, recs in records.items():
            text = render_acme_fragment(apex, recs)
            atomic_write(self.acme_dir / fragment_name(apex), text.encode())
            self._apexes.add(apex)
        if records:
            run_refresh(self.restart_cmd, list(records), self.echo)

    def cleanup(self) -> None:
        if not self._apexes:
            return
        for apex in self._apexes:
            text = render_acme_fragment(apex, [])
            atomic_write(self.acme_dir / fragment_name(apex), text.encode())
        run_refresh(self.restart_cmd, sorted(self._apexes), self.echo)
        self._apexes.clear()


def token_rel(apex: str, token: str) -> str:
    """Where an http-01 token lives below a web root (RFC 8555 §8.3, ssl-mgr's layout)."""
    if not token or "/" in token or token.startswith("."):
        raise OperationalError(f"refusing odd http-01 token {token!r}")
    return f"{apex}/.well-known/acme-challenge/{token}"


@dataclass
class LocalHttpPublisher:
    server_dir: Path
    echo: Echo
    _written: list[Path] = field(default_factory=list)

    def publish(self, challenges: Sequence[Challenge], apex_of: Callable[[str], str]) -> None:
        for ch in challenges:
            if ch.kind == "http-01":
                path = self.server_dir / token_rel(apex_of(ch.service), ch.token)
                atomic_write(path, ch.validation.encode())
                self._written.append(path)
        if self._written:
            self.echo(f"  wrote {len(self._written)} http-01 token file(s) under {self.server_dir}")

    def cleanup(self) -> None:
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()


WEBROOT_DIR = "webroot"


@dataclass
class GitPublisher:
    """dns-01 fragments and/or http-01 tokens in ONE commit + tag + push; the DNS host and the
    web hosts pull it (timer or webhook) and install what concerns them."""

    root: Path
    commit_and_push: Callable[[str, list[str], str], str]  # (message, paths, tag stem) -> tag
    echo: Echo
    dns: bool
    http: bool
    _apexes: set[str] = field(default_factory=set)
    _tokens: list[str] = field(default_factory=list)

    def publish(self, challenges: Sequence[Challenge], apex_of: Callable[[str], str]) -> None:
        paths: list[str] = []
        records = dns_records_by_apex(challenges, apex_of) if self.dns else {}
        for apex, recs in sorted(records.items()):
            rel = f"{ZONES_DIR}/{fragment_name(apex)}"
            atomic_write(self.root / rel, render_acme_fragment(apex, recs).encode())
            paths.append(rel)
            self._apexes.add(apex)
        if self.http:
            for ch in challenges:
                if ch.kind == "http-01":
                    rel = f"{WEBROOT_DIR}/{token_rel(apex_of(ch.service), ch.token)}"
                    atomic_write(self.root / rel, ch.validation.encode())
                    paths.append(rel)
                    self._tokens.append(rel)
        if not paths:
            return
        what = []
        if records:
            what.append(f"{sum(len(r) for r in records.values())} dns-01")
        if self._tokens:
            what.append(f"{len(self._tokens)} http-01")
        summary = " + ".join(what) + " challenge(s)"
        tag = self.commit_and_push(f"acme: publish {summary}\n\nSslm-Stage: acme\n", paths, "acme")
        self.echo(f"  published {summary} in {tag}")

    def cleanup(self) -> None:
        """Empty the fragments and drop the tokens in the working tree; the stage's commit
        carries that to the hosts."""
        for apex in self._apexes:
            write_if_changed(
                self.root / ZONES_DIR / fragment_name(apex), render_acme_fragment(apex, []).encode()
            )
        for rel in self._tokens:
            path = self.root / rel
            path.unlink(missing_ok=True)
            for parent in path.parents:
                if parent == self.root or any(parent.iterdir()):
                    break
                parent.rmdir()
        self._apexes.clear()
        self._tokens.clear()
