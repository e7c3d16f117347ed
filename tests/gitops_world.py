"""A throw-away GitOps world for end-to-end tests: a repo made by ``sslm-ci init``, a bare
remote, age identities for CI and servers, an SSH tag-signing key. Every part is real (git,
the sops binary, ssh-keygen); commands run through the click CLI in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from sslm_ci.cli import cli
from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file

PROJECT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOSTS = ("mail.example.com", "web.example.com", "ns1.example.com")


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env
    ).stdout


@dataclass
class World:
    base: Path
    inventory_src: Path
    repo: Path = field(init=False)
    remote: Path = field(init=False)
    keys: Path = field(init=False)
    ci_public: str = field(init=False)
    host_public: dict[str, str] = field(default_factory=dict)
    signing_key: Path = field(init=False)
    allowed_signers: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo = self.base / "repo"
        self.remote = self.base / "remote.git"
        self.keys = self.base / "keys"
        self.keys.mkdir(parents=True)
        secret, self.ci_public = generate_age_identity()
        write_identity_file(self.keys / "ci.agekey", secret, self.ci_public)
        for host in HOSTS:
            secret, public = generate_age_identity()
            write_identity_file(self.keys / f"{host}.agekey", secret, public)
            self.host_public[host] = public
        self.signing_key = self.keys / "signing_ed25519"
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "test",
                "-f",
                str(self.signing_key),
            ],
            check=True,
        )
        kind, blob = (self.keys / "signing_ed25519.pub").read_text().split()[:2]
        self.allowed_signers = self.keys / "allowed_signers"
        self.allowed_signers.write_text(f'sslm-ci@localhost namespaces="git" {kind} {blob}\n')
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)

    # -- environment ---------------------------------------------------------------------------
    def env(self, identity: str = "ci", signed: bool = True) -> dict[str, str]:
        env = {
            "SOPS_AGE_KEY_FILE": str(self.keys / f"{identity}.agekey"),
            "SOPS_AGE_KEY": "",
            "SSLM_CI_NOW": "",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH": f"{PROJECT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        if signed:
            env["SSLM_CI_SIGNING_KEY"] = str(self.signing_key)
        else:
            env["SSLM_CI_SIGNING_KEY"] = ""
        return env

    def run(
        self,
        *args: str,
        identity: str = "ci",
        signed: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ) -> Result:
        env = self.env(identity, signed)
        if extra_env:
            env.update(extra_env)
        # CliRunner sets these in os.environ for the call, so sops/git subprocesses see them.
        clean_env: dict[str, str | None] = {k: (v or None) for k, v in env.items()}
        return CliRunner().invoke(cli, list(args), env=clean_env, catch_exceptions=False)

    def sslm(self, *args: str, now: datetime = T0, **kw: object) -> Result:
        return self.run("--repo", str(self.repo), "--now", now.isoformat(), *args, **kw)  # type: ignore[arg-type]

    # -- setup ---------------------------------------------------------------------------------
    def init(self) -> Result:
        hosts = [f"--host-recipient={h}={k}" for h, k in self.host_public.items()]
        result = self.run(
            "--now",
            T0.isoformat(),
            "init",
            str(self.repo),
            "--from",
            str(self.inventory_src),
            "--age-recipient",
            self.ci_public,
            *hosts,
        )
        assert result.exit_code == 0, result.output
        git(self.repo, "remote", "add", "origin", str(self.remote))
        git(self.repo, "push", "-q", "-u", "origin", "main", env=self.env())
        return result

    def server_clone(self, host: str) -> Path:
        path = self.base / f"server-{host}"
        if not path.exists():
            git(self.base, "clone", "-q", str(self.remote), str(path), env=self.env())
        return path

    def pull(
        self,
        host: str,
        dest: Path | None = None,
        *extra: str,
        allowed: bool = True,
        identity: str | None = None,
    ) -> Result:
        clone = self.server_clone(host)
        dest = dest or self.base / f"prod-{host}"
        args = ["--repo", str(clone), "pull", "--host", host, "--dest", str(dest), *extra]
        if allowed:
            args += ["--allowed-signers", str(self.allowed_signers)]
        return self.run(*args, identity=identity or host, signed=False)

    def remote_tags(self) -> list[str]:
        return git(self.remote, "tag", "--list").split()


def copy_inventory(dest: Path, src: Path = PROJECT / "inventory") -> Path:
    shutil.copytree(src, dest)
    return dest


def later(hours: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)
