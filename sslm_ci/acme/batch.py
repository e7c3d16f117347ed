"""One ACME batch: every due certificate's order in flight at once, every challenge published
in ONE step, ONE propagation wait, then all hooks released together.

Failure is closed: if publication or propagation fails, or the deadline passes, every certbot
is stopped BEFORE its last auth hook returns, so no challenge is answered; then the hooks are
told to abort. Per-certificate failures (a challenge the CA rejects) fail only that service.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sslm_ci.acme import accounts
from sslm_ci.acme.certbot import CertbotDirs, certonly_command, directory_url, register_command
from sslm_ci.acme.hook import DEADLINE_ENV, SOCKET_ENV
from sslm_ci.acme.publish import dns_records_by_apex
from sslm_ci.acme.rendezvous import Challenge, HookServer
from sslm_ci.config.model import CaInfo, Service
from sslm_ci.dns.propagation import ZoneCheck, wait_for_propagation
from sslm_ci.errors import OperationalError
from sslm_ci.gitops.sops import Sops

Echo = Callable[[str], None]


@dataclass(frozen=True)
class AcmeRequest:
    service: Service
    ca: CaInfo
    csr_pem: bytes


@dataclass
class AcmeResult:
    ident: str
    ok: bool
    cert_pem: bytes | None = None
    chain_pem: bytes | None = None
    error: str | None = None
    challenges: int = 0


@dataclass(frozen=True)
class AcmeOptions:
    test: bool = False  # -t: Let's Encrypt staging
    dry_run: bool = False  # -n: certbot --dry-run
    propagation_timeout: float = 600.0
    min_delay: float = 0.0  # dns_check_delay
    delivery_timeout: float = 180.0  # certbot start → all challenges handed over
    finish_timeout: float = 300.0  # hooks released → certificate written
    parallel: int = 50


class Publisher(Protocol):
    """Makes (its kind of) challenges visible; ``cleanup`` takes them away again."""

    def publish(self, challenges: Sequence[Challenge], apex_of: Callable[[str], str]) -> None: ...
    def cleanup(self) -> None: ...


@dataclass
class BatchIO:
    """The edges a batch needs, supplied by the stage."""

    repo: Path
    sops: Sops
    publishers: list[Publisher]
    zone_checks: Callable[[dict[str, list[tuple[str, str]]]], list[ZoneCheck]]
    echo: Echo
    account_paths: list[str] = field(default_factory=list)  # accounts written to the repo
    # certbot's log of a failed order is copied here (ssl-mgr: <logdir>/letsencrypt) before
    # the run's temp dir goes; None keeps only the error line.
    log_dir: Path | None = None
    log_stamp: str = ""


@dataclass
class _Proc:
    req: AcmeRequest
    popen: subprocess.Popen[bytes]
    base: Path
    out_dir: Path

    @property
    def ident(self) -> str:
        return self.req.service.ident


def _apex_of(requests: Sequence[AcmeRequest]) -> Callable[[str], str]:
    by_ident = {r.service.ident: r.service.group for r in requests}
    return lambda ident: by_ident[ident]


def _email_for(requests: Sequence[AcmeRequest], ca_name: str) -> str | None:
    for req in requests:
        if req.ca.name == ca_name and req.service.x509.email:
            return req.service.x509.email
    return None


def _env(ca: CaInfo, socket_path: Path, hook_deadline: float) -> dict[str, str]:
    env = dict(os.environ)
    env[SOCKET_ENV] = str(socket_path)
    env[DEADLINE_ENV] = str(int(hook_deadline))
    if ca.trust is not None:
        env["REQUESTS_CA_BUNDLE"] = str(ca.trust)  # the ACME server's own TLS (a test CA)
    return env


def _prepare_accounts(
    requests: Sequence[AcmeRequest], io: BatchIO, opts: AcmeOptions, work: Path
) -> dict[str, Path]:
    """One account per (CA, directory URL): restored from the repo, or registered once."""
    configs: dict[str, Path] = {}
    for req in requests:
        name = req.ca.name
        if name in configs:
            continue
        server = directory_url(req.ca, opts.test)
        dirs = CertbotDirs.under(work / f"account-{name}")
        if accounts.has_account(io.repo, name, server):
            accounts.restore_account(io.repo, io.sops, name, server, dirs.config)
        else:
            io.echo(f"  registering an ACME account for CA {name!r} at {server}")
            proc = subprocess.run(
                register_command(dirs, server, _email_for(requests, name)),
                env=_env(req.ca, work / "unused.sock", 60),
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                raise OperationalError(
                    f"ACME account registration for CA {name!r} at {server} failed: "
                    + _tail(proc.stderr or proc.stdout)
                )
            io.account_paths += accounts.save_account(io.repo, io.sops, name, server, dirs.config)
        configs[name] = dirs.config
    return configs


_NOISE = ("Saving debug log", "Ask for help", "See the logfile", "See also the", "(PATH is")


def _tail(text: str, lines: int = 3) -> str:
    """The lines of certbot's stderr that say what went wrong, without its boilerplate."""
    wanted = [
        line.strip()
        for line in text.strip().splitlines()
        if line.strip() and not line.strip().startswith(_NOISE)
    ]
    return " | ".join(wanted[-lines:]) or "(no output)"


