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

    def publish(self, records: dict[str, list[tuple[str, str]]]) -> None:
        for apex, recs in records.items():
            atomic_write(
                self.acme_dir / fragment_name(apex), render_acme_fragment(apex, recs).encode()
            )
            self._apexes.add(apex)
        if records:
            run_refresh(self.restart_cmd, list(records), self.echo)

    def cleanup(self) -> None:
        if not self._apexes:
            return
        for apex in self._apexes:
            atomic_write(
                self.acme_dir / fragment_name(apex), render_acme_fragment(apex, []).encode()
            )
        run_refresh(self.restart_cmd, sorted(self._apexes), self.echo)
        self._apexes.clear()


@dataclass
class GitDnsPublisher:
    """Commits fragments and pushes a tag; the DNS host pulls and refreshes."""

    root: Path
    commit_and_push: Callable[[str, list[str], str], str]  # (message, paths, tag stem) -> tag
    echo: Echo
    _apexes: set[str] = field(default_factory=set)

    def publish(self, records: dict[str, list[tuple[str, str]]]) -> None:
        if not records:
            return
        paths: list[str] = []
        for apex, recs in sorted(records.items()):
            rel = f"{ZONES_DIR}/{fragment_name(apex)}"
            atomic_write(self.root / rel, render_acme_fragment(apex, recs).encode())
            paths.append(rel)
            self._apexes.add(apex)
        count = sum(len(r) for r in records.values())
        tag = self.commit_and_push(
            f"acme: publish {count} dns-01 challenge(s) for {', '.join(sorted(records))}\n\n"
            "Sslm-Stage: acme\n",
            paths,
            "acme",
        )
        self.echo(f"  published {count} challenge(s) in {tag}")

    def cleanup(self) -> None:
        """Empty the fragments in the working tree; the stage's commit carries them."""
        for apex in self._apexes:
            write_if_changed(
                self.root / ZONES_DIR / fragment_name(apex), render_acme_fragment(apex, []).encode()
            )
        self._apexes.clear()


@dataclass
class LocalHttpPublisher:
    server_dir: Path
    echo: Echo
    _written: list[Path] = field(default_factory=list)

    def publish(self, challenges: Sequence[Challenge], apex_of: Callable[[str], str]) -> None:
        for ch in challenges:
            if ch.kind != "http-01":
                continue
            if not ch.token or "/" in ch.token or ch.token.startswith("."):
                raise OperationalError(f"{ch.service}: refusing odd http-01 token {ch.token!r}")
            path = (
                self.server_dir / apex_of(ch.service) / ".well-known" / "acme-challenge" / ch.token
            )
            atomic_write(path, ch.validation.encode())
            self._written.append(path)
        if self._written:
            self.echo(f"  wrote {len(self._written)} http-01 token file(s) under {self.server_dir}")

    def cleanup(self) -> None:
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()
