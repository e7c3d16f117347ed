"""ACME end to end: certbot against pebble, challenges published through git to a DNS host that
refreshes a real BIND, one publication and one propagation wait for the whole batch."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.acme_world import acme_env, attach_dns_host, write_inventory
from tests.dns_proxies import FakeSecondary
from tests.gitops_world import World, git
from tests.rig.acme_rig import AcmeRig

# pebble signs with the real clock, so these tests run on it (moved forward where needed).
NOW = datetime.now(UTC).replace(microsecond=0)


def later(hours: float = 0, days: float = 0) -> datetime:
    return NOW + timedelta(hours=hours, days=days)


ACME_IDENTS = (
    "example.com:mail-ec",
    "example.com:wild-ec",
    "example.com:web-http",
    "example.net:web-ec",
)


def make_world(tmp_path: Path, rig: AcmeRig, **inv_kw: object) -> World:
    inv = write_inventory(tmp_path / "inv-src", rig, **inv_kw)  # type: ignore[arg-type]
    world = World(tmp_path, inv)
    world.init()
    attach_dns_host(world, rig, web_host=inv_kw.get("web_publish") == "git")
    return world


def fragments_empty(rig: AcmeRig, world: World) -> bool:
    def records(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(";")]

    for apex in rig.apexes:
        repo_frag = world.repo / "zones" / f"acme-challenge.{apex}"
        if repo_frag.exists() and records(repo_frag.read_text()):
            return False
        if records(rig.bind.acme_fragment(apex).read_text()):
            return False
    return True


def openssl_verify(root: Path, chain: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(cert)],
        capture_output=True,
        text=True,
    )


def test_batch_issues_everything_with_one_publish_and_one_wait(
    tmp_path: Path, acme_rig: AcmeRig
) -> None:
    world = make_world(tmp_path, acme_rig)
    result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 0, result.output
    out = result.output
    for ident in ACME_IDENTS:
        assert f"{ident}: renewed into next (no-current-cert)" in out
    assert out.count("publishing once") == 1
    assert out.count("propagation:") == 1
    tags = world.remote_tags()
    assert len([t for t in tags if t.startswith("sslm/acme/")]) == 1
    assert len([t for t in tags if t.startswith("sslm/renew/")]) == 1
    # The wildcard and the apex share one owner: both values were published in that commit.
    acme_tag = next(t for t in tags if t.startswith("sslm/acme/"))
    frag = git(world.remote, "show", f"{acme_tag}:zones/acme-challenge.example.com")
    assert frag.count("_acme-challenge.example.com.") >= 3  # mail-ec, wild-ec ×2 (+ apex)
    assert "www.example.com" not in frag  # http-01 names are not in DNS
    assert fragments_empty(acme_rig, world)
    stored = git(world.repo, "show", "--name-only", "--format=", "HEAD")
    assert "private_key.json.sops" in stored  # the account was stored, encrypted

    root = acme_rig.root_path
    for ident in ACME_IDENTS:
        group, svc = ident.split(":")
        nxt = world.repo / "certs" / group / svc / "next"
        ok = openssl_verify(root, nxt / "chain.pem", nxt / "cert.pem")
        assert ok.returncode == 0, ok.stderr

    rolled = world.sslm("roll", now=later(hours=2))
    assert rolled.exit_code == 0, rolled.output
    for ident in ACME_IDENTS:
        assert f"{ident}: rolled next -> curr (ready)" in rolled.output, rolled.output
    pulled = world.pull("web.example.com")
    assert pulled.exit_code == 0, pulled.output
    prod = world.base / "prod-web.example.com"
    for rel in ("example.com/web-http", "example.com/wild-ec", "example.net/web-ec"):
        curr = prod / rel / "curr"
        ok = openssl_verify(root, curr / "chain.pem", curr / "cert.pem")
        assert ok.returncode == 0, ok.stderr + pulled.output

    again = world.sslm("renew", now=later(hours=3), extra_env=acme_env(acme_rig))
    assert again.exit_code == 0, again.output
    assert "renew: nothing to do" in again.output
    assert "registering" not in again.output


def test_second_run_reuses_the_stored_account(tmp_path: Path, acme_rig: AcmeRig) -> None:
    services = {"example.net/web-ec": ("pebble-dns", ["example.net"])}
    world = make_world(tmp_path, acme_rig, services=services)
    first = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert first.exit_code == 0, first.output
    assert "registering an ACME account" in first.output
    key_files = list((world.repo / "accounts").rglob("private_key.json.sops"))
    assert len(key_files) == 1
    assert not list((world.repo / "accounts").rglob("private_key.json"))
    again = world.sslm("renew", "-f", now=later(days=1), extra_env=acme_env(acme_rig))
    assert again.exit_code == 0, again.output
    assert "registering" not in again.output
    assert "example.net:web-ec: renewed into next (forced)" in again.output


def test_a_challenge_the_ca_rejects_fails_only_that_service(
    tmp_path: Path, acme_rig: AcmeRig
) -> None:
    services = {
        "example.net/web-ec": ("pebble-dns", ["example.net"]),
        # no A record for this name: pebble's http-01 validation fails
        "example.com/broken": ("pebble-http", ["nowhere.example.com"]),
    }
    logs = tmp_path / "logs"
    world = make_world(tmp_path, acme_rig, services=services, extra_globals=(f"logdir = '{logs}'",))
    result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 1
    assert "example.com:broken: ACME FAILED" in result.output
    # certbot's own log of the failed order outlives the run's temp dir.
    kept = list((logs / "letsencrypt").glob("example.com__broken-*.log"))
    assert len(kept) == 1 and "nowhere.example.com" in kept[0].read_text()
    assert f"certbot log: {kept[0]}" in result.output
    assert "example.net:web-ec: renewed into next" in result.output
    assert not (world.repo / "certs/example.com/broken/next").exists()
    assert (world.repo / "certs/example.net/web-ec/next/cert.pem").is_file()
    assert git(world.repo, "status", "--porcelain") == ""
    assert fragments_empty(acme_rig, world)
    assert not any((acme_rig.webroot / "example.com/.well-known/acme-challenge").iterdir())


def test_ca_down_fails_cleanly(tmp_path: Path, acme_rig: AcmeRig) -> None:
    services = {"example.net/web-ec": ("pebble-dns", ["example.net"])}
    world = make_world(tmp_path, acme_rig, services=services)
    head = git(world.repo, "rev-parse", "HEAD")
    with acme_rig.pebble_stopped():
        result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 1
    assert "example.net:web-ec" in result.output and "failed" in result.output.lower()
    assert git(world.repo, "rev-parse", "HEAD") == head
    assert not (world.repo / "certs").exists()
    assert fragments_empty(acme_rig, world)


def test_a_lagging_nameserver_is_waited_for(tmp_path: Path, acme_rig: AcmeRig) -> None:
    proxy = FakeSecondary(acme_rig.dns_port, refuse_first=6)
    try:
        services = {"example.net/web-ec": ("pebble-dns", ["example.net"])}
        world = make_world(tmp_path, acme_rig, services=services, xtra_ns=["127.0.0.2"])
        result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert "waiting for" in result.output and "127.0.0.2" in result.output
    assert result.output.count("propagation:") == 1
    assert proxy.queries > 6


def test_a_dead_nameserver_aborts_before_any_answer(tmp_path: Path, acme_rig: AcmeRig) -> None:
    proxy = FakeSecondary(acme_rig.dns_port, dead=True)
    try:
        services = {"example.net/web-ec": ("pebble-dns", ["example.net"])}
        world = make_world(
            tmp_path, acme_rig, services=services, xtra_ns=["127.0.0.2"], check_timeout=3
        )
        head = git(world.repo, "rev-parse", "HEAD")
        result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    finally:
        proxy.close()
    assert result.exit_code == 1
    assert "127.0.0.2" in result.output
    assert not (world.repo / "certs/example.net/web-ec/next").exists()
    assert fragments_empty(acme_rig, world)
    # The publish commit landed, and the cleanup commit emptied the fragments again.
    assert git(world.repo, "rev-parse", "HEAD") != head
    assert git(world.repo, "status", "--porcelain") == ""


def test_local_publish_mode_refreshes_the_zone_directly(tmp_path: Path, acme_rig: AcmeRig) -> None:
    services = {"example.com/mail-ec": ("pebble-dns", ["example.com", "smtp.example.com"])}
    world = make_world(tmp_path, acme_rig, services=services, publish="local")
    serial_before = acme_rig.bind.serial("example.com")
    result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 0, result.output
    assert "dns refresh:" in result.output and "--serial_bump example.com" in result.output
    assert not [t for t in world.remote_tags() if t.startswith("sslm/acme/")]
    assert acme_rig.bind.serial("example.com") >= serial_before + 2  # publish + cleanup
    assert fragments_empty(acme_rig, world)


def test_http01_tokens_published_through_git_reach_the_web_host(
    tmp_path: Path, acme_rig: AcmeRig
) -> None:
    services = {
        "example.com/web-http": ("pebble-http", ["example.com", "www.example.com"]),
        "example.net/web-ec": ("pebble-dns", ["example.net"]),
    }
    world = make_world(tmp_path, acme_rig, services=services, web_publish="git")
    result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 0, result.output
    assert "published 1 dns-01 + 2 http-01 challenge(s)" in result.output
    acme_tags = [t for t in world.remote_tags() if t.startswith("sslm/acme/")]
    assert len(acme_tags) == 1  # fragments and tokens went out in one commit
    files = git(world.remote, "show", "--name-only", "--format=", acme_tags[0]).split()
    assert "zones/acme-challenge.example.net" in files
    assert len([f for f in files if f.startswith("webroot/example.com/.well-known/")]) == 2
    # The web host served the tokens (pebble fetched them) and removed them afterwards.
    assert "example.com:web-http: renewed into next" in result.output
    served = [r for r in acme_rig.http.requests if r.status == 200]
    assert served
    assert not any((acme_rig.webroot / "example.com/.well-known/acme-challenge").iterdir())
    assert not (world.repo / "webroot").exists()


def test_dry_run_validates_and_keeps_nothing(tmp_path: Path, acme_rig: AcmeRig) -> None:
    services = {"example.net/web-ec": ("pebble-dns", ["example.net"])}
    world = make_world(tmp_path, acme_rig, services=services)
    result = world.sslm("renew", "-n", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 0, result.output
    assert "example.net:web-ec: ACME dry run ok" in result.output
    assert not (world.repo / "certs").exists()
    assert fragments_empty(acme_rig, world)


def test_ca_dying_mid_run_fails_closed(tmp_path: Path, acme_rig: AcmeRig) -> None:
    # The DNS refresh (run once the challenges are published) kills pebble: certbot cannot
    # answer or finish; nothing may be kept and the fragments must be cleaned.
    services = {"example.net/web-ec": ("pebble-dns", ["example.net"])}
    pid = acme_rig.pebble.pid
    world = make_world(
        tmp_path,
        acme_rig,
        services=services,
        publish="local",
        restart_extra=f" ; kill {pid} 2>/dev/null; true",
    )
    result = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert result.exit_code == 1
    assert "example.net:web-ec: ACME FAILED" in result.output
    assert not (world.repo / "certs").exists()
    assert fragments_empty(acme_rig, world)


def test_order_budget_defers_over_the_cap_per_three_hours(
    tmp_path: Path, acme_rig: AcmeRig
) -> None:
    services = {
        "example.com/mail-ec": ("pebble-dns", ["example.com"]),
        "example.net/web-ec": ("pebble-dns", ["example.net"]),
    }
    world = make_world(
        tmp_path, acme_rig, services=services, extra_globals=("acme_max_orders = 1",)
    )
    first = world.sslm("renew", now=NOW, extra_env=acme_env(acme_rig))
    assert first.exit_code == 0, first.output
    assert "example.com:mail-ec: renewed into next" in first.output
    assert "example.net:web-ec: deferred to a later run (deferred: 0 orders" in first.output
    assert "Sslm-Acme-Orders: pebble-dns 1" in git(world.repo, "log", "-1", "--format=%B")
    soon = world.sslm("renew", now=later(hours=1), extra_env=acme_env(acme_rig))
    assert "example.net:web-ec: deferred to a later run (deferred: 1 orders at pebble-dns" in (
        soon.output
    )
    after = world.sslm("renew", now=later(hours=3, days=0.01), extra_env=acme_env(acme_rig))
    assert after.exit_code == 0, after.output
    assert "example.net:web-ec: renewed into next" in after.output
