"""Diffie-Hellman parameter files: RFC 7919 named groups (computed, never generated) and
classic random safe-prime parameters, plus ssl-mgr's rule for when to refresh them."""

from __future__ import annotations

import base64
import textwrap
import warnings
from datetime import datetime, timedelta
from functools import cache
from typing import Literal

from cryptography.utils import CryptographyDeprecationWarning

from sslm_ci.pki import _der
from sslm_ci.pki.pem import pem_blocks

DhKind = Literal["named", "classic"]

GENERATOR = 2

# RFC 7919 appendix A: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1, per group's X.
_RFC7919_X: dict[str, tuple[int, int]] = {
    "ffdhe2048": (2048, 560316),
    "ffdhe3072": (3072, 2625351),
    "ffdhe4096": (4096, 5736041),
    "ffdhe6144": (6144, 15705020),
    "ffdhe8192": (8192, 10965728),
}
NAMED_GROUPS: tuple[str, ...] = tuple(_RFC7919_X)

DH_PEM_LABELS = frozenset({"DH PARAMETERS", "X9.42 DH PARAMETERS"})


def _floor_e_times_power_of_two(shift: int) -> int:
    """floor(2^shift * e), exactly, from the series e = sum 1/k! in fixed point."""
    guard = 64
    while True:
        scale = 1 << (shift + guard)
        total = 0
        term = scale
        k = 0
        while term:
            total += term
            k += 1
            term //= k
        # Each truncated division loses under 3 units in total and the dropped tail is smaller
        # still, so the true value lies in [total, total + 4(k + 2)); retry wider if the floor
        # is not decided by that interval.
        low = total >> guard
        high = (total + 4 * (k + 2)) >> guard
        if low == high:
            return low
        guard *= 2


@cache
def named_group_prime(name: str) -> int:
    try:
        bits, x = _RFC7919_X[name]
    except KeyError:
        raise ValueError(
            f"unknown DH group {name!r}: expected one of {', '.join(NAMED_GROUPS)}"
        ) from None
    e_part = _floor_e_times_power_of_two(bits - 130)
    return (1 << bits) - (1 << (bits - 64)) + ((e_part + x) << 64) - 1


def named_group_of(p: int, g: int) -> str | None:
    """RFC 7919 group name for these parameters, if they are one."""
    if g != GENERATOR:
        return None
    for name, (bits, _) in _RFC7919_X.items():
        if p.bit_length() == bits and named_group_prime(name) == p:
            return name
    return None


def dh_pem(p: int, g: int) -> bytes:
    """PKCS#3 ``DH PARAMETERS`` PEM, the layout ``openssl dhparam`` writes."""
    der = _der.encode_sequence(_der.encode_integer(p), _der.encode_integer(g))
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN DH PARAMETERS-----\n{body}\n-----END DH PARAMETERS-----\n".encode()


def named_group_pem(name: str) -> bytes:
    return dh_pem(named_group_prime(name), GENERATOR)


def parse_dh_pem(data: bytes) -> tuple[int, int]:
    """``(p, g)`` of the first DH parameter block (PKCS#3 or X9.42: both start with p, g)."""
    for block in pem_blocks(data):
        if block.label in DH_PEM_LABELS:
            return dh_params_from_der(block.der)
    raise ValueError("no DH PARAMETERS block found")


def dh_params_from_der(der: bytes) -> tuple[int, int]:
    tag, body, _ = _der.read_element(der)
    if tag != 0x30:
        raise ValueError("DH parameters are not a DER SEQUENCE")
    values: list[int] = []
    pos = 0
    while pos < len(body) and len(values) < 2:
        tag, content, pos = _der.read_element(body, pos)
        if tag != 0x02 or not content:
            raise ValueError("DH parameters do not start with two INTEGERs")
        values.append(int.from_bytes(content, "big"))
    if len(values) != 2:
        raise ValueError("DH parameters do not start with two INTEGERs")
    return values[0], values[1]


def generate_dh_pem(bits: int) -> bytes:
    """Fresh random safe-prime parameters (seconds to minutes for 2048+ bits)."""
    from cryptography.hazmat.primitives.asymmetric import dh

    # cryptography marks finite-field DH deprecated; servers still read these files, and only
    # parameter generation needs the library (encoding is ours).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        numbers = dh.generate_parameters(generator=GENERATOR, key_size=bits).parameter_numbers()
    return dh_pem(numbers.p, numbers.g)


def dh_refresh_due(
    kind: DhKind,
    exists: bool,
    mtime: datetime | None,
    now: datetime,
    max_age_days: int = 120,
) -> bool:
    """ssl-mgr's rule: named groups are fixed, so only a missing file is made; classic
    parameters are also renewed once older than ``max_age_days``."""
    if kind not in ("named", "classic"):
        raise ValueError(f"unknown DH parameter kind {kind!r}: expected 'named' or 'classic'")
    if not exists:
        return True
    if kind == "named":
        return False
    if mtime is None:
        return True
    return now - mtime > timedelta(days=max_age_days)
