"""Debian's pebble (a test ACME CA) on free loopback ports, resolving through the rig's named."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import ssl
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.rig.process import (
    LOOPBACK,
    ProcessService,
    RigError,
    chosen_port,
    claim_port,
    free_port,
    require_tool,
)

NINETY_DAYS = 90 * 24 * 3600

# Deterministic pebble (see the acme-local note): no random VA sleeps, no rejected good
# nonces (certbot retries badNonce only once), no reuse of valid authorizations (hooks
# would silently not run).
DETERMINISTIC_ENV = {
    "PEBBLE_VA_NOSLEEP": "1",
    "PEBBLE_WFE_NONCEREJECT": "0",
    "PEBBLE_AUTHZREUSE": "0",
}


def write_api_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for pebble's own HTTPS listeners.

    Debian's package ships none (upstream's test certs are stripped). Returns
    (ca, cert, key) paths; the key stays in the rig's temporary directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sslm-ci rig pebble API CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "api-ca.pem"
    cert_path = directory / "api-cert.pem"
    key_path = directory / "api-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    return ca_path, cert_path, key_path


class Pebble(ProcessService):
    """pebble with ``-dnsserver 127.0.0.1:<dns_port>``; start()/stop()/restart() or ``with``.

    Ports are chosen at the first start and kept, so a restart serves the same URLs; the
    issuing root and intermediate are new at every start (re-read :attr:`root_path`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        dns_port: int,
        listen_port: int | None = None,
        management_port: int | None = None,
        http_port: int | None = None,
        tls_port: int | None = None,
        validity_seconds: int = NINETY_DAYS,
        strict: bool = False,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        super().__init__("pebble", workdir, startup_timeout)
        self.dns_port = dns_port
        self._listen_port = listen_port
        self._management_port = management_port
        self._http_port = http_port
        self._tls_port = tls_port
        self.validity_seconds = validity_seconds
        self.strict = strict
        self.extra_env = dict(extra_env or {})
        self._ssl: ssl.SSLContext | None = None

    # ---------------------------------------------------------------- properties
    @property
    def listen_port(self) -> int:
        return chosen_port(self._listen_port, "pebble", "ACME")

    @property
    def management_port(self) -> int:
        return chosen_port(self._management_port, "pebble", "management")

    @property
    def http_port(self) -> int:
        """Where pebble's VA connects for http-01 (the HttpRoot must listen here)."""
        return chosen_port(self._http_port, "pebble", "http-01")

    @property
    def tls_port(self) -> int:
        return chosen_port(self._tls_port, "pebble", "tls-alpn-01")

    @property
    def directory_url(self) -> str:
        return f"https://{LOOPBACK}:{self.listen_port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://{LOOPBACK}:{self.management_port}"

    @property
    def api_ca_path(self) -> Path:
        """Trust bundle for pebble's HTTPS API: certbot's ``REQUESTS_CA_BUNDLE``."""
        return self.workdir / "api-ca.pem"

    @property
    def root_path(self) -> Path:
        """The issuing root of the current start (``/roots/0``), for ``openssl verify``."""
        return self.workdir / "issuer-root.pem"

    @property
    def intermediate_path(self) -> Path:
        return self.workdir / "issuer-intermediate.pem"

    @property
    def config_path(self) -> Path:
        return self.workdir / "pebble-config.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pebble.log"

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._refuse_second_start()
        pebble = require_tool("pebble", "pebble")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._listen_port = claim_port(self._listen_port, "pebble")
        self._management_port = claim_port(self._management_port, "pebble (management)")
        # pebble does not listen on these, its VA dials them: the responder may hold them
        if self._http_port is None:
            self._http_port = free_port()
        if self._tls_port is None:
            self._tls_port = free_port()
        if not self.api_ca_path.exists():
            # kept across restarts: clients already trust this bundle
            write_api_certificate(self.workdir)
        self._ssl = ssl.create_default_context(cafile=str(self.api_ca_path))
        config = {
            "pebble": {
                "listenAddress": f"{LOOPBACK}:{self.listen_port}",
                "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
                "certificate": str(self.workdir / "api-cert.pem"),
                "privateKey": str(self.workdir / "api-key.pem"),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": self.validity_seconds,
            }
        }
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        env.update(DETERMINISTIC_ENV)
        env.update(self.extra_env)
        argv = [
            pebble,
            "-config",
            str(self.config_path),
            "-dnsserver",
            f"{LOOPBACK}:{self.dns_port}",
            # Go flag syntax: "-strict false" would mean strict=true and end flag parsing
            f"-strict={'true' if self.strict else 'false'}",
        ]
        self._launch(argv, env=env, pid_path=self.workdir / "pebble.rig-pid")

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_ready(self) -> None:
        self._poll_until_ready(self._directory_not_ready, interval=0.05)
        self.root_path.write_bytes(self.roots_pem())
        self.intermediate_path.write_bytes(self.intermediates_pem())

    def _directory_not_ready(self) -> str | None:
        try:
            directory = json.loads(self._get(self.directory_url, timeout=1.0))
            if "newOrder" in directory:
                return None
            last_error = f"directory without newOrder: {directory}"
        except (OSError, ValueError, http.client.HTTPException) as exc:
            last_error = str(exc)
        return f"{self.directory_url} not answering after {self._startup_timeout}s: {last_error}"

    # ---------------------------------------------------------------- API
    def _get(self, url: str, *, timeout: float = 5.0) -> bytes:
        if self._ssl is None:
            raise RigError("pebble", "not started")
        with urllib.request.urlopen(url, timeout=timeout, context=self._ssl) as response:
            body: bytes = response.read()
        return body

    def directory(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self._get(self.directory_url))
        return result

    def roots_pem(self, index: int = 0) -> bytes:
        """The issuing root (``/roots/<index>`` on the management port); new every start."""
        return self._get(f"{self.management_url}/roots/{index}")

    def intermediates_pem(self, index: int = 0) -> bytes:
        return self._get(f"{self.management_url}/intermediates/{index}")

    def answering(self) -> bool:
        """True when the ACME directory answers right now."""
        try:
            self._get(self.directory_url, timeout=1.0)
        except (OSError, http.client.HTTPException):
            return False
        return True
