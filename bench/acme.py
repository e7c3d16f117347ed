"""ACME batch benchmark: N dns-01 certificates over 3 zones against pebble + BIND on loopback,
with a DNS publication delay D (records become visible D seconds after each publish: the
refresh runs in the background after a sleep, as a hidden primary feeding slow secondaries).

Reports the wall time of ``sslm-ci renew`` and the number of propagation waits; the target is
≤ D + 15 s (one wait, all orders in parallel), against ssl-mgr's N × (certbot run + delay).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file  # noqa: E402
from tests.acme_world import write_inventory  # noqa: E402
from tests.rig.acme_rig import AcmeRig  # noqa: E402
from tests.rig.bind import ZoneSpec  # noqa: E402

ZONES = ("example.com", "example.net", "example.org")


def _inventory(dest: Path, rig: AcmeRig, n: int, delay: float) -> None:
    services: dict[str, tuple[str, list[str]]] = {}
    for i in range(n):
        zone = ZONES[i % len(ZONES)]
        services[f"{zone}/svc{i:02d}"] = ("pebble-dns", [zone, f"svc{i:02d}.{zone}"])
    refresh = " ".join(shlex.quote(a) for a in rig.refresh_command())
    # The refresh returns at once; the zone changes D seconds later (slow publication).
    wrapper = dest.parent / "async-refresh"
    wrapper.write_text(
        f'#!/bin/sh\n( sh -c \'sleep {delay}; exec "$0" "$@"\' {refresh} "$@" >/dev/null 2>&1 & )\n'
    )
    wrapper.chmod(0o755)
    write_inventory(
        dest, rig, services=services, publish="local", check_timeout=120, restart_cmd=str(wrapper)
    )


def bench_acme(n: int = 10, delay: float = 10.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sslm-bench-acme-") as tmp:
        base = Path(tmp)
        zones = {z: ZoneSpec(a={"@": "127.0.0.1", "*": "127.0.0.1"}) for z in ZONES}
        with AcmeRig(base / "rig", zones=zones) as rig:
            _inventory(base / "inv", rig, n, delay)
            secret, public = generate_age_identity()
            write_identity_file(base / "ci.agekey", secret, public)
            env = dict(os.environ)
            env.update(
                {
                    "SOPS_AGE_KEY_FILE": str(base / "ci.agekey"),
                    "GIT_CONFIG_GLOBAL": os.devnull,
                    "GIT_CONFIG_NOSYSTEM": "1",
                    **rig.refresh_env,
                }
            )
            env.pop("SSLM_CI_NOW", None)
            sslm = [sys.executable, "-m", "sslm_ci"]
            now = datetime.now(UTC).replace(microsecond=0).isoformat()
            subprocess.run(
                [
                    *sslm,
                    "--now",
                    now,
                    "init",
                    str(base / "repo"),
                    "--from",
                    str(base / "inv"),
                    "--age-recipient",
                    public,
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            start = time.perf_counter()
            proc = subprocess.run(
                [*sslm, "--repo", str(base / "repo"), "--now", now, "renew"],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"bench acme: renew failed:\n{proc.stdout}{proc.stderr}")
            waits = proc.stdout.count("propagation:")
            issued = proc.stdout.count("renewed into next")
            time.sleep(delay + 1)  # let the background cleanup refresh finish before teardown
    return {"n": n, "delay_s": delay, "renew_s": wall, "propagation_waits": waits, "issued": issued}


if __name__ == "__main__":
    result = bench_acme(
        int(os.environ.get("BENCH_ACME_N", "10")), float(os.environ.get("BENCH_DNS_DELAY", "10"))
    )
    print(result)
