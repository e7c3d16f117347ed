"""The renew and roll stages: gather facts, ask :mod:`sslm_ci.policy`, write, commit, tag, push.

Each stage is all-or-nothing: it refuses to start on a dirty state tree, writes into the
working tree, and either lands one commit (plus tag and push) or restores every path it
touched to ``HEAD``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sslm_ci.clock import stamp
from sslm_ci.config.loader import load_inventory
from sslm_ci.config.model import CA_GROUP, Inventory, Service
from sslm_ci.dns import tlsa_zone
from sslm_ci.errors import ConfigError, OperationalError
from sslm_ci.fsutil import atomic_write
from sslm_ci.gitops.git import GitRepo, Signing
from sslm_ci.gitops.recipients import load_recipients, render_sops_config
from sslm_ci.gitops.sops import Sops
from sslm_ci.pki import ca as pki_ca
from sslm_ci.pki import csr as pki_csr
from sslm_ci.pki import keys as pki_keys
from sslm_ci.pki.pem import build_outputs
from sslm_ci.pki.tlsa import tlsa_cert_for_usage, tlsa_data
from sslm_ci.policy import (
    CertFacts,
    Due,
    RenewInput,
    Wanted,
    renewal_decision,
)
from sslm_ci.store import SOPS_SUFFIX, Slot, SlotInfo, Store

INVENTORY_DIR = "inventory"
SOPS_CONFIG = ".sops.yaml"
STATE_PATHS: tuple[str, ...] = ("certs", "zones", "accounts", "webroot", SOPS_CONFIG)

Echo = Callable[[str], None]


@dataclass
class Settings:
    """Run-wide settings from the CLI and the environment."""

    repo_root: Path
    now: datetime
    remote: str | None = None  # None: push to 'origin' when it exists
    push: bool = True
    push_retries: int = 3
    signing_key: Path | None = None
    sops_binary: Path | None = None
    echo: Echo = print


@dataclass
class StageResult:
    stage: str
    done: list[tuple[str, str]] = field(default_factory=list)  # (ident, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commit: str | None = None
    tag: str | None = None
    pushed: bool = False
    acme_orders: dict[str, int] = field(default_factory=dict)  # CA name -> orders placed


class Context:
    """Everything a stage touches, opened once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.repo_root.resolve()
        self.now = settings.now
        self.inventory: Inventory = load_inventory(self.root / INVENTORY_DIR, self.root)
        self.sops = Sops(self.root, binary=settings.sops_binary)
        self.store = Store(self.root, self.sops)
        self.git = GitRepo(self.root, Signing(settings.signing_key))
        self.mx_cache: dict[str, list[str] | None] = {}

    def echo(self, line: str) -> None:
        self.settings.echo(line)


# ---------------------------------------------------------------------------------------------
# facts


