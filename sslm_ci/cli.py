"""``sslm-ci`` command line: thin click wrappers over the stages.

Exit codes: 0 success or nothing to do, 1 operational failure, 2 usage or config error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from sslm_ci.clock import resolve_now
from sslm_ci.errors import SslmError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Globals:
    repo: Path
    now_option: str | None
    verbose: bool

    @property
    def now(self) -> datetime:
        return resolve_now(self.now_option)


def _echo(line: str) -> None:
    click.echo(line)


def _push_options(func: F) -> F:
    func = click.option(
        "--signing-key",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="SSLM_CI_SIGNING_KEY",
        help="SSH private key that signs commits and tags (env SSLM_CI_SIGNING_KEY).",
    )(func)
    func = click.option(
        "--remote", envvar="SSLM_CI_REMOTE", help="Remote to push to (default: origin if any)."
    )(func)
    func = click.option("--no-push", is_flag=True, help="Commit and tag, but do not push.")(func)
    func = click.option(
        "--push-retries",
        type=click.IntRange(0, 20),
        default=3,
        show_default=True,
        envvar="SSLM_CI_PUSH_RETRIES",
        help="Fetch/rebase/retry rounds on a rejected push.",
    )(func)
    return func


def _settings(
    g: Globals, signing_key: Path | None, remote: str | None, no_push: bool, push_retries: int
) -> Any:
    from sslm_ci.stages import Settings

    return Settings(
        repo_root=g.repo,
        now=g.now,
        remote=remote,
        push=not no_push,
        push_retries=push_retries,
        signing_key=signing_key,
        echo=_echo,
    )


class SslmGroup(click.Group):
    """Turns our errors into one ``error:`` line and the exit code the error carries."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SslmError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=SslmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=".",
    envvar="SSLM_CI_REPO",
    show_default=True,
    help="The GitOps repository (holds inventory/, certs/, zones/).",
)
@click.option(
    "--now",
    "now_option",
    envvar="SSLM_CI_NOW",
    help="Pretend it is this ISO 8601 instant for every decision (env SSLM_CI_NOW).",
)
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
def cli(ctx: click.Context, repo: Path, now_option: str | None, verbose: bool) -> None:
    """Certificate renew/roll as a GitOps job (ssl-mgr's model, keys sops+age encrypted)."""
    ctx.obj = Globals(repo=repo, now_option=now_option, verbose=verbose)


def _selection(ctx_obj: Any, args: Sequence[str]) -> Any:
    from sslm_ci.config.selection import parse_selection

    return parse_selection(list(args), ctx_obj.inventory)


def _report(result: Any) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.commit:
        click.echo(
            f"{result.stage}: committed {result.commit[:12]}, tag {result.tag}"
            + (", pushed" if result.pushed else "")
        )
    else:
        click.echo(f"{result.stage}: nothing to do")


def _report_options(func: F) -> F:
    func = click.option(
        "--html",
        "page_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Write a static status page (index.html) into this directory.",
    )(func)
    func = click.option(
        "--prometheus",
        "metrics_file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="SSLM_CI_METRICS_FILE",
        help="Write node_exporter textfile metrics here (*.prom).",
    )(func)
    func = click.option(
        "--markdown",
        "summary_file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="SSLM_CI_SUMMARY_FILE",
        help="Write the Markdown summary here too ($GITHUB_STEP_SUMMARY is used when set).",
    )(func)
    return func


