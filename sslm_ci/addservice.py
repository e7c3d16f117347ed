"""``sslm-ci add-service``: one command for a merge request that adds a service.

Writes ``inventory/<group>/<service>`` and adds the service to its ``[[groups]]`` entry in
``ssl-mgr.conf`` with a style-preserving TOML edit (comments, order and layout kept). The new
inventory is validated in a scratch copy first; nothing is written unless it loads.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.items import AoT, Array

from sslm_ci.config.loader import load_inventory
from sslm_ci.config.model import Inventory
from sslm_ci.errors import ConfigError, UsageError
from sslm_ci.fsutil import atomic_write

CONF = "ssl-mgr.conf"


@dataclass(frozen=True)
class NewService:
    group: str
    service: str
    signing_ca: str | None
    sans: tuple[str, ...]
    dane: tuple[str, ...] = ()  # "25:tcp:3:1:1"
    ktype: str = "ec"
    ec_algo: str = "secp384r1"
    rsa_bits: int = 4096
    cn: str | None = None
    email: str | None = None
    org: str | None = None


def _dane_entry(text: str) -> list[int | str]:
    parts = text.split(":")
    if len(parts) not in (5, 6) or not all(p.isdigit() for p in (parts[0], *parts[2:5])):
        raise UsageError(f"--dane {text!r}: expected PORT:PROTO:USAGE:SELECTOR:MATCH[:MX|SANS]")
    entry: list[int | str] = [int(parts[0]), parts[1], int(parts[2]), int(parts[3]), int(parts[4])]
    if len(parts) == 6:
        entry.append(parts[5])
    return entry


def _default_ca(inv: Inventory, group: str) -> str:
    """The CA most services of the group already use, else the only non-root CA."""
    used = Counter(s.signing_ca for s in inv.services.values() if s.group == group)
    if used:
        return used.most_common(1)[0][0]
    candidates = [
        name
        for name in inv.cas
        if not ((svc := inv.ca_service(name)) is not None and svc.is_self_signed)
    ]
    if len(candidates) == 1:
        return candidates[0]
    raise UsageError(f"add-service: say which CA signs it: --ca one of {', '.join(inv.cas)}")


def service_file_text(new: NewService, ca: str) -> str:
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"{new.group} : {new.service} (added by sslm-ci add-service)"))
    doc.add("name", f"{new.group} {new.service}")
    doc.add("group", new.group)
    doc.add("service", new.service)
    doc.add("signing_ca", ca)
    if new.dane:
        doc.add("dane_tls", [_dane_entry(d) for d in new.dane])
    keyopts = tomlkit.table()
    keyopts.add("ktype", new.ktype)
    if new.ktype == "ec":
        keyopts.add("ec_algo", new.ec_algo)
    else:
        keyopts.add("rsa_bits", new.rsa_bits)
    doc.add("KeyOpts", keyopts)
    x509 = tomlkit.table()
    x509.add("CN", new.cn or (new.sans[0] if new.sans else new.group))
    if new.org:
        x509.add("O", new.org)
    if new.email:
        x509.add("email", new.email)
    x509.add("sans", list(new.sans or (new.group,)))
    doc.add("X509", x509)
    return tomlkit.dumps(doc)


def add_to_groups(conf_text: str, group: str, service: str) -> str:
    """ssl-mgr.conf with ``service`` appended to ``group``'s services (a new group if none)."""
    doc = tomlkit.parse(conf_text)
    groups = doc.get("groups")
    if groups is not None and not isinstance(groups, AoT):
        raise UsageError(f"{CONF}: 'groups' is not an array of [[groups]] tables")
    for table in groups or []:
        if table.get("domain") == group:
            services = table.get("services")
            if not isinstance(services, Array):
                raise UsageError(f"{CONF}: [[groups]] {group}: 'services' is not an array")
            if service in services:
                raise UsageError(f"add-service: {group}:{service} is already listed")
            services.append(service)
            return tomlkit.dumps(doc)
    new = tomlkit.table()
    new.add("domain", group)
    new.add("services", [service])
    new.add("active", True)
    if groups is None:
        aot = tomlkit.aot()
        aot.append(new)
        doc.add("groups", aot)
    else:
        groups.append(new)
    return tomlkit.dumps(doc)


def add_service(inventory_dir: Path, repo_root: Path, new: NewService) -> list[Path]:
    inv = load_inventory(inventory_dir, repo_root)
    if (new.group, new.service) in inv.services:
        raise UsageError(f"add-service: {new.group}:{new.service} already exists")
    ca = new.signing_ca or _default_ca(inv, new.group)
    service_text = service_file_text(new, ca)
    conf_text = add_to_groups((inventory_dir / CONF).read_text(), new.group, new.service)
    with tempfile.TemporaryDirectory(prefix="sslm-add-") as tmp:
        trial = Path(tmp) / "inventory"
        shutil.copytree(inventory_dir, trial)
        (trial / new.group).mkdir(exist_ok=True)
        (trial / new.group / new.service).write_text(service_text)
        (trial / CONF).write_text(conf_text)
        try:
            load_inventory(trial, repo_root)
        except ConfigError as exc:
            # Report against the real paths, not the scratch copy.
            raise ConfigError(
                str(exc.file).replace(str(trial), str(inventory_dir)), exc.key, exc.reason
            ) from None
    service_path = inventory_dir / new.group / new.service
    atomic_write(service_path, service_text.encode())
    atomic_write(inventory_dir / CONF, conf_text.encode())
    return [service_path, inventory_dir / CONF]


def parse_sans(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(out)
