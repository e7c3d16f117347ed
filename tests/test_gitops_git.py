"""git operations on real repositories: dates, SSH signatures, tag checks, push races."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sslm_ci.gitops.git import (
    GitError,
    GitRepo,
    Signing,
    TagVerificationError,
    git_date,
    write_allowed_signers,
)
from tests.conftest import SshSigningKey

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def git(repo: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)
    return result.stdout.rstrip("\n")


@dataclass
class Signer:
    key: SshSigningKey
    allowed: Path

    @property
    def signing(self) -> Signing:
        return Signing(self.key.private_key)


@pytest.fixture
def signer(tmp_path: Path, ssh_signing_key: Callable[[str], SshSigningKey]) -> Signer:
    key = ssh_signing_key("ci-signing")
    allowed = tmp_path / "trust" / "allowed_signers"
    write_allowed_signers(allowed, "ci@example.org", key.public_line)
    return Signer(key, allowed)


@pytest.fixture
def stranger(tmp_path: Path, ssh_signing_key: Callable[[str], SshSigningKey]) -> Signer:
    key = ssh_signing_key("stranger")
    allowed = tmp_path / "trust" / "stranger_signers"
    write_allowed_signers(allowed, "someone@example.org", key.public_line)
    return Signer(key, allowed)


@pytest.fixture
def repo(tmp_path: Path, git_isolated: None, signer: Signer) -> GitRepo:
    return GitRepo.init(tmp_path / "state", signing=signer.signing)


def put(repo: GitRepo, rel: str, text: str) -> None:
    path = repo.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- commit ------------------------------------------------------------------------------------


def test_commit_dates_signature_and_no_empty_commits(repo: GitRepo, signer: Signer) -> None:
    put(repo, "state/web.json", "{}\n")
    sha = repo.commit("renew: web", ["state/web.json"], NOW)
    assert sha is not None and sha == repo.head()
    stamp = int(NOW.timestamp())
    assert git(repo.path, "log", "-1", "--format=%at %ct") == f"{stamp} {stamp}"
    assert git(repo.path, "log", "-1", "--format=%an <%ae>") == "sslm-ci <sslm-ci@localhost>"
    repo.verify_commit("HEAD", signer.allowed)
    assert repo.commit("renew: web", ["state/web.json"], LATER) is None
    assert repo.head() == sha
    assert repo.is_clean()


def test_commit_untrusted_signature_is_rejected(repo: GitRepo, stranger: Signer) -> None:
    put(repo, "a", "1\n")
    repo.commit("a", ["a"], NOW)
    with pytest.raises(GitError, match="signature not accepted"):
        repo.verify_commit("HEAD", stranger.allowed)


def test_commit_stages_exactly_the_paths_including_deletions(repo: GitRepo) -> None:
    put(repo, "keep", "1\n")
    put(repo, "gone", "1\n")
    repo.commit("two files", ["keep", "gone"], NOW)
    (repo.path / "gone").unlink()
    put(repo, "keep", "2\n")
    put(repo, "unrelated", "x\n")
    sha = repo.commit("drop gone", ["gone"], LATER)
    assert sha is not None
    assert git(repo.path, "show", "--name-status", "--format=", "HEAD") == "D\tgone"
    assert git(repo.path, "status", "--porcelain") == " M keep\n?? unrelated"


def test_commit_refuses_foreign_staged_changes(repo: GitRepo) -> None:
    put(repo, "a", "1\n")
    repo.commit("a", ["a"], NOW)
    put(repo, "b", "staged by someone else\n")
    git(repo.path, "add", "b")
    put(repo, "a", "2\n")
    with pytest.raises(GitError, match="already has staged changes: b"):
        repo.commit("a again", ["a"], LATER)
    assert repo.staged_paths() == ["b"]


def test_commit_failure_leaves_nothing_staged(repo: GitRepo) -> None:
    put(repo, "a", "1\n")
    repo.commit("a", ["a"], NOW)
    head = repo.head()
    put(repo, "a", "2\n")
    # git refuses the whole call for a path it cannot add (here: an ignored one).
    (repo.path / ".git" / "info" / "exclude").write_text("ignored.txt\n")
    put(repo, "ignored.txt", "x\n")
    with pytest.raises(GitError, match="ignored"):
        repo.commit("bad", ["a", "ignored.txt"], LATER)
    assert repo.staged_paths() == []
    assert repo.head() == head


def test_paths_that_do_not_exist_yet_are_skipped(repo: GitRepo) -> None:
    assert repo.commit("nothing", ["zones", "certs"], NOW) is None
    put(repo, "certs/a.txt", "1\n")
    sha = repo.commit("certs only", ["zones", "certs"], NOW)
    assert sha is not None
    assert git(repo.path, "show", "--name-only", "--format=", "HEAD") == "certs/a.txt"


def test_failed_signing_unstages(tmp_path: Path, git_isolated: None) -> None:
    broken = GitRepo.init(tmp_path / "r", signing=Signing(tmp_path / "no-such-key"))
    put(broken, "a", "1\n")
    with pytest.raises(GitError, match="commit"):
        broken.commit("a", ["a"], NOW)
    assert broken.staged_paths() == []


def test_dates_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        git_date(datetime(2026, 1, 1))
    assert git_date(datetime(2026, 1, 1, 1, tzinfo=UTC)) == "@1767229200 +0000"


def test_unsigned_repo_ignores_global_signing_config(
    tmp_path: Path, git_isolated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    global_config = tmp_path / "global-signing"
    global_config.write_text("[commit]\n\tgpgsign = true\n[tag]\n\tgpgsign = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    plain = GitRepo.init(tmp_path / "plain")
    put(plain, "a", "1\n")
    assert plain.commit("a", ["a"], NOW) is not None
    plain.tag("sslm/renew/x", "unsigned", NOW)
    assert [t.signed for t in plain.tags("sslm")] == [False]


# -- tags --------------------------------------------------------------------------------------


def commit_something(repo: GitRepo, text: str, now: datetime) -> str:
    put(repo, "state.txt", text)
    sha = repo.commit(f"state {text.strip()}", ["state.txt"], now)
    assert sha is not None
    return sha


def test_signed_tag_verifies_and_lists(repo: GitRepo, signer: Signer) -> None:
    first = commit_something(repo, "1\n", NOW)
    repo.tag("sslm/renew/2026-12-03T1300Z", "renew run 2\n\n# kept", LATER)
    repo.tag("sslm/renew/2026-12-03T1200Z", "renew run 1", NOW, target=first)
    repo.tag("other/x", "not listed", NOW)
    repo.verify_tag("sslm/renew/2026-12-03T1200Z", signer.allowed)

    infos = repo.tags("sslm/renew/**")
    assert [t.ref_name for t in infos] == [
        "sslm/renew/2026-12-03T1200Z",
        "sslm/renew/2026-12-03T1300Z",
    ]
    assert [t.tagger_time for t in infos] == [NOW, LATER]
    assert all(t.signed and t.annotated for t in infos)
    assert all(t.embedded_name == t.ref_name for t in infos)
    assert {t.target_sha for t in infos} == {first}
    assert [t.ref_name for t in repo.tags("sslm")] == [t.ref_name for t in infos]
    assert repo.tags("sslm/*") == []  # one level only; the names have two
    assert git(repo.path, "tag", "-l", "--format=%(contents:subject)", "sslm/renew/*T1300Z") == (
        "renew run 2"
    )


def test_untrusted_unsigned_and_lightweight_tags_fail(
    repo: GitRepo, signer: Signer, stranger: Signer
) -> None:
    commit_something(repo, "1\n", NOW)
    repo.tag("sslm/renew/signed", "m", NOW)
    with pytest.raises(TagVerificationError, match="signature not accepted"):
        repo.verify_tag("sslm/renew/signed", stranger.allowed)

    unsigned = GitRepo(repo.path)
    unsigned.tag("sslm/renew/unsigned", "m", NOW)
    with pytest.raises(TagVerificationError, match="not signed"):
        repo.verify_tag("sslm/renew/unsigned", signer.allowed)

    git(repo.path, "tag", "--no-sign", "sslm/renew/light")
    with pytest.raises(TagVerificationError, match="lightweight"):
        repo.verify_tag("sslm/renew/light", signer.allowed)
    light = next(t for t in repo.tags("sslm/renew") if t.ref_name == "sslm/renew/light")
    assert not light.annotated and not light.signed and light.embedded_name == ""

    with pytest.raises(TagVerificationError, match="no such tag"):
        repo.verify_tag("sslm/renew/absent", signer.allowed)
    with pytest.raises(TagVerificationError, match="no such tag"):
        repo.verify_tag("sslm", signer.allowed)  # a prefix of existing tags is not a tag


def test_tag_replayed_under_another_name_fails(repo: GitRepo, signer: Signer) -> None:
    commit_something(repo, "1\n", NOW)
    repo.tag("sslm/renew/A", "run A", NOW)
    tag_object = git(repo.path, "rev-parse", "refs/tags/sslm/renew/A")
    git(repo.path, "update-ref", "refs/tags/sslm/renew/B", tag_object)
    # git itself accepts the replayed tag: the name check is ours.
    verified = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={signer.allowed}", "verify-tag", "sslm/renew/B"],
        cwd=repo.path,
        capture_output=True,
    )
    assert verified.returncode == 0
    with pytest.raises(TagVerificationError, match="embedded tag name 'sslm/renew/A'"):
        repo.verify_tag("sslm/renew/B", signer.allowed)
    repo.verify_tag("sslm/renew/A", signer.allowed)


def test_missing_allowed_signers_file(repo: GitRepo, tmp_path: Path) -> None:
    commit_something(repo, "1\n", NOW)
    repo.tag("t", "m", NOW)
    with pytest.raises(TagVerificationError, match="missing"):
        repo.verify_tag("t", tmp_path / "absent")


# -- push --------------------------------------------------------------------------------------


@dataclass
class Race:
    remote: Path
    first: GitRepo
    second: GitRepo


@pytest.fixture
def race(tmp_path: Path, bare_remote: Path, signer: Signer) -> Race:
    first = GitRepo.clone(str(bare_remote), tmp_path / "one", signing=signer.signing)
    second = GitRepo.clone(str(bare_remote), tmp_path / "two", signing=signer.signing)
    return Race(bare_remote, first, second)


def remote_rev(race: Race, ref: str) -> str:
    return git(race.remote, "rev-parse", ref)


def test_push_after_losing_a_race_rebases_and_retags(race: Race, signer: Signer) -> None:
    put(race.first, "web.txt", "web\n")
    winner = race.first.commit("renew: web", ["web.txt"], NOW)
    race.first.push("origin", "main", [])

    put(race.second, "mail.txt", "mail\n")
    race.second.commit("renew: mail", ["mail.txt"], LATER)
    race.second.tag("sslm/renew/mail", "renew mail\n\nbody line", LATER)
    slept: list[float] = []
    race.second.push(
        "origin", "main", ["sslm/renew/mail"], backoff_seconds=0.25, sleep=slept.append
    )

    assert slept == [0.25]
    head = race.second.head()
    assert remote_rev(race, "main") == head
    assert remote_rev(race, "sslm/renew/mail^{commit}") == head
    assert git(race.remote, "rev-parse", "main^") == winner
    # The rebased commit keeps the injected clock and is signed again.
    assert git(race.second.path, "log", "-1", "--format=%at %ct") == (
        f"{int(LATER.timestamp())} {int(LATER.timestamp())}"
    )
    race.second.verify_commit("HEAD", signer.allowed)
    # The re-created tag keeps name, message and date, and verifies.
    race.second.verify_tag("sslm/renew/mail", signer.allowed)
    (info,) = race.second.tags("sslm/renew")
    assert info.tagger_time == LATER and info.target_sha == head
    assert git(race.remote, "tag", "-l", "--format=%(contents:subject)|%(contents:body)") == (
        "renew mail|body line"
    )


def test_push_gives_up_after_the_retries(race: Race) -> None:
    rounds: list[int] = []

    def retag_while_the_remote_keeps_moving() -> None:
        race.second.tag("sslm/renew/x", "x", LATER)
        rounds.append(1)
        put(race.first, "web.txt", f"web {len(rounds)}\n")
        race.first.commit("renew: web", ["web.txt"], NOW + timedelta(minutes=len(rounds)))
        race.first.push("origin", "main", [], retries=0)

    put(race.first, "web.txt", "web 0\n")
    race.first.commit("renew: web", ["web.txt"], NOW)
    race.first.push("origin", "main", [])
    put(race.second, "mail.txt", "mail\n")
    race.second.commit("renew: mail", ["mail.txt"], LATER)
    race.second.tag("sslm/renew/x", "x", LATER)

    with pytest.raises(GitError, match="still rejected after 3 attempt"):
        race.second.push(
            "origin",
            "main",
            ["sslm/renew/x"],
            retries=2,
            retag=retag_while_the_remote_keeps_moving,
            backoff_seconds=0,
        )
    assert len(rounds) == 2
    assert git(race.remote, "tag", "-l") == ""


def test_push_without_retries_fails_fast_and_keeps_the_tag(race: Race) -> None:
    put(race.first, "a.txt", "a\n")
    race.first.commit("a", ["a.txt"], NOW)
    race.first.push("origin", "main", [])
    put(race.second, "b.txt", "b\n")
    mine = race.second.commit("b", ["b.txt"], LATER)
    race.second.tag("t", "t", LATER)
    with pytest.raises(GitError, match="after 1 attempt"):
        race.second.push("origin", "main", ["t"], retries=0)
    assert race.second.rev_parse("t^{commit}") == mine


def test_push_conflict_aborts_the_rebase(race: Race) -> None:
    put(race.first, "README", "theirs\n")
    race.first.commit("theirs", ["README"], NOW)
    race.first.push("origin", "main", [])
    put(race.second, "README", "ours\n")
    mine = race.second.commit("ours", ["README"], LATER)
    race.second.tag("t", "t", LATER)
    with pytest.raises(GitError, match="conflict; rebase aborted"):
        race.second.push("origin", "main", ["t"], backoff_seconds=0)
    assert race.second.is_clean()
    assert race.second.head() == mine
    assert race.second.current_branch() == "main"
    assert race.second.rev_parse("t^{commit}") == mine
    assert not (race.second.path / ".git" / "rebase-merge").exists()


def test_push_of_an_existing_remote_tag_is_not_retried(race: Race) -> None:
    put(race.first, "a.txt", "a\n")
    race.first.commit("a", ["a.txt"], NOW)
    race.first.tag("t", "first", NOW)
    race.first.push("origin", "main", ["t"])
    race.second.fetch("origin")
    git(race.second.path, "merge", "-q", "--ff-only", "origin/main")
    put(race.second, "b.txt", "b\n")
    race.second.commit("b", ["b.txt"], LATER)
    git(race.second.path, "tag", "-d", "t")
    race.second.tag("t", "second", LATER)
    calls: list[float] = []
    with pytest.raises(GitError, match="already exists"):
        race.second.push("origin", "main", ["t"], sleep=calls.append)
    assert calls == []


def test_push_needs_the_branch_checked_out(race: Race) -> None:
    race.second.checkout_detached("HEAD")
    assert race.second.current_branch() is None
    with pytest.raises(GitError, match="needs main checked out"):
        race.second.push("origin", "main", [])


def test_fetch_and_checkout_detached_tag(race: Race, signer: Signer) -> None:
    put(race.first, "a.txt", "a\n")
    sha = race.first.commit("a", ["a.txt"], NOW)
    race.first.tag("sslm/renew/a", "a", NOW)
    race.first.push("origin", "main", ["sslm/renew/a"])
    race.second.fetch("origin")
    race.second.verify_tag("sslm/renew/a", signer.allowed)
    race.second.checkout_detached("sslm/renew/a")
    assert race.second.head() == sha
    assert race.second.current_branch() is None
    assert race.second.is_clean()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a git working copy"):
        GitRepo(tmp_path)


def test_url_tokens_never_reach_error_messages(tmp_path: Path, git_isolated: None) -> None:
    url = "https://ci-token:s3cr3t-value@127.0.0.1:9/state.git"
    with pytest.raises(GitError) as caught:
        GitRepo.clone(url, tmp_path / "clone")
    assert "s3cr3t-value" not in str(caught.value)
    assert "s3cr3t-value" not in caught.value.stderr
    assert "s3cr3t-value" not in " ".join(caught.value.command)
    assert "https://***@127.0.0.1:9/state.git" in str(caught.value)
