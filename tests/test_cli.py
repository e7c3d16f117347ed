"""The smaller commands (info, verify, dhparm, clean, status, init) and sslm-mgr's flags."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslm_ci.cli import cli
from sslm_ci.compat import main as sslm_mgr_main
from sslm_ci.compat import translate
from sslm_ci.pki.dh import parse_dh_pem
from tests.gitops_world import PROJECT, World, copy_inventory, git, later


@pytest.fixture
def rolled(tmp_path: Path) -> World:
    w = World(tmp_path, copy_inventory(tmp_path / "inv-src"))
    w.init()
    assert w.sslm("renew").exit_code == 0
    assert w.sslm("roll", "-f", now=later(hours=2)).exit_code == 0
    return w


def test_info_describes_every_artifact_without_key_material(rolled: World) -> None:
    curr = rolled.repo / "certs/example.com/mail-ec/curr"
    result = rolled.run(
        "info",
        *(
            str(curr / n)
            for n in ("cert.pem", "chain.pem", "csr.pem", "privkey.pem.sops", "bundle.pem.sops")
        ),
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "smtp.example.com" in out  # SANs of cert and CSR
    assert "Example Intermediate CA" in out and "Example Root CA" in out  # the chain
    assert "secp256r1" in out
    assert "BEGIN" not in out and "PRIVATE" not in out.replace("private key", "")


def test_verify_accepts_a_good_chain_and_rejects_a_wrong_one(rolled: World) -> None:
    curr = rolled.repo / "certs/example.com/mail-ec/curr"
    root = rolled.repo / "certs/ca/my-root/curr/cert.pem"
    ok = rolled.sslm(
        "verify",
        str(curr / "cert.pem"),
        "--chain",
        str(curr / "chain.pem"),
        "--root",
        str(root),
        now=later(hours=3),
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().endswith(": OK")
    other = rolled.repo / "certs/example.net/web-ec/curr/cert.pem"
    bad = rolled.sslm("verify", str(curr / "cert.pem"), "--chain", str(other), now=later(hours=3))
    assert bad.exit_code == 1
    expired = rolled.sslm(
        "verify", str(curr / "cert.pem"), "--chain", str(curr / "chain.pem"), now=later(days=400)
    )
    assert expired.exit_code == 1


def test_dhparm_writes_named_group_once_and_links_dhparam(tmp_path: Path) -> None:
    runner = CliRunner()
    out_dir = tmp_path / "dh"
    first = runner.invoke(cli, ["dhparm", "-k", "ffdhe2048", "--dir", str(out_dir)])
    assert first.exit_code == 0, first.output
    pem = out_dir / "ffdhe2048.pem"
    assert "written" in first.output
    assert os.readlink(out_dir / "dhparam.pem") == "ffdhe2048.pem"
    text = subprocess.run(
        ["openssl", "pkeyparam", "-in", str(pem), "-text", "-noout"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ffdhe2048" in text or "DH Parameters: (2048 bit)" in text
    p, g = parse_dh_pem(pem.read_bytes())
    assert g == 2 and p.bit_length() == 2048
    mtime = pem.stat().st_mtime_ns
    second = runner.invoke(cli, ["dhparm", "-k", "ffdhe2048", "--dir", str(out_dir)])
    assert "up to date" in second.output
    assert pem.stat().st_mtime_ns == mtime
    bad = runner.invoke(cli, ["dhparm", "-k", "ffdhe1234", "--dir", str(out_dir)])
    assert bad.exit_code == 2


def test_clean_is_a_noop(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--repo", str(tmp_path), "clean"])
    assert result.exit_code == 0
    assert list(tmp_path.iterdir()) == []


def test_status_text_shows_expiry_and_roll_state(rolled: World) -> None:
    assert rolled.sslm("renew", "-f", "example.com:mail-ec", now=later(days=1)).exit_code == 0
    result = rolled.sslm("status", now=later(days=1, hours=1))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("example.com:mail-ec"))
    assert "2027-03-03" in line  # curr expiry (90 days from issue)
    assert "next published 1h00m ago, gate: min_roll_mins in 30m" in line
    assert "next-awaiting-roll" in line


def test_init_refuses_a_bad_inventory_and_writes_nothing(tmp_path: Path) -> None:
    src = copy_inventory(tmp_path / "src")
    svc = src / "example.com/web-ec"
    svc.write_text(svc.read_text().replace("ec_algo = 'secp256r1'", "ec_algo = 'secp999r1'"))
    target = tmp_path / "repo"
    result = CliRunner().invoke(
        cli, ["init", str(target), "--from", str(src), "--age-recipient", "age1" + "q" * 58]
    )
    assert result.exit_code == 2
    assert "example.com/web-ec" in result.output and "ec_algo" in result.output
    assert not target.exists()


def test_init_takes_the_ci_recipient_from_the_sops_key_file(tmp_path: Path) -> None:
    w = World(tmp_path, copy_inventory(tmp_path / "src"))
    target = tmp_path / "repo2"
    result = w.run("init", str(target), "--from", str(w.inventory_src))
    assert result.exit_code == 0, result.output
    assert w.ci_public in (target / "recipients.toml").read_text()
    assert w.ci_public in (target / ".sops.yaml").read_text()
    assert git(target, "status", "--porcelain") == ""
    hook = target / ".git/hooks/pre-commit"
    assert os.access(hook, os.X_OK)


def test_translate_maps_ssl_mgr_flags() -> None:
    assert translate(["-renew", "-f", "example.com:mail-ec"]) == [
        ["renew", "-f", "example.com:mail-ec"]
    ]
    assert translate(["-roll", "-roll-mins", "0", "--repo", "/r"]) == [
        ["--repo", "/r", "roll", "--roll-mins", "0"]
    ]
    assert translate(["-renew", "-roll"]) == [["renew"], ["roll"]]
    assert translate(["-s"]) == [["status"]]
    assert translate(["dev", "-ntoc", "example.com"]) == [["roll", "-f", "example.com"]]
    assert translate(["dev", "-copy"]) == [["renew", "-f", "-r"]]
    assert translate(["-clean-keep", "3"]) == [["clean"]]
    assert translate(["-renew", "-t", "-n"]) == [["renew", "-t", "-n"]]
    with pytest.raises(SystemExit):
        translate(["-bogus"])


def test_sslm_mgr_runs_the_same_engine(
    rolled: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in rolled.env().items():
        monkeypatch.setenv(key, value)
    sslm_mgr_main(["--repo", str(rolled.repo), "--now", later(days=1).isoformat(), "-s"])
    out = capsys.readouterr().out
    assert "example.com:mail-ec" in out and "renews-in-" in out
    sslm_mgr_main(
        [
            "--repo",
            str(rolled.repo),
            "--now",
            later(days=1).isoformat(),
            "-renew",
            "-f",
            "example.net:web-ec",
        ]
    )
    assert "example.net:web-ec: renewed into next (forced)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        sslm_mgr_main(["-renew", "-roll-mins", "soon"])
    assert exc.value.code == 2


def test_console_scripts_exit_codes(tmp_path: Path) -> None:
    exe = PROJECT / ".venv/bin/sslm-ci"
    usage = subprocess.run([str(exe), "renew", "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2
    missing = subprocess.run(
        [str(exe), "--repo", str(tmp_path), "status"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "ssl-mgr.conf" in missing.stderr


def test_dhparm_refreshes_classic_params_after_max_age(tmp_path: Path) -> None:
    runner = CliRunner()
    out_dir = tmp_path / "dh"
    args = ["dhparm", "-k", "512", "--dir", str(out_dir)]
    first = runner.invoke(cli, ["--now", "2026-12-03T12:00:00Z", *args])
    assert first.exit_code == 0, first.output
    pem = out_dir / "dh512.pem"
    original = pem.read_bytes()
    check = subprocess.run(
        ["openssl", "dhparam", "-in", str(pem), "-check", "-noout"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    stamp = pem.stat().st_mtime
    young = runner.invoke(cli, ["--now", _iso_after(stamp, days=100), *args])
    assert "up to date" in young.output
    assert pem.read_bytes() == original
    old = runner.invoke(cli, ["--now", _iso_after(stamp, days=121), *args])
    assert "written" in old.output
    assert pem.read_bytes() != original


def _iso_after(epoch: float, days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.fromtimestamp(epoch, UTC) + timedelta(days=days)).isoformat()


def test_status_reports_and_history_through_the_cli(rolled: World, tmp_path: Path) -> None:
    prom = tmp_path / "metrics" / "sslm.prom"
    page = tmp_path / "page"
    md = tmp_path / "summary.md"
    gh = tmp_path / "github-summary.md"
    result = rolled.sslm(
        "status",
        "--prometheus",
        str(prom),
        "--html",
        str(page),
        "--markdown",
        str(md),
        now=later(days=1),
        extra_env={"GITHUB_STEP_SUMMARY": str(gh)},
    )
    assert result.exit_code == 0, result.output
    metrics = prom.read_text()
    assert "sslm_certificate_expiration_timestamp_seconds{" in metrics
    assert 'service="mail-ec"' in metrics
    assert "example.com:mail-ec" in (page / "index.html").read_text()
    assert "mail-ec" in md.read_text() and gh.read_text().strip() == md.read_text().strip()

    renew = rolled.sslm(
        "renew",
        "-f",
        "example.net:web-ec",
        now=later(days=2),
        extra_env={"GITHUB_STEP_SUMMARY": str(gh)},
    )
    assert renew.exit_code == 0, renew.output
    assert "example.net:web-ec" in gh.read_text().split("sslm-ci", 2)[-1]

    hist = rolled.run("--repo", str(rolled.repo), "history", "example.net:web-ec")
    assert hist.exit_code == 0, hist.output
    assert "renew" in hist.output and "forced" in hist.output
    assert "sslm/renew/" in hist.output
    assert "example.com:mail-ec" not in hist.output


def test_ci_templates_are_installed_without_clobbering(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["--repo", str(tmp_path), "ci-templates"])
    assert first.exit_code == 0, first.output
    workflow = tmp_path / ".github/workflows/sslm-ci.yml"
    assert "sslm-ci" in workflow.read_text()
    assert "stages:" in (tmp_path / ".gitlab-ci.yml").read_text()
    workflow.write_text("# mine\n")
    again = runner.invoke(cli, ["--repo", str(tmp_path), "ci-templates"])
    assert again.exit_code == 2
    assert workflow.read_text() == "# mine\n"
    forced = runner.invoke(cli, ["--repo", str(tmp_path), "ci-templates", "--force"])
    assert forced.exit_code == 0
    assert workflow.read_text() != "# mine\n"
