"""``make demo``: a full renew → roll → pull cycle on the embedded example inventory.

Everything is local and throw-away: a GitOps repo, a bare remote, age keys for CI and one
server, an SSH key that signs tags. No network, no root. The clock moves 2 h between renew and
roll with ``--now`` instead of sleeping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file

MAIL_HOST = "mail.example.com"


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    shown = " ".join(c if " " not in c else repr(c) for c in cmd)
    print(f"\n$ {shown}", flush=True)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print(out, flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo: command failed with exit {proc.returncode}")
    return proc.stdout


def main() -> None:
    started = time.monotonic()
    base = Path(os.environ.get("SSLM_CI_DEMO_DIR", "demo-out")).resolve()
    if base.exists():
        shutil.rmtree(base)
    keys = base / "keys"
    keys.mkdir(parents=True)
    sslm = [sys.executable, "-m", "sslm_ci"]

    ci_secret, ci_public = generate_age_identity()
    write_identity_file(keys / "ci.agekey", ci_secret, ci_public)
    mail_secret, mail_public = generate_age_identity()
    write_identity_file(keys / "mail.agekey", mail_secret, mail_public)
    signing_key = keys / "ci_signing_ed25519"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "sslm-ci-demo",
            "-f",
            str(signing_key),
        ],
        check=True,
    )
    pub = (keys / "ci_signing_ed25519.pub").read_text().split()
    allowed = keys / "allowed_signers"
    allowed.write_text(f'sslm-ci@localhost namespaces="git" {pub[0]} {pub[1]}\n')

    env = dict(os.environ)
    env.pop("SSLM_CI_NOW", None)
    env.update(
        {
            "SOPS_AGE_KEY_FILE": str(keys / "ci.agekey"),
            "SSLM_CI_SIGNING_KEY": str(signing_key),
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
    )
    remote = base / "remote.git"
    repo = base / "repo"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True, env=env)
    t0 = datetime.now(UTC).replace(microsecond=0)
    t_roll = t0 + timedelta(hours=2)

    print(f"sslm-ci demo in {base}")
    _run(
        [
            *sslm,
            "--now",
            t0.isoformat(),
            "init",
            str(repo),
            "--age-recipient",
            ci_public,
            "--host-recipient",
            f"{MAIL_HOST}={mail_public}",
        ],
        env,
    )
    _run(["git", "remote", "add", "origin", str(remote)], env, cwd=repo)
    _run(["git", "push", "-q", "-u", "origin", "main"], env, cwd=repo)

    _run([*sslm, "--repo", str(repo), "--now", t0.isoformat(), "renew"], env)
    _run([*sslm, "--repo", str(repo), "--now", t0.isoformat(), "roll"], env)
    _run([*sslm, "--repo", str(repo), "--now", t_roll.isoformat(), "roll"], env)
    print(
        "\n# example.com:mail-ec publishes DANE TLSA records, and this demo has no DNS server"
        "\n# ([[dns_primary]]) to prove they are served, so roll holds it. Force it (loudly):"
    )
    _run(
        [
            *sslm,
            "--repo",
            str(repo),
            "--now",
            t_roll.isoformat(),
            "roll",
            "-f",
            "example.com:mail-ec",
        ],
        env,
    )
    _run([*sslm, "--repo", str(repo), "--now", t_roll.isoformat(), "status"], env)

    server = base / "server-mail"
    prod = base / "prod-mail"
    server_env = dict(env)
    server_env.pop("SSLM_CI_SIGNING_KEY")
    server_env["SOPS_AGE_KEY_FILE"] = str(keys / "mail.agekey")
    _run(["git", "clone", "-q", str(remote), str(server)], server_env)
    pull = [
        *sslm,
        "--repo",
        str(server),
        "pull",
        "--host",
        MAIL_HOST,
        "--dest",
        str(prod),
        "--allowed-signers",
        str(allowed),
    ]
    _run(pull, server_env)
    _run(pull, server_env)  # second run: nothing new, no restart

    cert_dir = prod / "example.com" / "mail-ec" / "curr"
    root = repo / "certs" / "ca" / "my-root" / "curr" / "cert.pem"
    _run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(root),
            "-untrusted",
            str(cert_dir / "chain.pem"),
            str(cert_dir / "cert.pem"),
        ],
        env,
    )
    _run(["git", "log", "--oneline", "--decorate", "-n", "5"], env, cwd=repo)

    elapsed = time.monotonic() - started
    print(
        f"""
Demo finished in {elapsed:.1f} s. Where things are:
  GitOps repo (inventory, certs/, zones/):  {repo}
  bare remote (what CI pushes to):          {remote}
  server clone and its production dir:      {server}  ->  {prod}
  age keys (CI, mail server), signing key:  {keys}
  the installed mail cert:                  {cert_dir}
Private keys are in git only as sops envelopes: {repo}/certs/*/*/curr/privkey.pem.sops"""
    )


if __name__ == "__main__":
    main()
