"""Metrics textfile: parsed back with prometheus_client's parser and checked line by line."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sslm_ci.report.prometheus import (
    read_last_success,
    render_prometheus,
    write_textfile,
)
from tests.test_report_markdown import NOW, at, sample_rows, status

Key = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> tuple[dict[Key, float], dict[str, str]]:
    values: dict[Key, float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in values, f"duplicate series {key}"
            assert sample.timestamp is None  # the textfile collector rejects timestamps
            values[key] = sample.value
    return values, types


def labels(ident: str, ca: str = "my-ca", **extra: str) -> tuple[tuple[str, str], ...]:
    group, _, service = ident.partition(":")
    return tuple(sorted({"group": group, "service": service, "ca": ca, **extra}.items()))


def test_timestamps_and_states_per_service() -> None:
    values, types = parse(render_prometheus(sample_rows(), NOW))
    assert set(types.values()) == {"gauge"}
    exp = "sslm_certificate_expiration_timestamp_seconds"
    assert values[(exp, labels("example.com:mail-ec", slot="curr"))] == at(75).timestamp()
    assert values[(exp, labels("other.org:mx", "le-prod", slot="curr"))] == at(25).timestamp()
    assert values[(exp, labels("other.org:mx", "le-prod", slot="next"))] == at(90).timestamp()
    assert values[(exp, labels("other.org:old", slot="curr"))] == at(-3).timestamp()
    # No certificate, no sample (cert-manager leaves the series absent too).
    assert not [k for k in values if k[0] == exp and ("service", "new") in k[1]]
    assert len([k for k in values if k[0] == exp]) == 5

    renew = "sslm_certificate_renewal_timestamp_seconds"
    assert values[(renew, labels("example.com:mail-ec"))] == at(45).timestamp()
    assert values[(renew, labels("example.com:web-ec"))] == at(-10).timestamp()
    assert values[(renew, labels("other.org:old"))] == at(-33).timestamp()
    assert values[(renew, labels("other.org:new"))] == NOW.timestamp()

    def per_service(metric: str) -> dict[str, float]:
        return {dict(k[1])["service"]: v for k, v in values.items() if k[0] == metric}

    assert per_service("sslm_certificate_ready_status") == {
        "mail-ec": 1,
        "web-ec": 1,
        "mx": 1,
        "old": 0,
        "new": 0,
    }
    assert per_service("sslm_certificate_renewal_due") == {
        "mail-ec": 0,
        "web-ec": 1,
        "mx": 0,
        "old": 1,
        "new": 1,
    }
    assert per_service("sslm_certificate_next_pending") == {
        "mail-ec": 0,
        "web-ec": 0,
        "mx": 1,
        "old": 0,
        "new": 0,
    }
    assert per_service("sslm_certificate_rolled_timestamp_seconds")["old"] == at(-92).timestamp()
    issued = "sslm_certificate_issued_timestamp_seconds"
    assert values[(issued, labels("other.org:mx", "le-prod", slot="next"))] == (
        at(hours=-1).timestamp()
    )
    assert values[("sslm_report_timestamp_seconds", ())] == NOW.timestamp()
    assert not [k for k in values if k[0].startswith("sslm_last_success")]


def test_a_certificate_not_yet_valid_is_not_ready() -> None:
    early = status("ex.com:early", expires=90, issued=1, renews=60, reason="renews-in-60d")
    values, _ = parse(render_prometheus([early], NOW))
    assert values[("sslm_certificate_ready_status", labels("ex.com:early"))] == 0


def test_label_values_are_escaped_and_survive_a_parse() -> None:
    odd = status('ex.com:we"ird\\name', ca="ca\nline", expires=10, due="expires-in-10d")
    text = render_prometheus([odd], NOW)
    assert r'service="we\"ird\\name",ca="ca\nline"' in text
    values, _ = parse(text)
    key = ("sslm_certificate_ready_status", labels('ex.com:we"ird\\name', "ca\nline"))
    assert values[key] == 1


SAMPLE_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)\})?'
    r" (?P<value>-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$"
)


def test_the_text_format_line_by_line() -> None:
    """What node_exporter's textfile collector insists on: HELP and TYPE once before the
    samples of their family, families contiguous, no timestamps, a final newline."""
    text = render_prometheus(sample_rows(), NOW, {"renew": at(-1), "roll": at(-2)})
    assert text.endswith("\n") and not text.endswith("\n\n")
    seen: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in seen, f"{name} split into two groups"
            seen.append(name)
            current = name
            assert len(line.split(" ", 3)[3]) > 10
        elif line.startswith("# TYPE "):
            assert line == f"# TYPE {current} gauge"
        else:
            match = SAMPLE_LINE.match(line)
            assert match, line
            assert match["name"] == current, line
    assert len(seen) == 9
    assert 'sslm_last_success_timestamp_seconds{stage="renew"} ' in text


def test_last_success_survives_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "sslm.prom"
    assert read_last_success(path) == {}
    renew_at = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    write_textfile(path, render_prometheus(sample_rows(), renew_at, {"renew": renew_at}))
    carried = read_last_success(path)
    assert carried == {"renew": renew_at}
    carried["roll"] = NOW
    write_textfile(path, render_prometheus(sample_rows(), NOW, carried))
    assert read_last_success(path) == {"renew": renew_at, "roll": NOW}
    assert [p.name for p in path.parent.iterdir()] == ["sslm.prom"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    values, _ = parse(path.read_text())
    assert values[("sslm_last_success_timestamp_seconds", (("stage", "renew"),))] == (
        renew_at.timestamp()
    )
