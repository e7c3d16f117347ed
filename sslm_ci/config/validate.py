"""Typed readers for raw TOML tables: every failure is one :class:`ConfigError` naming the file,
the dotted key and what was expected."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import NoReturn

from sslm_ci.errors import ConfigError

_LDH_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MAX_DNS_NAME = 253
_MAX_PORT = 65535

# ':' and ',' would make a name impossible to select on the command line (group:svc1,svc2).
_BAD_NAME_CHARS = frozenset("/\\:,\0")


def suggest(word: str, candidates: Collection[str]) -> str | None:
    """The candidate ``word`` most likely meant, if any is close enough."""
    by_lower = {c.lower(): c for c in candidates}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(word: str, candidates: Collection[str]) -> str:
    hint = suggest(word, candidates)
    return f"; did you mean '{hint}'?" if hint else ""


def describe(value: object) -> str:
    """How a TOML value reads in an error message: its TOML type and a short rendering."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__  # dates and times


def dns_name_problem(name: str, *, allow_wildcard: bool = False) -> str | None:
    """Why ``name`` is not a valid LDH host name (optionally ``*.``-prefixed), or None."""
    if not name:
        return "empty name"
    if not name.isascii():
        return "non-ASCII name (write internationalised names as xn-- A-labels)"
    if name.endswith("."):
        return "trailing dot not allowed"
    if len(name) > _MAX_DNS_NAME:
        return f"longer than {_MAX_DNS_NAME} characters"
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            return "wildcard not allowed here"
        if len(labels) < 2:
            return "a wildcard needs a domain after '*.'"
        labels = labels[1:]
    for label in labels:
        if not label:
            return "empty label (two dots in a row, or a leading dot)"
        if "*" in label:
            return f"label {label!r}: '*' is only allowed as the whole leftmost label ('*.')"
        if len(label) > 63:
            return f"label {label[:20]!r}... is longer than 63 characters"
        if not _LDH_LABEL.match(label):
            return f"label {label!r} must be letters, digits and '-', and not start or end with '-'"
    if labels[-1].isdigit():
        # RFC 3696: a TLD is never all-numeric; this also catches malformed IPv4 addresses.
        return "the last label is all digits (not a domain; a malformed IP address?)"
    return None


def ip_address_problem(text: str) -> str | None:
    if "%" in text:
        return "scoped IPv6 addresses are not allowed"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return "not an IP address"
    return None


def is_ip_address(text: str) -> bool:
    return ip_address_problem(text) is None


def host_problem(text: str, *, allow_wildcard: bool = False) -> str | None:
    """Why ``text`` is neither a DNS name nor an IP address, or None."""
    if is_ip_address(text):
        return None
    if ":" in text:
        return "not a valid IPv6 address"
    return dns_name_problem(text, allow_wildcard=allow_wildcard)


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a service or CA name (it becomes a directory name), or None."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"{name!r} is not a usable directory name"
    bad = sorted(c for c in set(name) if c in _BAD_NAME_CHARS or not c.isprintable())
    if bad:
        return f"must not contain {', '.join(repr(c) for c in bad)}"
    if name != name.strip():
        return "leading or trailing whitespace"
    return None


