"""The plaintext-secret guard on real git indexes, with keys generated at test time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sslm_ci.errors import OperationalError
from sslm_ci.gitops.git import GitRepo
from sslm_ci.gitops.guard import (
    Finding,
    SecretsGuardError,
    assert_no_plaintext_secrets,
    findings_for_blob,
    guard_main,
    scan_for_plaintext_secrets,
)
from sslm_ci.gitops.sops import Sops, render_sops_yaml
from tests.conftest import AgeIdentity, SshSigningKey

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def ec_pem(encryption: serialization.KeySerializationEncryption | None = None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        encryption or serialization.NoEncryption(),
    )


def traditional_rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture
def repo(tmp_path: Path, git_isolated: None) -> GitRepo:
    git_repo = GitRepo.init(tmp_path / "state")
    (git_repo.path / "README").write_text("state\n")
    assert git_repo.commit("initial", ["README"], NOW) is not None
    return git_repo


def write(repo: GitRepo, rel: str, data: bytes) -> None:
    path = repo.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def assert_refused(repo: GitRepo, rel: str, reason: str) -> None:
    head = repo.head()
    content = (repo.path / rel).read_bytes()
    with pytest.raises(SecretsGuardError) as caught:
        repo.commit("add secret", [rel], NOW)
    message = str(caught.value)
    assert f"{rel}: {reason}" in message
    assert Finding(rel, reason) in caught.value.findings
    for line in content.splitlines():
        if len(line) > 12:  # paths and reasons only, never content
            assert line.decode(errors="replace") not in message
    assert repo.head() == head
    assert repo.staged_paths() == []


def test_plaintext_pem_is_refused_under_any_name(repo: GitRepo) -> None:
    write(repo, "docs/notes.txt", b"see below\n" + ec_pem())
    assert_refused(repo, "docs/notes.txt", "contains a PEM private key block")


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec_pem(serialization.BestAvailableEncryption(b"passphrase")),
        traditional_rsa_pem,
    ],
    ids=["encrypted-pkcs8", "rsa-traditional"],
)
def test_every_pem_private_key_flavour_is_refused(
    repo: GitRepo, make_key: Callable[[], bytes]
) -> None:
    write(repo, "certs/a/key.txt", make_key())
    assert_refused(repo, "certs/a/key.txt", "contains a PEM private key block")


def test_openssh_private_key_is_refused(
    repo: GitRepo, ssh_signing_key: Callable[[str], SshSigningKey]
) -> None:
    key = ssh_signing_key("host")
    write(repo, "hosts/ssh_host_ed25519", key.private_key.read_bytes())
    assert_refused(repo, "hosts/ssh_host_ed25519", "contains a PEM private key block")


def test_age_secret_key_is_refused(
    repo: GitRepo, age_identity: Callable[[str], AgeIdentity]
) -> None:
    identity = age_identity("ci")
    write(repo, "config/ci.txt", f"key = {identity.secret}\n".encode())
    assert_refused(repo, "config/ci.txt", "contains an age secret key (AGE-SECRET-KEY-1…)")
    assert identity.secret not in "".join(f.reason for f in scan_for_plaintext_secrets(repo.path))


def test_secret_file_names_need_a_sops_envelope(repo: GitRepo) -> None:
    for rel in ("certs/a/privkey.pem", "certs/a/bundle.pem", "x/server.key", "keys/ci.agekey"):
        write(repo, rel, b"harmless looking text\n")
        assert_refused(repo, rel, "name marks a secret but the content is not a sops envelope")
        (repo.path / rel).unlink()


def test_sops_encrypted_keys_pass(
    repo: GitRepo, age_identity: Callable[[str], AgeIdentity]
) -> None:
    ci = age_identity("ci")
    (repo.path / ".sops.yaml").write_text(render_sops_yaml([("^certs/", [ci.public])]))
    sops = Sops(repo.path)
    key = ec_pem()
    sops.write_encrypted(repo.path / "certs/a/privkey.pem.sops", key, "certs/a/privkey.pem")
    # A sops envelope stored under the plaintext name is acceptable too.
    write(repo, "certs/b/privkey.pem", sops.encrypt(key, "certs/b/privkey.pem"))
    sha = repo.commit(
        "keys", [".sops.yaml", "certs/a/privkey.pem.sops", "certs/b/privkey.pem"], NOW
    )
    assert sha is not None and sha == repo.head()


def test_guard_reads_the_index_not_the_working_tree(repo: GitRepo) -> None:
    write(repo, "scratch/privkey.pem", ec_pem())  # untracked, never staged
    write(repo, "inventory.txt", b"web\n")
    assert repo.commit("inventory", ["inventory.txt"], NOW) is not None
    assert scan_for_plaintext_secrets(repo.path) == []


def test_guard_works_before_the_first_commit(tmp_path: Path, git_isolated: None) -> None:
    fresh = GitRepo.init(tmp_path / "fresh")
    write(fresh, "a/privkey.pem", ec_pem())
    with pytest.raises(SecretsGuardError, match=r"a/privkey\.pem"):
        fresh.commit("first", ["a/privkey.pem"], NOW)
    assert fresh.staged_paths() == []
    status = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=fresh.path, capture_output=True
    )
    assert status.returncode != 0  # still no commit


def test_prose_mentioning_key_markers_is_not_a_secret() -> None:
    prose = b"Keys look like AGE-SECRET-KEY-1... and PEM starts with -----BEGIN followed by a type."
    assert findings_for_blob("README.md", prose) == []


def test_guard_main_as_a_pre_commit_hook(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert guard_main(repo.path) == 0
    write(repo, "leak.pem", ec_pem())
    subprocess.run(["git", "add", "leak.pem"], cwd=repo.path, check=True)
    assert guard_main(repo.path) == 1
    err = capsys.readouterr().err
    assert "leak.pem: contains a PEM private key block" in err
    with pytest.raises(SecretsGuardError):
        assert_no_plaintext_secrets(repo.path)


def test_guard_installed_as_git_hook_blocks_plain_git_commit(repo: GitRepo) -> None:
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -c "import sys; from pathlib import Path; '
        'from sslm_ci.gitops.guard import guard_main; sys.exit(guard_main(Path.cwd()))"\n'
    )
    hook.chmod(0o755)
    write(repo, "leak.txt", ec_pem())
    subprocess.run(["git", "add", "leak.txt"], cwd=repo.path, check=True)
    result = subprocess.run(
        ["git", "commit", "-q", "-m", "leak"], cwd=repo.path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "leak.txt: contains a PEM private key block" in result.stderr


def test_guard_on_a_non_repository(tmp_path: Path) -> None:
    with pytest.raises(OperationalError, match="not a git repository"):
        scan_for_plaintext_secrets(tmp_path)
    assert guard_main(tmp_path) == 1
