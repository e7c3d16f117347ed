"""A full DANE rollover through the real parts: BIND with inline DNSSEC signing serving the TLSA
fragment, unbound validating with the zone's trust anchor, openssl s_server presenting curr and
then next, and openssl s_client checking DANE with TLSA fetched through unbound (AD required).

renew → (TLSA curr+next published; rolling early is refused) → wait → roll → pull (server
switches keys; TLSA curr+retired) → retire (TLSA curr only: the old key fails)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.acme_world import attach_dns_host
from tests.dns_proxies import FakeSecondary
from tests.gitops_world import PROJECT, World, git
from tests.rig.fixtures import DaneRig
from tests.rig.tls import ServedIdentity, dane_ok

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OWNER = "_25._tcp.mail.example.com."  # port 25 goes to the MX host the primary lists


def at(minutes: float = 0, hours: float = 0, days: float = 0) -> datetime:
    return NOW + timedelta(minutes=minutes, hours=hours, days=days)


def write_inventory(
    dest: Path, rig: DaneRig, xtra_ns: list[str] | None = None, publish: str = "git"
) -> Path:
    shutil.copytree(PROJECT / "inventory" / "ca", dest / "ca")
    shutil.copy(PROJECT / "inventory" / "ca-info.conf", dest / "ca-info.conf")
    (dest / "example.com").mkdir()
    (dest / "example.com" / "mail-ec").write_text(
        """name = 'mail'
group = 'example.com'
service = 'mail-ec'
signing_ca = 'my-int'
dane_tls = [[25, 'tcp', 3, 1, 1]]
dane_tls_ttl = 2
[KeyOpts]
    ktype = 'ec'
    ec_algo = 'secp256r1'
[X509]
    CN = 'mail.example.com'
    sans = ['mail.example.com']
"""
    )
    refresh = " ".join(rig.refresh_command()[:3])  # dns-refresh --bind-dir DIR
    (dest / "ssl-mgr.conf").write_text(
        f"""[globals]
    min_roll_mins = 0
    tlsa_retire_mins = 30
    dns_xtra_ns = {xtra_ns or []!r}
[[groups]]
    domain = 'ca'
    services = ['my-root', 'my-int']
    active = true
[[groups]]
    domain = 'example.com'
    services = ['mail-ec']
    active = true
[[dns_primary]]
    domain = 'default'
    server = '127.0.0.1'
    port = {rig.bind.port}
[dns]
    servers = ['ns1.example.com']
    publish = '{publish}'
    check_port = {rig.bind.port}
    acme_dir = '{rig.include_dir}'
    tlsa_dirs = ['{rig.tlsa_dir}']
    restart_cmd = '{refresh}'
[smtp]
    servers = ['mail.example.com']
    restart_cmd = 'true'
    svc_depends = [['example.com', ['mail-ec']]]
