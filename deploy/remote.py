"""The G1 wireless remote as reported in ``LowState.wireless_remote`` (40 bytes).

Bytes 2-3 hold a little-endian uint16 of buttons; floats (little-endian float32) lx at 4, rx at 8, ry at 12,
ly at 20. :class:`ButtonEdges` turns successive button words into press events (rising edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUTTONS = {
    "R1": 0, "L1": 1, "START": 2, "SELECT": 3, "R2": 4, "L2": 5, "F1": 6, "F2": 7,
    "A": 8, "B": 9, "X": 10, "Y": 11, "UP": 12, "RIGHT": 13, "DOWN": 14, "LEFT": 15,
}  # fmt: skip
"""Bit of each button in the uint16 at bytes [2:4]."""
STICKS = {"lx": 4, "rx": 8, "ry": 12, "ly": 20}
"""Byte offset of each stick's float32."""


def buttons_word(remote: np.ndarray | bytes) -> int:
    """The uint16 button word of a 40-byte remote record."""
    b = np.frombuffer(bytes(remote), dtype=np.uint8) if not isinstance(remote, np.ndarray) else remote
    return int(b[2]) | (int(b[3]) << 8)


def pressed(remote: np.ndarray | bytes) -> set[str]:
    """Names of the buttons held in a remote record."""
    w = buttons_word(remote)
    return {name for name, bit in BUTTONS.items() if w >> bit & 1}


def sticks(remote: np.ndarray | bytes) -> dict[str, float]:
    """Stick values (-1..1) of a remote record."""
    b = bytes(remote) if not isinstance(remote, np.ndarray) else remote.astype(np.uint8).tobytes()
    return {k: float(np.frombuffer(b, dtype="<f4", count=1, offset=o)[0]) for k, o in STICKS.items()}


def encode(buttons: set[str] | tuple[str, ...] = (), **stick: float) -> np.ndarray:
    """A 40-byte remote record with ``buttons`` held and the given stick values (for the virtual G1 and tests)."""
    out = np.zeros(40, dtype=np.uint8)
    w = 0
    for name in buttons:
        w |= 1 << BUTTONS[name]
    out[2], out[3] = w & 0xFF, w >> 8
    for k, v in stick.items():
        out[STICKS[k] : STICKS[k] + 4] = np.frombuffer(np.float32(v).tobytes(), dtype=np.uint8)
    return out


@dataclass
class ButtonEdges:
    """Detects button presses (0 -> 1 transitions) across successive remote records."""

    last: int = 0
    """Previous button word."""

    def update(self, remote: np.ndarray | bytes) -> set[str]:
        """Buttons newly pressed since the previous call."""
        w = buttons_word(remote)
        rising = w & ~self.last
        self.last = w
        return {name for name, bit in BUTTONS.items() if rising >> bit & 1}
