"""certbot's ``--manual-auth-hook`` / ``--manual-cleanup-hook``: hand the challenge to the
parent sslm-ci process and wait for its verdict.

Run as ``python -m sslm_ci.acme.hook auth|cleanup <dns-01|http-01> <group:service>``. It
imports only the standard library so each call (one per challenge) starts fast. The parent
answers ``ok`` once every challenge of every certificate in the run is published and
propagated, or ``abort: <reason>``; the hook then exits 0 or 1. The parent never relies on that
exit code alone (certbot ignores a failing auth hook): on abort it stops certbot first.
"""

from __future__ import annotations

import json
import os
import socket
import sys

SOCKET_ENV = "SSLM_CI_HOOK_SOCKET"
DEADLINE_ENV = "SSLM_CI_HOOK_DEADLINE"


def build_message(phase: str, kind: str, service: str, env: dict[str, str]) -> dict[str, object]:
    return {
        "phase": phase,
        "kind": kind,
        "service": service,
        "domain": env.get("CERTBOT_DOMAIN", ""),
        "validation": env.get("CERTBOT_VALIDATION", ""),
        "token": env.get("CERTBOT_TOKEN", ""),
        "remaining": int(env.get("CERTBOT_REMAINING_CHALLENGES", "0") or 0),
        "all_domains": env.get("CERTBOT_ALL_DOMAINS", ""),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("auth", "cleanup"):
        print("usage: python -m sslm_ci.acme.hook auth|cleanup KIND GROUP:SERVICE", file=sys.stderr)
        return 2
    phase, kind, service = argv
    env = dict(os.environ)
    path = env.get(SOCKET_ENV)
    if not path:
        print(f"sslm-ci hook: {SOCKET_ENV} is not set", file=sys.stderr)
        return 1
    deadline = float(env.get(DEADLINE_ENV, "900"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(deadline)
            sock.connect(path)
            sock.sendall(json.dumps(build_message(phase, kind, service, env)).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        print(f"sslm-ci hook: no verdict from sslm-ci ({exc})", file=sys.stderr)
        return 1
    verdict = reply.decode().strip()
    if verdict == "ok":
        print(f"sslm-ci: {phase} {kind} {env.get('CERTBOT_DOMAIN', '')} ok")
        return 0
    print(f"sslm-ci hook: {verdict or 'connection closed without a verdict'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