def _publish(
    g: Globals,
    reports: tuple[Path | None, Path | None, Path | None],
    run: Any = None,
    selection: Sequence[str] = (),
) -> None:
    """Job summary (always when $GITHUB_STEP_SUMMARY is set), metrics, page."""
    import os

    from sslm_ci.report.summary import ReportTargets, gather_rows, publish_reports

    summary_file, metrics_file, page_dir = reports
    if not (os.environ.get("GITHUB_STEP_SUMMARY") or summary_file or metrics_file or page_dir):
        return
    now = g.now
    rows = gather_rows(g.repo, now, selection)
    targets = ReportTargets(summary_file, metrics_file, page_dir)
    for path in publish_reports(rows, now, targets, os.environ, run):
        if g.verbose:
            click.echo(f"wrote {path}")


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Renew even if not due.")
@click.option("-r", "--reuse", is_flag=True, help="Reuse curr's key (TLSA 3 1 1 unchanged).")
@click.option(
    "-t",
    "--test",
    "acme_test",
    is_flag=True,
    help="ACME: use Let's Encrypt's staging server instead of ca_server.",
)
@click.option(
    "-n",
    "--dry-run",
    "acme_dry_run",
    is_flag=True,
    help="ACME: certbot --dry-run (validates, keeps nothing).",
)
@_push_options
@_report_options
@click.argument("selection", nargs=-1)
@click.pass_obj
def renew(
    g: Globals,
    force: bool,
    reuse: bool,
    acme_test: bool,
    acme_dry_run: bool,
    signing_key: Path | None,
    remote: str | None,
    no_push: bool,
    push_retries: int,
    summary_file: Path | None,
    metrics_file: Path | None,
    page_dir: Path | None,
    selection: tuple[str, ...],
) -> None:
    """New key, CSR and cert into next for each due service: GROUP:SVC[,SVC] ..."""
    from sslm_ci.stages import Context, RenewOptions, run_renew

    ctx = Context(_settings(g, signing_key, remote, no_push, push_retries))
    opts = RenewOptions(force=force, reuse=reuse, acme_test=acme_test, acme_dry_run=acme_dry_run)
    try:
        result = run_renew(ctx, _selection(ctx, selection), options=opts)
    except SslmError:
        _publish(g, (summary_file, metrics_file, page_dir))
        raise
    _report(result)
    _publish(g, (summary_file, metrics_file, page_dir), result)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Roll past the time gates (loudly).")
@click.option(
    "--roll-mins",
    "--min-roll-mins",
    "roll_mins",
    type=click.IntRange(0),
    help="Only roll a next older than this (config min_roll_mins).",
)
@_push_options
@_report_options
@click.argument("selection", nargs=-1)
@click.pass_obj
def roll(
    g: Globals,
    force: bool,
    roll_mins: int | None,
    signing_key: Path | None,
    remote: str | None,
    no_push: bool,
    push_retries: int,
    summary_file: Path | None,
    metrics_file: Path | None,
    page_dir: Path | None,
    selection: tuple[str, ...],
) -> None:
    """Make next the new curr once it is safe."""
    from sslm_ci.roll import run_roll
    from sslm_ci.stages import Context

    ctx = Context(_settings(g, signing_key, remote, no_push, push_retries))
    result = run_roll(ctx, _selection(ctx, selection), force=force, min_roll_mins=roll_mins)
    _report(result)
    _publish(g, (summary_file, metrics_file, page_dir), result)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_report_options
@click.argument("selection", nargs=-1)
@click.pass_obj
def status(
    g: Globals,
    as_json: bool,
    summary_file: Path | None,
    metrics_file: Path | None,
    page_dir: Path | None,
    selection: tuple[str, ...],
) -> None:
    """Every service: curr/next expiry, days left, when it renews, roll state."""
    from sslm_ci.report.status import render_json, render_text
    from sslm_ci.report.summary import gather_rows

    now = g.now
    rows = gather_rows(g.repo, now, selection)
    click.echo(render_json(rows, now) if as_json else render_text(rows, now))
    _publish(g, (summary_file, metrics_file, page_dir), None, selection)


