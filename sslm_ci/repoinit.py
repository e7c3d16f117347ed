"""``sslm-ci init``: turn a directory into a ready GitOps repo.

Validates the inventory before writing anything, so a bad conf.d leaves no half-made repo.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sslm_ci.config.loader import load_inventory
from sslm_ci.errors import UsageError
from sslm_ci.fsutil import atomic_write
from sslm_ci.gitops.agekeys import public_key_of_identity_file
from sslm_ci.gitops.git import GitRepo
from sslm_ci.gitops.recipients import (
    RECIPIENTS_FILE,
    Recipients,
    load_recipients,
    render_recipients,
    render_sops_config,
)

GITIGNORE = """\
# sslm-ci: plaintext secrets never belong here (the commit guard refuses them too).
privkey.pem
bundle.pem
*.key
*.agekey
.sslm-ci/
"""

PRE_COMMIT_HOOK = """\
#!/bin/sh
# sslm-ci: refuse commits that stage a plaintext private key.
# The interpreter is the one sslm-ci was installed with when this repo was initialised.
if [ ! -x '{python}' ]; then
    echo "sslm-ci pre-commit guard: {python} is gone; reinstall the hook (sslm-ci init)" >&2
    exit 1
fi
exec '{python}' -m sslm_ci --repo "$(git rev-parse --show-toplevel)" guard
"""


def embedded_inventory() -> Path:
    """The example inventory shipped with the package (``inventory/`` of the source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "example_inventory", here.parent / "inventory"):
        if (candidate / "ssl-mgr.conf").is_file():
            return candidate
    raise UsageError("the embedded example inventory is missing from this installation")


def _ci_recipients_from_env(explicit: Sequence[str]) -> list[str]:
    if explicit:
        return list(explicit)
    key_file = os.environ.get("SOPS_AGE_KEY_FILE")
    if key_file and Path(key_file).is_file():
        return [public_key_of_identity_file(Path(key_file))]
    secret = os.environ.get("SOPS_AGE_KEY")
    if secret:
        import pyrage

        return [str(pyrage.x25519.Identity.from_str(secret.strip()).to_public())]
    raise UsageError(
        "init: no CI recipient: pass --age-recipient or set SOPS_AGE_KEY_FILE / SOPS_AGE_KEY"
    )


def _host_pairs(pairs: Sequence[str]) -> dict[str, str]:
    hosts: dict[str, str] = {}
    for pair in pairs:
        host, sep, key = pair.partition("=")
        if not sep or not host or not key:
            raise UsageError(f"--host-recipient {pair!r}: expected HOST=AGE_PUBKEY")
        hosts[host] = key
    return hosts


def init_repo(
    directory: Path,
    from_dir: Path | None,
    ci_recipients: Sequence[str],
    host_recipients: Sequence[str],
    now: datetime,
) -> str:
    source = from_dir or embedded_inventory()
    load_inventory(source, source.parent)  # validate before writing anything
    recipients = Recipients(
        ci=tuple(_ci_recipients_from_env(ci_recipients)), hosts=_host_pairs(host_recipients)
    )
    target_inv = directory / "inventory"
    if target_inv.exists():
        raise UsageError(f"init: {target_inv} already exists")

    directory.mkdir(parents=True, exist_ok=True)
    git = GitRepo.init(directory) if not (directory / ".git").exists() else GitRepo(directory)
    shutil.copytree(source, target_inv, ignore=shutil.ignore_patterns(".*", "*~"))
    atomic_write(directory / RECIPIENTS_FILE, render_recipients(recipients).encode())
    # Re-read what we wrote so the file format is checked by the same code that reads it.
    recipients = load_recipients(directory)
    inv = load_inventory(target_inv, directory)
    atomic_write(directory / ".sops.yaml", render_sops_config(inv, recipients).encode())
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        atomic_write(gitignore, GITIGNORE.encode())
    hook = directory / ".git" / "hooks" / "pre-commit"
    if not hook.exists():
        atomic_write(hook, PRE_COMMIT_HOOK.format(python=sys.executable).encode(), 0o755)
    sha = git.commit(
        "init: sslm-ci repository\n\nInventory, recipients and .sops.yaml.\n\nSslm-Stage: init\n",
        ["inventory", RECIPIENTS_FILE, ".sops.yaml", ".gitignore"],
        now,
    )
    if sha is None:
        raise UsageError(f"init: nothing to commit in {directory}")
    return sha