"""
    )
    return dest


def served(world: World, prod: Path) -> ServedIdentity:
    curr = prod / "example.com/mail-ec/curr"
    return ServedIdentity(curr / "cert.pem", curr / "privkey.pem", curr / "chain.pem")


def tlsa_in_repo(world: World) -> set[str]:
    text = (world.repo / "zones/tlsa.example.com").read_text()
    return {
        " ".join(line.split()[4:8]).lower() for line in text.splitlines() if line.startswith(OWNER)
    }


@pytest.fixture
def world(tmp_path: Path, dane_rig: DaneRig) -> World:
    w = World(tmp_path, write_inventory(tmp_path / "inv-src", dane_rig))
    w.init()
    attach_dns_host(w, dane_rig)  # type: ignore[arg-type]
    return w


def test_full_dane_rollover(world: World, dane_rig: DaneRig, tmp_path: Path) -> None:
    resolver, env = dane_rig.unbound, dane_rig.refresh_env
    # Bootstrap: first certificate, TLSA for it, then roll and serve it.
    assert world.sslm("renew", now=at(), extra_env=env).exit_code == 0
    first = tlsa_in_repo(world)
    assert len(first) == 1
    roll0 = world.sslm("roll", now=at(minutes=1), extra_env=env)
    assert "example.com:mail-ec: rolled next -> curr (ready)" in roll0.output, roll0.output
    prod = tmp_path / "prod-mail"
    assert world.pull("mail.example.com", prod).exit_code == 0
    server = dane_rig.tls_server(served(world, prod))
    resolver.wait_tlsa(OWNER, first)
    assert dane_ok(resolver, "mail.example.com", 25, server.port, OWNER)

    # Renew: next's key is published next to curr's; the server still presents curr.
    renew = world.sslm("renew", "-f", "example.com:mail-ec", now=at(days=1), extra_env=env)
    assert renew.exit_code == 0, renew.output
    both = tlsa_in_repo(world)
    assert len(both) == 2 and first < both
    assert dane_rig.bind.records(OWNER, "TLSA")  # the DNS host pulled and refreshed
    resolver.wait_tlsa(OWNER, both)
    assert dane_ok(resolver, "mail.example.com", 25, server.port, OWNER)

    # Too early: 2 × TTL has not passed since the renew tag published next's TLSA.
    early = world.sslm("roll", now=at(days=1, minutes=0.05), extra_env=env)
    assert "example.com:mail-ec: held (tlsa-2xttl:" in early.output, early.output
    assert (world.repo / "certs/example.com/mail-ec/next").is_dir()

    # After the wait: roll, pull; the server switches to the new key and DANE still holds.
    roll = world.sslm("roll", now=at(days=1, minutes=5), extra_env=env)
    assert "example.com:mail-ec: rolled next -> curr (ready)" in roll.output, roll.output
    assert tlsa_in_repo(world) == both  # the retired key stays published for now
    before = prod / "example.com/mail-ec/curr"
    old = ServedIdentity(tmp_path / "old.crt", tmp_path / "old.key", tmp_path / "old.chain")
    shutil.copy(before / "cert.pem", old.cert)
    shutil.copy(before / "privkey.pem", old.key)
    assert old.chain is not None
    shutil.copy(before / "chain.pem", old.chain)
    assert world.pull("mail.example.com", prod).exit_code == 0
    server.restart(served(world, prod))
    assert dane_ok(resolver, "mail.example.com", 25, server.port, OWNER)

    # Retire: once tlsa_retire_mins passed, TLSA covers curr only and the old key fails.
    kept = world.sslm("roll", now=at(days=1, minutes=20), extra_env=env)
    assert "retired key's TLSA kept" in kept.output
    retire = world.sslm("roll", now=at(days=1, minutes=40), extra_env=env)
    assert "example.com:mail-ec: retired key's TLSA removed" in retire.output, retire.output
    assert any(t.startswith("sslm/tlsa/") for t in world.remote_tags())
    final = tlsa_in_repo(world)
    assert len(final) == 1 and final < both and final != first
    resolver.wait_tlsa(OWNER, final)
    assert dane_ok(resolver, "mail.example.com", 25, server.port, OWNER)
    retired_server = dane_rig.tls_server(old)
    assert not dane_ok(resolver, "mail.example.com", 25, retired_server.port, OWNER)


def test_a_nameserver_serving_the_old_tlsa_set_blocks_the_roll(
    tmp_path: Path, dane_rig: DaneRig
) -> None:
    stale = FakeSecondary(dane_rig.bind.port, stale=True)
    try:
        w = World(tmp_path, write_inventory(tmp_path / "inv-src", dane_rig, ["127.0.0.2"]))
        w.init()
        attach_dns_host(w, dane_rig)  # type: ignore[arg-type]
        env = dane_rig.refresh_env
        assert w.sslm("renew", now=at(), extra_env=env).exit_code == 0
        # The stale secondary answers now, with the first TLSA set, and never again fresh.
        dns.query.udp(dns.message.make_query(OWNER, "TLSA"), "127.0.0.2", port=stale.port)
        assert w.sslm("roll", now=at(minutes=1), extra_env=env).exit_code == 0
        assert (
            w.sslm("renew", "-f", "example.com:mail-ec", now=at(days=1), extra_env=env).exit_code
            == 0
        )
        held = w.sslm("roll", now=at(days=1, minutes=5), extra_env=env)
        assert held.exit_code == 0
        assert "example.com:mail-ec: held (tlsa-not-served:" in held.output, held.output
        assert "127.0.0.2" in held.output
        assert (w.repo / "certs/example.com/mail-ec/next").is_dir()
        forced = w.sslm("roll", "-f", now=at(days=1, minutes=6), extra_env=env)
        assert "forced past gate: tlsa-not-served" in forced.output
        assert "rolled next -> curr (forced)" in forced.output
    finally:
        stale.close()
    assert git(w.repo, "status", "--porcelain") == ""


def test_local_publication_and_dns_refresh_on_demand(tmp_path: Path, dane_rig: DaneRig) -> None:
    # CI on the DNS signing host: renew writes tlsa_dirs itself and refreshes the zone.
    w = World(tmp_path, write_inventory(tmp_path / "inv-src", dane_rig, publish="local"))
    w.init()
    env = dane_rig.refresh_env
    serial = dane_rig.bind.serial("example.com")
    renew = w.sslm("renew", now=at(), extra_env=env)
    assert renew.exit_code == 0, renew.output
    assert "--serial_bump example.com" in renew.output
    assert dane_rig.tlsa_fragment.read_text() == (w.repo / "zones/tlsa.example.com").read_text()
    assert dane_rig.bind.serial("example.com") > serial
    assert len(dane_rig.bind.records(OWNER, "TLSA")) == 1
    again = dane_rig.bind.serial("example.com")
    refresh = w.run("--repo", str(w.repo), "dns-refresh", extra_env=env)
    assert refresh.exit_code == 0, refresh.output
    assert dane_rig.bind.serial("example.com") > again


def test_tlsa_in_an_unsigned_zone_holds_the_roll(tmp_path: Path, dane_rig: DaneRig) -> None:
    # DANE needs DNSSEC: example.net is served unsigned, so its TLSA can never validate.
    inv = write_inventory(tmp_path / "inv-src", dane_rig)
    (inv / "example.com").rename(inv / "example.net")
    for path in (inv / "example.net" / "mail-ec", inv / "ssl-mgr.conf"):
        text = path.read_text().replace("mail.example.com'", "mail.example.net'")
        path.write_text(text.replace("'example.com'", "'example.net'"))
    w = World(tmp_path, inv)
    w.init()
    attach_dns_host(w, dane_rig)  # type: ignore[arg-type]
    env = dane_rig.refresh_env
    assert w.sslm("renew", now=at(), extra_env=env).exit_code == 0
    held = w.sslm("roll", now=at(minutes=5), extra_env=env)
    assert held.exit_code == 0
    assert "example.net:mail-ec: held (tlsa-unsigned: zone example.net is not DNSSEC-signed" in (
        held.output
    ), held.output