@cli.command()
@click.option("--markdown", "as_markdown", is_flag=True, help="Markdown instead of text.")
@click.option("-n", "--limit", type=click.IntRange(1), help="At most this many entries.")
@click.argument("selection", nargs=-1)
@click.pass_obj
def history(g: Globals, as_markdown: bool, limit: int | None, selection: tuple[str, ...]) -> None:
    """The audit log from commit trailers: what changed, when, why, which tag."""
    from sslm_ci.report.history import history as read_history
    from sslm_ci.report.history import render_history_markdown, render_history_text

    wanted: set[str] | None = None
    if selection:
        from sslm_ci.config.loader import load_inventory
        from sslm_ci.config.selection import parse_selection

        root = g.repo.resolve()
        inv = load_inventory(root / "inventory", root)
        wanted = {s.ident for s in parse_selection(list(selection), inv)}
    entries = read_history(g.repo.resolve(), wanted, limit=limit)
    click.echo(render_history_markdown(entries) if as_markdown else render_history_text(entries))


@cli.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
def info(files: tuple[Path, ...]) -> None:
    """Describe certs, chains, CSRs, keys and bundles (never prints key material)."""
    from sslm_ci.pki.inspect import describe

    for path in files:
        click.echo(f"== {path}")
        click.echo(describe(_read_maybe_sops(path)))


def _read_maybe_sops(path: Path) -> bytes:
    from sslm_ci.gitops.sops import Sops, is_sops_file

    raw = path.read_bytes()
    if is_sops_file(raw):
        return Sops(path.parent).decrypt(path)
    return raw


@cli.command()
@click.argument("cert", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--chain",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Issuer certificates (chain.pem); default: the certs after the first in CERT.",
)
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Trust anchor(s) for a full path check.",
)
@click.pass_obj
def verify(g: Globals, cert: Path, chain: Path | None, roots: tuple[Path, ...]) -> None:
    """Verify a certificate against its chain (signatures, validity, CA flags)."""
    from sslm_ci.pki.pem import pem_certs
    from sslm_ci.pki.verify import verify_chain

    certs = pem_certs(cert.read_bytes())
    if not certs:
        raise UsageError(f"{cert}: no certificate found")
    chain_certs = pem_certs(chain.read_bytes()) if chain else certs[1:]
    root_certs = [c for r in roots for c in pem_certs(r.read_bytes())]
    result = verify_chain(certs[0], chain_certs, root_certs or None, g.now)
    if result.ok:
        click.echo(f"{cert}: OK")
        return
    for reason in result.reasons:
        click.echo(f"{cert}: {reason}", err=True)
    sys.exit(1)


@cli.command()
@click.option(
    "-k",
    "--kind",
    "kinds",
    multiple=True,
    default=("ffdhe8192",),
    show_default=True,
    help="RFC 7919 group (ffdhe2048..ffdhe8192) or a bit size for classic params.",
)
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write (default: <repo>/dh).",
)
@click.option("--max-age-days", type=click.IntRange(1), default=120, show_default=True)
@click.pass_obj
def dhparm(g: Globals, kinds: tuple[str, ...], out_dir: Path | None, max_age_days: int) -> None:
    """Diffie-Hellman parameters: named groups written once, classic ones refreshed."""
    from sslm_ci.dhfiles import ensure_dh_files

    target = out_dir or (g.repo / "dh")
    for line in ensure_dh_files(target, kinds, g.now, max_age_days):
        click.echo(line)


@cli.command()
@click.pass_obj
def validate(g: Globals) -> None:
    """Check the inventory (and recipients.toml when present); exit 2 on the first problem."""
    from sslm_ci.config.loader import load_inventory
    from sslm_ci.gitops.recipients import RECIPIENTS_FILE, load_recipients

    root = g.repo.resolve()
    inv = load_inventory(root / "inventory", root)
    if (root / RECIPIENTS_FILE).exists():
        load_recipients(root)
    click.echo(f"inventory OK: {len(inv.services)} services in {len(inv.groups)} groups")


@cli.command()
@click.option(
    "--base",
    default="HEAD",
    show_default=True,
    help="Compare the work tree's inventory with this revision's.",
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the plan as Markdown here ($GITHUB_STEP_SUMMARY is used too).",
)
@click.pass_obj
def plan(g: Globals, base: str, markdown_file: Path | None) -> None:
    """What renew would do for this change: new/changed services, TLSA, hosts getting keys."""
    import os

    from sslm_ci.plan_io import gather_plan
    from sslm_ci.planning import render_markdown, render_text

    result = gather_plan(g.repo.resolve(), base, g.now)
    click.echo(render_text(result))
    markdown = render_markdown(result)
    if markdown_file is not None:
        from sslm_ci.fsutil import atomic_write

        atomic_write(markdown_file, markdown.encode())
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")


