"""Small, valid motions made from formulas: for tests and examples that must not depend on data files."""

from __future__ import annotations

import numpy as np

from asap.control import ACTION_ALIGNMENT
from asap.motion.motion import Motion
from asap.robot.spec import RobotSpec, get_spec
from asap.utils.rotations import axis_angle_to_quat

STAND_HEIGHT = 0.78
"""Pelvis height (m) of the synthetic clips (about standing with slightly bent knees)."""


def synthetic_motion(
    num_frames: int = 60,
    fps: float = 50.0,
    spec: RobotSpec | str = "g1_23dof",
    amplitude: float = 0.2,
    speed: tuple[float, float, float] = (0.3, 0.0, 0.0),
    yaw_rate: float = 0.5,
    seed: int = 0,
    action: bool = False,
) -> Motion:
    """A smooth clip inside the joint limits: default pose plus sinusoids, root drifting at ``speed`` (m/s)
    and turning at ``yaw_rate`` (rad/s). ``action`` adds a random-but-smooth action track."""
    rs = get_spec(spec) if isinstance(spec, str) else spec
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames) / fps
    j = rs.num_joints
    freq = rng.uniform(0.5, 1.5, j)
    phase = rng.uniform(0, 2 * np.pi, j)
    span = np.minimum(rs.pos_upper - rs.default_pos, rs.default_pos - rs.pos_lower)
    amp = np.minimum(amplitude, 0.8 * span)
    dof = rs.default_pos + amp * np.sin(2 * np.pi * freq * t[:, None] + phase)
    root_pos = np.array([0.0, 0.0, STAND_HEIGHT]) + t[:, None] * np.asarray(speed)
    root_quat = axis_angle_to_quat(np.stack([0 * t, 0 * t, yaw_rate * t], axis=-1))
    act = rng.normal(size=(1, j)) * np.cos(2 * np.pi * t[:, None] * freq) if action else None
    return Motion(
        fps=fps, joint_names=rs.joint_names, body_names=rs.body_names, root_pos=root_pos, root_quat=root_quat,
        dof_pos=dof, action=act, meta={"source": "synthetic", "seed": seed, "name": f"synthetic_{seed}",
                                       **({"action_alignment": ACTION_ALIGNMENT} if action else {})},
    )  # fmt: skip
