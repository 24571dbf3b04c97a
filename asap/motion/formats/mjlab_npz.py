"""mjlab / BeyondMimic tracking ``.npz``: import, and export for the G1 of mjlab's asset zoo.

Keys: ``fps`` ([fps]), ``joint_pos`` / ``joint_vel`` (T, 29) in the joint order of the simulator that wrote the
file, ``body_pos_w`` (T, B, 3), ``body_quat_w`` (T, B, 4) wxyz, ``body_lin_vel_w``, ``body_ang_vel_w`` (T, B, 3)
for all bodies (B = 30, pelvis first). mjlab (MuJoCo) writes joints and bodies depth-first (Unitree's motor
order); BeyondMimic files written from IsaacLab hold them breadth-first. The files hold no names: the order is
found by forward kinematics against the stored body poses (:mod:`asap.motion.formats.joint_order`), or given
(``joint_order=``, CLI ``--joint-order``). When ``joint_names`` / ``body_names`` are present (our exports add them)
they are used.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

from asap.motion.formats._common import check_writable, checked, motor_columns
from asap.motion.formats.joint_order import JOINT_ORDERS, body_order, check_joint_order, order_names
from asap.motion.motion import Motion, MotionFormatError, read_npz_arrays
from asap.robot.spec import MOTOR_NAMES, get_spec

REQUIRED = ("fps", "joint_pos", "body_pos_w", "body_quat_w")
"""Keys an mjlab motion npz must hold."""


def read_mjlab_npz(path: str | Path, joint_order: str | None = None) -> Motion:
    """Read an mjlab tracking npz: root from the pelvis body; joints by name, by ``joint_order`` (a key of
    :data:`~asap.motion.formats.joint_order.JOINT_ORDERS`), or in the order that forward kinematics finds in the
    stored body poses (``meta['joint_order']`` records it); one-line error when no order fits."""
    p = Path(path)
    d = read_npz_arrays(p)
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise MotionFormatError(f"{p}: missing key(s) {missing}; an mjlab motion needs {list(REQUIRED)}")
    jp = np.asarray(d["joint_pos"], dtype=np.float64)
    bp = np.asarray(d["body_pos_w"], dtype=np.float64)
    bq = np.asarray(d["body_quat_w"], dtype=np.float64)
    if jp.ndim != 2 or bp.ndim != 3 or bq.ndim != 3 or bp.shape[0] != jp.shape[0] or bq.shape[:2] != bp.shape[:2]:
        raise MotionFormatError(
            f"{p}: inconsistent shapes joint_pos {jp.shape}, body_pos_w {bp.shape}, body_quat_w {bq.shape}"
        )
    meta: dict = {"source": str(p), "format": "mjlab_npz"}
    if "joint_names" in d and joint_order is None:
        names = tuple(str(n) for n in d["joint_names"])
        if len(names) != jp.shape[1]:
            raise MotionFormatError(f"{p}: {len(names)} joint_names for {jp.shape[1]} joint_pos columns")
        meta["joint_order"] = "names in the file"
    elif joint_order is not None:
        names = order_names(joint_order, jp.shape[1], f"{p}: joint_pos")
        meta.update(joint_order=joint_order, joint_order_check="given")
    else:
        check = check_joint_order(jp, bp, bq, str(p))
        names = JOINT_ORDERS[check.order]
        meta.update(check.meta())
        if check.quat_order == "xyzw":  # written against mjlab's convention: read converted
            bq = bq[..., [3, 0, 1, 2]]
    root = 0
    if "body_names" in d:
        bnames = [str(n) for n in d["body_names"]]
        if "pelvis" in bnames:
            root = bnames.index("pelvis")
    fps = float(np.asarray(d["fps"]).reshape(-1)[0])
    m = Motion(
        fps=fps, joint_names=names, body_names=get_spec("g1_29dof").body_names, root_pos=bp[:, root],
        root_quat=bq[:, root], dof_pos=jp,
        dof_vel=np.asarray(d["joint_vel"], dtype=np.float64) if "joint_vel" in d else None,
        root_lin_vel=np.asarray(d["body_lin_vel_w"], dtype=np.float64)[:, root] if "body_lin_vel_w" in d else None,
        root_ang_vel=np.asarray(d["body_ang_vel_w"], dtype=np.float64)[:, root] if "body_ang_vel_w" in d else None,
        meta=meta,
    )  # fmt: skip
    return checked(m, str(p))


@lru_cache(maxsize=1)
def _unitree_g1() -> mujoco.MjModel:
    from asap.robot.assets import g1_mjcf_path
    from asap.robot.model import load_description

    return load_description(g1_mjcf_path()).compile()  # the raw description (MJCF or URDF), as Unitree made it


def write_mjlab_npz(motion: Motion, path: str | Path, overwrite: bool = False, joint_order: str = "unitree") -> Path:
    """Write an mjlab tracking npz at the motion's fps with body states of Unitree's 30-body G1.

    ``joint_order`` ``unitree`` (mjlab, depth-first) or ``isaaclab`` (BeyondMimic in IsaacLab, breadth-first)
    orders both the joint columns and the bodies; ``joint_names`` / ``body_names`` are written too.
    """
    if joint_order not in ("unitree", "isaaclab"):
        raise MotionFormatError(f"an mjlab npz holds 29 joints in order 'unitree' or 'isaaclab', not {joint_order!r}")
    from asap.utils.rotations import angular_velocity

    motion.check()
    p = check_writable(path, overwrite)
    model = _unitree_g1()
    hinge = [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]
    if tuple(hinge) != MOTOR_NAMES:
        raise RuntimeError("the G1 MJCF's joint order is not Unitree's motor order")
    q = motor_columns(motion)
    data = mujoco.MjData(model)
    t = motion.num_frames
    bp = np.zeros((t, model.nbody - 1, 3))
    bq = np.zeros((t, model.nbody - 1, 4))
    quat = motion.root_quat / np.linalg.norm(motion.root_quat, axis=-1, keepdims=True)
    for f in range(t):
        data.qpos[:3] = motion.root_pos[f]
        data.qpos[3:7] = quat[f]
        data.qpos[7:] = q[f]
        mujoco.mj_kinematics(model, data)
        bp[f] = data.xpos[1:]
        bq[f] = data.xquat[1:]
    dt = 1.0 / motion.fps
    model_bodies = [model.body(i).name for i in range(1, model.nbody)]
    bodies = body_order(joint_order)
    bi = [model_bodies.index(b) for b in bodies]
    ji = [MOTOR_NAMES.index(n) for n in JOINT_ORDERS[joint_order]]
    bp, bq, q = bp[:, bi], bq[:, bi], q[:, ji]
    out = {
        "fps": np.array([motion.fps]),
        "joint_pos": q.astype(np.float32),
        "joint_vel": (np.gradient(q, dt, axis=0) if motion.dof_vel is None else _vel29(motion)[:, ji]).astype(
            np.float32
        ),
        "body_pos_w": bp.astype(np.float32),
        "body_quat_w": bq.astype(np.float32),
        "body_lin_vel_w": np.gradient(bp, dt, axis=0).astype(np.float32),
        "body_ang_vel_w": angular_velocity(bq, dt).astype(np.float32),
        "joint_names": np.array(JOINT_ORDERS[joint_order]),
        "body_names": np.array(bodies),
    }
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(p)
    return p


def _vel29(motion: Motion) -> np.ndarray:
    assert motion.dof_vel is not None
    out = np.zeros((motion.num_frames, len(MOTOR_NAMES)))
    have = {n: i for i, n in enumerate(motion.joint_names)}
    for j, n in enumerate(MOTOR_NAMES):
        if n in have:
            out[:, j] = motion.dof_vel[:, have[n]]
    return out
