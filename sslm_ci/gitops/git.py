"""git operations for the CI job and the servers: commit, signed tags, push with retry, verify.

Everything goes through the git CLI (GitPython's command interface): signing, verification and
rebase only exist there. The injected ``now`` becomes author, committer and tagger dates so the
history says when the run decided, not when a retry happened.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from git import Git, Repo
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from sslm_ci.errors import OperationalError, UsageError
from sslm_ci.gitops.guard import SecretsGuardError, assert_no_plaintext_secrets

DEFAULT_IDENTITY = ("sslm-ci", "sslm-ci@localhost")
SSH_SIGNATURE_HEADER = "-----BEGIN SSH SIGNATURE-----"
# Rejections another pusher can cause; anything else (hooks, existing tags, auth) is final.
_RETRYABLE_REJECTIONS = ("(fetch first)", "(non-fast-forward)")
# CI remotes often carry a token as URL userinfo (https://gitlab-ci-token:TOKEN@host/...).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_FIELD = "\0"
_RECORD = "\x1e"


class GitError(OperationalError):
    """A git command failed; carries the command (without ``-c`` options), status and stderr."""

    def __init__(
        self,
        message: str,
        command: Sequence[str] = (),
        status: int | None = None,
        stderr: str = "",
    ) -> None:
        self.command = [redact_url_credentials(part) for part in command]
        self.status = status
        self.stderr = redact_url_credentials(stderr)
        super().__init__(redact_url_credentials(message))


class TagVerificationError(OperationalError):
    """A tag is missing, lightweight, misnamed, unsigned or signed by an untrusted key."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"tag {name}: {reason}")


@dataclass(frozen=True)
class Signing:
    """SSH signing key for commits and tags; ``None`` means unsigned."""

    key_path: Path | None = None


UNSIGNED = Signing(None)


@dataclass(frozen=True)
class TagInfo:
    """A tag as ``for-each-ref`` reports it.

    ``signed`` says a signature is present, not that it is valid: use :meth:`GitRepo.verify_tag`.
    For a lightweight tag ``embedded_name`` is empty and ``tagger_time`` is the commit's date.
    """

    ref_name: str
    embedded_name: str
    target_sha: str
    tagger_time: datetime
    signed: bool
    annotated: bool


@dataclass(frozen=True)
class _TagRecipe:
    """What is needed to re-create an annotated tag after its commit was rebased."""

    name: str
    target_sha: str
    message: str
    raw_date: str


def redact_url_credentials(text: str) -> str:
    """Hide the userinfo part of URLs so tokens never reach logs or error messages."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


def git_date(now: datetime) -> str:
    """``now`` in git's internal date format; naive datetimes are refused (ambiguous)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return f"@{int(now.timestamp())} +0000"


def _first_lines(text: str, limit: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[:limit])


def _reject_option_like(value: str, what: str) -> None:
    # These strings go on git's command line; one starting with "-" would be read as an option.
    if not value or value.startswith("-"):
        raise GitError(f"invalid {what}: {value!r}")


def write_allowed_signers(path: Path, principal: str, public_key_line: str) -> None:
    """Write an ``allowed_signers`` file trusting one SSH key for git signatures."""
    if not principal or any(ch.isspace() for ch in principal):
        raise ValueError(f"principal must be one word, got {principal!r}")
    fields = public_key_line.split()
    if len(fields) < 2 or "\n" in public_key_line.strip():
        raise ValueError("public_key_line must look like '<type> <base64> [comment]'")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{principal} namespaces="git" {" ".join(fields)}\n', encoding="utf-8")
    os.chmod(path, 0o644)


