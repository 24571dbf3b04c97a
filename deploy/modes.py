"""The robot runtime's controller states, in a module of their own so that log tools can name them without
loading the runtime (DDS message types, the policy contract)."""

from __future__ import annotations

import enum


class Mode(enum.IntEnum):
    """Controller states (the integer is what the log stores)."""

    WAIT = -1
    ZERO_TORQUE = 0
    RAMP = 1
    HOLD = 2
    RUN = 3
    DAMPING = 4
