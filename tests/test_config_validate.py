"""Name and value checkers behind the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslm_ci.config.validate import (
    Table,
    describe,
    dns_name_problem,
    host_problem,
    plain_name_problem,
    resolve_path,
    suggest,
)
from sslm_ci.errors import ConfigError


@pytest.mark.parametrize(
    "name",
    ["example.com", "a.b-c.example", "xn--bcher-kva.example", "localhost", "9a.example", "A.COM"],
)
def test_valid_dns_names(name: str) -> None:
    assert dns_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("example.com.", "trailing dot"),
        ("-a.example", "'-'"),
        ("a-.example", "'-'"),
        ("a_b.example", "letters, digits"),
        ("a..example", "empty label"),
        (".example", "empty label"),
        ("bücher.example", "non-ASCII"),
        ("*.example.com", "wildcard not allowed"),
        ("x" * 64 + ".example", "longer than 63"),
        (".".join(["a" * 60] * 5), "longer than 253"),
        ("1.2.3.4", "all digits"),
    ],
)
def test_invalid_dns_names(name: str, problem: str) -> None:
    found = dns_name_problem(name)
    assert found is not None and problem in found


@pytest.mark.parametrize("name", ["*.example.com", "*.a.b.example"])
def test_wildcards_where_allowed(name: str) -> None:
    assert dns_name_problem(name, allow_wildcard=True) is None


@pytest.mark.parametrize("name", ["*", "a.*.example", "*a.example", "*.*.example"])
def test_bad_wildcards(name: str) -> None:
    assert dns_name_problem(name, allow_wildcard=True) is not None


@pytest.mark.parametrize("host", ["192.0.2.1", "2001:db8::1", "::1", "mail.example.com"])
def test_hosts(host: str) -> None:
    assert host_problem(host) is None


@pytest.mark.parametrize("host", ["192.0.2.256", "2001:db8::g", "fe80::1%eth0", "a b"])
def test_bad_hosts(host: str) -> None:
    assert host_problem(host) is not None


@pytest.mark.parametrize("name", ["mail-ec", "my_root", "web.ec", "ALLx"])
def test_plain_names(name: str) -> None:
    assert plain_name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a:b", "a,b", "a\0b", " a", "a\n"])
def test_bad_plain_names(name: str) -> None:
    assert plain_name_problem(name) is not None


def test_suggest() -> None:
    keys = ["min_roll_mins", "clean_keep", "X509"]
    assert suggest("min_rol_mins", keys) == "min_roll_mins"
    assert suggest("x509", keys) == "X509"
    assert suggest("zzz", keys) is None


def test_describe_names_the_toml_type() -> None:
    assert describe(True) == "boolean true"
    assert describe(3) == "integer 3"
    assert describe("x" * 50).endswith("...'")
    assert describe([1]) == "array"
    assert describe({}) == "table"


def test_table_rejects_unknown_keys_before_reading() -> None:
    with pytest.raises(ConfigError) as caught:
        Table(Path("f"), "sec", {"cleen_keep": 1}, ["clean_keep"])
    assert (caught.value.key, caught.value.file) == ("sec.cleen_keep", "f")
    assert "did you mean 'clean_keep'?" in caught.value.reason


def test_table_required_key() -> None:
    t = Table(Path("f"), "", {}, ["signing_ca"])
    with pytest.raises(ConfigError, match=r"^f: signing_ca: required key missing"):
        t.string("signing_ca")


def test_resolve_path(tmp_path: Path) -> None:
    assert resolve_path(Path("f"), "k", "./a/b", tmp_path) == tmp_path / "a" / "b"
    assert resolve_path(Path("f"), "k", "/abs", tmp_path) == Path("/abs")
    with pytest.raises(ConfigError, match="expected a path string, got integer 3"):
        resolve_path(Path("f"), "k", 3, tmp_path)
