"""What sslm-ci did, read back from git: the trailers of its commits and their tags.

Every stage commit carries ``Sslm-Stage``, one ``Sslm-Service`` per service it changed and
``Sslm-Reason: <group:service> <reason>``; ACME renewals add ``Sslm-Acme-Orders: <ca> <n>``.
Git is the archive, so this is the audit log: no separate state file to trust.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sslm_ci.errors import OperationalError, UsageError
from sslm_ci.report.markdown import md_escape

# Must match what stages.py writes (a test checks).
STAGE_TRAILER = "Sslm-Stage"
SERVICE_TRAILER = "Sslm-Service"
REASON_TRAILER = "Sslm-Reason"
ACME_ORDERS_TRAILER = "Sslm-Acme-Orders"

_FIELD = "\x1f"
_ITEM = "\x1e"


@dataclass(frozen=True)
class ServiceChange:
    ident: str  # group:service
    reason: str  # "" when the commit named the service without a reason


@dataclass(frozen=True)
class HistoryEntry:
    commit: str
    date: datetime  # committer date (stages set it to the run's now)
    stage: str
    subject: str
    tags: tuple[str, ...]
    services: tuple[ServiceChange, ...]
    acme_orders: tuple[tuple[str, int], ...] = ()


def _trailer(key: str) -> str:
    return f"%(trailers:key={key},valueonly,unfold,separator=%x1e)"


_FORMAT = "%x1f".join(
    [
        "%H",
        "%cI",
        "%s",
        _trailer(STAGE_TRAILER),
        _trailer(SERVICE_TRAILER),
        _trailer(REASON_TRAILER),
        _trailer(ACME_ORDERS_TRAILER),
    ]
)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # showSignature would print verification output into our formatted log.
    return subprocess.run(
        ["git", "-c", "log.showSignature=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
    )


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(_ITEM) if item.strip()]


def _tags_by_commit(repo: Path) -> dict[str, list[str]]:
    """Every tag by the commit it points at (annotated tags peeled), in one git call."""
    proc = _git(
        repo,
        "for-each-ref",
        "--sort=refname",
        "--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)",
        "refs/tags",
    )
    if proc.returncode != 0:
        raise OperationalError(f"git for-each-ref in {repo}: {proc.stderr.strip()}")
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        name, obj, peeled = line.split("\0")
        out.setdefault(peeled or obj, []).append(name)
    return out


def _services(names: list[str], reasons: list[str]) -> tuple[ServiceChange, ...]:
    by_ident: dict[str, str] = {}
    for line in reasons:
        ident, _, reason = line.partition(" ")
        by_ident.setdefault(ident, reason.strip())
    order = list(dict.fromkeys([*names, *by_ident]))
    return tuple(ServiceChange(ident, by_ident.get(ident, "")) for ident in order)


def _orders(lines: list[str]) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out.append((parts[0], int(parts[1])))
    return tuple(out)


def history(
    repo: Path,
    selection: set[str] | None = None,
    *,
    rev: str = "HEAD",
    limit: int | None = None,
) -> list[HistoryEntry]:
    """sslm-ci commits reachable from ``rev``, newest first.

    With ``selection`` (``group:service`` idents) only commits that changed one of them are
    kept, and each keeps only the selected services; commits naming no service (``acme``
    publications, ``init``) drop out. ``limit`` counts entries after filtering.
    A repository without commits has no history.
    """
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise OperationalError(f"{repo}: not a git repository")
    if _git(repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}").returncode != 0:
        if rev == "HEAD":
            return []
        raise UsageError(f"history: {rev!r} is not a commit in {repo}")
    proc = _git(repo, "log", "--no-color", "-z", f"--format={_FORMAT}", rev, "--")
    if proc.returncode != 0:
        raise OperationalError(f"git log in {repo}: {proc.stderr.strip()}")
    tags = _tags_by_commit(repo)
    entries: list[HistoryEntry] = []
    for record in proc.stdout.split("\0"):
        if not record.strip():
            continue
        sha, date, subject, stage, names, reasons, orders = record.split(_FIELD)
        stages = _items(stage)
        if not stages:
            continue  # not written by sslm-ci
        services = _services(_items(names), _items(reasons))
        if selection is not None:
            services = tuple(s for s in services if s.ident in selection)
            if not services:
                continue
        entries.append(
            HistoryEntry(
                commit=sha.strip(),
                date=datetime.fromisoformat(date),
                stage=stages[0],
                subject=subject,
                tags=tuple(tags.get(sha.strip(), ())),
                services=services,
                acme_orders=_orders(_items(orders)),
            )
        )
        if limit is not None and len(entries) >= limit:
            break
    return entries


def _utc(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def render_history_text(entries: Sequence[HistoryEntry]) -> str:
    """One header line per commit (date UTC, stage, commit, tags), one line per service."""
    if not entries:
        return "no sslm-ci commits"
    lines: list[str] = []
    for e in entries:
        head = f"{_utc(e.date)}  {e.stage:<6} {e.commit[:12]}"
        if e.tags:
            head += "  " + " ".join(e.tags)
        lines.append(head)
        width = max((len(s.ident) for s in e.services), default=0)
        lines.extend(f"    {s.ident.ljust(width)}  {s.reason or '-'}".rstrip() for s in e.services)
        if not e.services:
            lines.append(f"    {e.subject}")
        if e.acme_orders:
            lines.append("    acme orders: " + ", ".join(f"{ca} {n}" for ca, n in e.acme_orders))
    return "\n".join(lines)


def render_history_markdown(entries: Sequence[HistoryEntry]) -> str:
    """A GFM table, one row per commit; services one per line in their cell."""
    if not entries:
        return "No sslm-ci commits.\n"
    lines = [
        "| Date (UTC) | Stage | Commit | Tags | Services |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        changes = [f"{md_escape(s.ident)} — {md_escape(s.reason or '-')}" for s in e.services] or [
            md_escape(e.subject)
        ]
        changes += [f"ACME orders at {md_escape(ca)}: {n}" for ca, n in e.acme_orders]
        cells = [
            _utc(e.date),
            md_escape(e.stage),
            f"`{e.commit[:12]}`",
            "<br>".join(md_escape(t) for t in e.tags) or "–",
            "<br>".join(changes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