class Table:
    """One TOML table of a config file, read key by key with type checks.

    ``prefix`` is the dotted path of the table in error messages ("" for a file's top level).
    Unknown keys are rejected on construction, before any value is looked at, so a typo is
    reported as a typo rather than as a missing required key.
    """

    def __init__(
        self,
        file: Path,
        prefix: str,
        data: Mapping[str, object],
        allowed: Collection[str],
        *,
        elsewhere: Mapping[str, str] | None = None,
    ) -> None:
        self.file = file
        self.prefix = prefix
        self.data = data
        for key, value in data.items():
            if key in allowed:
                continue
            what = "section" if isinstance(value, dict) and not prefix else "key"
            where = elsewhere.get(key) if elsewhere else None
            if where is not None:
                self.fail(key, f"unknown {what} {key!r} here; it belongs in {where}")
            self.fail(key, f"unknown {what} {key!r}{did_you_mean(key, allowed)}")

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, reason: str) -> NoReturn:
        raise ConfigError(self.file, self.path(key), reason)

    def wrong_type(self, key: str, expected: str, value: object) -> NoReturn:
        self.fail(key, f"expected {expected}, got {describe(value)}")

    def has(self, key: str) -> bool:
        return key in self.data

    def need(self, key: str, expected: str) -> object:
        if key not in self.data:
            self.fail(key, f"required key missing (expected {expected})")
        return self.data[key]

    # -- scalars ------------------------------------------------------------------------------

    def string(self, key: str, default: str | None = None, *, non_empty: bool = False) -> str:
        value = self.data.get(key, default) if default is not None else self.need(key, "a string")
        if not isinstance(value, str):
            self.wrong_type(key, "a string", value)
        if non_empty and not value.strip():
            self.fail(key, "expected a non-empty string")
        return value

    def opt_string(self, key: str, *, non_empty: bool = True) -> str | None:
        if key not in self.data:
            return None
        return self.string(key, non_empty=non_empty)

    def choice(self, key: str, choices: Collection[str], default: str | None = None) -> str:
        expected = "one of " + ", ".join(repr(c) for c in choices)
        value = self.data.get(key, default) if default is not None else self.need(key, expected)
        if not isinstance(value, str):
            self.wrong_type(key, f"a string, {expected}", value)
        if value not in choices:
            self.fail(key, f"expected {expected}, got {value!r}{did_you_mean(value, choices)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.wrong_type(key, "a boolean (true or false, unquoted)", value)
        return value

    def integer(
        self, key: str, default: int | None = None, *, lo: int | None = None, hi: int | None = None
    ) -> int:
        value = self.data.get(key, default) if default is not None else self.need(key, "an integer")
        return check_int(self.file, self.path(key), value, lo=lo, hi=hi)

    def number(self, key: str, *, lo: float | None = None, positive: bool = False) -> float | None:
        """An int or float (TOML ``30`` or ``30.5``); None when absent."""
        if key not in self.data:
            return None
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.wrong_type(key, "a number", value)
        if not math.isfinite(value):
            self.fail(key, f"expected a finite number, got {value}")
        if positive and value <= 0:
            self.fail(key, f"expected a number > 0, got {value}")
        if lo is not None and value < lo:
            self.fail(key, f"expected a number >= {lo}, got {value}")
        return float(value)

    def path_value(self, key: str, base: Path) -> Path | None:
        """A directory or file path; relative ones resolve against ``base``."""
        if key not in self.data:
            return None
        return resolve_path(self.file, self.path(key), self.data[key], base)

    # -- containers ---------------------------------------------------------------------------

    def array(self, key: str, *, expected: str = "an array") -> list[object]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.wrong_type(key, expected, value)
        return value

    def string_list(self, key: str, *, expected: str = "an array of strings") -> list[str]:
        items = self.array(key, expected=expected)
        out: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ConfigError(
                    self.file, f"{self.path(key)}[{i}]", f"expected a string, got {describe(item)}"
                )
            out.append(item)
        return out

    def table(self, key: str) -> Mapping[str, object] | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            self.wrong_type(key, f"a table [{self.path(key)}]", value)
        return value


def check_int(
    file: Path, key: str, value: object, *, lo: int | None = None, hi: int | None = None
) -> int:
    # TOML booleans are Python ints; a bool where a number is meant is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (remove the quotes)" if isinstance(value, str) and value.strip().isdigit() else ""
        raise ConfigError(file, key, f"expected an integer, got {describe(value)}{hint}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            bounds = f"between {lo} and {hi}"
        elif lo is not None:
            bounds = f">= {lo}"
        else:
            bounds = f"<= {hi}"
        raise ConfigError(file, key, f"expected an integer {bounds}, got {value}")
    return value


def check_port(file: Path, key: str, value: object) -> int:
    return check_int(file, key, value, lo=1, hi=_MAX_PORT)


def resolve_path(file: Path, key: str, value: object, base: Path) -> Path:
    if not isinstance(value, str):
        raise ConfigError(file, key, f"expected a path string, got {describe(value)}")
    if not value.strip():
        raise ConfigError(file, key, "expected a non-empty path")
    if "\0" in value:
        raise ConfigError(file, key, "path contains a NUL character")
    path = Path(value)
    return path if path.is_absolute() else base / path
