"""History from commit trailers and tags, in a real git repository."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sslm_ci import stages
from sslm_ci.errors import OperationalError, UsageError
from sslm_ci.report import history as hist
from sslm_ci.report.history import (
    HistoryEntry,
    ServiceChange,
    history,
    render_history_markdown,
    render_history_text,
)


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = dict(os.environ)
    if date:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = date
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def commit(repo: Path, message: str, date: str) -> str:
    git(repo, "commit", "-q", "--allow-empty", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


RENEW = """renew: 2 services into next

example.com:mail-ec: expires-in-29d
example.com:web-ec: spec-changed:sans

Sslm-Stage: renew
Sslm-Service: example.com:mail-ec
Sslm-Service: example.com:web-ec
Sslm-Reason: example.com:mail-ec expires-in-29d
Sslm-Reason: example.com:web-ec spec-changed:sans
Sslm-Acme-Orders: le-prod 2
"""
ROLL = """roll: 1 service next -> curr

Sslm-Stage: roll
Sslm-Service: example.com:mail-ec
Sslm-Reason: example.com:mail-ec forced past gate: min-roll-mins: 5m left
"""


@pytest.fixture
def repo(tmp_path: Path, git_isolated: None) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    shas = {
        "init": commit(
            repo, "init: sslm-ci repository\n\nSslm-Stage: init\n", "2026-12-01T09:00:00Z"
        ),
        "docs": commit(repo, "docs: no trailers here", "2026-12-02T09:00:00Z"),
        "prose": commit(
            repo,
            "notes: prose\n\nSee the Sslm-Stage: renew trailers for details.",
            "2026-12-02T10:00:00Z",
        ),
        "renew": commit(repo, RENEW, "2026-12-03T12:00:00+00:00"),
        "roll": commit(repo, ROLL, "2026-12-04T13:30:00+01:00"),
    }
    git(repo, "tag", "-a", "-m", "renew", "sslm/renew/20261203T120000Z", shas["renew"])
    git(repo, "tag", "-a", "-m", "roll", "sslm/roll/20261204T123000Z", shas["roll"])
    git(repo, "tag", "release-1", shas["roll"])  # lightweight tags count too
    return repo, shas


def test_entries_newest_first_with_tags_and_reasons(repo: tuple[Path, dict[str, str]]) -> None:
    path, shas = repo
    entries = history(path)
    assert [e.stage for e in entries] == ["roll", "renew", "init"]
    roll, renew, init = entries
    assert roll == HistoryEntry(
        commit=shas["roll"],
        date=datetime(2026, 12, 4, 12, 30, tzinfo=UTC),
        stage="roll",
        subject="roll: 1 service next -> curr",
        tags=("release-1", "sslm/roll/20261204T123000Z"),
        services=(
            ServiceChange("example.com:mail-ec", "forced past gate: min-roll-mins: 5m left"),
        ),
    )
    assert renew.tags == ("sslm/renew/20261203T120000Z",)
    assert renew.services == (
        ServiceChange("example.com:mail-ec", "expires-in-29d"),
        ServiceChange("example.com:web-ec", "spec-changed:sans"),
    )
    assert renew.acme_orders == (("le-prod", 2),)
    assert renew.date.isoformat() == "2026-12-03T12:00:00+00:00"
    assert init.services == () and init.tags == ()


def test_selection_keeps_only_the_named_services(repo: tuple[Path, dict[str, str]]) -> None:
    path, _ = repo
    web = history(path, {"example.com:web-ec"})
    assert [(e.stage, e.services) for e in web] == [
        ("renew", (ServiceChange("example.com:web-ec", "spec-changed:sans"),))
    ]
    assert [e.stage for e in history(path, {"example.com:mail-ec"})] == ["roll", "renew"]
    assert history(path, {"example.org:none"}) == []
    assert [e.stage for e in history(path, limit=2)] == ["roll", "renew"]
    assert [e.stage for e in history(path, rev="HEAD~1")] == ["renew", "init"]


def test_rendered_as_text_and_markdown(repo: tuple[Path, dict[str, str]]) -> None:
    path, shas = repo
    entries = history(path)
    assert render_history_text(entries).splitlines() == [
        f"2026-12-04 12:30:00  roll   {shas['roll'][:12]}  release-1 sslm/roll/20261204T123000Z",
        "    example.com:mail-ec  forced past gate: min-roll-mins: 5m left",
        f"2026-12-03 12:00:00  renew  {shas['renew'][:12]}  sslm/renew/20261203T120000Z",
        "    example.com:mail-ec  expires-in-29d",
        "    example.com:web-ec   spec-changed:sans",
        "    acme orders: le-prod 2",
        f"2026-12-01 09:00:00  init   {shas['init'][:12]}",
        "    init: sslm-ci repository",
    ]
    md = render_history_markdown(entries).splitlines()
    assert md[:2] == [
        "| Date (UTC) | Stage | Commit | Tags | Services |",
        "|---|---|---|---|---|",
    ]
    assert md[3] == (
        f"| 2026-12-03 12:00:00 | renew | `{shas['renew'][:12]}` | sslm/renew/20261203T120000Z"
        " | example.com:mail-ec — expires-in-29d<br>example.com:web-ec — spec-changed:sans"
        "<br>ACME orders at le-prod: 2 |"
    )
    assert len(md) == 5
    assert render_history_text([]) == "no sslm-ci commits"
    assert render_history_markdown([]) == "No sslm-ci commits.\n"


def test_no_commits_no_repo_and_bad_revision(
    tmp_path: Path, git_isolated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert history(empty) == []
    with pytest.raises(UsageError, match="nope"):
        history(empty, rev="nope")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(OperationalError, match="not a git repository"):
        history(plain)


def test_trailer_names_match_what_the_stages_write() -> None:
    assert hist.ACME_ORDERS_TRAILER == stages.ACME_ORDERS_TRAILER
    result = stages.StageResult("renew", done=[("g:s", "why not")], acme_orders={"ca": 1})
    assert stages._trailers("renew", result).splitlines() == [
        f"{hist.STAGE_TRAILER}: renew",
        f"{hist.SERVICE_TRAILER}: g:s",
        f"{hist.REASON_TRAILER}: g:s why not",
        f"{hist.ACME_ORDERS_TRAILER}: ca 1",
    ]