def _stop(procs: Sequence[_Proc]) -> None:
    for p in procs:
        if p.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.popen.pid, signal.SIGKILL)
            p.popen.wait()


def _keep_log(p: _Proc, io: BatchIO) -> str:
    log = p.base / "logs" / "letsencrypt.log"
    if io.log_dir is None or not log.is_file():
        return ""
    dest = io.log_dir / "letsencrypt" / f"{p.ident.replace(':', '__')}-{io.log_stamp}.log"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, dest)
    return f" (certbot log: {dest})"


def _result_of(p: _Proc, server: HookServer, dry_run: bool, io: BatchIO) -> AcmeResult:
    rc = p.popen.returncode
    n = len(server.challenges_of(p.ident))
    stderr = (p.base / "stderr").read_text(errors="replace") if (p.base / "stderr").exists() else ""
    if rc != 0:
        return AcmeResult(
            p.ident,
            False,
            error=f"certbot exited {rc}: {_tail(stderr)}{_keep_log(p, io)}",
            challenges=n,
        )
    if dry_run:
        return AcmeResult(p.ident, True, challenges=n)
    cert, chain = p.out_dir / "cert.pem", p.out_dir / "chain.pem"
    if not cert.is_file():
        return AcmeResult(p.ident, False, error="certbot wrote no certificate", challenges=n)
    return AcmeResult(p.ident, True, cert.read_bytes(), chain.read_bytes(), challenges=n)


def run_batch(requests: Sequence[AcmeRequest], io: BatchIO, opts: AcmeOptions) -> list[AcmeResult]:
    """Issue every request; returns one result per request (never raises for ACME failures)."""
    results: list[AcmeResult] = []
    for start in range(0, len(requests), opts.parallel):
        wave = list(requests[start : start + opts.parallel])
        results += _run_wave(wave, io, opts)
    return results


def _run_wave(wave: list[AcmeRequest], io: BatchIO, opts: AcmeOptions) -> list[AcmeResult]:
    with tempfile.TemporaryDirectory(prefix="sslm-acme-") as tmp:
        work = Path(tmp)
        try:
            configs = _prepare_accounts(wave, io, opts, work)
        except OperationalError as exc:
            return [AcmeResult(r.service.ident, False, error=str(exc)) for r in wave]
        server = HookServer(work / "hooks.sock")
        hook_deadline = opts.delivery_timeout + opts.propagation_timeout + opts.min_delay + 60
        procs: list[_Proc] = []
        try:
            for req in wave:
                procs.append(_spawn(req, work, configs[req.ca.name], server, hook_deadline, opts))
            return _drive(procs, server, io, opts, _apex_of(wave))
        finally:
            _stop(procs)
            server.close()


