"""Glue for the CLI: gather the status rows once, write every report a run asks for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sslm_ci.report.html import write_status_page
from sslm_ci.report.markdown import render_markdown, write_job_summary
from sslm_ci.report.prometheus import read_last_success, render_prometheus, write_textfile
from sslm_ci.report.status import ServiceStatus, service_status

if TYPE_CHECKING:
    from sslm_ci.stages import StageResult


def gather_rows(
    repo_root: Path, now: datetime, selection: Sequence[str] = ()
) -> list[ServiceStatus]:
    """Status rows of the selected services (all active ones when empty); public files only."""
    from sslm_ci.config.loader import load_inventory
    from sslm_ci.config.selection import parse_selection
    from sslm_ci.stages import INVENTORY_DIR, renew_input_for
    from sslm_ci.store import Store

    root = repo_root.resolve()
    inv = load_inventory(root / INVENTORY_DIR, root)
    store = Store(root)
    return [
        service_status(inv, store, svc, now, renew_input_for(inv, store, svc, now, False))
        for svc in parse_selection(list(selection), inv)
    ]


@dataclass(frozen=True)
class ReportTargets:
    """Where a run's reports go; None skips that report."""

    summary_file: Path | None = None  # Markdown, e.g. a GitLab artifact
    metrics_file: Path | None = None  # node_exporter textfile, *.prom
    page_dir: Path | None = None  # gets index.html


def publish_reports(
    rows: Sequence[ServiceStatus],
    now: datetime,
    targets: ReportTargets,
    environ: Mapping[str, str],
    run: StageResult | None = None,
    title: str = "sslm-ci",
) -> list[Path]:
    """Write the job summary (``$GITHUB_STEP_SUMMARY`` and/or ``summary_file``), metrics and
    page; return the files written.

    ``run`` is a stage that finished: its ``last_success`` becomes ``now``; the other stages'
    samples are carried over from the previous metrics file.
    """
    written: list[Path] = []
    text = render_markdown(list(rows), now, run, title)
    written += write_job_summary(text, environ, targets.summary_file)
    if targets.metrics_file is not None:
        last = read_last_success(targets.metrics_file)
        if run is not None:
            last[run.stage] = now
        write_textfile(targets.metrics_file, render_prometheus(rows, now, last))
        written.append(targets.metrics_file)
    if targets.page_dir is not None:
        written.append(write_status_page(targets.page_dir, rows, now, title))
    return written
