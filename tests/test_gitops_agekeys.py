"""age identity files: format, permissions, and interoperability with pyrage."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import pytest

from sslm_ci.gitops.agekeys import (
    AgeKeyError,
    generate_age_identity,
    public_key_of_identity_file,
    write_identity_file,
)


def test_generated_identity_is_a_working_pair() -> None:
    secret, public = generate_age_identity()
    assert secret.startswith("AGE-SECRET-KEY-1")
    assert public.startswith("age1")
    sealed = pyrage.encrypt(b"payload", [pyrage.x25519.Recipient.from_str(public)])
    assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(secret)]) == b"payload"
    assert generate_age_identity()[0] != secret


def test_identity_file_matches_age_keygen_layout(tmp_path: Path) -> None:
    secret, public = generate_age_identity()
    path = tmp_path / "keys" / "ci.agekey"
    write_identity_file(path, secret, public, created=datetime(2026, 12, 3, 12, tzinfo=UTC))
    assert path.read_text().splitlines() == [
        "# created: 2026-12-03T12:00:00+00:00",
        f"# public key: {public}",
        secret,
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_of_identity_file(path) == public


def test_public_key_comes_from_the_secret_not_the_comment(tmp_path: Path) -> None:
    secret, public = generate_age_identity()
    _, other_public = generate_age_identity()
    path = tmp_path / "k.agekey"
    path.write_text(f"# public key: {other_public}\n{secret}\n")
    assert public_key_of_identity_file(path) == public


def test_bad_identity_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.agekey"
    empty.write_text("# nothing here\n")
    with pytest.raises(AgeKeyError, match="no AGE-SECRET-KEY line"):
        public_key_of_identity_file(empty)
    broken = tmp_path / "broken.agekey"
    broken.write_text("AGE-SECRET-KEY-1NOTBECH32\n")
    with pytest.raises(AgeKeyError, match="malformed") as caught:
        public_key_of_identity_file(broken)
    assert "NOTBECH32" not in str(caught.value)
    with pytest.raises(AgeKeyError, match="cannot read"):
        public_key_of_identity_file(tmp_path / "absent")
    with pytest.raises(AgeKeyError, match="not an age"):
        write_identity_file(tmp_path / "x", "nope", "age1x")
