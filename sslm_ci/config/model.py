"""Typed, immutable view of an ssl-mgr inventory (``ssl-mgr.conf``, ``ca-info.conf``,
``<group>/<service>``).

The loader (:mod:`sslm_ci.config.loader`) builds these after strict validation; everything
downstream reads only these types, never raw TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CaType = Literal["self", "local", "certbot"]
Validation = Literal["dns-01", "http-01"]
KeyType = Literal["ec", "rsa"]

# Server classes ssl-mgr knows in ssl-mgr.conf, in the order restarts happen.
SERVER_CLASSES: tuple[str, ...] = ("dns", "smtp", "imap", "web", "other")

# Group name ssl-mgr reserves for locally operated certificate authorities.
CA_GROUP = "ca"


@dataclass(frozen=True)
class Globals:
    verb: bool = False
    prod_cert_dir: Path | None = None
    logdir: Path | None = None
    clean_keep: int = 5
    min_roll_mins: int = 90
    renew_expire_days: float | None = None
    renew_expire_days_spread: float = 0.0
    dns_check_delay: int = 0
    dns_xtra_ns: tuple[str, ...] = ()
    # (server host, command) pairs: run after a host installs new certs.
    post_copy_cmd: tuple[tuple[str, str], ...] = ()
    # ACME batching: at most this many new orders per run (Let's Encrypt: 300 per 3 h per
    # account), and at most this many certbot processes in flight at once.
    acme_max_orders: int = 300
    acme_parallel: int = 50
    # After a DANE roll the old key's TLSA stays published this long (servers pull on their
    # own schedule and may still present the old key).
    tlsa_retire_mins: int = 60


@dataclass(frozen=True)
class Group:
    domain: str  # apex domain, or "ca" for the local CA group
    active: bool
    services: tuple[str, ...]


@dataclass(frozen=True)
class DnsPrimary:
    domain: str  # apex, or "default"
    server: str
    port: int = 53
    # Split horizon / hidden primary: wait this many seconds instead of checking servers.
    wait_instead: float | None = None


@dataclass(frozen=True)
class SvcDepends:
    domain: str  # apex domain, or "any"
    services: tuple[str, ...]


@dataclass(frozen=True)
class ServerClass:
    """One of ``[dns]``, ``[smtp]``, ``[imap]``, ``[web]``, ``[other]``."""

    name: str
    servers: tuple[str, ...] = ()
    restart_cmd: tuple[str, ...] = ()
    svc_depends: tuple[SvcDepends, ...] = ()
    depends: tuple[str, ...] = ()
    server_dir: Path | None = None
    acme_dir: Path | None = None
    tlsa_dirs: tuple[Path, ...] = ()
    skip_prod_copy: bool = False
    # [dns] only: how zone changes reach the DNS primary, and the port to check them on.
    publish: str = "git"  # "git" | "local"
    check_port: int = 53
    check_timeout: int = 600  # seconds the propagation check may take before it fails


@dataclass(frozen=True)
class CaInfo:
    name: str
    desc: str
    ca_type: CaType
    validation: Validation | None = None
    # ACME extras (used by certbot CAs).
    server: str | None = None
    trust: Path | None = None
    preferred_chain: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class KeyOpts:
    ktype: KeyType = "ec"
    ec_algo: str = "secp384r1"
    rsa_bits: int = 4096


@dataclass(frozen=True)
class X509Name:
    CN: str = ""
    O: str = ""  # noqa: E741 - ssl-mgr's key name
    OU: str = ""
    L: str = ""
    ST: str = ""
    C: str = ""
    email: str = ""
    sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaOpts:
    sign_end_days: int
    digest: str = "sha384"


@dataclass(frozen=True)
class DaneTls:
    port: int
    proto: str  # "tcp" | "udp" | "sctp"
    usage: int  # 0..3
    selector: int  # 0..1
    match: int  # 0..2
    placement: str | None = None  # None, "MX" or "SANS" (ssl-mgr 7.x optional 6th field)


@dataclass(frozen=True)
class Service:
    group: str
    service: str
    name: str
    signing_ca: str  # a ca-info name, or "self" for a self-signed root
    file: Path
    renew_expire_days: float | None = None
    dane_tls: tuple[DaneTls, ...] = ()
    dane_tls_ttl: int = 1800
    key: KeyOpts = field(default_factory=KeyOpts)
    x509: X509Name = field(default_factory=X509Name)
    ca: CaOpts | None = None

    @property
    def ident(self) -> str:
        return f"{self.group}:{self.service}"

    @property
    def is_self_signed(self) -> bool:
        return self.signing_ca in ("self", self.service)

    @property
    def names(self) -> tuple[str, ...]:
        """DNS names / IPs the certificate covers: SANs, or the CN when there are none."""
        if self.x509.sans:
            return self.x509.sans
        return (self.x509.CN,) if self.x509.CN else ()


@dataclass(frozen=True)
class Inventory:
    root: Path  # directory holding ssl-mgr.conf (the repo's inventory/)
    repo_root: Path  # relative paths in the config resolve against this
    globals: Globals
    groups: tuple[Group, ...]
    dns_primaries: tuple[DnsPrimary, ...]
    servers: dict[str, ServerClass]
    cas: dict[str, CaInfo]
    services: dict[tuple[str, str], Service]

    def service(self, group: str, service: str) -> Service:
        return self.services[(group, service)]

    def active_services(self) -> list[Service]:
        """Services of active groups, in config order."""
        out: list[Service] = []
        for grp in self.groups:
            if grp.active:
                out.extend(self.services[(grp.domain, s)] for s in grp.services)
        return out

    def ca_service(self, ca_name: str) -> Service | None:
        """The service that holds a locally operated CA's key and cert (``ca/<name>``)."""
        if (CA_GROUP, ca_name) in self.services:
            return self.services[(CA_GROUP, ca_name)]
        for svc in self.services.values():
            if svc.service == ca_name and svc.ca is not None:
                return svc
        return None

    def dns_primary_for(self, apex: str) -> DnsPrimary | None:
        by_domain = {p.domain: p for p in self.dns_primaries}
        return by_domain.get(apex) or by_domain.get("default")
