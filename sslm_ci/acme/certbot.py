"""certbot command lines (pure) and the ACME directory a CA entry points at.

We drive certbot in manual mode with our own CSR, so the private key never leaves sslm-ci and
the result is not a certbot "lineage": every renewal is a fresh ``certonly``.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from sslm_ci.config.model import CaInfo

LE_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LE_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class CertbotDirs:
    """certbot's state, one set per process: two certbots sharing a config dir refuse to run."""

    config: Path
    work: Path
    logs: Path

    @classmethod
    def under(cls, base: Path) -> CertbotDirs:
        return cls(base / "config", base / "work", base / "logs")

    def args(self) -> list[str]:
        return [
            "--config-dir",
            str(self.config),
            "--work-dir",
            str(self.work),
            "--logs-dir",
            str(self.logs),
        ]


def directory_url(ca: CaInfo, test: bool) -> str:
    """``ca_server``, else Let's Encrypt; ``-t/--test`` switches to Let's Encrypt staging."""
    if test:
        return LE_STAGING
    return ca.server or LE_PRODUCTION


def certbot_base() -> list[str]:
    """certbot from this interpreter's environment (it has no ``__main__``; ``SSLM_CI_CERTBOT``
    names another certbot executable)."""
    override = os.environ.get("SSLM_CI_CERTBOT")
    if override:
        return [override]
    return [sys.executable, "-c", "import sys; from certbot.main import main; sys.exit(main())"]


def hook_command(phase: str, kind: str, ident: str) -> str:
    # certbot runs the hook through /bin/sh -c, but first checks that the first word is an
    # executable: quote only where needed (shlex leaves a plain path bare).
    parts = [sys.executable, "-m", "sslm_ci.acme.hook", phase, kind, ident]
    return " ".join(shlex.quote(p) for p in parts)


def register_command(dirs: CertbotDirs, server: str, email: str | None) -> list[str]:
    who = ["-m", email] if email else ["--register-unsafely-without-email"]
    return [
        *certbot_base(),
        "register",
        "--non-interactive",
        "--agree-tos",
        "--no-eff-email",
        *who,
        "--server",
        server,
        *dirs.args(),
    ]


def certonly_command(
    *,
    ident: str,
    kind: str,
    csr: Path,
    out_dir: Path,
    dirs: CertbotDirs,
    server: str,
    preferred_chain: str | None = None,
    profile: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    challenge = "dns" if kind == "dns-01" else "http"
    cmd = [
        *certbot_base(),
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--manual",
        "--preferred-challenges",
        challenge,
        "--manual-auth-hook",
        hook_command("auth", kind, ident),
        "--manual-cleanup-hook",
        hook_command("cleanup", kind, ident),
        "--csr",
        str(csr),
        # certbot opens these with O_EXCL: out_dir must be fresh for every run.
        "--cert-path",
        str(out_dir / "cert.pem"),
        "--chain-path",
        str(out_dir / "chain.pem"),
        "--fullchain-path",
        str(out_dir / "fullchain.pem"),
        "--server",
        server,
        *dirs.args(),
    ]
    if preferred_chain:
        cmd += ["--preferred-chain", preferred_chain]
    if profile:
        cmd += ["--preferred-profile", profile]
    if dry_run:
        cmd.append("--dry-run")
    return cmd
