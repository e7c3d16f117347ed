"""named + pebble + http-01 responder started together, for end-to-end ACME tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.rig.bind import Bind, ZoneSpec
from tests.rig.http_root import HttpRoot
from tests.rig.pebble import NINETY_DAYS, Pebble
from tests.rig.process import RigError, RigService, free_port

DEFAULT_APEXES = ("example.com", "example.net")
REFRESH_SCRIPT = Path(__file__).resolve().with_name("dns-refresh")


@dataclass(frozen=True)
class RigPorts:
    """Fixed ports; ``None`` means a free one is picked."""

    dns: int | None = None
    rndc: int | None = None
    acme: int | None = None
    management: int | None = None
    http: int | None = None
    tls: int | None = None


class AcmeRig(RigService):
    """Everything an sslm-ci e2e test needs; ``with AcmeRig(tmp) as rig:`` or start()/stop().

    Layout under ``workdir``: ``bind/`` (named, rig.json), ``dns-include/`` (the ``[dns]
    acme_dir``: ``acme-challenge.<apex>``, and ``tlsa.<apex>`` unless ``tlsa_dir`` is given),
    ``webroot/`` (the ``[web] server_dir``: ``<apex>/.well-known/acme-challenge/``),
    ``pebble/``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        zones: Mapping[str, ZoneSpec] | None = None,
        ports: RigPorts | None = None,
        pebble_env: Mapping[str, str] | None = None,
        validity_seconds: int = NINETY_DAYS,
        querylog: bool = False,
        tlsa_dir: Path | None = None,
    ) -> None:
        ports = ports or RigPorts()
        self.workdir = workdir.resolve()
        self.include_dir = self.workdir / "dns-include"
        self.webroot = self.workdir / "webroot"
        zones = zones if zones is not None else {apex: ZoneSpec() for apex in DEFAULT_APEXES}
        # chosen up front so every component (and the caller) knows them before start()
        dns_port = ports.dns if ports.dns is not None else free_port(udp=True)
        http_port = ports.http if ports.http is not None else free_port()
        self.bind = Bind(
            self.workdir / "bind",
            zones,
            self.include_dir,
            tlsa_dir=tlsa_dir,
            port=dns_port,
            rndc_port=ports.rndc,
            querylog=querylog,
        )
        self.pebble = Pebble(
            self.workdir / "pebble",
            dns_port=dns_port,
            listen_port=ports.acme,
            management_port=ports.management,
            http_port=http_port,
            tls_port=ports.tls,
            validity_seconds=validity_seconds,
            extra_env=pebble_env,
        )
        self.http = HttpRoot(self.webroot, self.bind.zones, port=http_port)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        try:
            self.bind.start()
            self.pebble.start()
            self.http.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops all three, even when one of them fails to stop."""
        try:
            self.http.stop()
        finally:
            try:
                self.pebble.stop()
            finally:
                self.bind.stop()

    @contextlib.contextmanager
    def pebble_stopped(self) -> Iterator[None]:
        """The CA is down inside the block and back (new root!) after it, even on failure."""
        self.pebble.stop()
        try:
            yield
        finally:
            self.pebble.start()

    def restart_pebble(self) -> None:
        self.pebble.restart()

    def reset(self) -> None:
        """Back to a clean state between tests: empty fragments, no tokens, CA up."""
        for apex in self.bind.zones:
            self.bind.acme_fragment(apex).write_text("")
            self.bind.tlsa_fragment(apex).write_text("")
            for token in self.http.challenge_dir(apex).iterdir():
                token.unlink()
            self.bind.bump_serial(apex)
        if not self.pebble.running():
            self.pebble.stop()
            self.pebble.start()

    # ---------------------------------------------------------------- what tests use
    @property
    def apexes(self) -> tuple[str, ...]:
        return tuple(self.bind.zones)

    @property
    def tlsa_dir(self) -> Path:
        return self.bind.tlsa_dir

    @property
    def dns_port(self) -> int:
        return self.bind.port

    @property
    def http_port(self) -> int:
        return self.http.port

    @property
    def directory_url(self) -> str:
        return self.pebble.directory_url

    @property
    def ca_bundle(self) -> Path:
        """Trust for pebble's API: set as ``REQUESTS_CA_BUNDLE`` for certbot."""
        return self.pebble.api_ca_path

    @property
    def root_path(self) -> Path:
        """Issuing root of the running pebble; changes at every pebble start."""
        return self.pebble.root_path

    @property
    def refresh_script(self) -> Path:
        if not os.access(REFRESH_SCRIPT, os.X_OK):
            raise RigError("dns-refresh", f"{REFRESH_SCRIPT} is not executable")
        return REFRESH_SCRIPT

    @property
    def refresh_env(self) -> dict[str, str]:
        """The variables ``dns-refresh`` needs (add them to a restart_cmd's environment)."""
        return {"SSLM_RIG_BIND_DIR": str(self.bind.workdir)}

    def refresh_command(self, *apexes: str) -> list[str]:
        """``dns-refresh --bind-dir <dir> --serial_bump <apex>...``; no apex: reload all."""
        argv = [str(self.refresh_script), "--bind-dir", str(self.bind.workdir)]
        return [*argv, "--serial_bump", *apexes] if apexes else argv

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """os.environ plus the certbot CA trust and the dns-refresh location."""
        env = dict(os.environ)
        env["REQUESTS_CA_BUNDLE"] = str(self.ca_bundle)
        env.update(self.refresh_env)
        env.update(extra or {})
        return env

    def run_refresh(
        self, *apexes: str, extra_env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.refresh_command(*apexes),
            env=self.env(extra_env),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def pids(self) -> dict[str, int]:
        """PIDs of the running child processes (the http-01 responder is in-process)."""
        found = {"named": self.bind.pid, "pebble": self.pebble.pid}
        return {name: pid for name, pid in found.items() if pid is not None}

    def ports(self) -> dict[str, int]:
        return {
            "dns": self.bind.port,
            "rndc": self.bind.rndc_port,
            "acme": self.pebble.listen_port,
            "management": self.pebble.management_port,
            "http": self.http.port,
            "tls": self.pebble.tls_port,
        }
