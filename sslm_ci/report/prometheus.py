"""Metrics in the Prometheus text format, for node_exporter's textfile collector.

Names follow cert-manager's (``certmanager_certificate_expiration_timestamp_seconds`` →
``sslm_certificate_expiration_timestamp_seconds``): values are Unix timestamps, not "days
left", so alert rules compare them with ``time()`` and the file never goes stale by the day.

Samples carry no exposition timestamps: the textfile collector rejects them.

One file per repository: node_exporter refuses the same series from two files, so write the
renew and roll runs' metrics to the same path (``last_success`` keeps one sample per stage;
carry the others over with :func:`read_last_success`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sslm_ci.fsutil import atomic_write
from sslm_ci.report.status import ServiceStatus, is_ready, renewal_time

PREFIX = "sslm"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"

Labels = Sequence[tuple[str, str]]
Sample = tuple[Labels, float]


def escape_label_value(value: str) -> str:
    r"""Label values escape ``\``, ``"`` and newline (the exposition format's three)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels)
    return "{" + inner + "}"


def _family(name: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} gauge"]
    lines.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)
    return lines


def _service_labels(row: ServiceStatus, slot: str | None = None) -> Labels:
    labels = [("group", row.group), ("service", row.service), ("ca", row.signing_ca)]
    if slot is not None:
        labels.append(("slot", slot))
    return labels


def _ts(value: datetime) -> float:
    return value.timestamp()


def _per_service(
    rows: Sequence[ServiceStatus], value: Callable[[ServiceStatus], float | None]
) -> list[Sample]:
    out: list[Sample] = []
    for row in rows:
        got = value(row)
        if got is not None:
            out.append((_service_labels(row), got))
    return out


def _expirations(rows: Sequence[ServiceStatus]) -> list[Sample]:
    out: list[Sample] = []
    for row in rows:
        if row.curr_expires is not None:
            out.append((_service_labels(row, "curr"), _ts(row.curr_expires)))
        if row.next_expires is not None:
            out.append((_service_labels(row, "next"), _ts(row.next_expires)))
    return out


def _issued(rows: Sequence[ServiceStatus]) -> list[Sample]:
    out: list[Sample] = []
    for row in rows:
        if row.curr_issued_at is not None:
            out.append((_service_labels(row, "curr"), _ts(row.curr_issued_at)))
        if row.next_issued_at is not None:
            out.append((_service_labels(row, "next"), _ts(row.next_issued_at)))
    return out


def _optional_ts(value: datetime | None) -> float | None:
    return None if value is None else _ts(value)


def render_prometheus(
    rows: Sequence[ServiceStatus],
    now: datetime,
    last_success: Mapping[str, datetime] | None = None,
) -> str:
    """The textfile for ``rows`` at ``now``.

    ``last_success`` maps a stage name (``renew``, ``roll``) to the instant it last finished
    without error; each becomes ``sslm_last_success_timestamp_seconds{stage=...}``.

    A service without a certificate has no expiration sample (as cert-manager: the series is
    absent) and ``ready_status`` 0. ``renewal_timestamp_seconds`` of a due service is when it
    became due (``ServiceStatus.due_since``): at or before ``now``, and stable across runs for
    expiry-driven renewals, so ``time() - renewal_timestamp > 86400`` means "overdue a day".
    """
    families: list[list[str]] = [
        _family(
            f"{PREFIX}_certificate_expiration_timestamp_seconds",
            "The date after which the certificate expires, per slot (curr, next), Unix time.",
            _expirations(rows),
        ),
        _family(
            f"{PREFIX}_certificate_renewal_timestamp_seconds",
            "When the certificate is due for renewal; for a due one when it became due "
            "(never after the report time), Unix time.",
            _per_service(rows, lambda r: _optional_ts(renewal_time(r))),
        ),
        _family(
            f"{PREFIX}_certificate_ready_status",
            "1 if curr exists and is within its validity period at the report time, else 0.",
            _per_service(rows, lambda r: 1.0 if is_ready(r, now) else 0.0),
        ),
        _family(
            f"{PREFIX}_certificate_renewal_due",
            "1 if the service is due for renewal at the report time, else 0.",
            _per_service(rows, lambda r: 1.0 if r.renew_due else 0.0),
        ),
        _family(
            f"{PREFIX}_certificate_next_pending",
            "1 if a renewed certificate waits in next to be rolled to curr, else 0.",
            _per_service(rows, lambda r: 1.0 if r.next_expires is not None else 0.0),
        ),
        _family(
            f"{PREFIX}_certificate_issued_timestamp_seconds",
            "When the certificate in the slot (curr, next) was issued, Unix time.",
            _issued(rows),
        ),
        _family(
            f"{PREFIX}_certificate_rolled_timestamp_seconds",
            "When curr was rolled in from next, Unix time.",
            _per_service(rows, lambda r: _optional_ts(r.curr_rolled_at)),
        ),
        _family(
            f"{PREFIX}_report_timestamp_seconds",
            "The instant this report describes (the run's now), Unix time.",
            [((), _ts(now))],
        ),
    ]
    if last_success:
        families.append(
            _family(
                LAST_SUCCESS,
                "When the stage last finished without error, Unix time.",
                [((("stage", s),), _ts(at)) for s, at in sorted(last_success.items())],
            )
        )
    return "\n".join(line for family in families for line in family) + "\n"


_LAST_SUCCESS_LINE = re.compile(
    rf'^{LAST_SUCCESS}\{{stage="((?:[^"\\]|\\.)*)"\}} ([0-9.eE+-]+)$', re.MULTILINE
)


def _unescape_label_value(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def read_last_success(path: Path) -> dict[str, datetime]:
    """The ``last_success`` samples of an earlier file written by :func:`write_textfile`.

    A run that fails, or runs another stage, rewrites the file with these carried over, so
    the timestamp of the last success keeps its age instead of vanishing. Missing file: {}.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    out: dict[str, datetime] = {}
    for match in _LAST_SUCCESS_LINE.finditer(text):
        try:
            value = float(match.group(2))
        except ValueError:
            continue
        out[_unescape_label_value(match.group(1))] = datetime.fromtimestamp(value, UTC)
    return out


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` atomically. The temp file (``.<name>.*.tmp`` in the same directory)
    does not match node_exporter's ``*.prom`` glob, so a half-written file is never read."""
    atomic_write(path, text.encode("utf-8"))