def _spawn(
    req: AcmeRequest,
    work: Path,
    account_config: Path,
    server: HookServer,
    hook_deadline: float,
    opts: AcmeOptions,
) -> _Proc:
    ident = req.service.ident
    base = work / ident.replace(":", "__")
    dirs = CertbotDirs.under(base)
    accounts.copy_accounts(account_config, dirs.config)
    out_dir = base / "out"
    out_dir.mkdir(parents=True)
    csr = base / "csr.pem"
    csr.write_bytes(req.csr_pem)
    kind = req.ca.validation or "dns-01"
    cmd = certonly_command(
        ident=ident,
        kind=kind,
        csr=csr,
        out_dir=out_dir,
        dirs=dirs,
        server=directory_url(req.ca, opts.test),
        preferred_chain=req.ca.preferred_chain,
        profile=req.ca.profile,
        dry_run=opts.dry_run,
    )
    server.expect(ident)
    with open(base / "stderr", "wb") as err:
        popen = subprocess.Popen(
            cmd,
            env=_env(req.ca, server.path, hook_deadline),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # so a stop reaches certbot and its hook children
        )
    return _Proc(req, popen, base, out_dir)


def _drive(
    procs: list[_Proc],
    server: HookServer,
    io: BatchIO,
    opts: AcmeOptions,
    apex_of: Callable[[str], str],
) -> list[AcmeResult]:
    # 1. Every order hands over all its challenges (or certbot ends, e.g. authz reused).
    deadline = time.monotonic() + opts.delivery_timeout
    while True:
        waiting = [p for p in procs if p.popen.poll() is None and not server.delivered_all(p.ident)]
        if not waiting:
            break
        if time.monotonic() > deadline:
            return _abort(
                procs,
                server,
                io,
                "ACME orders did not hand over their challenges in "
                f"{opts.delivery_timeout:.0f} s: " + ", ".join(p.ident for p in waiting),
            )
        server.wait_for_change(0.05)

    # 2. One publication, one propagation wait, for everything.
    challenges = server.challenges()
    held = [p for p in procs if server.delivered_all(p.ident)]
    if held:
        records = dns_records_by_apex(challenges, apex_of)
        io.echo(
            f"  {len(challenges)} challenge(s) from {len(held)} order(s) over "
            f"{len(records)} zone(s): publishing once"
        )
        try:
            for publisher in io.publishers:
                publisher.publish(challenges, apex_of)
            if records:
                report = wait_for_propagation(
                    io.zone_checks(records),
                    timeout=opts.propagation_timeout,
                    min_delay=opts.min_delay,
                    progress=lambda line: io.echo(f"  {line}"),
                )
                io.echo(
                    f"  propagation: {report.servers_checked} server(s) in sync after "
                    f"{report.waited:.1f} s ({report.rounds} round(s))"
                )
        except OperationalError as exc:
            return _abort(procs, server, io, str(exc))

    # 3. Release every hook at once; certbot answers the CA and finishes.
    server.release("ok")
    deadline = time.monotonic() + opts.finish_timeout
    for p in procs:
        try:
            p.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop([p])
            p.popen.returncode = p.popen.returncode or -9
    _cleanup(io)
    return [_result_of(p, server, opts.dry_run, io) for p in procs]


def _abort(procs: list[_Proc], server: HookServer, io: BatchIO, reason: str) -> list[AcmeResult]:
    # Stop certbot BEFORE releasing its held hook: it ignores a failing hook and would answer.
    _stop(procs)
    server.release(f"abort: {reason}")
    _cleanup(io)
    io.echo(f"  ACME batch aborted: {reason}")
    return [
        AcmeResult(p.ident, False, error=reason, challenges=len(server.challenges_of(p.ident)))
        for p in procs
    ]


def _cleanup(io: BatchIO) -> None:
    for publisher in io.publishers:
        try:
            publisher.cleanup()
        except OperationalError as exc:
            io.echo(f"  WARNING: challenge cleanup failed: {exc}")
