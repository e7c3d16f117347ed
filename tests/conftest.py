"""Shared pytest fixtures."""

from __future__ import annotations

# ============================================================================================
# gitops fixtures (age identities, SSH signing keys, isolated git, bare remotes).
# Self-contained: they depend on nothing else in this file.
# ============================================================================================
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file

pytest_plugins = ["tests.rig.fixtures"]

GITOPS_TEST_IDENTITY = ("sslm-ci test", "sslm-ci-test@localhost")


@dataclass(frozen=True)
class AgeIdentity:
    secret: str
    public: str
    key_file: Path


@dataclass(frozen=True)
class SshSigningKey:
    private_key: Path
    public_line: str


@pytest.fixture
def git_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the developer's ~/.gitconfig (signing, hooks, default branch) out of the tests."""
    global_config = tmp_path / "gitconfig-global"
    global_config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    name, email = GITOPS_TEST_IDENTITY
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", name)
        monkeypatch.setenv(f"GIT_{role}_EMAIL", email)
    yield


@pytest.fixture
def age_identity(tmp_path: Path) -> Callable[[str], AgeIdentity]:
    """Factory: ``age_identity("ci")`` makes a fresh X25519 identity file outside any repo."""
    key_dir = tmp_path / "age-keys"

    def make(name: str) -> AgeIdentity:
        secret, public = generate_age_identity()
        key_file = key_dir / f"{name}.agekey"
        write_identity_file(key_file, secret, public)
        return AgeIdentity(secret, public, key_file)

    return make


@pytest.fixture
def ssh_signing_key(tmp_path: Path) -> Callable[[str], SshSigningKey]:
    """Factory: an unencrypted ed25519 key made by the real ssh-keygen."""
    key_dir = tmp_path / "ssh-keys"
    key_dir.mkdir(exist_ok=True)

    def make(name: str) -> SshSigningKey:
        private_key = key_dir / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private_key)],
            check=True,
            capture_output=True,
        )
        public_line = private_key.with_name(name + ".pub").read_text().strip()
        return SshSigningKey(private_key, public_line)

    return make


@pytest.fixture
def bare_remote(tmp_path: Path, git_isolated: None) -> Path:
    """A bare repository on branch ``main`` holding one initial commit (``README``)."""
    remote = tmp_path / "remote.git"
    seed = tmp_path / "remote-seed"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "README").write_text("state repository\n")
    for args in (
        ["add", "README"],
        ["commit", "-q", "--no-gpg-sign", "-m", "initial"],
        ["push", "-q", str(remote), "main"],
    ):
        subprocess.run(["git", *args], cwd=seed, check=True, capture_output=True)
    return remote


# ============================================================================================
# end of gitops fixtures
# ============================================================================================


# ============================================================================================
# Real tools the suite drives. A missing one fails the run at once with one clear line
# (never a silent skip), whether or not CI=true is set.
# ============================================================================================
REQUIRED_TOOLS = (
    "git",
    "openssl",
    "ssh-keygen",
    "pebble",
    "named",
    "named-checkconf",
    "named-checkzone",
    "rndc",
    "rndc-confgen",
    "unbound",
    "ldns-dane",
    "tlsa",
    "chromium",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    import shutil

    from sslm_ci.errors import OperationalError
    from sslm_ci.gitops.sops import resolve_sops_binary

    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    try:
        resolve_sops_binary()
    except OperationalError as exc:
        missing.append(f"sops ({exc})")
    if missing:
        pytest.exit(
            "missing tools for the real-part tests: "
            + ", ".join(missing)
            + " (run 'make test' as root to install them)",
            returncode=3,
        )