def key_desc_of(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ec:{public_key.curve.name}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa:{public_key.key_size}"
    return type(public_key).__name__


def wanted_for(svc: Service) -> Wanted:
    key = svc.key
    desc = f"ec:{key.ec_algo}" if key.ktype == "ec" else f"rsa:{key.rsa_bits}"
    names = {n.lower() for n in svc.names} if svc.ca is None else set()
    return Wanted(names=frozenset(names), key_desc=desc, signing_ca=svc.signing_ca)


def cert_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    names = [n.lower() for n in ext.value.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
    return frozenset(names)


def cert_facts(store: Store, svc: Service, slot: Slot) -> CertFacts | None:
    cert = store.read_cert(svc.group, svc.service, slot)
    if cert is None:
        return None
    info = store.read_info(svc.group, svc.service, slot)
    names = cert_names(cert) if svc.ca is None else frozenset()
    return CertFacts(
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=names,
        key_desc=key_desc_of(cert.public_key()),
        signing_ca=info.signing_ca if info else svc.signing_ca,
        serial=cert.serial_number,
    )


def renew_input_for(
    inv: Inventory, store: Store, svc: Service, now: datetime, force: bool
) -> RenewInput:
    g = inv.globals
    days = svc.renew_expire_days if svc.renew_expire_days is not None else g.renew_expire_days
    return RenewInput(
        ident=svc.ident,
        now=now,
        force=force,
        wanted=wanted_for(svc),
        curr=cert_facts(store, svc, Slot.CURR),
        next=cert_facts(store, svc, Slot.NEXT),
        renew_expire_days=days,
        spread_days=g.renew_expire_days_spread,
    )


# ---------------------------------------------------------------------------------------------
# transaction helpers


def _dirty_state_paths(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *STATE_PATHS],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def _restore_state(root: Path) -> None:
    """Put every state path back to HEAD: the stage leaves nothing half-written."""
    has_head = (
        subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True
        ).returncode
        == 0
    )
    if has_head:
        subprocess.run(["git", "reset", "-q", "--", *STATE_PATHS], cwd=root, capture_output=True)
        subprocess.run(
            ["git", "checkout", "-q", "HEAD", "--", *STATE_PATHS], cwd=root, capture_output=True
        )
    subprocess.run(["git", "clean", "-fdq", "--", *STATE_PATHS], cwd=root, capture_output=True)


@contextmanager
def state_transaction(ctx: Context) -> Iterator[None]:
    dirty = _dirty_state_paths(ctx.root)
    if dirty:
        raise OperationalError(
            "uncommitted changes under the state paths; commit or discard them first: "
            + ", ".join(dirty[:5])
            + (" ..." if len(dirty) > 5 else "")
        )
    try:
        yield
    except BaseException:
        _restore_state(ctx.root)
        raise


# ---------------------------------------------------------------------------------------------
# .sops.yaml and TLSA


def sync_sops_config(ctx: Context) -> bool:
    """Regenerate ``.sops.yaml``; when recipients changed, re-wrap existing secrets."""
    text = render_sops_config(ctx.inventory, load_recipients(ctx.root))
    path = ctx.root / SOPS_CONFIG
    if path.is_file() and path.read_text() == text:
        return False
    atomic_write(path, text.encode())
    for secret in sorted((ctx.root / "certs").rglob(f"*{SOPS_SUFFIX}")):
        ctx.sops.update_keys(secret)
    return True


def mx_for(ctx: Context, apex: str) -> list[str] | None:
    """MX hosts of ``apex`` from its DNS primary (cached per run); None without a primary."""
    if apex in ctx.mx_cache:
        return ctx.mx_cache[apex]
    primary = ctx.inventory.dns_primary_for(apex)
    hosts: list[str] | None = None
    if primary is None:
        ctx.echo(
            f"  WARNING: no [[dns_primary]] for {apex}: port-25 TLSA placed at the "
            "certificate names instead of the MX hosts"
        )
    else:
        from sslm_ci.dns.lookup import mx_hosts, resolve_address
        from sslm_ci.dns.propagation import Server

        server = Server(primary.server, resolve_address(primary.server), primary.port)
        hosts = mx_hosts(server, apex)
    ctx.mx_cache[apex] = hosts
    return hosts


def service_tlsa(ctx: Context, svc: Service, slot: Slot) -> set[tlsa_zone.TlsaRecord]:
    """The TLSA records one slot of a DANE service contributes (empty without a cert)."""
    cert = ctx.store.read_cert(svc.group, svc.service, slot)
    if cert is None or not svc.dane_tls:
        return set()
    chain = ctx.store.read_chain(svc.group, svc.service, slot)
    mx = mx_for(ctx, svc.group) if tlsa_zone.needs_mx(svc) else None
    out: set[tlsa_zone.TlsaRecord] = set()
    for entry in svc.dane_tls:
        target = tlsa_cert_for_usage(cert, chain, entry.usage)
        data = tlsa_data(target, entry.selector, entry.match)
        for owner in tlsa_zone.owners_for(svc, entry, mx):
            out.add(
                tlsa_zone.TlsaRecord(
                    owner, svc.dane_tls_ttl, entry.usage, entry.selector, entry.match, data
                )
            )
    return out


def tlsa_records(ctx: Context, apex: str) -> list[tlsa_zone.TlsaRecord]:
    records: set[tlsa_zone.TlsaRecord] = set()
    for svc in ctx.inventory.active_services():
        if svc.group == apex and svc.dane_tls:
            for slot in (Slot.CURR, Slot.NEXT, Slot.RETIRED):
                records |= service_tlsa(ctx, svc, slot)
    return sorted(records)


def refresh_tlsa(ctx: Context, apexes: Sequence[str]) -> list[str]:
    changed: list[str] = []
    for apex in sorted(set(apexes)):
        if apex == CA_GROUP:
            continue
        has_dane = any(s.group == apex and s.dane_tls for s in ctx.inventory.active_services())
        if not has_dane and not (ctx.root / ctx.store.tlsa_rel(apex)).exists():
            continue
        text = tlsa_zone.render(apex, tlsa_records(ctx, apex))
        if ctx.store.write_tlsa(apex, text):
            changed.append(apex)
    return changed


def clear_stale_challenges(ctx: Context) -> list[str]:
    """Empty challenge fragments and drop http-01 tokens a crashed run left in git.

    A batch always cleans up after itself, but a run that dies between its publish commit and
    its own commit leaves the published challenges in HEAD; the next renew commits them away.
    """
    from sslm_ci.acme.publish import WEBROOT_DIR
    from sslm_ci.dns.fragments import parse_acme_fragment, render_acme_fragment

    cleared: list[str] = []
    for frag in sorted((ctx.root / "zones").glob("acme-challenge.*")):
        if parse_acme_fragment(frag.read_text()):
            apex = frag.name.removeprefix("acme-challenge.")
            atomic_write(frag, render_acme_fragment(apex, []).encode())
            cleared.append(f"zones/{frag.name}")
    webroot = ctx.root / WEBROOT_DIR
    if webroot.is_dir():
        shutil.rmtree(webroot)
        cleared.append(f"{WEBROOT_DIR}/")
    return cleared


def publish_tlsa_locally(ctx: Context, apexes: Sequence[str]) -> None:
    """``[dns] publish = 'local'``: this host feeds the zones itself (ssl-mgr's way): copy the
    TLSA fragments into ``tlsa_dirs`` and run ``restart_cmd --serial_bump <apex>...``. With
    'git' the DNS host's ``pull`` does the same."""
    dns = ctx.inventory.servers["dns"]
    if dns.publish != "local" or not apexes:
        return
    from sslm_ci.acme.publish import run_refresh

    for apex in apexes:
        data = (ctx.root / ctx.store.tlsa_rel(apex)).read_bytes()
        for tlsa_dir in dns.tlsa_dirs:
            atomic_write(tlsa_dir / f"tlsa.{apex}", data)
    run_refresh(dns.restart_cmd, list(apexes), ctx.echo)


# ---------------------------------------------------------------------------------------------
# commit / tag / push


def _trailers(stage: str, result: StageResult) -> str:
    lines = [f"Sslm-Stage: {stage}"]
    for ident, _ in result.done:
        lines.append(f"Sslm-Service: {ident}")
    for ident, reason in result.done:
        lines.append(f"Sslm-Reason: {ident} {reason}")
    for ca, count in sorted(result.acme_orders.items()):
        lines.append(f"{ACME_ORDERS_TRAILER}: {ca} {count}")
    return "\n".join(lines)


def land(ctx: Context, stage: str, summary: str, body: str, result: StageResult) -> None:
    """Commit the state paths, tag the commit, push both (fetch/rebase/retry on rejection)."""
    message = f"{stage}: {summary}\n\n{body}\n\n{_trailers(stage, result)}\n"
    landed = commit_tag_push(ctx, message, list(STATE_PATHS), stage)
    if landed is None:
        return
    result.commit, result.tag, result.pushed = landed
    if not result.pushed:
        why = "--no-push" if resolve_remote(ctx) is not None else "no remote configured"
        result.warnings.append(f"{why}: commit and tag stay local")


def commit_tag_push(
    ctx: Context, message: str, paths: list[str], stem: str
) -> tuple[str, str, bool] | None:
    """One commit of ``paths``, tag ``sslm/<stem>/<stamp>``, push; None if nothing changed."""
    remote = resolve_remote(ctx) if ctx.settings.push else None
    branch = ctx.git.current_branch()
    if remote is not None and branch is None:
        raise OperationalError("HEAD is detached: check out the branch CI should push")
    before = _head_or_none(ctx.root)
    sha = ctx.git.commit(message, paths, ctx.now)
    if sha is None:
        return None
    tag = unique_tag_name(ctx, f"sslm/{stem}/{stamp(ctx.now)}")
    try:
        ctx.git.tag(tag, message.splitlines()[0], ctx.now)
        if remote is None or branch is None:
            return sha, tag, False
        ctx.git.push(remote, branch, [tag], retries=ctx.settings.push_retries)
    except BaseException:
        # Nothing landed: take the local commit and tag back too, so a later run starts from
        # what the remote has (the caller restores the working tree).
        _undo_commit(ctx.root, tag, before)
        raise
    return ctx.git.head(), tag, True


def _head_or_none(root: Path) -> str | None:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True, text=True
    )
    return proc.stdout.strip() or None


