"""The CRC of unitree_hg LowCmd/LowState messages, computed fast.

Unitree's CRC is CRC-32 with polynomial 0x04C11DB7, initial value 0xFFFFFFFF, MSB first, no final xor (the
"CRC-32/MPEG-2" parameters), fed 32-bit words: the message packed little-endian in its C struct layout, every
word except the last (the ``crc`` field itself), each word taken most-significant bit first.

A bit loop in Python costs milliseconds per message. Here the words are bit-reversed (a 256-entry byte table
over a NumPy view) and handed to :func:`zlib.crc32`, the reflected form of the same polynomial in C: reflecting
the input and the register turns one algorithm into the other, so
``crc = bitrev32(zlib.crc32(bitrev32-words as LE bytes) ^ 0xFFFFFFFF)``. :func:`crc32_reference` is the plain
bitwise definition used by the tests.
"""

from __future__ import annotations

import zlib

import numpy as np

from deploy.messages import LOWCMD_C, LOWSTATE_C

_REV8 = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], dtype=np.uint8)
POLY = 0x04C11DB7


def _bitrev32(x: int) -> int:
    return (
        (int(_REV8[x & 0xFF]) << 24)
        | (int(_REV8[(x >> 8) & 0xFF]) << 16)
        | (int(_REV8[(x >> 16) & 0xFF]) << 8)
        | int(_REV8[(x >> 24) & 0xFF])
    )


def crc32_bytes(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC over ``data`` viewed as little-endian uint32 words (all of them; length must be a multiple of 4)."""
    b = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if b.size % 4:
        raise ValueError(f"CRC input must be whole 32-bit words, got {b.size} bytes")
    stream = _REV8[b.reshape(-1, 4)[:, ::-1]]
    return _bitrev32(zlib.crc32(stream.tobytes()) ^ 0xFFFFFFFF)


def crc32_words(words: np.ndarray | list[int]) -> int:
    """CRC over a sequence of uint32 words."""
    return crc32_bytes(np.asarray(words, dtype="<u4").tobytes())


def crc32_reference(words: list[int] | np.ndarray) -> int:
    """The slow bitwise definition (for tests): shift per bit, xor the polynomial when the top bit and the data
    bit differ."""
    crc = 0xFFFFFFFF
    for w in np.asarray(words, dtype=np.uint64).tolist():
        for i in range(31, -1, -1):
            top = (crc >> 31) & 1
            bit = (w >> i) & 1
            crc = (crc << 1) & 0xFFFFFFFF
            if top ^ bit:
                crc ^= POLY
    return crc


def _crc_of_raw(raw: np.ndarray, size: int) -> int:
    return crc32_bytes(raw.tobytes()[: size - 4])


def lowcmd_crc(raw: np.ndarray) -> int:
    """CRC of a C-layout LowCmd record (:data:`deploy.messages.LOWCMD_C`)."""
    return _crc_of_raw(raw, LOWCMD_C.itemsize)


def lowstate_crc(raw: np.ndarray) -> int:
    """CRC of a C-layout LowState record (:data:`deploy.messages.LOWSTATE_C`)."""
    return _crc_of_raw(raw, LOWSTATE_C.itemsize)


def seal(msg) -> int:  # noqa: ANN001 - LowCmd_ or LowState_
    """Compute and store the CRC of a raw-backed LowCmd_/LowState_; returns it."""
    raw = msg.raw
    c = lowcmd_crc(raw) if raw.dtype == LOWCMD_C else lowstate_crc(raw)
    raw["crc"] = c
    return c


def check(msg) -> bool:  # noqa: ANN001
    """True when a raw-backed message carries the right CRC."""
    raw = msg.raw
    c = lowcmd_crc(raw) if raw.dtype == LOWCMD_C else lowstate_crc(raw)
    return int(raw["crc"]) == c