def _base_env(identity: tuple[str, str]) -> dict[str, str]:
    name, email = identity
    return {
        # An editor or a credential prompt would hang a CI job forever.
        "GIT_EDITOR": "false",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def _execute(
    git: Git, args: Sequence[str], config: Sequence[str], env: Mapping[str, str]
) -> tuple[int, str, str]:
    command = ["git", *config, *args]
    try:
        status, out, err = git.execute(
            command, with_extended_output=True, with_exceptions=False, env=env
        )
    except GitCommandError as exc:  # e.g. git not installed
        raise GitError(
            f"git {' '.join(args)}: {exc}", command=args, status=None, stderr=str(exc.stderr)
        ) from None
    return int(status), str(out), str(err)


class GitRepo:
    """A working copy plus the identity and signing key every command uses."""

    def __init__(
        self,
        path: Path,
        signing: Signing = UNSIGNED,
        identity: tuple[str, str] = DEFAULT_IDENTITY,
    ) -> None:
        try:
            repo = Repo(path)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise GitError(f"{path}: not a git working copy") from None
        self.path = path
        self.signing = signing
        self.identity = identity
        self._git = repo.git
        self._env = _base_env(identity)
        signed = signing.key_path is not None
        config = [
            "-c",
            f"commit.gpgsign={str(signed).lower()}",
            "-c",
            f"tag.gpgsign={str(signed).lower()}",
        ]
        if signing.key_path is not None:
            config += [
                "-c",
                "gpg.format=ssh",
                "-c",
                f"user.signingkey={signing.key_path.resolve()}",
            ]
        self._config = config

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: Path,
        initial_branch: str = "main",
        *,
        signing: Signing = UNSIGNED,
        identity: tuple[str, str] = DEFAULT_IDENTITY,
    ) -> GitRepo:
        _reject_option_like(initial_branch, "branch name")
        path.mkdir(parents=True, exist_ok=True)
        args = ["init", "-q", "-b", initial_branch, "--", str(path)]
        status, _, err = _execute(Git(), args, [], _base_env(identity))
        if status != 0:
            raise GitError(f"git init {path} failed: {_first_lines(err)}", args, status, err)
        return cls(path, signing, identity)

    @classmethod
    def clone(
        cls,
        url: str,
        path: Path,
        *,
        signing: Signing = UNSIGNED,
        identity: tuple[str, str] = DEFAULT_IDENTITY,
    ) -> GitRepo:
        args = ["clone", "-q", "--", url, str(path)]
        status, _, err = _execute(Git(), args, [], _base_env(identity))
        if status != 0:
            raise GitError(f"git clone {url} failed: {_first_lines(err)}", args, status, err)
        return cls(path, signing, identity)

    # -- plumbing ----------------------------------------------------------------------------

    def _run_status(
        self, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> tuple[int, str, str]:
        merged = {**self._env, **(env or {})}
        return _execute(self._git, args, self._config, merged)

    def _run(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        status, out, err = self._run_status(args, env)
        if status != 0:
            raise GitError(
                f"git {' '.join(args)} failed (exit {status}): {_first_lines(err or out)}",
                args,
                status,
                err,
            )
        return out

    # -- queries -----------------------------------------------------------------------------

    def rev_parse(self, ref: str) -> str:
        _reject_option_like(ref, "revision")
        return self._run(["rev-parse", "--verify", "--quiet", ref]).strip()

    def head(self) -> str:
        return self.rev_parse("HEAD")

    def remote_named(self, wanted: str | None) -> str | None:
        """``wanted`` if this repo has it (GitError if not); else 'origin' when present;
        else None (a repo with no remote: commits and tags stay local)."""
        names = self._run(["remote"]).split()
        if wanted:
            if wanted not in names:
                raise UsageError(f"git remote {wanted!r} does not exist in {self.path}")
            return wanted
        return "origin" if "origin" in names else None

    def current_branch(self) -> str | None:
        """The checked-out branch, or None on a detached HEAD."""
        status, out, err = self._run_status(["symbolic-ref", "--quiet", "--short", "HEAD"])
        if status == 0:
            return out.strip()
        if status == 1:
            return None
        raise GitError(f"git symbolic-ref HEAD failed: {_first_lines(err)}", [], status, err)

    def is_clean(self) -> bool:
        """No staged, unstaged or untracked (non-ignored) changes."""
        return self._run(["status", "--porcelain", "--untracked-files=normal"]).strip() == ""

    def staged_paths(self) -> list[str]:
        out = self._run(["diff", "--cached", "--name-only", "-z"])
        return [p for p in out.split("\0") if p]

    def tags(self, pattern: str = "**") -> list[TagInfo]:
        """Tags under ``refs/tags/<pattern>`` (``*`` stays within one level, ``**`` crosses
        slashes, a plain prefix such as ``sslm/renew`` matches everything below it), ordered by
        tagger time then name."""
        infos = [
            TagInfo(
                ref_name=rec["name"],
                embedded_name=rec["tag"],
                target_sha=rec["peeled"] or rec["object"],
                tagger_time=datetime.fromtimestamp(
                    int(rec["taggerdate"] or rec["committerdate"] or 0), UTC
                ),
                signed=bool(rec["signature"].strip()),
                annotated=rec["type"] == "tag",
            )
            for rec in self._tag_records(f"refs/tags/{pattern}")
        ]
        return sorted(infos, key=lambda info: (info.tagger_time, info.ref_name))

    _TAG_FIELDS = (
        ("name", "%(refname)"),
        ("tag", "%(tag)"),
        ("type", "%(objecttype)"),
        ("object", "%(objectname)"),
        ("peeled", "%(*objectname)"),
        ("taggerdate", "%(taggerdate:unix)"),
        ("taggerraw", "%(taggerdate:raw)"),
        ("committerdate", "%(committerdate:unix)"),
        ("contents", "%(contents)"),
        ("signature", "%(contents:signature)"),
    )

    def _tag_records(self, ref_pattern: str) -> list[dict[str, str]]:
        fmt = "%00".join(spec for _, spec in self._TAG_FIELDS) + "%1e"
        out = self._run(["for-each-ref", f"--format={fmt}", ref_pattern])
        records = []
        for chunk in out.split(_RECORD):
            chunk = chunk.lstrip("\n")
            if not chunk:
                continue
            values = chunk.split(_FIELD)
            if len(values) != len(self._TAG_FIELDS):
                raise GitError(f"unexpected for-each-ref output for {ref_pattern}")
            record = dict(zip((key for key, _ in self._TAG_FIELDS), values, strict=True))
            record["name"] = record["name"].removeprefix("refs/tags/")
            records.append(record)
        return records

    def _tag_record(self, name: str) -> dict[str, str] | None:
        # for-each-ref also matches everything below a prefix, so pick the exact ref.
        for record in self._tag_records(f"refs/tags/{name}"):
            if record["name"] == name:
                return record
        return None

    # -- working copy ------------------------------------------------------------------------

    def fetch(self, remote: str) -> None:
        """Fetch branches and tags; a tag that moved on the remote makes this fail on purpose."""
        _reject_option_like(remote, "remote")
        self._run(["fetch", "-q", "--tags", remote])

    def checkout_detached(self, ref: str) -> None:
        _reject_option_like(ref, "revision")
        self._run(["checkout", "-q", "--detach", ref])

    def commit(self, message: str, paths: Sequence[str], now: datetime) -> str | None:
        """Commit exactly ``paths`` (additions, changes, deletions) dated ``now``.

        Returns the new sha, or None when those paths are unchanged. All or nothing: if the
        secret guard refuses or git fails, our paths are unstaged again before raising.
        """
        if not paths:
            raise ValueError("commit needs at least one path")
        date = git_date(now)
        # A path that is neither on disk nor tracked (say, a directory no run has created yet)
        # has nothing to stage; `git add` would reject the whole call for it.
        paths = [p for p in paths if os.path.lexists(self.path / p) or self._is_tracked(p)]
        if not paths:
            return None
        pathspec = ["--", *paths]
        unrelated = self.staged_paths()
        if unrelated:
            # The guard checks the index and the commit takes the index: anything staged before
            # we started would ride along unreviewed.
            raise GitError(
                f"{self.path}: index already has staged changes: {', '.join(unrelated[:10])}"
            )
        try:
            self._run(["add", "-A", *pathspec])
            status, _, err = self._run_status(["diff", "--cached", "--quiet", *pathspec])
            if status == 0:
                return None
            if status != 1:
                raise GitError(f"git diff --cached failed: {_first_lines(err)}", [], status, err)
            assert_no_plaintext_secrets(self.path)
            sign = ["-S"] if self.signing.key_path is not None else ["--no-gpg-sign"]
            self._run(
                ["commit", "-q", *sign, "--cleanup=whitespace", "-m", message],
                env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date},
            )
        except (GitError, SecretsGuardError):
            self._unstage(paths)
            raise
        return self.head()

    def _is_tracked(self, path: str) -> bool:
        return self._run(["ls-files", "-z", "--", path]) != ""

    def _unstage(self, paths: Sequence[str]) -> None:
        # `git reset -- paths` also works before the first commit (it resets to the empty tree).
        self._run_status(["reset", "-q", "--", *paths])

    # -- tags --------------------------------------------------------------------------------

    def tag(self, name: str, message: str, now: datetime, target: str = "HEAD") -> None:
        """Create an annotated tag (signed when a key is configured) with tagger date ``now``."""
        _reject_option_like(name, "tag name")
        commit = self.rev_parse(f"{target}^{{commit}}")
        self._create_tag(name, commit, message, git_date(now))

    def _create_tag(self, name: str, commit: str, message: str, date: str) -> None:
        sign = ["-s"] if self.signing.key_path is not None else ["--no-sign"]
        self._run(
            ["tag", "-a", *sign, "--cleanup=whitespace", "-m", message, name, commit],
            env={"GIT_COMMITTER_DATE": date},
        )

    def verify_tag(self, name: str, allowed_signers: Path) -> None:
        """Accept only an annotated, SSH-signed tag whose embedded name equals its ref name and
        whose signer ``allowed_signers`` trusts.

        ``git verify-tag`` alone would accept a validly signed tag pushed under another name,
        which lets an attacker replay an old deployment under a new tag.
        """
        _reject_option_like(name, "tag name")
        record = self._tag_record(name)
        if record is None:
            raise TagVerificationError(name, "no such tag")
        if record["type"] != "tag":
            raise TagVerificationError(name, "lightweight tag (not an annotated, signed tag)")
        if record["tag"] != name:
            raise TagVerificationError(
                name, f"embedded tag name {record['tag']!r} differs from the ref name"
            )
        if not record["signature"].startswith(SSH_SIGNATURE_HEADER):
            raise TagVerificationError(name, "not signed with an SSH key")
        if not allowed_signers.is_file():
            raise TagVerificationError(name, f"allowed signers file {allowed_signers} is missing")
        status, out, err = _execute(
            self._git,
            ["verify-tag", f"refs/tags/{name}"],
            ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers.resolve()}"],
            self._env,
        )
        if status != 0:
            raise TagVerificationError(
                name, f"signature not accepted: {_first_lines(err or out) or f'exit {status}'}"
            )

    def verify_commit(self, ref: str, allowed_signers: Path) -> None:
        _reject_option_like(ref, "revision")
        status, out, err = _execute(
            self._git,
            ["verify-commit", ref],
            ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers.resolve()}"],
            self._env,
        )
        if status != 0:
            raise GitError(
                f"commit {ref}: signature not accepted: {_first_lines(err or out)}",
                ["verify-commit", ref],
                status,
                err,
            )

    # -- push --------------------------------------------------------------------------------

    def push(
        self,
        remote: str,
        branch: str,
        tag_names: Sequence[str],
        retries: int = 3,
        retag: Callable[[], None] | None = None,
        *,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Push ``branch`` and the tags atomically; when another run pushed first, fetch, rebase
        (re-signing), move the tags onto the rebased commits and try again, ``retries`` times.

        Tags are re-created with their message and tagger date, or by ``retag`` when given (it
        runs after the old tags were deleted and must create all of ``tag_names``).
        """
        _reject_option_like(remote, "remote")
        _reject_option_like(branch, "branch name")
        for name in tag_names:
            _reject_option_like(name, "tag name")
        if self.current_branch() != branch:
            raise GitError(f"{self.path}: push of {branch} needs {branch} checked out")
        refspecs = [f"refs/heads/{branch}:refs/heads/{branch}"]
        refspecs += [f"refs/tags/{name}:refs/tags/{name}" for name in tag_names]
        args = ["push", "--atomic", "--porcelain", remote, *refspecs]
        attempt = 0
        while True:
            status, out, err = self._run_status(args)
            if status == 0:
                return
            rejected = [line for line in out.splitlines() if line.startswith("!")]
            branch_line = next(
                (line for line in rejected if line.split("\t")[1:2] == [refspecs[0]]), ""
            )
            if not any(reason in branch_line for reason in _RETRYABLE_REJECTIONS):
                detail = _first_lines("\n".join(rejected) or err)
                raise GitError(f"push to {remote} failed: {detail}", args, status, err)
            if attempt >= retries:
                raise GitError(
                    f"push to {remote} still rejected after {attempt + 1} attempt(s): "
                    f"{branch} keeps moving on the remote",
                    args,
                    status,
                    err,
                )
            attempt += 1
            if backoff_seconds > 0:
                sleep(backoff_seconds * 2 ** (attempt - 1))
            self._catch_up(remote, branch, tag_names, retag)

    def _catch_up(
        self,
        remote: str,
        branch: str,
        tag_names: Sequence[str],
        retag: Callable[[], None] | None,
    ) -> None:
        upstream = f"refs/remotes/{remote}/{branch}"
        recipes = [self._tag_recipe(name) for name in tag_names]
        # Only the branch: fetching tags could clobber the local ones we are about to move.
        self._run(["fetch", "-q", "--no-tags", remote, f"+refs/heads/{branch}:{upstream}"])
        before = self._local_commits(upstream)
        self._rebase(upstream)
        after = self._local_commits(upstream)
        if len(before) == len(after):
            moved = dict(zip(before, after, strict=True))
        elif before and after:
            # A commit became empty upstream and was dropped: only the tip is unambiguous.
            moved = {before[-1]: after[-1]}
        else:
            moved = {before[-1]: self.head()} if before else {}
        for recipe in recipes:
            self._run(["tag", "-d", recipe.name])
        if retag is not None:
            retag()
            missing = [name for name in tag_names if self._tag_record(name) is None]
            if missing:
                raise GitError(f"retag did not re-create: {', '.join(missing)}")
            return
        for recipe in recipes:
            if recipe.target_sha in before and recipe.target_sha not in moved:
                raise GitError(f"tag {recipe.name}: its commit was dropped by the rebase")
            target = moved.get(recipe.target_sha, recipe.target_sha)
            self._create_tag(recipe.name, target, recipe.message, recipe.raw_date)

    def _tag_recipe(self, name: str) -> _TagRecipe:
        record = self._tag_record(name)
        if record is None:
            raise GitError(f"tag {name} does not exist")
        if record["type"] != "tag":
            raise GitError(f"tag {name} is lightweight; only annotated tags can be carried over")
        message = record["contents"]
        if record["signature"]:
            message = message.removesuffix(record["signature"])
        return _TagRecipe(
            name=name,
            target_sha=record["peeled"],
            message=message,
            raw_date="@" + record["taggerraw"],
        )

    def _local_commits(self, upstream: str) -> list[str]:
        out = self._run(["rev-list", "--reverse", f"{upstream}..HEAD"])
        return out.split()

    def _rebase(self, upstream: str) -> None:
        # Keeping the committer date = author date keeps the injected clock in the history;
        # commit.gpgsign from our -c options re-signs every rewritten commit. --autostash: a
        # stage may push mid-run (the ACME publish commit) while its other writes are pending.
        status, out, err = self._run_status(
            ["rebase", "--autostash", "--committer-date-is-author-date", upstream]
        )
        if status == 0:
            return
        # Abort unconditionally: harmless when git refused to start, and a half-done rebase
        # must never be left behind for the next run to trip over.
        self._run_status(["rebase", "--abort"])
        conflict = "CONFLICT" in out or "conflict" in err.lower()
        what = "hit a conflict" if conflict else "failed"
        raise GitError(
            f"rebase onto {upstream} {what}; rebase aborted, nothing pushed: "
            f"{_first_lines(out + chr(10) + err)}",
            ["rebase", upstream],
            status,
            err,
        )
