"""Just enough DER to read and write PKCS#3 DH parameters and to cut one element off a blob.

cryptography deprecates its finite-field DH API, and these structures are tiny.
"""

from __future__ import annotations

_INTEGER = 0x02
_SEQUENCE = 0x30


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are supported")
    # One spare bit keeps the sign bit clear (DER integers are two's complement).
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([_INTEGER]) + _encode_length(len(raw)) + raw


def encode_sequence(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return bytes([_SEQUENCE]) + _encode_length(len(body)) + body


def read_element(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """``(tag, content, end offset)`` of the element starting at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER element")
    tag = data[offset]
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER element")
    return tag, data[pos:end], end


def first_element(data: bytes) -> bytes:
    """The first complete element of ``data``, without whatever follows it."""
    _, _, end = read_element(data)
    return data[:end]


def decode_integer_sequence(data: bytes) -> list[int]:
    """Integers of a top-level SEQUENCE of INTEGERs (extra bytes after it are an error)."""
    tag, body, end = read_element(data)
    if tag != _SEQUENCE or end != len(data):
        raise ValueError("expected one DER SEQUENCE")
    values: list[int] = []
    pos = 0
    while pos < len(body):
        tag, content, pos = read_element(body, pos)
        if tag != _INTEGER or not content:
            raise ValueError("expected DER INTEGER")
        values.append(int.from_bytes(content, "big", signed=True))
    return values
