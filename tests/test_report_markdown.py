"""Markdown job summary: the run section, the services table, escaping, where it is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sslm_ci.report.markdown import md_escape, render_markdown, write_job_summary
from sslm_ci.report.status import ServiceStatus
from sslm_ci.stages import StageResult

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(days: float = 0, hours: float = 0) -> datetime:
    return NOW + timedelta(days=days, hours=hours)


def status(
    ident: str,
    *,
    ca: str = "my-ca",
    expires: float | None,
    issued: float = -15,
    due: str | None = None,
    due_since: float = 0,
    renews: float | None = None,
    reason: str = "",
    next_expires: float | None = None,
    roll: str = "-",
) -> ServiceStatus:
    """A row as service_status builds it; times are days from NOW."""
    group, _, service = ident.partition(":")
    curr = at(expires) if expires is not None else None
    return ServiceStatus(
        ident=ident,
        group=group,
        service=service,
        signing_ca=ca,
        curr_expires=curr,
        curr_days_left=expires,
        next_expires=at(next_expires) if next_expires is not None else None,
        next_issued_at=at(hours=-1) if next_expires is not None else None,
        renew_due=due is not None,
        renew_reason=due if due is not None else reason,
        renew_at=at(renews) if renews is not None and due is None else None,
        roll_state=roll,
        curr_not_before=at(issued) if curr else None,
        curr_issued_at=at(issued) if curr else None,
        curr_rolled_at=at(issued + 1) if curr else None,
        due_since=at(due_since) if due is not None else None,
    )


def sample_rows() -> list[ServiceStatus]:
    """One of each: ok, due, next waiting, expired, never issued."""
    return [
        status("example.com:mail-ec", expires=75, renews=45, reason="renews-in-45d"),
        status("example.com:web-ec", expires=20, due="expires-in-20d", due_since=-10),
        status(
            "other.org:mx",
            ca="le-prod",
            expires=25,
            next_expires=90,
            renews=60,
            reason="next-awaiting-roll",
            roll="next published 1h00m ago, gate: min_roll_mins in 30m",
        ),
        status("other.org:old", expires=-3, issued=-93, due="expired", due_since=-33),
        status("other.org:new", expires=None, due="no-current-cert"),
    ]


def table_rows(text: str) -> list[list[str]]:
    """Cells of every GFM table row, split on pipes that are not backslash-escaped."""
    out = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells, cell = [], ""
        chars = iter(line[1 : line.rindex("|")])
        for ch in chars:
            if ch == "\\":
                cell += ch + next(chars, "")
            elif ch == "|":
                cells.append(cell.strip())
                cell = ""
            else:
                cell += ch
        cells.append(cell.strip())
        out.append(cells)
    return out


def test_the_table_has_one_row_per_service_with_dates_and_renewal() -> None:
    text = render_markdown(sample_rows(), NOW)
    assert text.startswith("## sslm-ci\n")
    assert (
        "Status at 2026-12-03 12:00 UTC: 5 services, 3 due for renewal (1 expired, "
        "1 without a certificate), 1 with next waiting to roll.\n"
    ) in text
    rows = table_rows(text)
    assert rows[0] == [
        "State",
        "Service",
        "CA",
        "Expires",
        "Days left",
        "Renewal",
        "Next expires",
        "Roll",
    ]
    assert rows[1] == ["---", "---", "---", "---", "---:", "---", "---", "---"]
    by_service = {r[1]: r for r in rows[2:]}
    assert list(by_service) == [
        "example.com:mail-ec",
        "example.com:web-ec",
        "other.org:mx",
        "other.org:old",
        "other.org:new",
    ]
    assert by_service["example.com:mail-ec"] == [
        "ok",
        "example.com:mail-ec",
        "my-ca",
        "2027-02-16 12:00",
        "75.0",
        "2027-01-17 (renews-in-45d)",
        "–",
        "–",
    ]
    assert by_service["example.com:web-ec"][0] == "**due**"
    assert by_service["example.com:web-ec"][5] == "**DUE** (expires-in-20d)"
    mx = by_service["other.org:mx"]
    assert mx[6] == "2027-03-03 12:00"
    assert mx[7] == r"next published 1h00m ago, gate: min\_roll\_mins in 30m"
    assert by_service["other.org:old"][:5] == [
        "**expired**",
        "other.org:old",
        "my-ca",
        "2026-11-30 12:00",
        "-3.0",
    ]
    assert by_service["other.org:new"][3:6] == ["–", "–", "**DUE** (no-current-cert)"]
    assert "### This run" not in text


def test_pipes_and_html_in_cells_are_escaped() -> None:
    odd = status(
        "ex.com:a|b",
        ca="ca|x",
        expires=40,
        renews=10,
        reason="<script>alert(1)</script>",
        roll="x | y\nz",
    )
    rows = table_rows(render_markdown([odd], NOW))
    assert len(rows) == 3
    assert rows[2] == [
        "ok",
        r"ex.com:a\|b",
        r"ca\|x",
        "2027-01-12 12:00",
        "40.0",
        r"2026-12-13 (\<script\>alert(1)\</script\>)",
        "–",
        r"x \| y z",
    ]
    assert md_escape("a|b\\c") == r"a\|b\\c"


def test_the_run_section_says_what_was_done_skipped_and_landed() -> None:
    run = StageResult(
        "renew",
        done=[("example.com:web-ec", "expires-in-20d")],
        skipped=[("example.com:mail-ec", "renews-in-45d")],
        warnings=["--no-push: commit and tag stay local"],
        commit="0123456789abcdef0123",
        tag="sslm/renew/20261203T120000Z",
        pushed=False,
        acme_orders={"le-prod": 2},
    )
    text = render_markdown(sample_rows(), NOW, run, title="prod certs")
    assert text.startswith("## prod certs\n")
    run_part = text[text.index("### This run: renew") : text.index("### Services")]
    assert run_part.splitlines()[2:] == [
        "- Renewed into next (1):",
        "  - example.com:web-ec — expires-in-20d",
        "- Not renewed (1):",
        "  - example.com:mail-ec — renews-in-45d",
        "- Warnings (1):",
        "  - --no-push: commit and tag stay local",
        "- Commit `0123456789ab`, tag `sslm/renew/20261203T120000Z`, not pushed",
        "- ACME orders placed: le-prod 2",
        "",
    ]


def test_an_idle_run_says_so_and_long_lists_fold() -> None:
    skipped = [(f"example.com:svc{i}", "renews-in-40d") for i in range(11)]
    text = render_markdown([], NOW, StageResult("roll", skipped=skipped))
    assert "- Nothing to do." in text
    assert "- No commit." in text
    assert "- <details><summary>Held (11)</summary>" in text
    assert text.count("  - example.com:svc") == 11
    assert "</details>" in text
    assert "No services selected." in text


def test_job_summary_appends_for_github_and_replaces_the_fallback(tmp_path: Path) -> None:
    github = tmp_path / "step_summary"
    github.write_text("# earlier step\n")
    fallback = tmp_path / "artifacts" / "sslm-summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(github)}
    assert write_job_summary("## one", env, fallback) == [github, fallback]
    assert write_job_summary("## two\n", env, fallback) == [github, fallback]
    assert github.read_text() == "# earlier step\n\n## one\n\n## two\n"
    assert fallback.read_text() == "## two\n"
    assert sorted(p.name for p in fallback.parent.iterdir()) == ["sslm-summary.md"]


def test_job_summary_without_a_target_writes_nothing(tmp_path: Path) -> None:
    assert write_job_summary("## x", {"GITHUB_STEP_SUMMARY": ""}, None) == []
    fresh = tmp_path / "summary"
    assert write_job_summary("## x", {"GITHUB_STEP_SUMMARY": str(fresh)}, None) == [fresh]
    assert fresh.read_text() == "## x\n"
