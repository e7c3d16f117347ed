"""Command-line selection ``group[:svc,...]`` over a loaded inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslm_ci.config.loader import load_inventory
from sslm_ci.config.model import Inventory
from sslm_ci.config.selection import parse_selection
from sslm_ci.errors import EXIT_USAGE, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "config"


@pytest.fixture(scope="module")
def seed() -> Inventory:
    return load_inventory(FIXTURES / "seed-appendix")


@pytest.fixture(scope="module")
def ca_self() -> Inventory:
    return load_inventory(FIXTURES / "ca-self")


def idents(args: list[str], inv: Inventory) -> list[str]:
    return [s.ident for s in parse_selection(args, inv)]


def test_no_args_selects_active_services(ca_self: Inventory) -> None:
    assert idents([], ca_self) == [
        "ca:my-root",
        "ca:my-int",
        "example.com:web-self",
        "example.com:wild-self",
    ]
    assert parse_selection([], ca_self) == ca_self.active_services()


def test_named_services_come_back_in_config_order(seed: Inventory) -> None:
    assert idents(["example.com:mail-ec,mail-rsa"], seed) == [
        "example.com:mail-ec",
        "example.com:mail-rsa",
    ]
    assert idents(["example.com:web-ec,mail-ec"], seed) == [
        "example.com:mail-ec",
        "example.com:web-ec",
    ]
    assert idents(["ca:my-sub", "example.net:web-ec"], seed) == [
        "example.net:web-ec",
        "ca:my-sub",
    ]


@pytest.mark.parametrize("arg", ["example.com", "example.com:ALL", "example.com:*"])
def test_whole_group(seed: Inventory, arg: str) -> None:
    assert idents([arg], seed) == [
        "example.com:mail-ec",
        "example.com:mail-rsa",
        "example.com:web-ec",
    ]


def test_no_duplicates(seed: Inventory) -> None:
    assert idents(["example.com:mail-ec", "example.com", "example.com:mail-ec,mail-ec"], seed) == [
        "example.com:mail-ec",
        "example.com:mail-rsa",
        "example.com:web-ec",
    ]


def test_blanks_and_trailing_comma_are_tolerated(seed: Inventory) -> None:
    assert idents([" example.com:mail-ec, mail-rsa, "], seed) == [
        "example.com:mail-ec",
        "example.com:mail-rsa",
    ]


def test_inactive_group_can_be_selected_explicitly(ca_self: Inventory) -> None:
    assert idents(["example.org"], ca_self) == ["example.org:web-self"]
    selected = parse_selection(["example.org:web-self"], ca_self)
    assert selected == [ca_self.service("example.org", "web-self")]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["exmple.com:mail-ec"], ("unknown group 'exmple.com'", "did you mean 'example.com'?")),
        (["mail-rsa"], ("unknown group 'mail-rsa'",)),
        (
            ["example.com:mail-ecc"],
            ("group 'example.com' has no service 'mail-ecc'", "did you mean 'mail-ec'?"),
        ),
        (["example.net:mail-ec"], ("group 'example.net' has no service 'mail-ec'",)),
        (["example.com:"], ("no service after ':'", "example.com:ALL")),
        (["example.com:,"], ("no service after ':'",)),
        ([":mail-ec"], ("the group is empty",)),
        (["example.com:mail-ec", "ca:my-rot"], ("'ca:my-rot'", "did you mean 'my-root'?")),
    ],
)
def test_bad_selection(seed: Inventory, args: list[str], expect: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as caught:
        parse_selection(args, seed)
    assert caught.value.exit_code == EXIT_USAGE
    for fragment in expect:
        assert fragment in str(caught.value)