@cli.command("add-service")
@click.argument("group")
@click.argument("service")
@click.option("--ca", "signing_ca", help="signing_ca (default: what the group's services use).")
@click.option("--san", "sans", multiple=True, help="Certificate name(s); repeat or comma-separate.")
@click.option(
    "--dane",
    multiple=True,
    metavar="PORT:PROTO:U:S:M[:MX|SANS]",
    help="A dane_tls entry, e.g. 25:tcp:3:1:1.",
)
@click.option("--ktype", type=click.Choice(["ec", "rsa"]), default="ec", show_default=True)
@click.option("--ec-algo", default="secp384r1", show_default=True)
@click.option("--rsa-bits", type=click.IntRange(2048, 4096), default=4096, show_default=True)
@click.option("--cn", help="X509 CN (default: the first name).")
@click.option("--email", help="X509 email (also used to register an ACME account).")
@click.option("--org", help="X509 O.")
@click.pass_obj
def add_service_cmd(
    g: Globals,
    group: str,
    service: str,
    signing_ca: str | None,
    sans: tuple[str, ...],
    dane: tuple[str, ...],
    ktype: str,
    ec_algo: str,
    rsa_bits: int,
    cn: str | None,
    email: str | None,
    org: str | None,
) -> None:
    """Add a service: write inventory/GROUP/SERVICE and list it in ssl-mgr.conf."""
    from sslm_ci.addservice import NewService, add_service, parse_sans

    root = g.repo.resolve()
    written = add_service(
        root / "inventory",
        root,
        NewService(
            group,
            service,
            signing_ca,
            parse_sans(sans),
            dane,
            ktype,
            ec_algo,
            rsa_bits,
            cn,
            email,
            org,
        ),
    )
    for path in written:
        click.echo(f"wrote {path.relative_to(root)}")


@cli.command("ci-templates")
@click.option("--github/--no-github", default=True, show_default=True)
@click.option("--gitlab/--no-gitlab", default=True, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.pass_obj
def ci_templates(g: Globals, github: bool, gitlab: bool, force: bool) -> None:
    """Put the CI definitions into the repo: .github/workflows/sslm-ci*.yml, .gitlab-ci.yml."""
    from importlib.resources import files

    from sslm_ci.fsutil import atomic_write

    root = g.repo.resolve()
    source = files("sslm_ci") / "ci_templates"
    wanted: list[tuple[str, Path]] = []
    if github:
        for name in ("sslm-ci.yml", "sslm-ci-plan.yml"):
            wanted.append((f"github/{name}", root / ".github" / "workflows" / name))
    if gitlab:
        wanted.append(("gitlab-ci.yml", root / ".gitlab-ci.yml"))
    existing = [str(dest) for _, dest in wanted if dest.exists()]
    if existing and not force:
        raise UsageError("ci-templates: would overwrite " + ", ".join(existing) + " (--force)")
    for rel, dest in wanted:
        atomic_write(dest, (source / rel).read_bytes())
        click.echo(f"wrote {dest.relative_to(root)}")


@cli.command("dns-refresh")
@click.argument("apexes", nargs=-1)
@click.pass_obj
def dns_refresh(g: Globals, apexes: tuple[str, ...]) -> None:
    """Run the DNS refresh now: [dns] restart_cmd --serial_bump APEX... (default: every apex
    with TLSA). With publish = 'local' the TLSA fragments are copied into tlsa_dirs first."""
    from sslm_ci.acme.publish import run_refresh
    from sslm_ci.config.loader import load_inventory
    from sslm_ci.fsutil import atomic_write
    from sslm_ci.store import Store

    root = g.repo.resolve()
    inv = load_inventory(root / "inventory", root)
    store = Store(root)
    chosen = list(apexes) or list(store.tlsa_apexes())
    dns = inv.servers["dns"]
    if not dns.restart_cmd:
        raise UsageError("dns-refresh: [dns] restart_cmd is not set")
    if dns.publish == "local":
        for apex in chosen:
            path = root / store.tlsa_rel(apex)
            if path.is_file():
                for tlsa_dir in dns.tlsa_dirs:
                    atomic_write(tlsa_dir / f"tlsa.{apex}", path.read_bytes())
    run_refresh(dns.restart_cmd, chosen, _echo)


@cli.command()
def clean() -> None:
    """No-op kept for ssl-mgr compatibility: git history is the archive."""
    click.echo("clean: nothing to do (previous certificates live in git history)")


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--from",
    "from_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="An ssl-mgr conf.d to copy (default: the embedded example inventory).",
)
@click.option(
    "--age-recipient",
    "ci_recipients",
    multiple=True,
    help="age public key that may decrypt everything (CI, admins). Default: the "
    "public key of SOPS_AGE_KEY_FILE / SOPS_AGE_KEY.",
)
@click.option(
    "--host-recipient",
    "host_recipients",
    multiple=True,
    metavar="HOST=AGE_PUBKEY",
    help="A server's age public key; it decrypts only that server's services.",
)
@click.pass_obj
def init(
    g: Globals,
    directory: Path,
    from_dir: Path | None,
    ci_recipients: tuple[str, ...],
    host_recipients: tuple[str, ...],
) -> None:
    """Make DIRECTORY a ready GitOps repo: inventory, recipients, .sops.yaml, first commit."""
    from sslm_ci.repoinit import init_repo

    sha = init_repo(directory, from_dir, list(ci_recipients), list(host_recipients), g.now)
    click.echo(f"initialised {directory} (commit {sha[:12]})")


