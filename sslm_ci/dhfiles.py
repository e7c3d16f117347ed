"""Diffie-Hellman parameter files (``sslm-ci dhparm``): the I/O around :mod:`sslm_ci.pki.dh`.

RFC 7919 named groups never change, so they are written only when absent. Classic generated
parameters are refreshed once older than ``max_age_days`` (ssl-mgr: 120). ``dhparam.pem``
points at the first kind requested.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sslm_ci.errors import UsageError
from sslm_ci.fsutil import atomic_write
from sslm_ci.pki import dh

NAMED = ("ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192")


def _file_name(kind: str) -> str:
    return f"{kind}.pem" if kind in NAMED else f"dh{kind}.pem"


def ensure_dh_files(
    out_dir: Path, kinds: Sequence[str], now: datetime, max_age_days: int = 120
) -> list[str]:
    for kind in kinds:
        if kind not in NAMED and not (kind.isdigit() and 512 <= int(kind) <= 8192):
            raise UsageError(
                f"dhparm: {kind!r} is neither an RFC 7919 group ({', '.join(NAMED)}) "
                "nor a bit size 512..8192"
            )
    lines: list[str] = []
    for kind in kinds:
        path = out_dir / _file_name(kind)
        exists = path.is_file()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC) if exists else None
        named = kind in NAMED
        if not dh.dh_refresh_due("named" if named else "classic", exists, mtime, now, max_age_days):
            lines.append(f"{path}: up to date")
            continue
        data = dh.named_group_pem(kind) if named else dh.generate_dh_pem(int(kind))
        atomic_write(path, data)
        lines.append(f"{path}: written")
    link = out_dir / "dhparam.pem"
    target = _file_name(kinds[0])
    if not link.is_symlink() or os.readlink(link) != target:
        tmp = out_dir / ".dhparam.pem.new"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
        lines.append(f"{link} -> {target}")
    return lines
