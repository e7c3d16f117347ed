"""ACME accounts kept in the repo: ``accounts/<ca>/<server-id>/`` mirrors certbot's
``<config-dir>/accounts/`` for one directory URL. ``private_key.json`` is stored only as a
sops envelope (CI-only recipients); ``meta.json`` and ``regr.json`` hold no secret.

For a run the account is restored into a temporary certbot config dir (outside the repo) and
the temp dir is removed afterwards, so the plaintext key exists only while certbot runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from sslm_ci.fsutil import atomic_write
from sslm_ci.gitops.sops import Sops
from sslm_ci.store import SOPS_SUFFIX

ACCOUNTS_DIR = "accounts"
SECRET_NAMES = frozenset({"private_key.json"})


def account_rel(ca_name: str, server: str) -> str:
    server_id = hashlib.sha256(server.encode()).hexdigest()[:16]
    return f"{ACCOUNTS_DIR}/{ca_name}/{server_id}"


def has_account(repo: Path, ca_name: str, server: str) -> bool:
    root = repo / account_rel(ca_name, server) / "accounts"
    return root.is_dir() and any(
        p.name == f"private_key.json{SOPS_SUFFIX}" for p in root.rglob("*")
    )


def restore_account(repo: Path, sops: Sops, ca_name: str, server: str, config_dir: Path) -> None:
    """Copy the stored account into ``config_dir/accounts``, decrypting the key (mode 0600)."""
    src = repo / account_rel(ca_name, server) / "accounts"
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(src)
        if path.name.endswith(SOPS_SUFFIX):
            dest = config_dir / "accounts" / str(rel).removesuffix(SOPS_SUFFIX)
            atomic_write(dest, sops.decrypt(path), 0o600)
        else:
            atomic_write(config_dir / "accounts" / rel, path.read_bytes(), 0o644)


def save_account(repo: Path, sops: Sops, ca_name: str, server: str, config_dir: Path) -> list[str]:
    """Store the account certbot just registered; returns repo-relative paths written."""
    base_rel = account_rel(ca_name, server)
    src = config_dir / "accounts"
    written: list[str] = []
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(src)
        if path.name in SECRET_NAMES:
            target_rel = f"{base_rel}/accounts/{rel}{SOPS_SUFFIX}"
            sops.write_encrypted(repo / target_rel, path.read_bytes(), f"{base_rel}/accounts/{rel}")
        else:
            target_rel = f"{base_rel}/accounts/{rel}"
            atomic_write(repo / target_rel, path.read_bytes())
        written.append(target_rel)
    return written


def copy_accounts(src_config: Path, dest_config: Path) -> None:
    """Give another certbot process its own copy of an account (same key)."""
    src = src_config / "accounts"
    for path in sorted(src.rglob("*")):
        if path.is_file():
            dest = dest_config / "accounts" / path.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
            os.chmod(dest, path.stat().st_mode & 0o777)
