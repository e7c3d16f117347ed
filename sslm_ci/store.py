"""The ``curr``/``next`` layout of generated state inside the GitOps repo.

::

    certs/<group>/<service>/curr/   cert.pem chain.pem fullchain.pem csr.pem info
                                    privkey.pem.sops bundle.pem.sops
    certs/<group>/<service>/next/   (same, while a renewal waits to roll)
    zones/tlsa.<apex>               TLSA records for curr (+ next)

Public files are plain; ``privkey.pem`` and ``bundle.pem`` exist only as sops envelopes.
Only this module knows the paths. Writes are atomic (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509

from sslm_ci.fsutil import atomic_write, write_if_changed
from sslm_ci.gitops.sops import Sops

CERTS_DIR = "certs"
ZONES_DIR = "zones"
SOPS_SUFFIX = ".sops"
SECRET_FILES: tuple[str, ...] = ("privkey.pem", "bundle.pem")
PUBLIC_FILES: tuple[str, ...] = ("csr.pem", "cert.pem", "chain.pem", "fullchain.pem")
INFO_FILE = "info"


class Slot(StrEnum):
    CURR = "curr"
    NEXT = "next"
    # The previous curr of a DANE service, public files only: its TLSA records stay published
    # until the servers have had time to switch keys (then ``retire`` removes it).
    RETIRED = "retired"


@dataclass(frozen=True)
class SlotInfo:
    """Contents of a slot's ``info`` file (JSON; ssl-mgr kept a date there)."""

    issued_at: datetime
    signing_ca: str
    key_reused: bool = False
    reason: str = ""
    rolled_at: datetime | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "issued_at": self.issued_at.isoformat(),
            "signing_ca": self.signing_ca,
            "key_reused": self.key_reused,
            "reason": self.reason,
        }
        if self.rolled_at is not None:
            data["rolled_at"] = self.rolled_at.isoformat()
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SlotInfo:
        data = json.loads(raw)
        rolled = data.get("rolled_at")
        return cls(
            issued_at=datetime.fromisoformat(data["issued_at"]),
            signing_ca=str(data["signing_ca"]),
            key_reused=bool(data.get("key_reused", False)),
            reason=str(data.get("reason", "")),
            rolled_at=datetime.fromisoformat(rolled) if rolled else None,
        )


