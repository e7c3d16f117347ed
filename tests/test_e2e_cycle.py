"""renew → roll → pull through real git, sops+age, ssh signing and openssl."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.gitops_world import World, copy_inventory, git, later

MAIL = "mail.example.com"
WEB = "web.example.com"
LEAVES = ("example.com:mail-ec", "example.com:web-ec", "example.net:web-ec")
CAS = ("ca:my-root", "ca:my-int")


@pytest.fixture
def world(tmp_path: Path) -> World:
    inv = copy_inventory(tmp_path / "inv-src")
    # The restart command leaves evidence, and fails while a flag file exists.
    smtp_log = tmp_path / "smtp-restarts.log"
    fail_flag = tmp_path / "fail-restart"
    conf = (inv / "ssl-mgr.conf").read_text()
    conf = conf.replace(
        """restart_cmd = ['echo "postfix reload on $SSLM_CI_HOST"']""",
        f"""restart_cmd = ['test ! -e {fail_flag}', 'echo "$SSLM_CI_CHANGED" >> {smtp_log}']""",
    )
    (inv / "ssl-mgr.conf").write_text(conf)
    w = World(tmp_path, inv)
    w.init()
    return w


def all_blobs_text(repo: Path) -> str:
    objects = git(repo, "rev-list", "--objects", "--all").split("\n")
    shas = [line.split()[0] for line in objects if line.strip()]
    out = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        input=("\n".join(shas) + "\n").encode(),
        capture_output=True,
        check=True,
    ).stdout
    return out.decode(errors="replace")


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def spki_sha256(cert: Path) -> str:
    pub = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True, check=True
    ).stdout
    return (
        subprocess.run(
            ["openssl", "dgst", "-sha256", "-r"], input=der, capture_output=True, check=True
        )
        .stdout.split()[0]
        .decode()
    )


def test_full_cycle_renew_roll_pull(world: World) -> None:
    repo = world.repo
    renew = world.sslm("renew")
    assert renew.exit_code == 0, renew.output
    for ident in (*CAS, *LEAVES):
        assert f"{ident}: renewed into next (no-current-cert)" in renew.output
    tags = world.remote_tags()
    assert tags == ["sslm/renew/20261203T120000Z"]
    message = git(repo, "log", "-1", "--format=%B")
    assert "Sslm-Stage: renew" in message
    assert "Sslm-Reason: example.com:mail-ec no-current-cert" in message
    assert git(repo, "log", "-1", "--format=%cI").strip() == "2026-12-03T12:00:00+00:00"

    mail_next = repo / "certs/example.com/mail-ec/next"
    assert sorted(p.name for p in mail_next.iterdir()) == [
        "bundle.pem.sops",
        "cert.pem",
        "chain.pem",
        "csr.pem",
        "fullchain.pem",
        "info",
        "privkey.pem.sops",
    ]
    assert not (repo / "certs/example.com/mail-ec/curr").exists()
    root = repo / "certs/ca/my-root/next/cert.pem"
    verify = openssl(
        "verify",
        "-CAfile",
        str(root),
        "-untrusted",
        str(mail_next / "chain.pem"),
        str(mail_next / "cert.pem"),
    )
    assert verify.returncode == 0, verify.stderr
    tlsa = (repo / "zones/tlsa.example.com").read_text()
    assert f"_25._tcp.example.com. 1800 IN TLSA 3 1 1 {spki_sha256(mail_next / 'cert.pem')}" in tlsa
    assert "_25._tcp.smtp.example.com." in tlsa
    assert not (repo / "zones/tlsa.example.net").exists()  # no DANE service there

    # Nothing anywhere in git history holds a plaintext private key.
    blobs = all_blobs_text(world.remote)
    assert "PRIVATE KEY-----" not in blobs
    assert "AGE-SECRET-KEY" not in blobs

    # Too early to roll: held with a reason, no commit.
    early = world.sslm("roll", now=later(hours=1))
    assert early.exit_code == 0, early.output
    assert "held (min-roll-mins: 30m left)" in early.output
    assert "roll: nothing to do" in early.output
    assert world.remote_tags() == tags

    rolled = world.sslm("roll", now=later(hours=2))
    assert rolled.exit_code == 0, rolled.output
    assert "example.com:web-ec: rolled next -> curr (ready)" in rolled.output
    # A DANE service whose publication cannot be verified (no [[dns_primary]]) waits.
    assert "example.com:mail-ec: held (no-dns-primary" in rolled.output
    forced = world.sslm("roll", "-f", "example.com:mail-ec", now=later(hours=2.5))
    assert forced.exit_code == 0, forced.output
    assert "WARNING example.com:mail-ec: forced past gate: no-dns-primary" in forced.output
    assert "example.com:mail-ec: rolled next -> curr (forced)" in forced.output
    assert world.remote_tags() == [
        *tags,
        "sslm/roll/20261203T140000Z",
        "sslm/roll/20261203T143000Z",
    ]
    curr = repo / "certs/example.com/mail-ec/curr"
    assert not mail_next.exists()
    info = json.loads((curr / "info").read_text())
    assert info["rolled_at"] == "2026-12-03T14:30:00+00:00"
    # The previous state is still reachable in history.
    renew_commit = git(repo, "rev-list", "-n1", "sslm/renew/20261203T120000Z").strip()
    assert "certs/example.com/mail-ec/next/cert.pem" in git(
        repo, "show", "--name-only", "--format=", renew_commit
    )

    again = world.sslm("renew", now=later(hours=3))
    assert again.exit_code == 0
    assert "renew: nothing to do" in again.output
    assert "not due (renews-in-" in again.output

    # Server side: the mail host gets exactly its own service.
    prod = world.base / "prod-mail"
    pulled = world.pull(MAIL, prod)
    assert pulled.exit_code == 0, pulled.output
    assert "signature verified" in pulled.output
    installed = prod / "example.com/mail-ec/curr"
    assert installed.is_symlink()
    assert (installed / "privkey.pem").read_bytes().startswith(b"-----BEGIN " + b"PRIVATE KEY-----")
    assert stat.S_IMODE((installed / "privkey.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((installed / "bundle.pem").stat().st_mode) == 0o600
    assert (installed / "cert.pem").read_bytes() == (curr / "cert.pem").read_bytes()
    assert not (prod / "example.com/web-ec").exists()
    assert not (prod / "ca").exists()  # CA keys never reach servers
    assert (prod / "example.com/tlsa.example.com").read_text() == (
        repo / "zones/tlsa.example.com"
    ).read_text()
    root_curr = repo / "certs/ca/my-root/curr/cert.pem"
    ok = openssl(
        "verify",
        "-CAfile",
        str(root_curr),
        "-untrusted",
        str(installed / "chain.pem"),
        str(installed / "cert.pem"),
    )
    assert ok.returncode == 0, ok.stderr
    restarts = (world.base / "smtp-restarts.log").read_text().splitlines()
    assert restarts == ["example.com example.com:mail-ec"]

    second = world.pull(MAIL, prod)
    assert second.exit_code == 0
    assert "already installed: nothing to do" in second.output
    assert (world.base / "smtp-restarts.log").read_text().splitlines() == restarts


def test_host_key_decrypts_only_its_own_services(world: World) -> None:
    assert world.sslm("renew").exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    web_key = world.repo / "certs/example.com/web-ec/curr/privkey.pem.sops"
    denied = world.run("info", str(web_key), identity=MAIL, signed=False)
    assert denied.exit_code == 1
    assert "PRIVATE KEY" not in denied.output
    allowed = world.run("info", str(web_key), identity=WEB, signed=False)
    assert allowed.exit_code == 0, allowed.output
    assert "EC" in allowed.output and "BEGIN" not in allowed.output


def test_wrong_age_key_installs_nothing(world: World) -> None:
    assert world.sslm("renew").exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    prod = world.base / "prod-mail"
    result = world.pull(MAIL, prod, identity=WEB)
    assert result.exit_code == 1
    assert "error:" in result.output
    assert not (prod / "example.com").exists()


def test_unsigned_tag_is_refused(world: World) -> None:
    assert world.sslm("renew", signed=False).exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=2), signed=False).exit_code == 0
    prod = world.base / "prod-mail"
    result = world.pull(MAIL, prod)
    assert result.exit_code == 1
    assert not (prod / "example.com").exists()
    # Without configured signers the same tag installs (with a warning).
    unverified = world.pull(MAIL, prod, allowed=False)
    assert unverified.exit_code == 0, unverified.output
    assert "not verified" in unverified.output


def test_failed_restart_restores_previous_install(world: World) -> None:
    assert world.sslm("renew").exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    prod = world.base / "prod-mail"
    assert world.pull(MAIL, prod).exit_code == 0
    link = prod / "example.com/mail-ec/curr"
    before_target = os.readlink(link)
    before_cert = (link / "cert.pem").read_bytes()
    state_before = (prod / ".sslm-ci/state.json").read_text()

    assert world.sslm("renew", "-f", "example.com:mail-ec", now=later(hours=3)).exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=5)).exit_code == 0
    (world.base / "fail-restart").touch()
    failed = world.pull(MAIL, prod)
    assert failed.exit_code == 1
    assert "restart [smtp]" in failed.output
    assert os.readlink(link) == before_target
    assert (link / "cert.pem").read_bytes() == before_cert
    assert (prod / ".sslm-ci/state.json").read_text() == state_before

    (world.base / "fail-restart").unlink()
    fixed = world.pull(MAIL, prod)
    assert fixed.exit_code == 0, fixed.output
    assert (link / "cert.pem").read_bytes() != before_cert


def test_rollback_to_an_older_tag_is_refused(world: World) -> None:
    assert world.sslm("renew").exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    prod = world.base / "prod-mail"
    assert world.pull(MAIL, prod).exit_code == 0
    newest = "sslm/roll/20261203T140000Z"
    git(world.remote, "tag", "-d", newest)
    git(world.server_clone(MAIL), "tag", "-d", newest)
    result = world.pull(MAIL, prod)
    assert result.exit_code == 1
    assert "refusing to roll back" in result.output


def test_renewal_comes_due_with_time_and_reuse_keeps_key_bytes(world: World) -> None:
    assert world.sslm("renew").exit_code == 0
    assert world.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    status = world.sslm("status", "--json", now=later(days=59))
    rows = {r["ident"]: r for r in json.loads(status.output)["services"]}
    assert rows["example.com:mail-ec"]["renew_due"] is False
    assert rows["example.com:mail-ec"]["renew_at"].startswith("2027-02-01")  # 90 d − 30 d

    curr_key = world.repo / "certs/example.com/mail-ec/curr/privkey.pem.sops"
    web_key = world.repo / "certs/example.com/web-ec/curr/privkey.pem.sops"
    web_before = web_key.read_bytes()
    tlsa_before = (world.repo / "zones/tlsa.example.com").read_text()
    due = world.sslm("renew", "-r", "example.com", now=later(days=61))
    assert due.exit_code == 0, due.output
    assert "example.com:mail-ec: renewed into next (expires-in-29d (key reused))" in due.output
    next_key = world.repo / "certs/example.com/mail-ec/next/privkey.pem.sops"
    assert next_key.read_bytes() == curr_key.read_bytes()  # same ciphertext: no churn
    assert web_key.read_bytes() == web_before
    # 3 1 1 over an unchanged key: the TLSA set does not change.
    assert (world.repo / "zones/tlsa.example.com").read_text() == tlsa_before
    changed = git(world.repo, "show", "--name-only", "--format=", "HEAD").split()
    assert "certs/example.com/web-ec/curr/privkey.pem.sops" not in changed


def test_rejected_push_is_rebased_and_retried(world: World) -> None:
    other = world.base / "other-clone"
    git(world.base, "clone", "-q", str(world.remote), str(other), env=world.env())
    (other / "NOTES.md").write_text("someone else pushed first\n")
    git(other, "add", "NOTES.md")
    git(
        other,
        "-c",
        "user.name=x",
        "-c",
        "user.email=x@y",
        "commit",
        "-q",
        "-m",
        "notes",
        env=world.env(),
    )
    git(other, "push", "-q", "origin", "main", env=world.env())

    result = world.sslm("renew")
    assert result.exit_code == 0, result.output
    log = git(world.remote, "log", "--format=%s", "main").splitlines()
    assert log[0].startswith("renew:") and log[1] == "notes"
    tag_commit = git(world.remote, "rev-list", "-n1", "sslm/renew/20261203T120000Z").strip()
    assert tag_commit == git(world.remote, "rev-parse", "main").strip()
    verify = subprocess.run(
        [
            "git",
            "-c",
            f"gpg.ssh.allowedSignersFile={world.allowed_signers}",
            "verify-tag",
            "sslm/renew/20261203T120000Z",
        ],
        cwd=world.remote,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr


def test_bad_inventory_exits_2_and_writes_nothing(world: World) -> None:
    conf = world.repo / "inventory/ssl-mgr.conf"
    conf.write_text(conf.read_text().replace("min_roll_mins = 90", "min_rol_mins = 90"))
    git(
        world.repo,
        "commit",
        "-qam",
        "typo",
        env={
            **world.env(),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    head = git(world.repo, "rev-parse", "HEAD")
    result = world.sslm("renew")
    assert result.exit_code == 2
    assert "ssl-mgr.conf" in result.output and "min_rol_mins" in result.output
    assert "min_roll_mins" in result.output  # the suggestion
    assert git(world.repo, "rev-parse", "HEAD") == head
    assert git(world.repo, "status", "--porcelain") == ""
    assert not (world.repo / "certs").exists()


def test_failing_stage_leaves_no_partial_next(world: World) -> None:
    # The remote refuses the stage's push (after the commit was made locally): nothing may
    # remain — no local commit or tag, no next/ files, a clean tree.
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pre-receive: frozen for maintenance' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = git(world.repo, "rev-parse", "HEAD")
    result = world.sslm("renew")
    assert result.exit_code == 1
    assert "pre-receive hook declined" in result.output
    assert git(world.repo, "rev-parse", "HEAD") == head
    assert git(world.repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(world.repo, "tag", "--list") == ""
    assert world.remote_tags() == []
    assert not (world.repo / "certs").exists()


def test_guard_refuses_a_staged_plaintext_key(world: World) -> None:
    key = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        capture_output=True,
        check=True,
    ).stdout
    leak = world.repo / "certs/example.com/notes.txt"
    leak.parent.mkdir(parents=True)
    leak.write_bytes(b"oops\n" + key)
    git(world.repo, "add", str(leak))
    result = world.run("--repo", str(world.repo), "guard")
    assert result.exit_code == 1
    assert "certs/example.com/notes.txt" in result.output
    assert "BEGIN" not in result.output
    # And a stage refuses to run on top of it.
    renew = world.sslm("renew")
    assert renew.exit_code == 1
    assert "uncommitted changes" in renew.output


def test_renew_clears_challenges_a_crashed_run_left_published(world: World) -> None:
    # A run that died between its acme publish commit and its own commit.
    frag = world.repo / "zones/acme-challenge.example.com"
    frag.parent.mkdir(parents=True)
    frag.write_text('_acme-challenge.example.com. 60 IN TXT "' + "x" * 43 + '"\n')
    token = world.repo / "webroot/example.com/.well-known/acme-challenge/tok"
    token.parent.mkdir(parents=True)
    token.write_text("tok.thumb")
    env = {
        **world.env(),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    git(world.repo, "add", "zones", "webroot")
    git(world.repo, "commit", "-qm", "acme: publish", env=env)
    result = world.sslm("renew")
    assert result.exit_code == 0, result.output
    assert "cleared challenges left by an earlier run" in result.output
    assert "TXT" not in git(world.remote, "show", "main:zones/acme-challenge.example.com")
    assert "webroot" not in git(world.remote, "ls-tree", "-r", "--name-only", "main")