@cli.command()
@click.option("--host", default="", help="This server's name as in the inventory's servers.")
@click.option(
    "--role",
    type=click.Choice(["dns"]),
    help="Act as the DNS host: install challenge and TLSA fragments, refresh zones.",
)
@click.option(
    "--dest",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Production directory (ssl-mgr's prod_cert_dir layout).",
)
@click.option(
    "--allowed-signers",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    envvar="SSLM_CI_ALLOWED_SIGNERS",
    help="ssh allowed_signers file; when given, unsigned or untrusted tags are refused.",
)
@click.option(
    "--tag-pattern",
    default="sslm/**",
    show_default=True,
    help="Tags to consider (refs/tags/PATTERN; ** crosses slashes).",
)
@click.option("--remote", envvar="SSLM_CI_REMOTE", help="Remote to fetch (default: origin).")
@click.option(
    "--age-key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="This host's age identity file (default: SOPS_AGE_KEY_FILE / SOPS_AGE_KEY).",
)
@click.pass_obj
def pull(
    g: Globals,
    host: str,
    role: str | None,
    dest: Path,
    allowed_signers: Path | None,
    tag_pattern: str,
    remote: str | None,
    age_key: Path | None,
) -> None:
    """On a server: install the newest signed tag's certs for HOST into DEST."""
    from sslm_ci.deploy.pull import PullSettings, run_pull

    run_pull(
        PullSettings(
            clone=g.repo,
            host=host,
            dest=dest,
            allowed_signers=allowed_signers,
            tag_pattern=tag_pattern,
            remote=remote,
            age_key_file=age_key,
            role=role,
            echo=_echo,
        )
    )


@cli.command()
@click.pass_obj
def guard(g: Globals) -> None:
    """Refuse plaintext private keys in the staged tree (use as a git pre-commit hook)."""
    from sslm_ci.gitops.guard import assert_no_plaintext_secrets

    assert_no_plaintext_secrets(g.repo.resolve())
    click.echo("guard: no plaintext private keys staged")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point; click maps usage errors to exit 2."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="sslm-ci")
    except SystemExit as exc:
        if exc.code not in (0, None) or argv is None:
            raise