class Store:
    """Reads and writes one repo's generated state."""

    def __init__(self, repo_root: Path, sops: Sops | None = None) -> None:
        self.root = repo_root
        self._sops = sops

    @property
    def sops(self) -> Sops:
        if self._sops is None:
            self._sops = Sops(self.root)
        return self._sops

    # -- paths -------------------------------------------------------------------------------
    def service_rel(self, group: str, service: str) -> str:
        return f"{CERTS_DIR}/{group}/{service}"

    def slot_rel(self, group: str, service: str, slot: Slot) -> str:
        return f"{self.service_rel(group, service)}/{slot.value}"

    def slot_dir(self, group: str, service: str, slot: Slot) -> Path:
        return self.root / self.slot_rel(group, service, slot)

    def tlsa_rel(self, apex: str) -> str:
        return f"{ZONES_DIR}/tlsa.{apex}"

    # -- reading -----------------------------------------------------------------------------
    def has_slot(self, group: str, service: str, slot: Slot) -> bool:
        return (self.slot_dir(group, service, slot) / "cert.pem").is_file()

    def read_public(self, group: str, service: str, slot: Slot, name: str) -> bytes | None:
        path = self.slot_dir(group, service, slot) / name
        return path.read_bytes() if path.is_file() else None

    def read_cert(self, group: str, service: str, slot: Slot) -> x509.Certificate | None:
        raw = self.read_public(group, service, slot, "cert.pem")
        return x509.load_pem_x509_certificate(raw) if raw else None

    def read_chain(self, group: str, service: str, slot: Slot) -> list[x509.Certificate]:
        raw = self.read_public(group, service, slot, "chain.pem")
        return x509.load_pem_x509_certificates(raw) if raw else []

    def read_info(self, group: str, service: str, slot: Slot) -> SlotInfo | None:
        raw = self.read_public(group, service, slot, INFO_FILE)
        return SlotInfo.from_json(raw) if raw else None

    def secret_path(self, group: str, service: str, slot: Slot, name: str) -> Path:
        return self.slot_dir(group, service, slot) / f"{name}{SOPS_SUFFIX}"

    def read_secret(self, group: str, service: str, slot: Slot, name: str) -> bytes:
        """Decrypt ``privkey.pem`` or ``bundle.pem`` with the identity in the environment."""
        return self.sops.decrypt(self.secret_path(group, service, slot, name))

    # -- writing -----------------------------------------------------------------------------
    def write_slot(
        self,
        group: str,
        service: str,
        slot: Slot,
        outputs: dict[str, bytes],
        info: SlotInfo,
        reuse_key_from: Slot | None = None,
    ) -> list[str]:
        """Write a full output set into ``slot``; return repo-relative paths written.

        With ``reuse_key_from`` the encrypted key file is copied byte for byte, so a reused
        key does not show up in git as a changed ciphertext.
        """
        slot_dir = self.slot_dir(group, service, slot)
        rel = self.slot_rel(group, service, slot)
        written: list[str] = []
        for name in PUBLIC_FILES:
            atomic_write(slot_dir / name, outputs[name])
            written.append(f"{rel}/{name}")
        atomic_write(slot_dir / INFO_FILE, info.to_json())
        written.append(f"{rel}/{INFO_FILE}")
        for name in SECRET_FILES:
            dest = slot_dir / f"{name}{SOPS_SUFFIX}"
            if name == "privkey.pem" and reuse_key_from is not None:
                src = self.secret_path(group, service, reuse_key_from, name)
                atomic_write(dest, src.read_bytes())
            else:
                self.sops.write_encrypted(dest, outputs[name], f"{rel}/{name}")
            written.append(f"{rel}/{name}{SOPS_SUFFIX}")
        return written

    def promote_next(
        self, group: str, service: str, rolled_at: datetime, keep_retired: bool = False
    ) -> list[str]:
        """Make ``next`` the new ``curr``. The old curr stays reachable in git history; with
        ``keep_retired`` its public files also stay as ``retired/`` (for TLSA).

        Files move as bytes (no decrypt/re-encrypt), so the key's ciphertext is unchanged.
        """
        nxt = self.slot_dir(group, service, Slot.NEXT)
        curr = self.slot_dir(group, service, Slot.CURR)
        retired = self.slot_dir(group, service, Slot.RETIRED)
        info = self.read_info(group, service, Slot.NEXT)
        if info is None:
            raise FileNotFoundError(f"{nxt / INFO_FILE}")
        staged = curr.with_name(".curr.rolling")
        if staged.exists():
            shutil.rmtree(staged)
        shutil.copytree(nxt, staged)
        rolled = SlotInfo(
            issued_at=info.issued_at,
            signing_ca=info.signing_ca,
            key_reused=info.key_reused,
            reason=info.reason,
            rolled_at=rolled_at,
        )
        atomic_write(staged / INFO_FILE, rolled.to_json())
        if retired.exists():
            shutil.rmtree(retired)
        if curr.exists():
            if keep_retired:
                retired.mkdir()
                for name in (*PUBLIC_FILES, INFO_FILE):
                    if (curr / name).is_file():
                        shutil.copy2(curr / name, retired / name)
                old = self.read_info(group, service, Slot.CURR)
                if old is not None:
                    gone = SlotInfo(
                        old.issued_at,
                        old.signing_ca,
                        old.key_reused,
                        old.reason,
                        rolled_at=rolled_at,
                    )
                    atomic_write(retired / INFO_FILE, gone.to_json())
            shutil.rmtree(curr)
        staged.rename(curr)
        shutil.rmtree(nxt)
        return [self.service_rel(group, service)]

    def drop_retired(self, group: str, service: str) -> bool:
        retired = self.slot_dir(group, service, Slot.RETIRED)
        if retired.exists():
            shutil.rmtree(retired)
            return True
        return False

    def write_tlsa(self, apex: str, text: str) -> bool:
        return write_if_changed(self.root / self.tlsa_rel(apex), text.encode())

    def tlsa_apexes(self) -> Iterator[str]:
        zones = self.root / ZONES_DIR
        if zones.is_dir():
            for path in sorted(zones.glob("tlsa.*")):
                yield path.name.removeprefix("tlsa.")
