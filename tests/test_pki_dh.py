"""RFC 7919 groups equal openssl's built-in ones; classic generation; refresh rule."""

from __future__ import annotations

import math
import subprocess
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from sslm_ci.pki.dh import (
    NAMED_GROUPS,
    _floor_e_times_power_of_two,
    dh_refresh_due,
    generate_dh_pem,
    named_group_of,
    named_group_pem,
    named_group_prime,
    parse_dh_pem,
)


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)


@pytest.mark.parametrize("group", NAMED_GROUPS)
def test_named_group_is_byte_identical_to_openssl(group: str) -> None:
    made = openssl("genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", f"group:{group}")
    assert made.returncode == 0, made.stderr
    ours = named_group_pem(group)
    assert ours == made.stdout
    p, g = parse_dh_pem(made.stdout)
    assert (p, g) == (named_group_prime(group), 2)
    assert p.bit_length() == int(group.removeprefix("ffdhe"))
    # openssl recognises our file as the named group, not just as some prime
    text = openssl("pkeyparam", "-noout", "-text", stdin=ours)
    assert f"GROUP: {group}".encode() in text.stdout


def test_named_group_matches_openssl_x942_form() -> None:
    made = openssl("genpkey", "-genparam", "-algorithm", "DHX", "-pkeyopt", "group:ffdhe2048")
    assert made.stdout.startswith(b"-----BEGIN X9.42 DH PARAMETERS-----")
    assert parse_dh_pem(made.stdout) == (named_group_prime("ffdhe2048"), 2)
    assert named_group_of(*parse_dh_pem(made.stdout)) == "ffdhe2048"


def test_openssl_dhparam_checks_the_2048_group() -> None:
    out = openssl("dhparam", "-check", "-noout", stdin=named_group_pem("ffdhe2048"))
    assert out.returncode == 0
    assert b"DH parameters appear to be ok" in out.stdout + out.stderr


def test_e_series_is_exact_for_small_shifts() -> None:
    # e = 10.1011011111100001..._2
    assert [_floor_e_times_power_of_two(k) for k in range(8)] == [2, 5, 10, 21, 43, 86, 173, 347]
    # exact rational partial sum: the 120-term tail is below 2^-600, far under 2^-200
    e = sum((Fraction(1, math.factorial(k)) for k in range(120)), Fraction(0))
    assert _floor_e_times_power_of_two(200) == math.floor(e * 2**200)


def test_unknown_group_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown DH group 'ffdhe1024'"):
        named_group_pem("ffdhe1024")
    assert named_group_of(named_group_prime("ffdhe2048"), 5) is None
    assert named_group_of(named_group_prime("ffdhe2048") - 2, 2) is None


def test_classic_parameters_at_512_bits(tmp_path: Path) -> None:
    pem = generate_dh_pem(512)
    assert pem.startswith(b"-----BEGIN DH PARAMETERS-----\n")
    p, g = parse_dh_pem(pem)
    assert p.bit_length() == 512 and g == 2
    assert named_group_of(p, g) is None
    out = openssl("dhparam", "-check", "-noout", stdin=pem)
    assert out.returncode == 0
    assert b"DH parameters appear to be ok" in out.stdout + out.stderr
    assert generate_dh_pem(512) != pem


NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "exists", "age_days", "due"),
    [
        ("named", False, None, True),
        ("named", True, None, False),
        ("named", True, 5000, False),
        ("classic", False, None, True),
        ("classic", True, None, True),
        ("classic", True, 0, False),
        ("classic", True, 119, False),
        ("classic", True, 120, False),
        ("classic", True, 120.01, True),
        ("classic", True, 400, True),
    ],
)
def test_dh_refresh_due_table(kind: str, exists: bool, age_days: float | None, due: bool) -> None:
    mtime = None if age_days is None else NOW - timedelta(days=age_days)
    assert dh_refresh_due(kind, exists, mtime, NOW) is due  # type: ignore[arg-type]


def test_dh_refresh_due_custom_age_and_bad_kind() -> None:
    mtime = NOW - timedelta(days=10)
    assert dh_refresh_due("classic", True, mtime, NOW, max_age_days=7)
    assert not dh_refresh_due("classic", True, mtime, NOW, max_age_days=30)
    with pytest.raises(ValueError, match="unknown DH parameter kind"):
        dh_refresh_due("ffdhe", True, mtime, NOW)  # type: ignore[arg-type]