def _undo_commit(root: Path, tag: str, before: str | None) -> None:
    subprocess.run(["git", "tag", "-d", tag], cwd=root, capture_output=True)
    if before is not None:
        subprocess.run(["git", "reset", "-q", "--soft", before], cwd=root, capture_output=True)


def resolve_remote(ctx: Context) -> str | None:
    return ctx.git.remote_named(ctx.settings.remote)


def unique_tag_name(ctx: Context, base: str) -> str:
    existing = {t.ref_name for t in ctx.git.tags(f"{base}*")}
    if base not in existing:
        return base
    n = 2
    while f"{base}-{n}" in existing:
        n += 1
    return f"{base}-{n}"


# ---------------------------------------------------------------------------------------------
# renew


@dataclass
class _Issued:
    key_pem: bytes
    cert: x509.Certificate
    chain: list[x509.Certificate]


def ca_order(inv: Inventory, services: Sequence[Service]) -> list[Service]:
    """Issuers before the certificates they sign (roots, then intermediates, then leaves)."""

    def depth(svc: Service) -> int:
        d = 0
        cur: Service | None = svc
        seen: set[str] = set()
        while cur is not None and not cur.is_self_signed and cur.ident not in seen:
            seen.add(cur.ident)
            cur = inv.ca_service(cur.signing_ca)
            d += 1
        return d

    return sorted(services, key=lambda s: (s.ca is None, depth(s)))


