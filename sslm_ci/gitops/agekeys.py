"""age X25519 identities: generate with pyrage, store in age-keygen's file format."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pyrage

from sslm_ci.errors import OperationalError

SECRET_PREFIX = "AGE-SECRET-KEY-1"
PUBLIC_PREFIX = "age1"


class AgeKeyError(OperationalError):
    """An identity file is unreadable or holds no usable age identity."""


def generate_age_identity() -> tuple[str, str]:
    """Return ``(secret, public)``: ``AGE-SECRET-KEY-1…`` and its ``age1…`` recipient."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def write_identity_file(
    path: Path, secret: str, public: str, created: datetime | None = None
) -> None:
    """Write an identity the way ``age-keygen -o`` does, readable by the owner only.

    ``created`` only feeds the informational comment; it defaults to the wall clock because
    age-keygen does the same and nothing decides on it.
    """
    if not secret.startswith(SECRET_PREFIX) or not public.startswith(PUBLIC_PREFIX):
        raise AgeKeyError(f"{path}: not an age X25519 identity/recipient pair")
    stamp = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    text = f"# created: {stamp.isoformat()}\n# public key: {public}\n{secret}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start so the secret is never world-readable, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def public_key_of_identity_file(path: Path) -> str:
    """Derive the recipient from the first secret line (the comment is not trusted)."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AgeKeyError(
            f"{path}: cannot read age identity file ({exc.__class__.__name__})"
        ) from exc
    for line in lines:
        candidate = line.strip()
        if candidate.startswith(SECRET_PREFIX):
            try:
                identity = pyrage.x25519.Identity.from_str(candidate)
            except Exception:
                # ``from None``: the parser's message may quote the secret.
                raise AgeKeyError(f"{path}: malformed age secret key") from None
            return str(identity.to_public())
    raise AgeKeyError(f"{path}: no AGE-SECRET-KEY line found")
