"""``sslm-mgr``: ssl-mgr's flags, mapped onto the same engine as ``sslm-ci``.

ssl-mgr's single-dash long flags (``-renew``, ``-roll-mins 90``) are kept so existing cron
lines and muscle memory work. Each invocation becomes one or more ``sslm-ci`` commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sslm_ci.errors import EXIT_USAGE


def _parser(dev: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sslm-mgr" + (" dev" if dev else ""),
        description="SSL Manager (sslm-ci compatibility front end)"
        + (" - dev mode" if dev else ""),
    )
    p.add_argument("-v", "--verb", action="store_true", help="More verbose output")
    p.add_argument("-f", "--force", action="store_true", help="Force renew / roll")
    p.add_argument("-r", "--reuse", action="store_true", help="Reuse curr key with renew")
    p.add_argument("-d", "--debug", action="store_true", help="Print what would run, do nothing")
    p.add_argument("-t", "--test", action="store_true", help="ACME staging server")
    p.add_argument("-n", "--dry-run", action="store_true", help="ACME dry run")
    p.add_argument("-s", "--status", action="store_true", help="Display cert status")
    p.add_argument("-renew", "--renew", action="store_true", help="Renew into next")
    p.add_argument("-roll", "--roll", action="store_true", help="Roll next to curr")
    p.add_argument(
        "-roll-mins",
        "--min-roll-mins",
        dest="roll_mins",
        type=int,
        help="Only roll if next is older than this",
    )
    p.add_argument("-dns", "--dns-refresh", action="store_true", help="DNS refresh")
    p.add_argument("-clean-keep", "--clean-keep", type=int, help="(no-op: git keeps history)")
    p.add_argument("-clean-all", "--clean-all", action="store_true", help="(no-op)")
    p.add_argument("--repo", help="GitOps repo (default: $SSLM_CI_REPO or .)")
    p.add_argument("--now", help="Pretend it is this ISO 8601 instant")
    if dev:
        p.add_argument("-keys", "--new-keys", action="store_true", help="Make next new keys")
        p.add_argument("-csr", "--new-csr", action="store_true", help="Make next CSR")
        p.add_argument("-cert", "--new-cert", action="store_true", help="Make new next/cert")
        p.add_argument("-copy", "--copy-csr", action="store_true", help="Copy curr key to next")
        p.add_argument("-ntoc", "--next-to-curr", action="store_true", help="Move next to curr")
        p.add_argument(
            "-certs-prod",
            "--certs-to-prod",
            action="store_true",
            help="Copy certs to production (servers: use 'sslm-ci pull')",
        )
    p.add_argument("grps_svcs", nargs="*", help="grp1:svc1,svc2 grp2 ...")
    return p


def translate(argv: Sequence[str]) -> list[list[str]]:
    """ssl-mgr arguments → the sslm-ci command lines to run, in order. Pure."""
    args_in = list(argv)
    dev = bool(args_in) and args_in[0] == "dev"
    if dev:
        args_in = args_in[1:]
    ns = _parser(dev).parse_args(args_in)
    base: list[str] = []
    if ns.repo:
        base += ["--repo", ns.repo]
    if ns.now:
        base += ["--now", ns.now]
    if ns.verb:
        base.append("-v")
    sel = list(ns.grps_svcs)
    commands: list[list[str]] = []
    renew = ns.renew
    force = ns.force
    reuse = ns.reuse
    roll = ns.roll
    if dev:
        if ns.new_keys or ns.new_csr or ns.new_cert:
            renew, force = True, True
        if ns.copy_csr:
            renew, force, reuse = True, True, True
        if ns.next_to_curr:
            roll, force = True, True
        if ns.certs_to_prod:
            raise SystemExit(
                "sslm-mgr: -certs-prod: servers install with 'sslm-ci pull --host H --dest D'"
            )
    if renew:
        commands.append(
            [
                *base,
                "renew",
                *(["-f"] if force else []),
                *(["-r"] if reuse else []),
                *(["-t"] if ns.test else []),
                *(["-n"] if ns.dry_run else []),
                *sel,
            ]
        )
    if roll:
        cmd = [*base, "roll", *(["-f"] if force else [])]
        if ns.roll_mins is not None:
            cmd += ["--roll-mins", str(ns.roll_mins)]
        commands.append([*cmd, *sel])
    if ns.status:
        commands.append([*base, "status", *sel])
    if ns.clean_keep is not None or ns.clean_all:
        commands.append([*base, "clean"])
    if ns.dns_refresh:
        commands.append([*base, "dns-refresh"])
    if not commands:
        commands.append([*base, "status", *sel])  # ssl-mgr with no task shows what it would do
    if ns.debug:
        for cmd in commands:
            print("would run: sslm-ci " + " ".join(cmd))
        return []
    return commands


def main(argv: Sequence[str] | None = None) -> None:
    from sslm_ci.cli import main as cli_main

    try:
        commands = translate(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            sys.exit(EXIT_USAGE)
        raise
    for cmd in commands:
        try:
            cli_main(cmd)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
