"""The ACME rig works: dns-refresh publishes and fails closed, certbot issues dns-01
(wildcard) and http-01 certificates from pebble through our named, and stop() leaves no
process and no port behind."""

from __future__ import annotations

import secrets
import shlex
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.rig import (
    AcmeRig,
    Bind,
    RigError,
    ZoneSpec,
    pid_running,
    port_is_free,
    run_certonly,
)
from tests.rig.process import LOOPBACK

SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_csr(directory: Path, names: list[str]) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """Our own key (kept in memory) and a CSR for ``names``; CN = first name."""
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA384())
    )
    path = directory / "csr.pem"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key, path


def write_hook(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\nset -eu\n" + body)
    path.chmod(0o755)
    return str(path)


def assert_issued(
    rig: AcmeRig, cert_path: Path, chain_path: Path, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    argv = ["openssl", "verify", "-CAfile", str(rig.root_path), "-untrusted", str(chain_path)]
    verify = subprocess.run(
        [*argv, str(cert_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.public_key().public_bytes(*SPKI) == key.public_key().public_bytes(*SPKI)
    # the rig configures 90 days (pebble's own default is 5 years)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=89) < lifetime <= timedelta(days=90)
    return cert


def sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName))


# ------------------------------------------------------------------------------ dns-refresh
def test_dns_refresh_bumps_serial_and_serves_the_fragment(acme_rig: AcmeRig) -> None:
    bind = acme_rig.bind
    before = {apex: bind.serial(apex) for apex in acme_rig.apexes}
    value = secrets.token_urlsafe(32)
    with bind.acme_fragment("example.com").open("a") as fragment:
        fragment.write(f'_acme-challenge.example.com. IN TXT "{value}"\n')

    result = acme_rig.run_refresh("example.com")

    assert result.returncode == 0, result.stderr
    assert bind.serial("example.com") == before["example.com"] + 1
    assert bind.file_serial("example.com") == before["example.com"] + 1
    assert bind.serial("example.net") == before["example.net"]
    assert bind.txt_values("_acme-challenge.example.com.") == {value}
    assert f"example.com serves serial {before['example.com'] + 1}" in result.stdout


def test_dns_refresh_fails_closed_when_the_zone_does_not_load(acme_rig: AcmeRig) -> None:
    bind = acme_rig.bind
    before = bind.serial("example.com")
    bind.acme_fragment("example.com").write_text("broken IN NOSUCHTYPE x\n")

    result = acme_rig.run_refresh("example.com", extra_env={"SSLM_RIG_REFRESH_TIMEOUT": "1.5"})

    # rndc reload said "queued" and exited 0; only the query shows the old zone is served
    assert result.returncode == 1
    assert f"example.com: serial {before + 1} not served" in result.stderr
    assert bind.serial("example.com") == before

    bind.acme_fragment("example.com").write_text("")
    repaired = acme_rig.run_refresh("example.com")
    assert repaired.returncode == 0, repaired.stderr
    assert bind.serial("example.com") == before + 2


def test_dns_refresh_without_bump_reloads_all_zones_after_the_delay(acme_rig: AcmeRig) -> None:
    bind = acme_rig.bind
    before = {apex: bind.serial(apex) for apex in acme_rig.apexes}
    bind.acme_fragment("example.net").write_text(
        '_acme-challenge.www.example.net. IN TXT "no-bump"\n'
    )

    started = time.monotonic()
    result = acme_rig.run_refresh(extra_env={"SSLM_RIG_PUBLISH_DELAY": "0.4"})
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed >= 0.4
    assert {apex: bind.serial(apex) for apex in acme_rig.apexes} == before
    assert bind.txt_values("_acme-challenge.www.example.net.") == {"no-bump"}


def test_concurrent_dns_refreshes_each_bump_once_and_overlap_their_delay(
    acme_rig: AcmeRig,
) -> None:
    before = acme_rig.bind.serial("example.com")
    delay = 1.0
    env = acme_rig.env({"SSLM_RIG_PUBLISH_DELAY": str(delay)})
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            acme_rig.refresh_command("example.com"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(proc.wait(timeout=30), proc.communicate()) for proc in procs]
    elapsed = time.monotonic() - started

    assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert acme_rig.bind.serial("example.com") == before + 4
    # behind the lock the four delays alone would take 4 * delay
    assert delay <= elapsed < 4 * delay


def test_dns_refresh_rejects_unknown_zone_and_missing_rig(acme_rig: AcmeRig) -> None:
    unknown = acme_rig.run_refresh("example.org")
    assert unknown.returncode == 2
    assert "example.org" in unknown.stderr

    no_rig = subprocess.run(
        [str(acme_rig.refresh_script), "--serial_bump", "example.com"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert no_rig.returncode == 2
    assert "SSLM_RIG_BIND_DIR" in no_rig.stderr


# ------------------------------------------------------------------------------ certbot
def test_certbot_dns01_wildcard_through_fragment_and_dns_refresh(
    acme_rig: AcmeRig, tmp_path: Path
) -> None:
    names = ["example.com", "*.example.com"]
    key, csr = make_csr(tmp_path, names)
    fragment = shlex.quote(str(acme_rig.bind.acme_fragment("example.com")))
    refresh = shlex.quote(str(acme_rig.refresh_script))
    hook_log = tmp_path / "hooks.log"
    log = shlex.quote(str(hook_log))
    auth = write_hook(
        tmp_path / "auth.sh",
        f'printf \'_acme-challenge.%s. IN TXT "%s"\\n\' "$CERTBOT_DOMAIN" '
        f'"$CERTBOT_VALIDATION" >> {fragment}\n'
        f'echo "auth $CERTBOT_DOMAIN" >> {log}\n'
        f"exec {refresh} --serial_bump example.com\n",
    )
    cleanup = write_hook(
        tmp_path / "cleanup.sh",
        f'grep -vF "\\"$CERTBOT_VALIDATION\\"" {fragment} > {fragment}.new || true\n'
        f"mv {fragment}.new {fragment}\n"
        f'echo "cleanup $CERTBOT_DOMAIN" >> {log}\n'
        f"exec {refresh} --serial_bump example.com\n",
    )
    serial_before = acme_rig.bind.serial("example.com")

    run = run_certonly(
        acme_rig,
        csr=csr,
        run_dir=tmp_path / "run",
        challenge="dns",
        auth_hook=auth,
        cleanup_hook=cleanup,
    )

    assert run.result.returncode == 0, run.output
    cert = assert_issued(acme_rig, run.cert, run.chain, key)
    assert sans(cert) == set(names)
    # both authorizations are for the apex: two values lived at one name at once
    assert hook_log.read_text().splitlines() == [
        "auth example.com",
        "auth example.com",
        "cleanup example.com",
        "cleanup example.com",
    ]
    assert acme_rig.bind.acme_fragment("example.com").read_text() == ""
    assert acme_rig.bind.txt_values("_acme-challenge.example.com.") == set()
    assert acme_rig.bind.serial("example.com") == serial_before + 4


def test_certbot_http01_through_the_http_root(acme_rig: AcmeRig, tmp_path: Path) -> None:
    names = ["www.example.net"]
    key, csr = make_csr(tmp_path, names)
    challenge_dir = acme_rig.http.challenge_dir("example.net")
    target = shlex.quote(str(challenge_dir)) + '/"$CERTBOT_TOKEN"'
    auth = write_hook(tmp_path / "auth.sh", f'printf %s "$CERTBOT_VALIDATION" > {target}\n')
    cleanup = write_hook(tmp_path / "cleanup.sh", f"rm -f {target}\n")
    served_before = len(acme_rig.http.requests)

    run = run_certonly(
        acme_rig,
        csr=csr,
        run_dir=tmp_path / "run",
        challenge="http",
        auth_hook=auth,
        cleanup_hook=cleanup,
    )

    assert run.result.returncode == 0, run.output
    cert = assert_issued(acme_rig, run.cert, run.chain, key)
    assert sans(cert) == set(names)
    served = acme_rig.http.requests[served_before:]
    assert served, "pebble never fetched the token"
    assert {(r.host.split(":")[0], r.status) for r in served} == {("www.example.net", 200)}
    assert list(challenge_dir.iterdir()) == []


# ------------------------------------------------------------------------------ lifecycle
def test_stop_leaves_no_process_and_frees_every_port(tmp_path: Path) -> None:
    rig = AcmeRig(tmp_path / "rig")
    with rig:
        pids = rig.pids()
        ports = rig.ports()
        assert set(pids) == {"named", "pebble"}
        assert all(pid_running(pid) for pid in pids.values())
        for name in ("dns", "rndc", "acme", "management", "http"):
            assert not port_is_free(ports[name]), name

        old_root = rig.root_path.read_bytes()
        old_pebble = pids["pebble"]
        with rig.pebble_stopped():
            assert not rig.pebble.answering()
            assert not pid_running(old_pebble)
        assert rig.pebble.answering()
        assert rig.pebble.directory_url.endswith(f":{ports['acme']}/dir")
        assert rig.root_path.read_bytes() != old_root  # a new CA every start
        pids = rig.pids()

    assert not any(pid_running(pid) for pid in pids.values())
    assert rig.pids() == {}
    assert port_is_free(ports["dns"], udp=True)
    for name in ("rndc", "acme", "management", "http"):
        assert port_is_free(ports[name]), name


def test_bind_start_failures_raise_with_the_reason_and_leave_nothing_running(
    tmp_path: Path,
) -> None:
    broken = Bind(
        tmp_path / "broken",
        {"example.com": ZoneSpec(extra_records=("oops IN NOSUCHTYPE 1",))},
        tmp_path / "inc",
    )
    with pytest.raises(RigError, match=r"named-checkzone example\.com failed") as info:
        broken.start()
    assert "NOSUCHTYPE" in info.value.log_tail
    assert broken.pid is None

    refused = Bind(
        tmp_path / "refused",
        {"example.com": ZoneSpec()},
        tmp_path / "inc",
        user="no-such-user-sslm-rig",
    )
    with pytest.raises(RigError, match="exited during start-up") as info:
        refused.start()
    assert "user 'no-such-user-sslm-rig' unknown" in info.value.log_tail
    assert refused.pid is None

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        busy = Bind(tmp_path / "busy", {"example.com": ZoneSpec()}, tmp_path / "inc", port=port)
        with pytest.raises(RigError, match=f"port {port} .* already in use"):
            busy.start()
