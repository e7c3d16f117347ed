"""The injectable clock: ``--now`` / ``SSLM_CI_NOW`` move time for every decision."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sslm_ci.errors import UsageError

NOW_ENV = "SSLM_CI_NOW"


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant; a naive value is taken as UTC."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise UsageError(f"--now: {text!r} is not an ISO 8601 date-time ({exc})") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def resolve_now(option: str | None, environ: dict[str, str] | None = None) -> datetime:
    """The instant decisions use: the option, else the environment, else the real clock.

    This is the only place that reads the system clock for decisions.
    """
    env = os.environ if environ is None else environ
    text = option or env.get(NOW_ENV)
    if text:
        return parse_instant(text)
    return datetime.now(UTC).replace(microsecond=0)


def stamp(now: datetime) -> str:
    """Compact UTC timestamp used in tag names, e.g. ``20261203T163000Z``."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
