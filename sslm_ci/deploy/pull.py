"""``sslm-ci pull`` on a server: install the newest signed state this host needs.

Steps: fetch; pick the newest tag matching the pattern; refuse it if its signature does not
verify (when allowed signers are configured), if its embedded name differs from its ref, or if
it is older than the installed one; check it out; decrypt, with this host's own age key, only
the services this host serves; install atomically into ssl-mgr's production layout; restart
the server classes whose inputs changed; on a failed restart, put the previous install back.

Production layout (``DEST``)::

    DEST/<group>/<service>/curr -> .v/<content-id>/   (privkey.pem, bundle.pem: mode 0600)
    DEST/<apex>/tlsa.<apex>
    DEST/.sslm-ci/state.json                          (installed tag, content ids)

``curr`` is a symlink swapped with one ``rename``, so a reader sees the old set or the new set,
never a mix of files from both.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sslm_ci.acme.publish import WEBROOT_DIR
from sslm_ci.config.hosts import class_services, classes_for_host, services_for_host
from sslm_ci.config.loader import load_inventory
from sslm_ci.config.model import Inventory, ServerClass, Service
from sslm_ci.errors import OperationalError, UsageError
from sslm_ci.fsutil import atomic_write
from sslm_ci.gitops.git import GitRepo, TagInfo
from sslm_ci.gitops.sops import Sops
from sslm_ci.pki import keys as pki_keys
from sslm_ci.store import INFO_FILE, PUBLIC_FILES, SECRET_FILES, Slot, Store

STATE_DIR = ".sslm-ci"
STATE_FILE = "state.json"
VERSIONS_DIR = ".v"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644

Echo = Callable[[str], None]


@dataclass
class PullSettings:
    clone: Path
    host: str
    dest: Path
    allowed_signers: Path | None = None
    tag_pattern: str = "sslm/**"
    remote: str | None = None  # None: 'origin' when it exists; no fetch otherwise
    age_key_file: Path | None = None
    sops_binary: Path | None = None
    role: str | None = None  # "dns": act as the DNS host even if not listed in [dns] servers
    echo: Echo = print


@dataclass
class PullResult:
    tag: str | None = None
    changed_services: list[str] = field(default_factory=list)
    changed_tlsa: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    up_to_date: bool = False


@dataclass
class _Installed:
    tag: str | None
    tag_time: datetime | None
    services: dict[str, str]
    tlsa: dict[str, str]
    tokens: list[str] = field(default_factory=list)  # http-01 files placed in server_dir


def _read_state(dest: Path) -> _Installed:
    path = dest / STATE_DIR / STATE_FILE
    if not path.is_file():
        return _Installed(None, None, {}, {})
    data = json.loads(path.read_text())
    when = data.get("tag_time")
    return _Installed(
        tag=data.get("tag"),
        tag_time=datetime.fromisoformat(when) if when else None,
        services=dict(data.get("services", {})),
        tlsa=dict(data.get("tlsa", {})),
        tokens=list(data.get("tokens", [])),
    )


def _write_state(dest: Path, state: _Installed, commit: str) -> None:
    data = {
        "tag": state.tag,
        "tag_time": state.tag_time.isoformat() if state.tag_time else None,
        "commit": commit,
        "services": state.services,
        "tlsa": state.tlsa,
        "tokens": state.tokens,
    }
    path = dest / STATE_DIR / STATE_FILE
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def choose_tag(
    tags: list[TagInfo], installed: _Installed, depth: Callable[[str], int] = lambda _: 0
) -> TagInfo | None:
    """The newest tag; refuse to go back in time (rollback protection).

    Tag dates have one-second resolution and a run can tag twice in one second (acme, then
    renew), so ties go to the tag whose commit is deeper in history.
    """
    if not tags:
        return None
    latest = max(t.tagger_time for t in tags)
    tied = [t for t in tags if t.tagger_time == latest]
    newest = (
        max(tied, key=lambda t: (depth(t.target_sha), t.ref_name)) if len(tied) > 1 else tied[0]
    )
    if installed.tag_time is not None and newest.tagger_time < installed.tag_time:
        raise OperationalError(
            f"newest tag {newest.ref_name} ({newest.tagger_time.isoformat()}) is older than the "
            f"installed {installed.tag} ({installed.tag_time.isoformat()}): refusing to roll back"
        )
    return newest


def _content_id(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def _gather_service(store: Store, svc: Service) -> dict[str, bytes] | None:
    g, s = svc.group, svc.service
    if not store.has_slot(g, s, Slot.CURR):
        return None
    files: dict[str, bytes] = {}
    for name in (*PUBLIC_FILES, INFO_FILE):
        raw = store.read_public(g, s, Slot.CURR, name)
        if raw is not None:
            files[name] = raw
    for name in SECRET_FILES:
        files[name] = store.read_secret(g, s, Slot.CURR, name)
    cert = store.read_cert(g, s, Slot.CURR)
    assert cert is not None
    key = pki_keys.load_private_key(files["privkey.pem"])
    if not pki_keys.key_matches_cert(key, cert):
        raise OperationalError(f"{svc.ident}: curr's key does not match its certificate")
    return files


def _install_service(dest: Path, svc: Service, files: dict[str, bytes], cid: str) -> str | None:
    """Write a version dir and swap ``curr`` to it. Returns the previous link target."""
    svc_dir = dest / svc.group / svc.service
    version = svc_dir / VERSIONS_DIR / cid
    if not version.is_dir():
        staging = version.with_name(f".{cid}.tmp")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        for name, data in files.items():
            mode = SECRET_MODE if name in SECRET_FILES else PUBLIC_MODE
            atomic_write(staging / name, data, mode)
        staging.rename(version)
    curr = svc_dir / "curr"
    previous: str | None = None
    if curr.is_symlink():
        previous = os.readlink(curr)
    elif curr.exists():
        # A plain directory left by ssl-mgr's rsync: keep it as a version we can go back to.
        legacy = svc_dir / VERSIONS_DIR / "pre-sslm-ci"
        if legacy.exists():
            shutil.rmtree(legacy)
        curr.rename(legacy)
        previous = f"{VERSIONS_DIR}/pre-sslm-ci"
    _point(curr, f"{VERSIONS_DIR}/{cid}")
    return previous


def _point(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _prune_versions(svc_dir: Path, keep: set[str]) -> None:
    versions = svc_dir / VERSIONS_DIR
    if not versions.is_dir():
        return
    for entry in versions.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)


def _run_commands(commands: tuple[str, ...], env: dict[str, str], what: str) -> None:
    for command in commands:
        if not command.strip():
            continue
        proc = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise OperationalError(
                f"{what}: command {command!r} exited {proc.returncode}: {detail[0]}"
            )


def _classes_to_restart(
    inv: Inventory, classes: list[ServerClass], changed: set[str], tlsa_changed: bool
) -> list[ServerClass]:
    out: list[ServerClass] = []
    for cls in classes:
        idents = {s.ident for s in class_services(inv, cls)}
        dns_dep = cls.name == "dns" or "dns" in cls.depends
        if idents & changed or (dns_dep and tlsa_changed):
            out.append(cls)
    return out


def run_pull(settings: PullSettings) -> PullResult:
    clone = settings.clone.resolve()
    dest = settings.dest.resolve()
    git = GitRepo(clone)
    result = PullResult()
    installed = _read_state(dest)

    remote = git.remote_named(settings.remote)
    if remote is not None:
        git.fetch(remote)

    def depth(sha: str) -> int:
        out = subprocess.run(
            ["git", "rev-list", "--count", sha], cwd=clone, capture_output=True, text=True
        ).stdout.strip()
        return int(out or 0)

    tag = choose_tag(git.tags(settings.tag_pattern), installed, depth)
    if tag is None:
        settings.echo(f"no tag matches {settings.tag_pattern!r}: nothing to install")
        result.up_to_date = True
        return result
    result.tag = tag.ref_name
    if settings.allowed_signers is not None:
        git.verify_tag(tag.ref_name, settings.allowed_signers)
        settings.echo(f"tag {tag.ref_name}: signature verified")
    else:
        settings.echo(f"WARNING: tag {tag.ref_name} not verified (no --allowed-signers)")
    if installed.tag == tag.ref_name:
        settings.echo(f"{tag.ref_name} already installed: nothing to do")
        result.up_to_date = True
        return result

    git.checkout_detached(tag.ref_name)
    inv = load_inventory(clone / "inventory", clone)
    env = dict(os.environ)
    if settings.age_key_file is not None:
        env["SOPS_AGE_KEY_FILE"] = str(settings.age_key_file)
        env.pop("SOPS_AGE_KEY", None)
    store = Store(clone, Sops(clone, binary=settings.sops_binary, env=env))

    classes = classes_for_host(inv, settings.host)
    if settings.role == "dns" and not any(c.name == "dns" for c in classes):
        classes.append(inv.servers["dns"])
    if not classes:
        raise UsageError(f"host {settings.host!r} is not in any server class's 'servers' list")
    services = services_for_host(inv, settings.host)
    is_dns = any(c.name == "dns" for c in classes)

    # Gather (and decrypt) everything before touching DEST: a wrong key installs nothing.
    new_files: dict[str, tuple[Service, dict[str, bytes], str]] = {}
    for svc in services:
        files = _gather_service(store, svc)
        if files is not None:
            new_files[svc.ident] = (svc, files, _content_id(files))
    apexes = {s.group for s in services}
    wanted_tlsa: dict[str, bytes] = {}
    for apex in store.tlsa_apexes():
        if is_dns or apex in apexes:
            wanted_tlsa[apex] = (clone / store.tlsa_rel(apex)).read_bytes()
    # The DNS host also feeds its zones: challenge fragments into acme_dir, TLSA into tlsa_dirs.
    zone_files: dict[Path, tuple[str, bytes]] = {}
    if is_dns:
        dns = inv.servers["dns"]
        for apex, data in wanted_tlsa.items():
            for tlsa_dir in dns.tlsa_dirs:
                zone_files[tlsa_dir / f"tlsa.{apex}"] = (apex, data)
        if dns.acme_dir is not None:
            for frag in sorted((clone / "zones").glob("acme-challenge.*")):
                apex = frag.name.removeprefix("acme-challenge.")
                zone_files[dns.acme_dir / frag.name] = (apex, frag.read_bytes())

    # A web host serves the http-01 tokens published through git (webroot/<apex>/...).
    web = inv.servers["web"]
    token_files: dict[Path, bytes] = {}
    if web.server_dir is not None and any(c.name == "web" for c in classes):
        webroot = clone / WEBROOT_DIR
        for path in sorted(webroot.rglob("*")) if webroot.is_dir() else []:
            if path.is_file():
                token_files[web.server_dir / path.relative_to(webroot)] = path.read_bytes()

    # Install, remembering how to undo.
    undo_links: list[tuple[Path, str | None]] = []
    undo_tlsa: list[tuple[Path, bytes | None]] = []
    new_state = _Installed(tag.ref_name, tag.tagger_time, dict(installed.services), {})
    try:
        for ident, (svc, files, cid) in new_files.items():
            if (
                installed.services.get(ident) == cid
                and (dest / svc.group / svc.service / "curr").exists()
            ):
                continue
            prev = _install_service(dest, svc, files, cid)
            undo_links.append((dest / svc.group / svc.service / "curr", prev))
            new_state.services[ident] = cid
            result.changed_services.append(ident)
        for apex, data in sorted(wanted_tlsa.items()):
            cid = hashlib.sha256(data).hexdigest()[:16]
            new_state.tlsa[apex] = cid
            path = dest / apex / f"tlsa.{apex}"
            old = path.read_bytes() if path.is_file() else None
            if old == data:
                continue
            atomic_write(path, data)
            undo_tlsa.append((path, old))
            result.changed_tlsa.append(apex)
        for path, (apex, data) in sorted(zone_files.items()):
            old = path.read_bytes() if path.is_file() else None
            if old == data:
                continue
            atomic_write(path, data)
            undo_tlsa.append((path, old))
            if apex not in result.changed_tlsa:
                result.changed_tlsa.append(apex)

        for path, data in sorted(token_files.items()):
            if not path.is_file() or path.read_bytes() != data:
                atomic_write(path, data)
        new_state.tokens = sorted(str(p) for p in token_files)
        for stale in set(installed.tokens) - set(new_state.tokens):
            Path(stale).unlink(missing_ok=True)

        changed = set(result.changed_services)
        cmd_env = dict(os.environ)
        cmd_env["SSLM_CI_HOST"] = settings.host
        cmd_env["SSLM_CI_CHANGED"] = " ".join(sorted(changed | set(result.changed_tlsa)))
        for cls in _classes_to_restart(inv, classes, changed, bool(result.changed_tlsa)):
            commands = cls.restart_cmd
            if cls.name == "dns":
                # ssl-mgr 7.x's convention: the refresh tool bumps these zones' serials.
                bump = " ".join(shlex.quote(a) for a in sorted(result.changed_tlsa))
                commands = tuple(f"{c} --serial_bump {bump}" for c in commands if c.strip())
            _run_commands(commands, cmd_env, f"restart [{cls.name}]")
            result.restarted.append(cls.name)
            settings.echo(f"restarted [{cls.name}]")
    except BaseException:
        for link, prev in reversed(undo_links):
            if prev is None:
                link.unlink(missing_ok=True)
            else:
                _point(link, prev)
        for path, old in reversed(undo_tlsa):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, old)
        settings.echo("install failed: previous install restored")
        raise

    _write_state(dest, new_state, tag.target_sha)
    for ident, (svc, _files, cid) in new_files.items():
        keep = {cid}
        if ident in installed.services:
            keep.add(installed.services[ident])  # one version back, for a manual rollback
        _prune_versions(dest / svc.group / svc.service, keep)

    if result.changed_services or result.changed_tlsa:
        for host, command in inv.globals.post_copy_cmd:
            if host == settings.host:
                _run_commands((f"{command} {host}",), cmd_env, "post_copy_cmd")
        settings.echo(
            f"installed {tag.ref_name}: services {', '.join(result.changed_services) or '-'}; "
            f"tlsa {', '.join(result.changed_tlsa) or '-'}"
        )
    else:
        settings.echo(f"{tag.ref_name}: nothing changed for {settings.host}")
    return result
