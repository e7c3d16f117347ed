"""The merge-request flow: add-service, validate, plan (text and Markdown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitops_world import World, copy_inventory, git


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path, copy_inventory(tmp_path / "inv-src"))
    w.init()
    assert w.sslm("renew").exit_code == 0
    return w


def test_add_service_edits_the_inventory_preserving_style(world: World) -> None:
    conf = world.repo / "inventory/ssl-mgr.conf"
    before = conf.read_text()
    result = world.run(
        "--repo",
        str(world.repo),
        "add-service",
        "example.net",
        "mail-ec",
        "--san",
        "mail.example.net,smtp.example.net",
        "--dane",
        "25:tcp:3:1:1",
        "--email",
        "hostmaster@example.net",
    )
    assert result.exit_code == 0, result.output
    after = conf.read_text()
    # Comments and layout stay; only the group's list grew.
    assert "# Servers: each lists the hosts" in after
    assert after.replace("services = ['web-ec', \"mail-ec\"]", "services = ['web-ec']") == before
    svc = (world.repo / "inventory/example.net/mail-ec").read_text()
    assert 'signing_ca = "my-int"' in svc  # the CA the group already uses
    assert 'dane_tls = [[25, "tcp", 3, 1, 1]]' in svc
    assert world.run("--repo", str(world.repo), "validate").exit_code == 0

    new_group = world.run(
        "--repo",
        str(world.repo),
        "add-service",
        "example.org",
        "web",
        "--ca",
        "my-int",
        "--san",
        "www.example.org",
    )
    assert new_group.exit_code == 0, new_group.output
    assert 'domain = "example.org"' in conf.read_text()


def test_add_service_refuses_bad_input_and_writes_nothing(world: World) -> None:
    status = git(world.repo, "status", "--porcelain")
    bad_ca = world.run(
        "--repo",
        str(world.repo),
        "add-service",
        "example.net",
        "x",
        "--ca",
        "nope",
        "--san",
        "x.example.net",
    )
    assert bad_ca.exit_code == 2
    assert "signing_ca" in bad_ca.output and "nope" in bad_ca.output
    dup = world.run("--repo", str(world.repo), "add-service", "example.com", "web-ec")
    assert dup.exit_code == 2
    bad_dane = world.run(
        "--repo", str(world.repo), "add-service", "example.net", "y", "--dane", "25:tcp:3:1"
    )
    assert bad_dane.exit_code == 2
    assert git(world.repo, "status", "--porcelain") == status


def test_plan_shows_what_renew_would_do(world: World, tmp_path: Path) -> None:
    assert (
        world.run(
            "--repo",
            str(world.repo),
            "add-service",
            "example.net",
            "mail-ec",
            "--san",
            "mail.example.net",
            "--dane",
            "25:tcp:3:1:1",
        ).exit_code
        == 0
    )
    svc = world.repo / "inventory/example.com/web-ec"
    svc.write_text(
        svc.read_text().replace("'www.example.com'", "'www.example.com', 'shop.example.com'")
    )
    md = tmp_path / "plan.md"
    summary = tmp_path / "summary.md"
    result = world.run(
        "--repo",
        str(world.repo),
        "plan",
        "--markdown",
        str(md),
        extra_env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "example.net:mail-ec: new" in out
    assert "renew would issue a certificate (no-current-cert)" in out
    assert "TLSA records change" in out
    assert "example.com:web-ec: changed" in out and "shop.example.com" in out
    assert "example.net:web-ec" not in out  # untouched services stay quiet
    text = md.read_text()
    assert text.startswith("### sslm-ci plan")
    assert "| `example.net:mail-ec` | new |" in text
    assert summary.read_text() == text + "\n"

    svc.write_text(svc.read_text().replace("ec_algo = 'secp256r1'", "ec_algo = 'p256'"))
    invalid = world.run("--repo", str(world.repo), "plan")
    assert invalid.exit_code == 2
    assert "example.com/web-ec" in invalid.output and "ec_algo" in invalid.output


def test_plan_against_an_unknown_base_is_a_usage_error(world: World) -> None:
    result = world.run("--repo", str(world.repo), "plan", "--base", "no-such-ref")
    assert result.exit_code == 2