def _signing_material(
    ctx: Context, ca_svc: Service, issued: dict[str, _Issued]
) -> tuple[x509.Certificate, pki_keys.PrivateKey, list[x509.Certificate]]:
    """The CA's certificate, key and chain that signs now: curr; at bootstrap, this run's."""
    g, s = ca_svc.group, ca_svc.service
    if ctx.store.has_slot(g, s, Slot.CURR):
        slot = Slot.CURR
    elif ca_svc.ident in issued:
        fresh = issued[ca_svc.ident]
        return fresh.cert, pki_keys.load_private_key(fresh.key_pem), fresh.chain
    elif ctx.store.has_slot(g, s, Slot.NEXT):
        slot = Slot.NEXT
    else:
        raise OperationalError(
            f"CA {s!r} ({ca_svc.ident}) has no certificate yet: "
            f"renew it first (sslm-ci renew {g}:{s})"
        )
    cert = ctx.store.read_cert(g, s, slot)
    assert cert is not None
    key = pki_keys.load_private_key(ctx.store.read_secret(g, s, slot, "privkey.pem"))
    chain = ctx.store.read_chain(g, s, slot)
    return cert, key, chain


def _key_for(ctx: Context, svc: Service, reuse: bool) -> tuple[pki_keys.PrivateKey, bool]:
    """A new key, or with ``-r`` curr's key when it still has the configured type."""
    if reuse and ctx.store.has_slot(svc.group, svc.service, Slot.CURR):
        key = pki_keys.load_private_key(
            ctx.store.read_secret(svc.group, svc.service, Slot.CURR, "privkey.pem")
        )
        if wanted_for(svc).key_desc == key_desc_of(key.public_key()):
            return key, True
        ctx.echo(f"  {svc.ident}: key type changed, not reusing curr's key")
    return pki_keys.generate_private_key(svc.key), False


