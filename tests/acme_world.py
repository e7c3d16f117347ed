"""An ACME GitOps world: the rig (BIND + pebble + http-01 root), an inventory pointing at it,
a GitOps repo with a bare remote, and a DNS host clone that pulls on every push (the
post-receive hook plays the webhook).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from tests.gitops_world import PROJECT, World, git
from tests.rig.acme_rig import AcmeRig

SERVICES = {
    # group/service: (ca, sans)
    "example.com/mail-ec": ("pebble-dns", ["example.com", "mail.example.com"]),
    "example.com/wild-ec": ("pebble-dns", ["*.example.com", "example.com"]),
    "example.com/web-http": ("pebble-http", ["example.com", "www.example.com"]),
    "example.net/web-ec": ("pebble-dns", ["example.net", "www.example.net"]),
}


def write_inventory(
    dest: Path,
    rig: AcmeRig,
    *,
    services: dict[str, tuple[str, list[str]]] | None = None,
    publish: str = "git",
    xtra_ns: list[str] | None = None,
    check_timeout: int = 20,
    restart_extra: str = "",
    web_publish: str = "local",
    extra_globals: tuple[str, ...] = (),
    restart_cmd: str | None = None,
) -> Path:
    services = services or SERVICES
    groups: dict[str, list[str]] = {}
    for key in services:
        group, svc = key.split("/")
        groups.setdefault(group, []).append(svc)
    dest.mkdir(parents=True)
    refresh = restart_cmd or (
        " ".join(shlex.quote(a) for a in rig.refresh_command()) + restart_extra
    )
    lines = [
        "[globals]",
        "    min_roll_mins = 90",
        "    dns_check_delay = 0",
        f"    dns_xtra_ns = {xtra_ns or []!r}",
        *(f"    {line}" for line in extra_globals),
    ]
    for group, svcs in groups.items():
        lines += [
            "[[groups]]",
            f"    domain = '{group}'",
            f"    services = {svcs!r}",
            "    active = true",
        ]
    lines += [
        "[[dns_primary]]",
        "    domain = 'default'",
        "    server = '127.0.0.1'",
        f"    port = {rig.dns_port}",
        "[dns]",
        "    servers = ['ns1.example.com']",
        f"    publish = '{publish}'",
        f"    check_port = {rig.dns_port}",
        f"    check_timeout = {check_timeout}",
        f"    acme_dir = '{rig.include_dir}'",
        f"    tlsa_dirs = ['{rig.tlsa_dir}']",
        f"    restart_cmd = {refresh!r}",
        "[web]",
        "    servers = ['web.example.com']",
        f"    publish = '{web_publish}'",
        f"    server_dir = '{rig.webroot}'",
        "    restart_cmd = 'true'",
    ]
    # Every service goes to the web host; mail-ec also to the mail host (when present).
    lines.append(f"    svc_depends = {[[g, s] for g, s in groups.items()]!r}")
    mail = [g for g, svcs in groups.items() if "mail-ec" in svcs]
    if mail:
        lines += [
            "[smtp]",
            "    servers = ['mail.example.com']",
            "    restart_cmd = 'true'",
            f"    svc_depends = {[[g, ['mail-ec']] for g in mail]!r}",
        ]
    (dest / "ssl-mgr.conf").write_text("\n".join(lines) + "\n")
    (dest / "ca-info.conf").write_text(
        f"""[pebble-dns]
    ca_desc = 'pebble, dns-01'
    ca_type = 'certbot'
    ca_validation = 'dns-01'
    ca_server = '{rig.directory_url}'
    ca_trust = '{rig.ca_bundle}'
[pebble-http]
    ca_desc = 'pebble, http-01'
    ca_type = 'certbot'
    ca_validation = 'http-01'
    ca_server = '{rig.directory_url}'
    ca_trust = '{rig.ca_bundle}'
"""
    )
    for key, (ca, sans) in services.items():
        group, svc = key.split("/")
        (dest / group).mkdir(exist_ok=True)
        (dest / group / svc).write_text(
            f"""name = '{svc}'
group = '{group}'
service = '{svc}'
signing_ca = '{ca}'
[KeyOpts]
    ktype = 'ec'
    ec_algo = 'secp256r1'
[X509]
    CN = '{sans[0]}'
    O = 'Example'
    email = 'hostmaster@{group}'
    sans = {sans!r}
"""
        )
    return dest


def attach_dns_host(world: World, rig: AcmeRig, web_host: bool = False) -> Path:
    """Clone the remote as the DNS host (and the web host) and make every push run their
    ``pull`` (the post-receive hook plays the webhook)."""
    q = shlex.quote
    env_exports = " ".join(f"{k}={q(v)}" for k, v in rig.refresh_env.items())
    signers = q(str(world.allowed_signers))
    script = ["#!/bin/sh", "unset GIT_DIR GIT_QUARANTINE_PATH"]
    hosts = [("dns-host", "--role dns", "ci")]
    if web_host:
        hosts.append(("web-host", "--host web.example.com", "web.example.com"))
    for name, who, identity in hosts:
        clone = world.base / name
        git(world.base, "clone", "-q", str(world.remote), str(clone), env=world.env())
        key = q(str(world.keys / f"{identity}.agekey"))
        script.append(
            f"(cd {q(str(clone))} && {env_exports} GIT_CONFIG_GLOBAL=/dev/null "
            f"SOPS_AGE_KEY_FILE={key} {q(sys.executable)} -m sslm_ci --repo . pull {who} "
            f"--dest {q(str(world.base / (name + '-prod')))} --allowed-signers {signers} "
            f">> {q(str(world.base / (name + '.log')))} 2>&1) || echo '{name} pull failed' >&2"
        )
    hook = world.remote / "hooks" / "post-receive"
    hook.write_text("\n".join(script) + "\n")
    hook.chmod(0o755)
    return world.base / "dns-host"


def acme_env(rig: AcmeRig) -> dict[str, str]:
    return {k: v for k, v in rig.refresh_env.items()} | {
        "PATH": f"{PROJECT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    }
