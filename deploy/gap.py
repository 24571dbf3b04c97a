"""Reality-gap profiles (``configs/real_gap/*.yaml``): dynamics changes only targets apply (the virtual G1 over DDS
and the protocol targets of ``asap eval``, :mod:`asap.eval.targets`).

Per-joint factors are given as ``{pattern: factor}``: a joint whose name contains ``pattern`` gets ``factor``
(later patterns win). The training side never reads these files. :class:`ActuatorLaw` is the gap's motor law (how
the Kp/Kd/strength factors and the saturation turn a joint target into a torque), the one definition both targets
use.
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


@dataclass(frozen=True)
class ActuatorLaw:
    """The gap's motor law for a set of joints (arrays (J,) in the order of the ``names`` it was built for):

    ``tau = clip(s * (k Kp (q* - q) + d Kd (dq* - dq)) + tau_ff, -e, e)`` with the commanded gains Kp, Kd (N m/rad,
    N m s/rad), torque scale ``s``, Kp scale ``k``, Kd scale ``d`` and saturated effort limits ``e`` (N m). A torque
    that is not finite (a NaN or infinite command) is 0. The virtual G1 evaluates it every 5 ms physics step; a
    protocol target hands ``k``, ``d``, ``s`` and ``e`` to the simulator's own PD, which evaluates the same formula
    (with dq* = 0, tau_ff = 0) at every physics substep.
    """

    kp_scale: np.ndarray
    """(J,) k: multiplier on the commanded Kp."""
    kd_scale: np.ndarray
    """(J,) d: multiplier on the commanded Kd."""
    torque_scale: np.ndarray
    """(J,) s: motor strength, multiplies the PD torque (not the feed-forward torque)."""
    effort: np.ndarray
    """(J,) e: saturated effort limits, the spec's limits times ``torque_limit_scale`` (N m)."""

    @classmethod
    def of(cls, gap: RealGapConfig, names: tuple[str, ...], effort_limit: np.ndarray) -> ActuatorLaw:
        """The law of ``gap`` for joints ``names`` with the spec's effort limits ``effort_limit`` (J,) (N m)."""
        return cls(
            kp_scale=per_joint(gap.kp_scale, names), kd_scale=per_joint(gap.kd_scale, names),
            torque_scale=per_joint(gap.torque_scale, names),
            effort=np.asarray(effort_limit, dtype=np.float64) * float(gap.torque_limit_scale),
        )  # fmt: skip

    def torque(
        self, q_target: np.ndarray, q: np.ndarray, dq: np.ndarray, kp: np.ndarray, kd: np.ndarray,
        dq_target: np.ndarray | float = 0.0, tau_ff: np.ndarray | float = 0.0,
    ) -> np.ndarray:  # fmt: skip
        """Joint torques (..., J) (N m) for targets ``q_target`` (rad), state ``q`` (rad), ``dq`` (rad/s) and commanded
        gains ``kp``, ``kd`` (see the class docstring)."""
        tau = self.torque_scale * (self.kp_scale * kp * (q_target - q) + self.kd_scale * kd * (dq_target - dq))
        tau = tau + tau_ff
        tau = np.where(np.isfinite(tau), tau, 0.0)
        return np.clip(tau, -self.effort, self.effort)
