"""ACME challenge fragments: owners, rendering, parsing, and BIND's view of the result."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sslm_ci.dns.fragments import (
    HEADER,
    acme_owner,
    apex_for,
    parse_acme_fragment,
    render_acme_fragment,
)

VALUE_A = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo"
VALUE_B = "Wk3nXc9Zq8rT1uVbYpQeR5sLmN0oJhGfDcBa7zX-_yw"
APEX_OWNER = "_acme-challenge.example.test."


def named_checkzone(tmp_path: Path, fragment_text: str) -> subprocess.CompletedProcess[str]:
    """Load a small zone that ``$INCLUDE``s the fragment; ``-D`` dumps what BIND parsed."""
    tool = shutil.which("named-checkzone")
    assert tool is not None, "named-checkzone (bind9-utils) is required for these tests"
    fragment = tmp_path / "acme-challenge.example.test"
    fragment.write_text(fragment_text)
    zone = tmp_path / "example.test.zone"
    zone.write_text(
        "$TTL 60\n"
        "@ IN SOA ns1.example.test. hostmaster.example.test. 1 60 60 600 5\n"
        "@ IN NS ns1.example.test.\n"
        "ns1 IN A 127.0.0.1\n"
        f'$INCLUDE "{fragment}"\n'
    )
    return subprocess.run(
        [tool, "-D", "-o", "-", "example.test", str(zone)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("domain", "owner"),
    [
        ("example.test", APEX_OWNER),
        ("*.example.test", APEX_OWNER),
        ("WWW.Example.Test.", "_acme-challenge.www.example.test."),
        ("*.a.b.example.test", "_acme-challenge.a.b.example.test."),
    ],
)
def test_acme_owner(domain: str, owner: str) -> None:
    assert acme_owner(domain) == owner


@pytest.mark.parametrize("bad", ["", "*.", "a b.example.test", "x\n.example.test", "-x.test"])
def test_acme_owner_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid DNS name"):
        acme_owner(bad)


def test_render_sorts_dedups_and_keeps_two_values_at_one_owner() -> None:
    # wildcard + apex of one certificate: two authorizations, one owner, two values
    records = [
        (acme_owner("*.example.test"), VALUE_B),
        (acme_owner("www.example.test"), VALUE_A),
        (acme_owner("example.test"), VALUE_A),
        (acme_owner("*.example.test"), VALUE_B),
    ]
    text = render_acme_fragment("Example.Test", records, ttl=30)
    assert text.splitlines() == [
        HEADER.format(apex="example.test.").rstrip("\n"),
        f'{APEX_OWNER} 30 IN TXT "{VALUE_A}"',
        f'{APEX_OWNER} 30 IN TXT "{VALUE_B}"',
        f'_acme-challenge.www.example.test. 30 IN TXT "{VALUE_A}"',
    ]
    assert text == render_acme_fragment("example.test.", reversed(records), ttl=30)


def test_round_trip_including_values_that_need_escaping() -> None:
    odd = ['quo"te', "back\\slash", "semi;colon", "tab\tand ünï", "x" * 600, ""]
    records = [
        (APEX_OWNER, VALUE_A),
        *((f"_acme-challenge.o{i}.example.test.", v) for i, v in enumerate(odd)),
    ]
    text = render_acme_fragment("example.test", records)
    assert sorted(parse_acme_fragment(text)) == sorted(records)


def test_empty_render_is_header_only() -> None:
    text = render_acme_fragment("example.test", [])
    assert text == HEADER.format(apex="example.test.")
    assert parse_acme_fragment(text) == []


def test_bind_loads_empty_fragment(tmp_path: Path) -> None:
    result = named_checkzone(tmp_path, render_acme_fragment("example.test", []))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "TXT" not in result.stdout


def test_bind_loads_rendered_records_as_written(tmp_path: Path) -> None:
    long_value = "y" * 300  # two character-strings on the wire
    records = [
        (APEX_OWNER, VALUE_A),
        (APEX_OWNER, VALUE_B),
        (APEX_OWNER, 'a"b'),
        (APEX_OWNER, long_value),
    ]
    result = named_checkzone(tmp_path, render_acme_fragment("example.test", records))
    assert result.returncode == 0, result.stderr + result.stdout
    txt_lines = [line for line in result.stdout.splitlines() if re.search(r"\sTXT\s", line)]
    assert len(txt_lines) == len(records)
    assert '"' + "y" * 255 + '" "yyyyy' in "\n".join(txt_lines)
    assert sorted(parse_acme_fragment("\n".join(txt_lines))) == sorted(records)


def test_bind_rejects_a_broken_fragment(tmp_path: Path) -> None:
    # the harness itself must be able to fail
    result = named_checkzone(tmp_path, f'{APEX_OWNER} 60 IN TXT "unterminated\n')
    assert result.returncode != 0


def test_render_rejects_owner_outside_the_zone_and_bad_ttl() -> None:
    with pytest.raises(ValueError, match="not inside zone"):
        render_acme_fragment("example.test", [("_acme-challenge.example.org.", VALUE_A)])
    with pytest.raises(ValueError, match="not inside zone"):
        render_acme_fragment("example.test", [("_acme-challenge.badexample.test.", VALUE_A)])
    with pytest.raises(ValueError, match="TTL"):
        render_acme_fragment("example.test", [], ttl=-1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('_acme-challenge.example.test 60 IN TXT "v"', "fully qualified"),
        ('  60 IN TXT "v"', "fully qualified"),
        ("_acme-challenge.example.test. 60 IN A 127.0.0.1", "expected a TXT"),
        ("_acme-challenge.example.test. 60 IN TXT bare", "quoted"),
        ('_acme-challenge.example.test. 60 IN TXT "open', "unterminated"),
    ],
)
def test_parse_names_the_bad_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"line 2: .*{message}"):
        parse_acme_fragment("; header\n" + text + "\n")


def test_parse_accepts_missing_ttl_class_and_trailing_comments() -> None:
    text = f'{APEX_OWNER.upper()} TXT "{VALUE_A}" ; added by hand\n{APEX_OWNER} IN TXT "a;b" "c"\n'
    assert parse_acme_fragment(text) == [(APEX_OWNER, VALUE_A), (APEX_OWNER, "a;bc")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.test", "example.test"),
        ("*.example.test", "example.test"),
        ("a.sub.example.test.", "sub.example.test."),
        ("SUB.Example.Test", "sub.example.test."),
        ("badexample.test", None),
        ("example.org", None),
    ],
)
def test_apex_for_picks_the_longest_enclosing_apex(name: str, expected: str | None) -> None:
    assert apex_for(name, ["example.test", "sub.example.test.", "test-not"]) == expected
