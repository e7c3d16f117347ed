"""Pull for each kind of host: what it installs, what it restarts, and when it does nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gitops_world import World, copy_inventory, later

MAIL, WEB, NS = "mail.example.com", "web.example.com", "ns1.example.com"


@pytest.fixture
def world(tmp_path: Path) -> World:
    inv = copy_inventory(tmp_path / "inv-src")
    log = tmp_path / "events.log"
    conf = (inv / "ssl-mgr.conf").read_text()
    conf = conf.replace(
        """restart_cmd = 'echo "dns refresh: TLSA changed for $SSLM_CI_CHANGED"'""",
        f"""restart_cmd = 'echo "dns $SSLM_CI_CHANGED" >> {log}'""",
    )
    conf = conf.replace(
        """restart_cmd = 'echo "nginx reload on $SSLM_CI_HOST"'""",
        f"""restart_cmd = 'echo "web $SSLM_CI_CHANGED" >> {log}'""",
    )
    conf = conf.replace(
        "renew_expire_days_spread = 0",
        "renew_expire_days_spread = 0\n"
        f"    post_copy_cmd = [['{WEB}', 'echo post-copy >> {log}; echo']]",
    )
    (inv / "ssl-mgr.conf").write_text(conf)
    w = World(tmp_path, inv)
    w.init()
    assert w.sslm("renew").exit_code == 0
    assert w.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    return w


def events(world: World) -> list[str]:
    path = world.base / "events.log"
    return path.read_text().splitlines() if path.exists() else []


def test_web_host_gets_every_web_service_via_any(world: World) -> None:
    prod = world.base / "prod-web"
    result = world.pull(WEB, prod)
    assert result.exit_code == 0, result.output
    assert (prod / "example.com/web-ec/curr/privkey.pem").is_file()
    assert (prod / "example.net/web-ec/curr/privkey.pem").is_file()
    assert not (prod / "example.com/mail-ec").exists()
    assert events(world) == [
        "web example.com example.com:web-ec example.net:web-ec",
        "post-copy",
    ]


def test_dns_host_gets_tlsa_only_and_refreshes_when_it_changes(world: World) -> None:
    prod = world.base / "prod-ns"
    assert world.pull(NS, prod).exit_code == 0
    assert (prod / "example.com/tlsa.example.com").is_file()
    assert not any(prod.glob("*/*/curr"))  # no keys on the DNS host
    assert events(world) == ["dns example.com --serial_bump example.com"]

    # A web-only renewal changes no TLSA: the DNS host installs the tag but restarts nothing.
    assert world.sslm("renew", "-f", "example.net:web-ec", now=later(days=1)).exit_code == 0
    assert world.sslm("roll", "-f", now=later(days=1, hours=2)).exit_code == 0
    quiet = world.pull(NS, prod)
    assert quiet.exit_code == 0, quiet.output
    assert "nothing changed for ns1.example.com" in quiet.output
    assert events(world) == ["dns example.com --serial_bump example.com"]
    state = json.loads((prod / ".sslm-ci/state.json").read_text())
    assert state["tag"] == "sslm/roll/20261204T140000Z"

    # A mail renewal changes the TLSA set (curr + next): refresh.
    assert world.sslm("renew", "-f", "example.com:mail-ec", now=later(days=2)).exit_code == 0
    assert world.pull(NS, prod).exit_code == 0
    assert events(world)[-1] == "dns example.com --serial_bump example.com"
    assert len(events(world)) == 2


def test_unrelated_change_does_not_restart_mail(world: World) -> None:
    prod = world.base / "prod-mail"
    assert world.pull(MAIL, prod).exit_code == 0
    link_before = (prod / "example.com/mail-ec/curr").readlink()
    assert world.sslm("renew", "-f", "example.net:web-ec", now=later(days=1)).exit_code == 0
    assert world.sslm("roll", "-f", now=later(days=1, hours=2)).exit_code == 0
    result = world.pull(MAIL, prod)
    assert result.exit_code == 0
    assert "restarted" not in result.output
    assert (prod / "example.com/mail-ec/curr").readlink() == link_before


def test_unknown_host_is_a_usage_error(world: World) -> None:
    result = world.pull("nobody.example.com", world.base / "prod-x", identity=MAIL)
    assert result.exit_code == 2
    assert "nobody.example.com" in result.output


def test_now_comes_from_the_environment_too(world: World) -> None:
    result = world.run(
        "--repo", str(world.repo), "status", "--json", extra_env={"SSLM_CI_NOW": "2027-02-02"}
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["now"] == "2027-02-02T00:00:00+00:00"
    rows = {r["ident"]: r for r in data["services"]}
    assert rows["example.com:mail-ec"]["renew_due"] is True
    bad = world.run("--repo", str(world.repo), "status", extra_env={"SSLM_CI_NOW": "soon"})
    assert bad.exit_code == 2
