"""Atomic file writes shared by every layer that writes files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` so readers see the old file or the new one, never a torn one.

    The temp file is created in the target directory (same filesystem, so ``os.replace`` is
    atomic), fsynced with the mode already set, renamed, and the directory entry fsynced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Atomic write unless the file already holds exactly ``data`` (no needless mtime bump)."""
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write(path, data, mode)
    return True
