"""The sops adapter against the real sops binary and real age identities."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sslm_ci.errors import OperationalError
from sslm_ci.gitops.sops import (
    SOPS_BINARY_ENV,
    Sops,
    SopsError,
    is_sops_file,
    render_sops_yaml,
    resolve_sops_binary,
)
from tests.conftest import AgeIdentity

RULE_A = "^certs/a/"
RULE_B = "^certs/b/"


def pem_private_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class World:
    """A repo root with two rules: CI is a recipient of both, each host of its own only."""

    def __init__(self, root: Path, make_identity: Callable[[str], AgeIdentity]) -> None:
        self.root = root
        self.ci = make_identity("ci")
        self.host_a = make_identity("host-a")
        self.host_b = make_identity("host-b")
        self.write_rules([self.ci.public, self.host_a.public], [self.ci.public, self.host_b.public])
        # A controlled environment: the CI identity only, and a HOME with no ~/.ssh keys.
        home = root.parent / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            # As a CI job gets it: the secret in a variable, not a file.
            "SOPS_AGE_KEY": self.ci.secret,
        }
        self.sops = Sops(root, env=self.env)

    def write_rules(self, rule_a: list[str], rule_b: list[str]) -> None:
        text = render_sops_yaml([(RULE_A, rule_a), (RULE_B, rule_b)])
        (self.root / ".sops.yaml").write_text(text)


@pytest.fixture
def world(tmp_path: Path, age_identity: Callable[[str], AgeIdentity]) -> World:
    root = tmp_path / "repo"
    root.mkdir()
    return World(root, age_identity)


def test_resolve_prefers_override_then_env_then_bundled(tmp_path: Path) -> None:
    fake = tmp_path / "my-sops"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    other = tmp_path / "env-sops"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert resolve_sops_binary(str(fake), env={SOPS_BINARY_ENV: str(other)}) == fake
    assert resolve_sops_binary(None, env={SOPS_BINARY_ENV: str(other)}) == other
    bundled = resolve_sops_binary(None, env={"PATH": ""})
    assert bundled.name == "sops"
    assert "sops_binary" in bundled.parts


def test_resolve_refuses_a_missing_explicit_binary(tmp_path: Path) -> None:
    with pytest.raises(OperationalError, match="not an executable file"):
        resolve_sops_binary(str(tmp_path / "absent"))
    with pytest.raises(OperationalError, match=SOPS_BINARY_ENV):
        resolve_sops_binary(None, env={SOPS_BINARY_ENV: str(tmp_path / "absent")})


def test_version_reports_the_binary(world: World) -> None:
    assert world.sops.version().startswith("sops 3.")


def test_round_trip_uses_the_rule_of_the_plaintext_path(world: World) -> None:
    plaintext = pem_private_key()
    before = sorted(world.root.rglob("*"))
    envelope = world.sops.encrypt(plaintext, "certs/a/mail-ec/next/privkey.pem")
    # Nothing was written: the plaintext only went through a pipe.
    assert sorted(world.root.rglob("*")) == before
    assert is_sops_file(envelope)
    document = json.loads(envelope)
    recipients = {stanza["recipient"] for stanza in document["sops"]["age"]}
    assert recipients == {world.ci.public, world.host_a.public}
    assert b"PRIVATE KEY" not in envelope

    dest = world.root / "certs/a/mail-ec/next/privkey.pem.sops"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(envelope)
    assert world.sops.decrypt(dest) == plaintext
    assert world.sops.decrypt(dest, age_key_file=world.host_a.key_file) == plaintext
    assert world.sops.decrypt(dest, age_key=world.host_a.secret) == plaintext


def test_host_cannot_decrypt_another_rules_file(world: World) -> None:
    plaintext = pem_private_key()
    dest = world.root / "certs/b/web/privkey.pem.sops"
    world.sops.write_encrypted(dest, plaintext, "certs/b/web/privkey.pem")
    assert world.sops.decrypt(dest, age_key_file=world.host_b.key_file) == plaintext
    with pytest.raises(SopsError) as caught:
        # The inherited CI identity must not help: an explicit identity stands alone.
        world.sops.decrypt(dest, age_key_file=world.host_a.key_file)
    assert caught.value.returncode == 128
    assert "not a recipient" in str(caught.value)
    assert plaintext.decode() not in str(caught.value)


def test_path_without_rule_fails(world: World) -> None:
    with pytest.raises(SopsError, match=r"no \.sops\.yaml creation rule matches") as caught:
        world.sops.encrypt(b"secret", "elsewhere/privkey.pem")
    assert caught.value.returncode == 1
    with pytest.raises(SopsError, match="relative"):
        world.sops.encrypt(b"secret", "/certs/a/privkey.pem")
    with pytest.raises(SopsError, match="relative"):
        world.sops.encrypt(b"secret", "certs/a/../../x")


def test_tampered_files_are_rejected(world: World) -> None:
    dest = world.root / "certs/a/x/privkey.pem.sops"
    world.sops.write_encrypted(dest, pem_private_key(), "certs/a/x/privkey.pem")
    original = json.loads(dest.read_text())

    metadata_edit = json.loads(json.dumps(original))
    metadata_edit["sops"]["lastmodified"] = "2001-01-01T00:00:00Z"
    dest.write_text(json.dumps(metadata_edit))
    with pytest.raises(SopsError, match="MAC mismatch") as caught:
        world.sops.decrypt(dest)
    assert caught.value.returncode == 51
    assert "tampered" in str(caught.value)

    value_edit = json.loads(json.dumps(original))
    data = value_edit["data"]
    at = data.index("data:") + len("data:")
    value_edit["data"] = data[:at] + ("A" if data[at] != "A" else "B") + data[at + 1 :]
    dest.write_text(json.dumps(value_edit))
    with pytest.raises(SopsError, match="tampered"):
        world.sops.decrypt(dest)


def test_write_encrypted_keeps_unchanged_ciphertext(world: World) -> None:
    dest = world.root / "certs/a/svc/privkey.pem.sops"
    first = pem_private_key()
    assert world.sops.write_encrypted(dest, first, "certs/a/svc/privkey.pem") is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    stored = dest.read_bytes()

    assert world.sops.write_encrypted(dest, first, "certs/a/svc/privkey.pem") is False
    assert dest.read_bytes() == stored

    second = pem_private_key()
    assert world.sops.write_encrypted(dest, second, "certs/a/svc/privkey.pem") is True
    assert dest.read_bytes() != stored
    assert world.sops.decrypt(dest) == second
    assert sorted(p.name for p in dest.parent.iterdir()) == ["privkey.pem.sops"]


def test_write_encrypted_replaces_an_unreadable_file(world: World) -> None:
    dest = world.root / "certs/a/svc/privkey.pem.sops"
    dest.parent.mkdir(parents=True)
    dest.write_text("not sops at all")
    secret = pem_private_key()
    assert world.sops.write_encrypted(dest, secret, "certs/a/svc/privkey.pem") is True
    assert world.sops.decrypt(dest) == secret


def test_update_keys_adds_a_recipient(world: World) -> None:
    dest = world.root / "certs/a/svc/privkey.pem.sops"
    secret = pem_private_key()
    world.sops.write_encrypted(dest, secret, "certs/a/svc/privkey.pem")
    with pytest.raises(SopsError):
        world.sops.decrypt(dest, age_key_file=world.host_b.key_file)

    world.write_rules(
        [world.ci.public, world.host_a.public, world.host_b.public],
        [world.ci.public, world.host_b.public],
    )
    assert world.sops.update_keys(dest) is True
    assert world.sops.decrypt(dest, age_key_file=world.host_b.key_file) == secret
    assert world.sops.update_keys(Path("certs/a/svc/privkey.pem.sops")) is False


def test_is_sops_file_recognises_real_envelopes_only(world: World) -> None:
    assert not is_sops_file(pem_private_key())
    assert not is_sops_file(b'{"data": "x"}')
    assert not is_sops_file(b'{"data": "x", "sops": {"mac": "plain", "version": "3"}}')
    assert not is_sops_file(b"\xff\xfe binary")
    assert not is_sops_file(b"sops:\n    mac: nope\n    version: 3.11.0\n")

    yaml_envelope = subprocess.run(
        [
            str(world.sops.binary),
            "--config",
            str(world.root / ".sops.yaml"),
            "encrypt",
            "--filename-override",
            "certs/a/bundle.yaml",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "/dev/stdin",
        ],
        input=b"privkey: secret\nchain: public\n",
        capture_output=True,
        cwd=world.root,
        env={**world.env, "SOPS_DISABLE_VERSION_CHECK": "1"},
        check=True,
    ).stdout
    assert is_sops_file(yaml_envelope)
    assert is_sops_file(world.sops.encrypt(b"x", "certs/b/privkey.pem"))


def test_render_sops_yaml_has_no_catch_all() -> None:
    text = render_sops_yaml([("^certs/it's/", ["age1aaa", "ssh-ed25519 AAAAC3 host"])])
    assert text.count("path_regex") == 1
    assert "path_regex: '^certs/it''s/'" in text
    assert "      - 'ssh-ed25519 AAAAC3 host'" in text
    assert render_sops_yaml([]).endswith("creation_rules: []\n")
    with pytest.raises(ValueError, match="no recipients"):
        render_sops_yaml([("^a/", [])])
    with pytest.raises(ValueError, match="invalid age recipient"):
        render_sops_yaml([("^a/", ["age1a,age1b"])])
    with pytest.raises(ValueError, match="invalid path_regex"):
        render_sops_yaml([("^a/(", ["age1a"])])
