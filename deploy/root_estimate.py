"""A proprioceptive estimate of the floating base for robots without motion capture (``--root-source estimate``).

From what LowState carries, per control step:

- **orientation**: the pelvis IMU's quaternion (wxyz) as it is; angular velocity: the gyroscope turned into the
  world frame. Yaw drifts on a real IMU; nothing below depends on absolute yaw.
- **height**: leg forward kinematics (NumPy, :mod:`asap.robot.tree`) from the pelvis with the IMU orientation gives
  every foot's collision points relative to the pelvis; the lowest point of all stands on the floor (``floor_z``).
- **stance**: a foot whose lowest point is within ``contact_height_m`` of the lowest one is in stance, with a
  weight falling from 1 (on the floor) to 0 (at ``contact_height_m``).
- **horizontal position and velocity**: leg odometry. A foot that touches down is pinned where it stands; while it
  stays in stance the pelvis is where the pinned foot says it is (a weighted mean over the feet in stance); with no
  pinned foot the pelvis keeps its last velocity. Each episode starts at x = y = 0. Velocities are the central
  differences of the estimated position.

What it cannot know: slip of a stance foot, flight phases (jumps), uneven floors, and the absolute heading. The
delta training therefore trusts it for orientation, joint states and root-relative body positions only, not for
global position or linear velocity (:mod:`asap.root_source`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asap.robot.spec import FEET, MOTOR_NAMES
from asap.utils.rotations import quat_normalize, quat_rotate


@dataclass
class RootEstimateConfig:
    """Settings of the proprioceptive root estimate."""

    contact_height_m: float = 0.02
    """A foot whose lowest point is less than this above the lowest foot's counts (partly) as in stance (m)."""
    floor_z: float = 0.0
    """Height of the floor in the world frame (m)."""


def foot_points(q: np.ndarray, quat: np.ndarray, names: tuple[str, ...] = MOTOR_NAMES) -> dict[str, np.ndarray]:
    """Feet relative to the pelvis, in world-aligned axes: ``origin`` (T, 2, 3) of each foot body (:data:`FEET`) and
    ``lowest`` (T, 2) z of each foot's lowest collision point (m; negative: below the pelvis).

    ``q`` (T, len(names)) joint angles in the order of ``names`` (default: the 29 motors in wire order); ``quat``
    (T, 4) wxyz pelvis orientation.
    """
    from asap.robot.tree import g1_tree

    tree = g1_tree()
    t = len(q)
    joints = {n: q[:, i] for i, n in enumerate(names)}
    pos, rot = tree.forward(np.zeros((t, 3)), quat, joints, list(FEET))
    lowest = np.zeros((t, len(FEET)))
    for f, name in enumerate(FEET):
        pts = tree.bodies[tree.index[name]].points
        if len(pts) == 0:
            raise ValueError(f"the robot model has no collision geoms on {name}: the foot's sole is unknown")
        local = np.broadcast_to(pts[:, :3], (t, len(pts), 3))
        world = pos[:, f, None, :] + quat_rotate(np.broadcast_to(rot[:, f, None, :], (t, len(pts), 4)), local)
        lowest[:, f] = (world[..., 2] - pts[:, 3]).min(axis=1)
    return {"origin": pos, "lowest": lowest}


def estimate_root(
    q: np.ndarray, imu_quat: np.ndarray, gyro: np.ndarray, dt: float, cfg: RootEstimateConfig | None = None,
    names: tuple[str, ...] = MOTOR_NAMES,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The estimated root of one episode (see the module docstring).

    ``q`` (T, len(names)) rad; ``imu_quat`` (T, 4) wxyz; ``gyro`` (T, 3) body-frame rad/s; ``dt`` s between rows.
    Returns ``pos`` (T, 3), ``quat`` (T, 4) wxyz, ``lin_vel``/``ang_vel`` (T, 3) world frame, and ``stance`` (T, 2)
    stance weights of the feet (:data:`asap.robot.spec.FEET` order).
    """
    cfg = cfg or RootEstimateConfig()
    q = np.asarray(q, dtype=np.float64)
    quat = quat_normalize(np.asarray(imu_quat, dtype=np.float64))
    t = len(q)
    if t == 0:
        raise ValueError("no rows to estimate the root from")
    feet = foot_points(q, quat, names)
    low, origin = feet["lowest"], feet["origin"]
    ground = low.min(axis=1)
    w = np.clip(1.0 - (low - ground[:, None]) / cfg.contact_height_m, 0.0, 1.0)
    pos = np.zeros((t, 3))
    pos[:, 2] = cfg.floor_z - ground
    anchor = np.full((len(FEET), 2), np.nan)
    vel_xy = np.zeros(2)
    for k in range(t):
        pinned = (w[k] > 0) & ~np.isnan(anchor[:, 0])
        if pinned.any():
            est = anchor[pinned] - origin[k, pinned, :2]
            pos[k, :2] = (w[k, pinned, None] * est).sum(0) / w[k, pinned].sum()
        elif k > 0:
            pos[k, :2] = pos[k - 1, :2] + vel_xy * dt
        if k > 0:
            vel_xy = (pos[k, :2] - pos[k - 1, :2]) / dt
        for f in range(len(FEET)):
            if w[k, f] <= 0:
                anchor[f] = np.nan  # lifted: pinned again where it next touches down
            elif np.isnan(anchor[f, 0]):
                anchor[f] = pos[k, :2] + origin[k, f, :2]
    lin = np.gradient(pos, dt, axis=0) if t > 1 else np.zeros((t, 3))
    ang = quat_rotate(quat, np.asarray(gyro, dtype=np.float64))
    return {"pos": pos, "quat": quat, "lin_vel": lin, "ang_vel": ang, "stance": w}
