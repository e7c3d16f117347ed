"""``certbot certonly --manual --csr`` against the rig's pebble, one fresh run directory each."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.rig.acme_rig import AcmeRig
from tests.rig.process import RigError


def certbot_path() -> Path:
    """The certbot installed next to the running interpreter (the project's venv)."""
    path = Path(sys.executable).with_name("certbot")
    if not path.exists():
        raise RigError("certbot", f"not installed next to {sys.executable}")
    return path


@dataclass(frozen=True)
class CertbotRun:
    result: subprocess.CompletedProcess[str]
    run_dir: Path

    @property
    def cert(self) -> Path:
        return self.run_dir / "out" / "cert.pem"

    @property
    def chain(self) -> Path:
        return self.run_dir / "out" / "chain.pem"

    @property
    def fullchain(self) -> Path:
        return self.run_dir / "out" / "fullchain.pem"

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def certonly_argv(
    rig: AcmeRig,
    *,
    csr: Path,
    run_dir: Path,
    challenge: Literal["dns", "http"],
    auth_hook: str,
    cleanup_hook: str,
    extra_args: Sequence[str] = (),
) -> list[str]:
    out = run_dir / "out"
    return [
        str(certbot_path()),
        "certonly",
        "--manual",
        "--preferred-challenges",
        challenge,
        "--manual-auth-hook",
        auth_hook,
        "--manual-cleanup-hook",
        cleanup_hook,
        "--csr",
        str(csr),
        # opened with O_EXCL: a fresh directory per run, else the issued cert is lost
        "--cert-path",
        str(out / "cert.pem"),
        "--chain-path",
        str(out / "chain.pem"),
        "--fullchain-path",
        str(out / "fullchain.pem"),
        "--config-dir",
        str(run_dir / "config"),
        "--work-dir",
        str(run_dir / "work"),
        "--logs-dir",
        str(run_dir / "logs"),
        "--server",
        rig.directory_url,
        "--agree-tos",
        "--register-unsafely-without-email",
        "--non-interactive",
        *extra_args,
    ]


def run_certonly(
    rig: AcmeRig,
    *,
    csr: Path,
    run_dir: Path,
    challenge: Literal["dns", "http"],
    auth_hook: str,
    cleanup_hook: str,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> CertbotRun:
    """Runs certbot (hooks have no timeout inside certbot: this bounds the whole run)."""
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RigError("certbot", f"run directory {run_dir} is not empty")
    (run_dir / "out").mkdir(parents=True, exist_ok=True)
    argv = certonly_argv(
        rig,
        csr=csr,
        run_dir=run_dir,
        challenge=challenge,
        auth_hook=auth_hook,
        cleanup_hook=cleanup_hook,
        extra_args=extra_args,
    )
    result = subprocess.run(
        argv,
        env=rig.env(extra_env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    return CertbotRun(result, run_dir)
