"""Markdown job summary for the CI UI (GitHub's step summary, a GitLab artifact).

One heading, what the run did (when a stage ran), then one table row per service.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sslm_ci.fsutil import atomic_write
from sslm_ci.report.status import ServiceStatus, count_line, health

if TYPE_CHECKING:  # stages pulls in crypto, git and sops; rendering needs none of them
    from sslm_ci.stages import StageResult

GITHUB_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

# Lists longer than this fold into <details>: a renew run skips every service that is not due.
FOLD_AFTER = 10

_DONE_LABEL = {
    "renew": "Renewed into next",
    "roll": "Rolled next → curr",
    "tlsa": "Retired TLSA removed",
}
_SKIPPED_LABEL = {"renew": "Not renewed", "roll": "Held"}
_HEALTH_CELL = {"ok": "ok", "due": "**due**", "expired": "**expired**", "missing": "**missing**"}

# Backslash-escaping ASCII punctuation is always literal in CommonMark; these are the ones that
# could start emphasis, links, HTML or break a table cell.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#~!&])")


def md_escape(text: str) -> str:
    """Inline text safe in a paragraph, list item or table cell (``|`` included)."""
    flat = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def _code(text: str) -> str:
    # Our commit ids and tag names never hold backticks; make sure the span cannot break.
    return "`" + text.replace("`", "'") + "`"


def _utc(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def _date(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d}"


def _table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """A GFM table; ``align`` has one of ``l``/``r`` per column. Cells arrive escaped."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _itemised(label: str, items: Sequence[str]) -> list[str]:
    """``- label (n):`` with nested items, folded into <details> when long."""
    if not items:
        return []
    if len(items) <= FOLD_AFTER:
        return [f"- {label} ({len(items)}):", *(f"  - {item}" for item in items)]
    # A blank line after </summary> lets GitHub and GitLab render the list as Markdown.
    return [
        f"- <details><summary>{label} ({len(items)})</summary>",
        "",
        *(f"  - {item}" for item in items),
        "",
        "  </details>",
    ]


def render_run(run: StageResult) -> list[str]:
    """The "what this run did" section."""
    lines = [f"### This run: {md_escape(run.stage)}", ""]
    done = [f"{md_escape(ident)} — {md_escape(reason)}" for ident, reason in run.done]
    skipped = [f"{md_escape(ident)} — {md_escape(reason)}" for ident, reason in run.skipped]
    if done:
        lines += _itemised(_DONE_LABEL.get(run.stage, "Done"), done)
    else:
        lines.append("- Nothing to do.")
    lines += _itemised(_SKIPPED_LABEL.get(run.stage, "Skipped"), skipped)
    lines += _itemised("Warnings", [md_escape(w) for w in run.warnings])
    if run.commit:
        landed = f"- Commit {_code(run.commit[:12])}"
        if run.tag:
            landed += f", tag {_code(run.tag)}"
        landed += ", pushed" if run.pushed else ", not pushed"
        lines.append(landed)
    else:
        lines.append("- No commit.")
    if run.acme_orders:
        orders = ", ".join(f"{md_escape(ca)} {n}" for ca, n in sorted(run.acme_orders.items()))
        lines.append(f"- ACME orders placed: {orders}")
    return lines


def _renewal_cell(row: ServiceStatus) -> str:
    if row.renew_due:
        return f"**DUE** ({md_escape(row.renew_reason)})"
    if row.renew_at is not None:
        return f"{_date(row.renew_at)} ({md_escape(row.renew_reason)})"
    return md_escape(row.renew_reason)


def _service_row(row: ServiceStatus, now: datetime) -> list[str]:
    return [
        _HEALTH_CELL[health(row, now)],
        md_escape(row.ident),
        md_escape(row.signing_ca),
        _utc(row.curr_expires) if row.curr_expires else "–",
        f"{row.curr_days_left:.1f}" if row.curr_days_left is not None else "–",
        _renewal_cell(row),
        _utc(row.next_expires) if row.next_expires else "–",
        "–" if row.roll_state == "-" else md_escape(row.roll_state),
    ]


def render_markdown(
    rows: list[ServiceStatus],
    now: datetime,
    run: StageResult | None = None,
    title: str = "sslm-ci",
) -> str:
    """The job summary: heading, the run (if any), the services table. Times are UTC."""
    lines = [f"## {md_escape(title)}", ""]
    lines.append(f"Status at {_utc(now)} UTC: {count_line(rows, now)}.")
    lines.append("")
    if run is not None:
        lines += render_run(run)
        lines.append("")
    lines += ["### Services", ""]
    if rows:
        header = (
            "State",
            "Service",
            "CA",
            "Expires",
            "Days left",
            "Renewal",
            "Next expires",
            "Roll",
        )
        lines += _table(header, "llllrlll", (_service_row(r, now) for r in rows))
    else:
        lines.append("No services selected.")
    return "\n".join(lines) + "\n"


def write_job_summary(text: str, environ: Mapping[str, str], fallback: Path | None) -> list[Path]:
    """Publish the summary where the CI shows it; return the files written.

    GitHub renders whatever the job's steps appended to ``$GITHUB_STEP_SUMMARY``, so that file
    is appended to (other steps may have written before us). ``fallback`` (e.g. a GitLab
    artifact) is replaced atomically.
    """
    body = text if text.endswith("\n") else text + "\n"
    written: list[Path] = []
    github = environ.get(GITHUB_SUMMARY_ENV, "")
    if github:
        path = Path(github)
        with path.open("a", encoding="utf-8") as handle:
            # One write call: a blank line keeps our heading apart from earlier content.
            handle.write(("\n" if handle.tell() > 0 else "") + body)
            handle.flush()
            os.fsync(handle.fileno())
        written.append(path)
    if fallback is not None:
        atomic_write(fallback, body.encode())
        written.append(fallback)
    return written
