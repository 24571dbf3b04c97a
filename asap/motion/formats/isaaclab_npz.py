"""IsaacLab's motion-loader ``.npz`` (the layout of the public "AMASS retargeted for G1" data set): import, export.

Keys: ``fps`` (scalar), ``dof_names`` (J,), ``body_names`` (B,), ``dof_positions`` / ``dof_velocities`` (T, J) rad
and rad/s, ``body_positions`` (T, B, 3) m, ``body_rotations`` (T, B, 4) **wxyz**, ``body_linear_velocities`` /
``body_angular_velocities`` (T, B, 3), world frame, z-up. Columns are read by name (any order; the data set is in
IsaacLab's breadth-first order); the root is the ``pelvis`` body. Export writes the 29 joints and the 30 bodies of
Unitree's G1 in IsaacLab's order, with body states from forward kinematics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asap.motion.formats._common import check_writable, checked, motor_columns, read_fps
from asap.motion.motion import Motion, MotionFormatError, read_npz_arrays
from asap.robot.spec import MOTOR_NAMES, get_spec

REQUIRED = ("fps", "dof_names", "body_names", "dof_positions", "body_positions", "body_rotations")
"""Keys an IsaacLab motion npz must hold."""
ROOT_BODY = "pelvis"
"""Body whose pose is the motion's root."""


def read_isaaclab_npz(path: str | Path) -> Motion:
    """Read an IsaacLab motion npz by joint and body names (root from the pelvis body)."""
    p = Path(path)
    d = read_npz_arrays(p)
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise MotionFormatError(f"{p}: missing key(s) {missing}; an IsaacLab motion npz needs {list(REQUIRED)}")
    names = tuple(str(n) for n in d["dof_names"])
    bodies = [str(n) for n in d["body_names"]]
    q = np.asarray(d["dof_positions"], dtype=np.float64)
    bp = np.asarray(d["body_positions"], dtype=np.float64)
    bq = np.asarray(d["body_rotations"], dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != len(names):
        raise MotionFormatError(f"{p}: dof_positions {q.shape} does not fit {len(names)} dof_names")
    if bp.shape[:2] != (q.shape[0], len(bodies)) or bq.shape[:2] != bp.shape[:2]:
        raise MotionFormatError(
            f"{p}: body_positions {bp.shape} / body_rotations {bq.shape} do not fit {len(bodies)} body_names and "
            f"{q.shape[0]} frames"
        )
    if ROOT_BODY not in bodies:
        raise MotionFormatError(f"{p}: no {ROOT_BODY!r} among body_names {bodies[:4]}...; the root must be the pelvis")
    r = bodies.index(ROOT_BODY)

    def opt(key: str, body: bool) -> np.ndarray | None:
        if key not in d:
            return None
        a = np.asarray(d[key], dtype=np.float64)
        return a[:, r] if body else a

    m = Motion(
        fps=read_fps(d["fps"], str(p)), joint_names=names, body_names=get_spec("g1_29dof").body_names,
        root_pos=bp[:, r], root_quat=bq[:, r], dof_pos=q, dof_vel=opt("dof_velocities", False),
        root_lin_vel=opt("body_linear_velocities", True), root_ang_vel=opt("body_angular_velocities", True),
        meta={"source": str(p), "format": "isaaclab_npz", "joint_order": "names in the file"},
    )  # fmt: skip
    return checked(m, str(p))


def write_isaaclab_npz(motion: Motion, path: str | Path, overwrite: bool = False) -> Path:
    """Write an IsaacLab motion npz: 29 joints and 30 bodies in IsaacLab's order, states by forward kinematics."""
    import torch

    from asap.motion.formats.joint_order import JOINT_ORDERS, body_order
    from asap.robot.kinematics import shared_kinematics
    from asap.utils.rotations import angular_velocity

    motion.check()
    p = check_writable(path, overwrite)
    kin = shared_kinematics("g1_29dof")
    q29 = motor_columns(motion)  # Unitree order = the 29-DoF spec's order
    quat = motion.root_quat / np.linalg.norm(motion.root_quat, axis=-1, keepdims=True)
    with torch.no_grad():
        bp, bq = kin.forward_all(*(torch.as_tensor(x, dtype=torch.float64) for x in (motion.root_pos, quat, q29)))
    bodies = body_order("isaaclab")
    bi = [kin.all_body_names.index(b) for b in bodies]
    bp, bq = bp.numpy()[:, bi], bq.numpy()[:, bi]
    ji = [MOTOR_NAMES.index(n) for n in JOINT_ORDERS["isaaclab"]]
    dt = 1.0 / motion.fps
    dof_vel = np.gradient(q29, dt, axis=0)
    if motion.dof_vel is not None:
        have = {n: i for i, n in enumerate(motion.joint_names)}
        for j, n in enumerate(MOTOR_NAMES):
            if n in have:
                dof_vel[:, j] = motion.dof_vel[:, have[n]]
    out = {
        "fps": np.array(motion.fps),
        "dof_names": np.array(JOINT_ORDERS["isaaclab"]),
        "body_names": np.array(bodies),
        "dof_positions": q29[:, ji].astype(np.float32),
        "dof_velocities": dof_vel[:, ji].astype(np.float32),
        "body_positions": bp.astype(np.float32),
        "body_rotations": bq.astype(np.float32),
        "body_linear_velocities": np.gradient(bp, dt, axis=0).astype(np.float32),
        "body_angular_velocities": angular_velocity(bq, dt).astype(np.float32),
    }
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(p)
    return p
