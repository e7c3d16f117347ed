"""Gathering for ``sslm-ci plan``: load both inventories, ask the renewal policy, map hosts."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path

from sslm_ci.config.hosts import hosts_for_service
from sslm_ci.config.loader import load_inventory
from sslm_ci.config.model import Inventory
from sslm_ci.errors import ConfigError, UsageError
from sslm_ci.planning import Plan, build_plan
from sslm_ci.policy import Due, renewal_decision
from sslm_ci.stages import renew_input_for
from sslm_ci.store import Store


def _inventory_at(root: Path, rev: str, scratch: Path) -> Inventory | None:
    """The inventory as it was at ``rev``; None when it had none (or it did not load)."""
    verify = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if verify.returncode != 0:
        raise UsageError(f"plan: --base {rev!r} is not a commit in {root}")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "inventory"], cwd=root, capture_output=True
    )
    if archive.returncode != 0:
        return None  # the base has no inventory yet
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(scratch, filter="data")
    try:
        return load_inventory(scratch / "inventory", scratch)
    except ConfigError:
        return None


def gather_plan(root: Path, base: str, now: datetime) -> Plan:
    head = load_inventory(root / "inventory", root)  # invalid → ConfigError → exit 2
    with tempfile.TemporaryDirectory(prefix="sslm-plan-") as tmp:
        old = _inventory_at(root, base, Path(tmp))
    store = Store(root)
    reasons: dict[str, str] = {}
    for svc in head.active_services():
        decision = renewal_decision(renew_input_for(head, store, svc, now, False))
        if isinstance(decision, Due):
            reasons[svc.ident] = decision.reason
    hosts_head = {s.ident: tuple(hosts_for_service(head, s)) for s in head.services.values()}
    hosts_base = (
        {s.ident: tuple(hosts_for_service(old, s)) for s in old.services.values()} if old else {}
    )
    return build_plan(old, head, reasons, hosts_head, hosts_base, base)
