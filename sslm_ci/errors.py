"""Error types shared by every layer.

Errors carry data (file, key, reason) so the CLI can print one precise line and pick the exit
code: :class:`ConfigError` and :class:`UsageError` exit 2, :class:`OperationalError` exits 1.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_OPERATIONAL = 1
EXIT_USAGE = 2


class SslmError(Exception):
    """Base class; ``exit_code`` tells the CLI how to leave."""

    exit_code: int = EXIT_OPERATIONAL


class ConfigError(SslmError):
    """Invalid inventory: names the file, the key and what was expected."""

    exit_code = EXIT_USAGE

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {reason}")


class UsageError(SslmError):
    """Bad command-line input (a selection naming an unknown service, a bad --now, ...)."""

    exit_code = EXIT_USAGE


class OperationalError(SslmError):
    """Something outside our inputs failed: a tool, the network, git, a restart command."""

    exit_code = EXIT_OPERATIONAL
