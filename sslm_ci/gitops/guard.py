"""The plaintext-secret guard: refuse to commit anything that looks like an unencrypted key.

It reads the git index (what the next commit will contain), not the working tree, so it sees
exactly what would be committed, including on a repository without any commit yet. The whole
index is scanned, not only the changed paths: a secret committed before the guard existed keeps
blocking until it is removed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from git import Repo
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from sslm_ci.errors import OperationalError
from sslm_ci.gitops.sops import is_sops_file

# Any PEM private key, encrypted PKCS#8 included: a passphrase in CI is no protection.
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
# The full bech32 body, so prose that merely mentions the prefix does not trip the guard;
# the optional tag covers variants such as post-quantum identities.
_AGE_SECRET_KEY = re.compile(rb"AGE-SECRET-KEY-(?:[A-Z0-9]+-)?1[02-9AC-HJ-NP-Z]{20,}")
_SECRET_NAMES = frozenset({"privkey.pem", "bundle.pem"})
_SECRET_SUFFIXES = (".key", ".agekey")
# Submodules have no blob; symlink targets are short strings but are still checked.
_GITLINK_MODE = "160000"


@dataclass(frozen=True)
class Finding:
    """One staged path that must not be committed, and why (never its content)."""

    path: str
    reason: str


class SecretsGuardError(OperationalError):
    """Staged content contains plaintext secrets; ``findings`` lists them."""

    def __init__(self, repo: Path, findings: list[Finding]) -> None:
        self.repo = repo
        self.findings = findings
        listing = "; ".join(f"{f.path}: {f.reason}" for f in findings)
        super().__init__(f"refusing to commit plaintext secrets in {repo}: {listing}")


def _has_secret_name(path: str) -> bool:
    name = PurePosixPath(path).name
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def findings_for_blob(path: str, data: bytes) -> list[Finding]:
    """Decide on one file's staged content; pure, so hooks and tests share the rules."""
    found: list[Finding] = []
    if _PEM_PRIVATE_KEY.search(data):
        found.append(Finding(path, "contains a PEM private key block"))
    if _AGE_SECRET_KEY.search(data):
        found.append(Finding(path, "contains an age secret key (AGE-SECRET-KEY-1…)"))
    if _has_secret_name(path) and not is_sops_file(data):
        found.append(Finding(path, "name marks a secret but the content is not a sops envelope"))
    return found


def _index_entries(repo: Repo) -> list[tuple[str, str, str]]:
    """``(mode, blob sha, path)`` per staged entry; conflicted paths appear once per stage."""
    listing = str(repo.git.execute(["git", "ls-files", "--stage", "-z"]))
    entries: list[tuple[str, str, str]] = []
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, sha, _stage = meta.split(" ")
        entries.append((mode, sha, path))
    return entries


def scan_for_plaintext_secrets(repo: Path) -> list[Finding]:
    """Scan every blob in ``repo``'s index; an empty list means the commit may proceed."""
    try:
        handle = Repo(repo)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise OperationalError(f"{repo}: not a git repository") from None
    with handle:
        try:
            findings: list[Finding] = []
            for mode, sha, path in _index_entries(handle):
                if mode == _GITLINK_MODE:
                    continue
                _, _, _, data = handle.git.get_object_data(sha)
                findings.extend(findings_for_blob(path, data))
        except GitCommandError as exc:
            raise OperationalError(
                f"{repo}: cannot read the git index (git exit {exc.status})"
            ) from None
    return findings


def assert_no_plaintext_secrets(repo: Path) -> None:
    findings = scan_for_plaintext_secrets(repo)
    if findings:
        raise SecretsGuardError(repo, findings)


def guard_main(repo: Path) -> int:
    """Pre-commit hook body: 0 when clean, 1 with one line per finding on stderr."""
    try:
        findings = scan_for_plaintext_secrets(repo)
    except OperationalError as exc:
        print(f"sslm-ci guard: {exc}", file=sys.stderr)
        return 1
    for finding in findings:
        print(f"sslm-ci guard: {finding.path}: {finding.reason}", file=sys.stderr)
    if findings:
        print(
            f"sslm-ci guard: refused {len(findings)} finding(s); encrypt with sops or unstage",
            file=sys.stderr,
        )
        return 1
    return 0
