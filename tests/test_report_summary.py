"""The reports over a real repository: init, renew and roll through the CLI, then every report."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sslm_ci.report.history import history, render_history_text
from sslm_ci.report.markdown import render_markdown
from sslm_ci.report.summary import ReportTargets, gather_rows, publish_reports
from sslm_ci.stages import StageResult
from tests.gitops_world import World, copy_inventory, later


def test_reports_over_a_renewed_and_rolled_repository(tmp_path: Path) -> None:
    world = World(tmp_path / "world", copy_inventory(tmp_path / "src"))
    world.init()
    assert world.sslm("renew").exit_code == 0
    now = later(days=1)
    rolled = world.sslm("roll", now=now)
    assert rolled.exit_code == 0, rolled.output

    entries = history(world.repo)
    assert [e.stage for e in entries] == ["roll", "renew", "init"]
    assert entries[0].tags == ("sslm/roll/20261204T120000Z",)
    assert entries[1].tags == ("sslm/renew/20261203T120000Z",)
    renewed = {s.ident: s.reason for s in entries[1].services}
    assert renewed["example.com:mail-ec"] == "no-current-cert"
    assert "example.com:mail-ec" not in {s.ident for s in entries[0].services}  # held
    assert "example.com:web-ec  ready" in render_history_text(entries)

    rows = gather_rows(world.repo, now)
    by_ident = {r.ident: r for r in rows}
    web, mail = by_ident["example.com:web-ec"], by_ident["example.com:mail-ec"]
    assert web.curr_rolled_at == now and web.curr_issued_at == later()
    assert mail.curr_expires is None and mail.next_expires is not None
    assert [r.ident for r in gather_rows(world.repo, now, ["example.com:web-ec"])] == [web.ident]

    run = StageResult("roll", done=[(web.ident, "ready")], commit=entries[0].commit)
    summary = tmp_path / "out" / "summary.md"
    metrics = tmp_path / "textfile" / "sslm.prom"
    page = tmp_path / "out" / "site" / "index.html"
    targets = ReportTargets(summary_file=summary, metrics_file=metrics, page_dir=page.parent)
    github = tmp_path / "step-summary"
    written = publish_reports(rows, now, targets, {"GITHUB_STEP_SUMMARY": str(github)}, run)
    assert written == [github, summary, metrics, page]
    text = render_markdown(rows, now, run)
    assert github.read_text() == summary.read_text() == text
    assert f"| **missing** | example.com:mail-ec | {mail.signing_ca} | – | – |" in text
    assert "- Rolled next → curr (1):\n  - example.com:web-ec — ready\n" in text

    samples = {
        (s.name, s.labels.get("service"), s.labels.get("slot"), s.labels.get("stage")): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples[("sslm_certificate_ready_status", "web-ec", None, None)] == 1
    assert samples[("sslm_certificate_ready_status", "mail-ec", None, None)] == 0
    assert samples[("sslm_certificate_next_pending", "mail-ec", None, None)] == 1
    assert samples[("sslm_certificate_expiration_timestamp_seconds", "web-ec", "curr", None)] == (
        web.curr_expires.timestamp() if web.curr_expires else None
    )
    assert samples[("sslm_last_success_timestamp_seconds", None, None, "roll")] == now.timestamp()
    assert "example.com:web-ec" in page.read_text()

    # A later status-only publish keeps roll's last success.
    publish_reports(rows, later(days=2), targets, {}, None)
    again = metrics.read_text()
    assert f'sslm_last_success_timestamp_seconds{{stage="roll"}} {int(now.timestamp())}' in again
