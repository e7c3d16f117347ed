"""Benchmarks (``make bench``): wall times of real command runs, printed and saved as JSON.

* self-signed renew + roll for N = 1, 10, 50 EC services (real git, sops, signing, bare remote)
* a no-op renew (nothing due) at N = 50
* ``status`` (text and --json) over 1,000 services

Figures for the closing notes; nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sslm_ci.config.model import KeyOpts, X509Name  # noqa: E402
from sslm_ci.fsutil import atomic_write  # noqa: E402
from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file  # noqa: E402
from sslm_ci.pki import ca as pki_ca  # noqa: E402
from sslm_ci.pki import csr as pki_csr  # noqa: E402
from sslm_ci.pki import keys as pki_keys  # noqa: E402
from sslm_ci.pki.pem import cert_pem, certs_pem  # noqa: E402
from sslm_ci.store import Slot, SlotInfo, Store  # noqa: E402

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SSLM = [sys.executable, "-m", "sslm_ci"]

CA_FILES = {
    "ca/my-root": """name = 'my-root'\ngroup = 'ca'\nservice = 'my-root'\nsigning_ca = 'self'
[KeyOpts]\n ktype = 'ec'\n ec_algo = 'secp256r1'\n[X509]\n CN = 'Bench Root'\n sans = []
[CA]\n sign_end_days = 3650\n digest = 'sha256'\n""",
    "ca/my-int": """name = 'my-int'\ngroup = 'ca'\nservice = 'my-int'\nsigning_ca = 'my-root'
