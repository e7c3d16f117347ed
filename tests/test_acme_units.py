"""ACME pieces without a CA: command lines, the hook rendezvous, accounts in the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sslm_ci.acme import accounts
from sslm_ci.acme.certbot import (
    LE_PRODUCTION,
    LE_STAGING,
    CertbotDirs,
    certonly_command,
    directory_url,
)
from sslm_ci.acme.publish import dns_records_by_apex
from sslm_ci.acme.rendezvous import Challenge, HookServer
from sslm_ci.config.model import CaInfo
from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file
from sslm_ci.gitops.sops import Sops, render_sops_yaml

CA = CaInfo(name="le-dns", desc="LE", ca_type="certbot", validation="dns-01")


def test_directory_url_defaults_and_test_switch() -> None:
    assert directory_url(CA, test=False) == LE_PRODUCTION
    assert directory_url(CA, test=True) == LE_STAGING
    own = CaInfo("p", "pebble", "certbot", "dns-01", server="https://127.0.0.1:14000/dir")
    assert directory_url(own, test=False) == "https://127.0.0.1:14000/dir"


def test_certonly_command_shape(tmp_path: Path) -> None:
    cmd = certonly_command(
        ident="example.com:mail-ec",
        kind="dns-01",
        csr=tmp_path / "csr.pem",
        out_dir=tmp_path / "out",
        dirs=CertbotDirs.under(tmp_path),
        server="https://acme.test/dir",
        preferred_chain="ISRG Root X1",
        profile="tlsserver",
        dry_run=True,
    )
    joined = " ".join(cmd)
    assert cmd[0] == sys.executable and "certbot.main" in cmd[2]
    assert "certonly" in cmd and "--manual" in cmd and "--non-interactive" in cmd
    assert cmd[cmd.index("--preferred-challenges") + 1] == "dns"
    assert cmd[cmd.index("--csr") + 1] == str(tmp_path / "csr.pem")
    assert cmd[cmd.index("--cert-path") + 1] == str(tmp_path / "out" / "cert.pem")
    assert "sslm_ci.acme.hook auth dns-01 example.com:mail-ec" in joined
    assert "sslm_ci.acme.hook cleanup dns-01" in joined
    assert cmd[cmd.index("--preferred-chain") + 1] == "ISRG Root X1"
    assert cmd[cmd.index("--preferred-profile") + 1] == "tlsserver"
    assert "--dry-run" in cmd
    http = certonly_command(
        ident="x:y",
        kind="http-01",
        csr=tmp_path,
        out_dir=tmp_path,
        dirs=CertbotDirs.under(tmp_path),
        server="s",
    )
    assert http[http.index("--preferred-challenges") + 1] == "http"
    assert "--dry-run" not in http


def _hook(sock: Path, phase: str, domain: str, remaining: int, value: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        SSLM_CI_HOOK_SOCKET=str(sock),
        SSLM_CI_HOOK_DEADLINE="20",
        CERTBOT_DOMAIN=domain,
        CERTBOT_VALIDATION=value,
        CERTBOT_REMAINING_CHALLENGES=str(remaining),
        CERTBOT_ALL_DOMAINS=domain,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "sslm_ci.acme.hook", phase, "dns-01", "example.com:mail-ec"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


@pytest.mark.parametrize(("verdict", "code"), [("ok", 0), ("abort: DNS did not converge", 1)])
def test_rendezvous_holds_only_the_last_hook(tmp_path: Path, verdict: str, code: int) -> None:
    server = HookServer(tmp_path / "h.sock")
    try:
        server.expect("example.com:mail-ec")
        first = _hook(server.path, "auth", "example.com", 1, "v1")
        assert _finish(first)[0] == 0  # not the last one: answered at once
        assert not server.delivered_all("example.com:mail-ec")
        last = _hook(server.path, "auth", "www.example.com", 0, "v2")
        deadline = time.monotonic() + 10
        while not server.delivered_all("example.com:mail-ec"):
            assert time.monotonic() < deadline
            server.wait_for_change(0.05)
        time.sleep(0.2)
        assert last.poll() is None  # held until the batch is published
        assert [c.validation for c in server.challenges()] == ["v1", "v2"]
        server.release(verdict)
        rc, err = _finish(last)
        assert rc == code
        if code:
            assert "DNS did not converge" in err
        cleanup = _hook(server.path, "cleanup", "example.com", 0, "v1")
        assert _finish(cleanup)[0] == 0
    finally:
        server.close()
    assert not (tmp_path / "h.sock").exists()


def test_hook_without_parent_fails_closed(tmp_path: Path) -> None:
    proc = _hook(tmp_path / "nobody.sock", "auth", "example.com", 0, "v")
    assert _finish(proc)[0] == 1


def test_unknown_service_is_refused(tmp_path: Path) -> None:
    server = HookServer(tmp_path / "h.sock")
    try:
        proc = _hook(server.path, "auth", "example.com", 0, "v")  # never expect()ed
        assert _finish(proc)[0] == 1
    finally:
        server.close()


def test_records_are_grouped_by_apex_and_wildcards_share_a_name() -> None:
    chs = [
        Challenge("example.com:wild", "dns-01", "example.com", "A" * 43, ""),
        Challenge("example.com:wild", "dns-01", "example.com", "B" * 43, ""),
        Challenge("example.net:web", "dns-01", "www.example.net", "C" * 43, ""),
        Challenge("example.net:web2", "http-01", "example.net", "tok.thumb", "tok"),
    ]
    groups = {
        "example.com:wild": "example.com",
        "example.net:web": "example.net",
        "example.net:web2": "example.net",
    }
    records = dns_records_by_apex(chs, groups.__getitem__)
    assert records == {
        "example.com": [
            ("_acme-challenge.example.com.", "A" * 43),
            ("_acme-challenge.example.com.", "B" * 43),
        ],
        "example.net": [("_acme-challenge.www.example.net.", "C" * 43)],
    }


def test_account_round_trip_keeps_the_key_encrypted(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    secret, public = generate_age_identity()
    key_file = tmp_path / "ci.agekey"
    write_identity_file(key_file, secret, public)
    (repo / ".sops.yaml").write_text(render_sops_yaml([("^accounts/", [public])]))
    sops = Sops(repo, env={**os.environ, "SOPS_AGE_KEY_FILE": str(key_file)})
    server = "https://127.0.0.1:14000/dir"
    cfg = tmp_path / "certbot-config"
    acct = cfg / "accounts" / "127.0.0.1:14000" / "dir" / "abc123"
    acct.mkdir(parents=True)
    (acct / "private_key.json").write_text('{"kty": "RSA", "d": "secret-part"}')
    (acct / "regr.json").write_text('{"uri": "https://127.0.0.1:14000/my-account/1"}')
    (acct / "meta.json").write_text('{"creation_host": "ci"}')

    assert not accounts.has_account(repo, "le-dns", server)
    written = accounts.save_account(repo, sops, "le-dns", server, cfg)
    assert accounts.has_account(repo, "le-dns", server)
    assert not accounts.has_account(repo, "le-dns", "https://other.example/dir")
    assert any(p.endswith("private_key.json.sops") for p in written)
    stored = b"".join((repo / p).read_bytes() for p in written)
    assert b"secret-part" not in stored

    restored = tmp_path / "restored"
    accounts.restore_account(repo, sops, "le-dns", server, restored)
    key = restored / "accounts/127.0.0.1:14000/dir/abc123/private_key.json"
    assert key.read_text() == '{"kty": "RSA", "d": "secret-part"}'
    assert key.stat().st_mode & 0o777 == 0o600
    assert (restored / "accounts/127.0.0.1:14000/dir/abc123/regr.json").is_file()
