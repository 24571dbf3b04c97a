"""Reality-gap profiles (``configs/real_gap/*.yaml``): dynamics changes only the virtual G1 applies.

Per-joint factors are given as ``{pattern: factor}``: a joint whose name contains ``pattern`` gets ``factor``
(later patterns win). The training side never reads these files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asap.config import load_config


@dataclass
class RealGapConfig:
    """How the virtual G1 differs from the training simulator."""

    name: str = "none"
    """Profile name (recorded in logs)."""
    description: str = ""
    """One line on what this profile models."""
    kp_scale: dict[str, float] = field(default_factory=dict)
    """Motor Kp multiplier by joint-name pattern (e.g. ankle: 0.65)."""
    kd_scale: dict[str, float] = field(default_factory=dict)
    """Motor Kd multiplier by joint-name pattern."""
    torque_scale: dict[str, float] = field(default_factory=dict)
    """Motor strength: the PD torque is multiplied by this, by joint-name pattern (e.g. knee: 0.8)."""
    torque_limit_scale: float = 1.0
    """Actuator saturation: torques are clipped to this multiple of the spec's effort limits."""
    joint_friction: float = 0.0
    """Dry joint friction (frictionloss, N m) on every joint."""
    joint_damping: float = 0.0
    """Passive joint damping (N m s/rad) on every joint."""
    added_mass: dict[str, float] = field(default_factory=dict)
    """Extra mass (kg) by body name (e.g. torso_link: 2.0)."""
    latency_s: float = 0.0
    """Command latency: a LowCmd takes effect this long after it arrives."""
    floor_friction: float = 1.0
    """Sliding friction of the floor."""
    imu_gyro_noise: float = 0.0
    """Std of Gaussian noise on the reported gyroscope (rad/s)."""
    joint_vel_noise: float = 0.0
    """Std of Gaussian noise on the reported joint velocities (rad/s)."""


def load_gap(path: str | Path | None, overrides: list[str] | None = None) -> RealGapConfig:
    """Load a profile (None: no gap)."""
    return load_config(RealGapConfig, path, overrides)


def per_joint(table: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """Expand a ``{pattern: factor}`` table over joint ``names`` (default 1)."""
    out = np.ones(len(names))
    for pattern, factor in table.items():
        hit = np.array([pattern in n for n in names])
        if not hit.any():
            raise ValueError(f"reality-gap pattern {pattern!r} matches no joint of {names[:3]}...")
        out[hit] = float(factor)
    return out
