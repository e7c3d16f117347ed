"""``openssl s_server`` as the TLS endpoint of DANE tests, and DANE verification with
``openssl s_client`` fed only with TLSA records the validating resolver authenticated (AD).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.rig.dnssec import DnssecError
from tests.rig.process import (
    LOOPBACK,
    ProcessService,
    RigError,
    chosen_port,
    claim_port,
    require_tool,
)
from tests.rig.unbound import Unbound

# the line s_client -brief prints after a successful verification (with -verify_return_error
# a failure also ends the handshake and exits 1; without it s_client exits 0 on a mismatch)
VERIFICATION_OK = "Verification: OK"


@dataclass(frozen=True)
class ServedIdentity:
    """What the server presents: PEM files of its leaf, key and (optional) chain."""

    cert: Path
    key: Path
    chain: Path | None = None

    def resolved(self) -> ServedIdentity:
        """The same files by absolute path (s_server runs with its own cwd)."""
        return ServedIdentity(
            self.cert.resolve(), self.key.resolve(), self.chain and self.chain.resolve()
        )


def write_identity(
    directory: Path,
    tag: str,
    cert_pem: bytes,
    key_pem: bytes,
    chain_pem: bytes | None = None,
) -> ServedIdentity:
    """``<tag>.crt``, ``<tag>.key`` (mode 0600) and ``<tag>.chain.pem`` in ``directory``,
    which must be a scratch directory outside any git repository."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{tag}.crt"
    key = directory / f"{tag}.key"
    cert.write_bytes(cert_pem)
    key.touch(mode=0o600, exist_ok=True)
    key.chmod(0o600)
    key.write_bytes(key_pem)
    chain = None
    if chain_pem is not None:
        chain = directory / f"{tag}.chain.pem"
        chain.write_bytes(chain_pem)
    return ServedIdentity(cert, key, chain)


class TlsServer(ProcessService):
    """``openssl s_server -www`` on 127.0.0.1; serves until stopped (no ``-naccept``).

    :meth:`restart` keeps the port and swaps the identity: the "curr, then next" step of a
    key rollover. The key file must live outside any git repository (tmp dirs in tests).
    """

    def __init__(
        self,
        workdir: Path,
        cert: Path,
        key: Path,
        chain: Path | None = None,
        *,
        port: int | None = None,
        name: str = "tls",
        startup_timeout: float = 5.0,
    ) -> None:
        super().__init__(name, workdir, startup_timeout)
        self.identity = ServedIdentity(cert, key, chain).resolved()
        self.name = name
        self._port = port

    @property
    def port(self) -> int:
        return chosen_port(self._port, self.name)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        self._refuse_second_start()
        openssl = require_tool("openssl", "openssl")
        for path in (self.identity.cert, self.identity.key, self.identity.chain):
            if path is not None and not path.is_file():
                raise RigError(self.name, f"missing file {path}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = claim_port(self._port, self.name)
        argv = [
            openssl,
            "s_server",
            "-accept",
            f"{LOOPBACK}:{self.port}",
            "-cert",
            str(self.identity.cert),
            "-key",
            str(self.identity.key),
            "-www",  # answers any request and keeps accepting; stdin is not read
            "-quiet",
        ]
        if self.identity.chain is not None:
            argv += ["-cert_chain", str(self.identity.chain)]
        self._launch(argv)

    def restart(self, identity: ServedIdentity) -> None:
        """Same port, new identity; returns once the new leaf is the one served."""
        self.stop()
        self.identity = identity.resolved()
        self.start()

    def served_certificate(self, *, timeout: float = 2.0) -> bytes:
        """DER of the leaf the server presents (no verification: this only looks)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((LOOPBACK, self.port), timeout=timeout) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        if der is None:
            raise RigError(self.name, "server presented no certificate")
        return der

    def _wait_ready(self) -> None:
        want = ssl.PEM_cert_to_DER_cert(
            self.identity.cert.read_text().split("-----END CERTIFICATE-----")[0]
            + "-----END CERTIFICATE-----\n"
        )

        def not_serving() -> str | None:
            with contextlib.suppress(OSError):
                if self.served_certificate(timeout=0.5) == want:
                    return None
            return f"not serving {self.identity.cert.name} within {self._startup_timeout}s"

        self._poll_until_ready(not_serving)


def tcp_owner(port: int, host: str) -> str:
    return f"_{port}._tcp.{host.rstrip('.')}."


def dane_verify(
    resolver: Unbound,
    host: str,
    port: int,
    tls_port: int,
    tlsa_owner: str | None = None,
    *,
    ee_no_namechecks: bool = True,
    timeout: float = 15.0,
) -> subprocess.CompletedProcess[str]:
    """DANE check of the server on 127.0.0.1:``tls_port`` for ``host``.

    The TLSA RRset of ``tlsa_owner`` (default ``_<port>._tcp.<host>.``) is fetched through
    ``resolver`` and must be authenticated: bogus or insecure answers raise
    :class:`~tests.rig.dnssec.DnssecError` (DANE must not be attempted on them), and so does a
    secure answer with no TLSA records. Then ``openssl s_client`` checks the served chain
    against exactly those records. Exit 0 (and ``Verification: OK``) = DANE passed; exit 1 =
    the server does not match. ``ee_no_namechecks``: DANE-EE(3) ignores the certificate's
    names (RFC 7671 5.1, RFC 7672); s_client checks them unless told not to.
    """
    owner = tlsa_owner or tcp_owner(port, host)
    records = resolver.tlsa_with_ad(owner)
    if not records:
        raise DnssecError(owner, "TLSA", "authenticated denial: no TLSA records to verify with")
    argv = [
        require_tool("openssl", "openssl"),
        "s_client",
        "-connect",
        f"{LOOPBACK}:{tls_port}",
        "-servername",
        host.rstrip("."),
        "-dane_tlsa_domain",
        host.rstrip("."),
    ]
    for record in records:
        argv += ["-dane_tlsa_rrdata", record]
    if ee_no_namechecks:
        argv.append("-dane_ee_no_namechecks")
    argv += ["-verify_return_error", "-brief"]
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,  # EOF right after the handshake: s_client exits
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def dane_passed(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and VERIFICATION_OK in result.stdout + result.stderr


def dane_match(result: subprocess.CompletedProcess[str]) -> str | None:
    """s_client's ``DANE TLSA u s m ...hex matched EE|TA certificate at depth N`` line."""
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("DANE TLSA ") and " matched " in line:
            return line.strip()
    return None


def dane_ok(
    resolver: Unbound,
    host: str,
    port: int,
    tls_port: int,
    tlsa_owner: str | None = None,
    *,
    ee_no_namechecks: bool = True,
) -> bool:
    """True when DANE verification passes; False when the server matches no record.
    DNSSEC failures still raise: "not secure" is not the same finding as "no match"."""
    result = dane_verify(
        resolver, host, port, tls_port, tlsa_owner, ee_no_namechecks=ee_no_namechecks
    )
    return dane_passed(result)
