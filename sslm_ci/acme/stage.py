"""The ACME part of ``renew``: build requests, choose publishers, run one batch, write next.

Kept apart from :mod:`sslm_ci.stages` so the local-CA path does not depend on certbot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509

from sslm_ci.acme.batch import AcmeOptions, AcmeRequest, BatchIO, Publisher, run_batch
from sslm_ci.acme.publish import GitPublisher, LocalDnsPublisher, LocalHttpPublisher
from sslm_ci.clock import stamp
from sslm_ci.config.model import Service
from sslm_ci.dns.lookup import resolve_address
from sslm_ci.dns.propagation import Expected, Server, ZoneCheck
from sslm_ci.errors import ConfigError
from sslm_ci.pki import csr as pki_csr
from sslm_ci.pki.pem import csr_pem, pem_certs

if TYPE_CHECKING:
    from sslm_ci.stages import Context, RenewOptions, StageResult

CONF = "inventory/ssl-mgr.conf"


def zone_checks_for(ctx: Context, records: dict[str, list[tuple[str, str]]]) -> list[ZoneCheck]:
    inv = ctx.inventory
    dns = inv.servers["dns"]
    checks: list[ZoneCheck] = []
    for apex, recs in sorted(records.items()):
        primary = inv.dns_primary_for(apex)
        if primary is None:
            raise ConfigError(
                ctx.root / CONF,
                "dns_primary",
                f"dns-01 for {apex} needs a [[dns_primary]] (or 'default') entry",
            )
        by_owner: dict[str, set[str]] = {}
        for owner, value in recs:
            by_owner.setdefault(owner, set()).add(value)
        checks.append(
            ZoneCheck(
                apex=apex,
                primary=Server(primary.server, resolve_address(primary.server), primary.port),
                check_port=dns.check_port,
                extra_servers=tuple(
                    Server(ns, resolve_address(ns), dns.check_port)
                    for ns in inv.globals.dns_xtra_ns
                ),
                expected=tuple(
                    Expected(owner, "TXT", frozenset(values))
                    for owner, values in sorted(by_owner.items())
                ),
                wait_instead=primary.wait_instead,
            )
        )
    return checks


def publishers_for(ctx: Context, uses_dns: bool, uses_http: bool) -> list[Publisher]:
    """Local publishers write here; everything published through git goes in ONE commit."""
    from sslm_ci.stages import commit_tag_push

    inv = ctx.inventory
    dns, web = inv.servers["dns"], inv.servers["web"]
    out: list[Publisher] = []
    if uses_dns and dns.publish == "local":
        if dns.acme_dir is None:
            raise ConfigError(
                ctx.root / CONF,
                "dns.acme_dir",
                "publish = 'local' needs acme_dir (where the zone $INCLUDEs acme-challenge.<apex>)",
            )
        out.append(LocalDnsPublisher(dns.acme_dir, dns.restart_cmd, ctx.echo))
    if uses_http and web.publish == "local":
        if web.server_dir is None:
            raise ConfigError(
                ctx.root / CONF,
                "web.server_dir",
                "http-01 needs server_dir (the web root parent of <apex>/)",
            )
        out.append(LocalHttpPublisher(web.server_dir, ctx.echo))
    git_dns = uses_dns and dns.publish == "git"
    git_http = uses_http and web.publish == "git"
    if git_dns or git_http:

        def publish(message: str, paths: list[str], stem: str) -> str:
            landed = commit_tag_push(ctx, message, paths, stem)
            return "(no change)" if landed is None else landed[1]

        out.append(GitPublisher(ctx.root, publish, ctx.echo, dns=git_dns, http=git_http))
    return out


def issue_acme(
    ctx: Context, due: Sequence[tuple[Service, str]], opts: RenewOptions, result: StageResult
) -> list[tuple[str, str]]:
    """Issue every due ACME service in one batch; returns (ident, error) for failures."""
    from sslm_ci.stages import _key_for, _write_next

    inv = ctx.inventory
    keys = {}
    requests: list[AcmeRequest] = []
    for svc, _reason in due:
        key, reused = _key_for(ctx, svc, opts.reuse)
        csr = pki_csr.build_csr(key, svc.x509)
        keys[svc.ident] = (key, csr, reused)
        requests.append(AcmeRequest(svc, inv.cas[svc.signing_ca], csr_pem(csr)))

    uses_http = any(r.ca.validation == "http-01" for r in requests)
    uses_dns = any(r.ca.validation != "http-01" for r in requests)
    dns_cls = inv.servers["dns"]
    io = BatchIO(
        repo=ctx.root,
        sops=ctx.sops,
        publishers=publishers_for(ctx, uses_dns, uses_http),
        zone_checks=lambda records: zone_checks_for(ctx, records),
        echo=ctx.echo,
        log_dir=inv.globals.logdir,
        log_stamp=stamp(ctx.now),
    )
    options = AcmeOptions(
        test=opts.acme_test,
        dry_run=opts.acme_dry_run,
        propagation_timeout=float(dns_cls.check_timeout),
        min_delay=float(inv.globals.dns_check_delay),
        parallel=inv.globals.acme_parallel,
    )
    ctx.echo(f"  ACME: {len(requests)} order(s) in flight")
    for req in requests:
        result.acme_orders[req.ca.name] = result.acme_orders.get(req.ca.name, 0) + 1
    failures: list[tuple[str, str]] = []
    for res in run_batch(requests, io, options):
        svc = next(s for s, _ in due if s.ident == res.ident)
        reason = next(r for s, r in due if s.ident == res.ident)
        if not res.ok:
            failures.append((res.ident, res.error or "failed"))
            ctx.echo(f"  {res.ident}: ACME FAILED: {res.error}")
            continue
        if res.cert_pem is None:  # dry run: nothing to keep
            ctx.echo(f"  {res.ident}: ACME dry run ok ({res.challenges} challenge(s))")
            continue
        key, csr, reused = keys[res.ident]
        cert = x509.load_pem_x509_certificate(res.cert_pem)
        chain = pem_certs(res.chain_pem or b"")
        _write_next(ctx, svc, key, csr, cert, chain, reason, reused, result)
    return failures