[KeyOpts]\n ktype = 'ec'\n ec_algo = 'secp256r1'\n[X509]\n CN = 'Bench Int'\n sans = []
[CA]\n sign_end_days = 90\n digest = 'sha256'\n""",
}


def make_inventory(dest: Path, n: int) -> None:
    services = [f"svc{i:04d}" for i in range(n)]
    (dest / "ca").mkdir(parents=True)
    (dest / "bench.example").mkdir()
    (dest / "ca-info.conf").write_text(
        "[my-root]\n ca_desc = 'root'\n ca_type = 'self'\n"
        "[my-int]\n ca_desc = 'int'\n ca_type = 'local'\n"
    )
    svc_list = ", ".join(f"'{s}'" for s in services)
    (dest / "ssl-mgr.conf").write_text(
        "[globals]\n min_roll_mins = 90\n renew_expire_days = 30\n"
        "[[groups]]\n domain = 'ca'\n services = ['my-root', 'my-int']\n active = true\n"
        f"[[groups]]\n domain = 'bench.example'\n services = [{svc_list}]\n active = true\n"
        "[web]\n servers = ['web.bench.example']\n restart_cmd = 'true'\n"
        "svc_depends = [['any', ['svc0000']]]\n"
    )
    for rel, text in CA_FILES.items():
        (dest / rel).write_text(text)
    for svc in services:
        dane = "dane_tls = [[443, 'tcp', 3, 1, 1]]\n" if svc.endswith("0") else ""
        (dest / "bench.example" / svc).write_text(
            f"name = '{svc}'\ngroup = 'bench.example'\nservice = '{svc}'\n"
            f"signing_ca = 'my-int'\n{dane}[KeyOpts]\n ktype = 'ec'\n ec_algo = 'secp256r1'\n"
            f"[X509]\n CN = '{svc}.bench.example'\n sans = ['{svc}.bench.example']\n"
        )


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def world(base: Path, n: int) -> tuple[Path, dict[str, str]]:
    keys = base / "keys"
    keys.mkdir(parents=True)
    secret, public = generate_age_identity()
    write_identity_file(keys / "ci.agekey", secret, public)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "sign")], check=True
    )
    env = dict(os.environ)
    env.update(
        {
            "SOPS_AGE_KEY_FILE": str(keys / "ci.agekey"),
            "SSLM_CI_SIGNING_KEY": str(keys / "sign"),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
    )
    env.pop("SSLM_CI_NOW", None)
    make_inventory(base / "inv", n)
    remote = base / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo = base / "repo"
    run(
        [
            *SSLM,
            "--now",
            T0.isoformat(),
            "init",
            str(repo),
            "--from",
            str(base / "inv"),
            "--age-recipient",
            public,
        ],
        env,
    )
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=repo, check=True)
    subprocess.run(["git", "push", "-q", "-u", "origin", "main"], cwd=repo, env=env, check=True)
    return repo, env


def bench_cycle(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"sslm-bench-{n}-") as tmp:
        repo, env = world(Path(tmp), n)
        base = [*SSLM, "--repo", str(repo)]
        renew = run([*base, "--now", T0.isoformat(), "renew"], env)
        roll_at = (T0 + timedelta(hours=2)).isoformat()
        roll = run([*base, "--now", roll_at, "roll"], env)
        noop = run([*base, "--now", roll_at, "renew"], env)
    return {"renew_s": renew, "roll_s": roll, "noop_renew_s": noop}


def bench_status(n: int = 1000) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sslm-bench-status-") as tmp:
        repo = Path(tmp) / "repo"
        make_inventory(repo / "inventory", n)
        store = Store(repo)
        # Status reads public files only, so certificates are written directly (no sops).
        root_key = pki_keys.generate_private_key(KeyOpts("ec", "secp256r1"))
        root = pki_ca.issue_root(root_key, X509Name(CN="Bench Root"), 3650, "sha256", T0)
        leaf_key = pki_keys.generate_private_key(KeyOpts("ec", "secp256r1"))
        for i in range(n):
            name = f"svc{i:04d}.bench.example"
            csr = pki_csr.build_csr(leaf_key, X509Name(CN=name, sans=(name,)))
            cert = pki_ca.issue_leaf(csr, root, root_key, 90 - i % 60, "sha256", T0)
            slot = store.slot_dir("bench.example", f"svc{i:04d}", Slot.CURR)
            atomic_write(slot / "cert.pem", cert_pem(cert))
            atomic_write(slot / "chain.pem", certs_pem([root]))
            atomic_write(slot / "info", SlotInfo(T0, "my-int").to_json())
        env = dict(os.environ)
        base = [*SSLM, "--repo", str(repo), "--now", (T0 + timedelta(days=10)).isoformat()]
        text = run([*base, "status"], env)
        as_json = run([*base, "status", "--json"], env)
        shutil.rmtree(repo)
    return {"status_text_s": text, "status_json_s": as_json}


def main() -> None:
    results: dict[str, object] = {"when": datetime.now(UTC).isoformat(), "cycle": {}}
    cycle: dict[str, dict[str, float]] = {}
    for n in (1, 10, 50):
        cycle[str(n)] = bench_cycle(n)
        f = cycle[str(n)]
        print(
            f"self-signed EC, N={n:>3}: renew {f['renew_s']:.2f} s, roll {f['roll_s']:.2f} s, "
            f"no-op renew {f['noop_renew_s']:.2f} s",
            flush=True,
        )
    results["cycle"] = cycle
    status = bench_status(1000)
    results["status_1000"] = status
    print(
        f"status, 1000 services: text {status['status_text_s']:.2f} s, "
        f"--json {status['status_json_s']:.2f} s"
    )
    from bench.acme import bench_acme

    acme = {}
    for delay in (0.0, 10.0):
        fig = bench_acme(10, delay)
        acme[f"D={delay:g}"] = fig
        print(
            f"ACME dns-01, N=10 over 3 zones, publication delay D={delay:g} s: renew "
            f"{fig['renew_s']:.1f} s, propagation waits {fig['propagation_waits']}, "
            f"issued {fig['issued']} (target <= D + 15 s)",
            flush=True,
        )
    results["acme"] = acme
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {out / 'latest.json'}")


if __name__ == "__main__":
    main()