def _sign_locally(
    ctx: Context,
    svc: Service,
    csr: x509.CertificateSigningRequest,
    key: pki_keys.PrivateKey,
    issued: dict[str, _Issued],
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    inv = ctx.inventory
    if svc.is_self_signed:
        if svc.ca is None:
            raise ConfigError(svc.file, "CA", "a self-signed service needs a [CA] section")
        return pki_ca.issue_root(key, svc.x509, svc.ca.sign_end_days, svc.ca.digest, ctx.now), []
    ca_svc = inv.ca_service(svc.signing_ca)
    if ca_svc is None or ca_svc.ca is None:
        raise ConfigError(svc.file, "signing_ca", f"no CA service holds {svc.signing_ca!r}")
    ca_cert, ca_key, ca_chain = _signing_material(ctx, ca_svc, issued)
    # As ssl-mgr: whatever a CA signs lives for that CA's sign_end_days.
    days, digest = ca_svc.ca.sign_end_days, ca_svc.ca.digest
    if svc.ca is not None:
        cert = pki_ca.issue_intermediate(csr, ca_cert, ca_key, days, digest, ctx.now)
    else:
        cert = pki_ca.issue_leaf(csr, ca_cert, ca_key, days, digest, ctx.now)
    return cert, [ca_cert, *ca_chain]


ACME_ORDERS_TRAILER = "Sslm-Acme-Orders"
ORDER_WINDOW = timedelta(hours=3)  # Let's Encrypt: 300 new orders per account per 3 hours


def recent_acme_orders(root: Path, now: datetime) -> dict[str, int]:
    """Orders placed per CA in the rate-limit window before ``now``, from commit trailers."""
    since = int((now - ORDER_WINDOW).timestamp())
    out = subprocess.run(
        [
            "git",
            "log",
            f"--since=@{since}",
            f"--until=@{int(now.timestamp())}",
            f"--format=%(trailers:key={ACME_ORDERS_TRAILER},valueonly)",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = counts.get(parts[0], 0) + int(parts[1])
    return counts


def split_by_order_budget(
    due: Sequence[tuple[Service, str, str]], cap: int, used: dict[str, int]
) -> tuple[list[tuple[Service, str]], list[tuple[Service, str]]]:
    """Pure: which due ACME services fit each CA's remaining order budget this window."""
    left = {ca: cap - used.get(ca, 0) for _, _, ca in due}
    allowed: list[tuple[Service, str]] = []
    deferred: list[tuple[Service, str]] = []
    for svc, reason, ca in due:
        if left[ca] > 0:
            left[ca] -= 1
            allowed.append((svc, reason))
        else:
            deferred.append(
                (svc, f"deferred: {used.get(ca, 0)} orders at {ca} in the last 3 h, cap {cap}")
            )
    return allowed, deferred


def _is_acme(inv: Inventory, svc: Service) -> bool:
    ca = inv.cas.get(svc.signing_ca)
    return ca is not None and ca.ca_type == "certbot"


def _write_next(
    ctx: Context,
    svc: Service,
    key: pki_keys.PrivateKey,
    csr: x509.CertificateSigningRequest,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    reason: str,
    reused: bool,
    result: StageResult,
) -> None:
    outputs = build_outputs(key, csr, cert, chain)
    info = SlotInfo(issued_at=ctx.now, signing_ca=svc.signing_ca, key_reused=reused, reason=reason)
    ctx.store.write_slot(
        svc.group,
        svc.service,
        Slot.NEXT,
        outputs,
        info,
        reuse_key_from=Slot.CURR if reused else None,
    )
    shown = reason + (" (key reused)" if reused else "")
    result.done.append((svc.ident, shown))
    ctx.echo(f"  {svc.ident}: renewed into next ({shown})")


@dataclass
class RenewOptions:
    force: bool = False
    reuse: bool = False
    acme_test: bool = False  # -t
    acme_dry_run: bool = False  # -n


def run_renew(
    ctx: Context,
    selection: Sequence[Service],
    force: bool = False,
    reuse: bool = False,
    options: RenewOptions | None = None,
) -> StageResult:
    opts = options or RenewOptions(force=force, reuse=reuse)
    result = StageResult("renew")
    failures: list[tuple[str, str]] = []
    with state_transaction(ctx):
        sops_changed = sync_sops_config(ctx)
        stale = clear_stale_challenges(ctx)
        if stale:
            result.warnings.append("cleared challenges left by an earlier run: " + ", ".join(stale))
        inv = ctx.inventory
        due: list[tuple[Service, str]] = []
        for svc in ca_order(inv, selection):
            decision = renewal_decision(renew_input_for(inv, ctx.store, svc, ctx.now, opts.force))
            if isinstance(decision, Due):
                due.append((svc, decision.reason))
            else:
                result.skipped.append((svc.ident, decision.reason))
                ctx.echo(f"  {svc.ident}: not due ({decision.reason})")

        acme_due = [(s, r) for s, r in due if _is_acme(inv, s)]
        if acme_due:
            from sslm_ci.acme.stage import issue_acme

            allowed, deferred = split_by_order_budget(
                [(s, r, s.signing_ca) for s, r in acme_due],
                inv.globals.acme_max_orders,
                recent_acme_orders(ctx.root, ctx.now),
            )
            for svc, why in deferred:
                result.skipped.append((svc.ident, why))
                ctx.echo(f"  {svc.ident}: deferred to a later run ({why})")
            if allowed:
                failures += issue_acme(ctx, allowed, opts, result)

        issued: dict[str, _Issued] = {}
        for svc, reason in due:
            if _is_acme(inv, svc):
                continue
            key, reused = _key_for(ctx, svc, opts.reuse)
            csr = pki_csr.build_csr(key, svc.x509, is_ca=svc.ca is not None)
            cert, chain = _sign_locally(ctx, svc, csr, key, issued)
            issued[svc.ident] = _Issued(pki_keys.private_key_pem(key), cert, chain)
            _write_next(ctx, svc, key, csr, cert, chain, reason, reused, result)

        tlsa_changed = refresh_tlsa(ctx, [ident.split(":", 1)[0] for ident, _ in result.done])
        n = len(result.done)
        body = "\n".join(f"{i}: {r}" for i, r in result.done) or "No certificate issued."
        if tlsa_changed:
            body += "\n\nTLSA updated (curr + next): " + ", ".join(tlsa_changed)
        if failures:
            body += "\n\nFailed:\n" + "\n".join(f"{i}: {r}" for i, r in failures)
        if n or _dirty_state_paths(ctx.root):
            if not n and sops_changed:
                result.warnings.append(".sops.yaml regenerated; committed with no renewals")
            land(ctx, "renew", f"{n} service{'s' if n != 1 else ''} into next", body, result)
            publish_tlsa_locally(ctx, tlsa_changed)
    if failures:
        raise OperationalError(
            f"renew: {len(failures)} service(s) failed: "
            + "; ".join(f"{i}: {r}" for i, r in failures)
        )
    return result
