"""pytest fixtures for the ACME rig and the DANE rig. Use them in a test module with
``pytest_plugins = ["tests.rig.fixtures"]`` (or from tests/conftest.py).

``acme_rig_module`` starts named + pebble + the http-01 responder once per test module and
always stops them; ``acme_rig`` hands the same rig to each test after :meth:`AcmeRig.reset`
(empty fragments, no tokens, CA running), so a failed test cannot leak records into the next.
``dane_rig`` (module scope) is named with a DNSSEC-signed zone + a validating unbound.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.rig.acme_rig import REFRESH_SCRIPT, AcmeRig
from tests.rig.bind import Bind, ZoneSpec
from tests.rig.process import RigError, RigService
from tests.rig.tls import ServedIdentity, TlsServer
from tests.rig.unbound import Unbound


@pytest.fixture(scope="module")
def acme_rig_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeRig]:
    rig = AcmeRig(tmp_path_factory.mktemp("acme-rig"))
    with rig:
        yield rig


@pytest.fixture
def acme_rig(acme_rig_module: AcmeRig) -> AcmeRig:
    acme_rig_module.reset()
    return acme_rig_module


# ============================================================================================
# DANE rig: a DNSSEC-signed named + a validating unbound + openssl s_server on demand.
# ============================================================================================
DANE_APEX = "example.com"
DANE_MAIL_HOST = "mail.example.com"
# unsigned on purpose: names there resolve without AD (the "insecure" case)
DANE_INSECURE_APEX = "example.net"
# SOA minimum = negative-caching time at the resolver: keep waits for new names short
DANE_ZONE_TTL = 2


class DaneRig(RigService):
    """``bind`` (``example.com`` inline-signed with MX ``mail.example.com``, ``example.net``
    unsigned), ``unbound`` validating with the DS computed from named's key files, and
    :meth:`tls_server` to start ``openssl s_server`` instances that stop with the rig."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        self.include_dir = self.workdir / "dns-include"
        self.bind = Bind(
            self.workdir / "bind",
            {
                DANE_APEX: ZoneSpec(dnssec=True, mx=((10, "mail"),), ttl=DANE_ZONE_TTL),
                DANE_INSECURE_APEX: ZoneSpec(ttl=DANE_ZONE_TTL),
            },
            self.include_dir,
        )
        self._unbound: Unbound | None = None
        self._servers: list[TlsServer] = []

    def start(self) -> None:
        try:
            self.bind.start()
            self._unbound = Unbound.for_bind(self.workdir / "unbound", self.bind)
            self._unbound.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            for server in self._servers:
                server.stop()
            self._servers.clear()
            if self._unbound is not None:
                self._unbound.stop()
        finally:
            self.bind.stop()

    @property
    def unbound(self) -> Unbound:
        if self._unbound is None:
            raise RigError("dane-rig", "not started")
        return self._unbound

    @property
    def apex(self) -> str:
        return DANE_APEX

    @property
    def mail_host(self) -> str:
        return DANE_MAIL_HOST

    @property
    def tlsa_dir(self) -> Path:
        return self.bind.tlsa_dir

    @property
    def tlsa_fragment(self) -> Path:
        return self.bind.tlsa_fragment(DANE_APEX)

    @property
    def trust_anchors(self) -> list[str]:
        return self.bind.trust_anchors(DANE_APEX)

    @property
    def refresh_env(self) -> dict[str, str]:
        return {"SSLM_RIG_BIND_DIR": str(self.bind.workdir)}

    def refresh_command(self, *apexes: str) -> list[str]:
        """``dns-refresh --bind-dir <dir> --serial_bump <apex>...`` (default: the signed apex)."""
        return [
            str(REFRESH_SCRIPT),
            "--bind-dir",
            str(self.bind.workdir),
            "--serial_bump",
            *(apexes or (DANE_APEX,)),
        ]

    def run_refresh(
        self, *apexes: str, extra_env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.refresh_command(*apexes),
            env={**os.environ, **self.refresh_env, **(extra_env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def publish_tlsa(self, fragment_text: str, apex: str = DANE_APEX) -> None:
        """Writes ``tlsa.<apex>`` atomically and runs dns-refresh; raises if it fails."""
        path = self.bind.tlsa_fragment(apex)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(fragment_text)
        os.replace(tmp, path)
        result = self.run_refresh(apex)
        if result.returncode != 0:
            raise RigError("dns-refresh", f"exit {result.returncode}", result.stderr.strip())

    def tls_server(self, identity: ServedIdentity, *, port: int | None = None) -> TlsServer:
        """A started s_server presenting ``identity``; stopped with the rig."""
        index = len(self._servers)
        server = TlsServer(
            self.workdir / "tls",
            identity.cert,
            identity.key,
            identity.chain,
            port=port,
            name=f"tls-{index}",
        )
        self._servers.append(server)
        server.start()
        return server


@pytest.fixture(scope="module")
def dane_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneRig]:
    """One DaneRig per test module; TLSA records and TLS servers persist between its tests,
    so tests use their own owner names (a resolver caches each name for its TTL)."""
    with DaneRig(tmp_path_factory.mktemp("dane-rig")) as rig:
        yield rig
