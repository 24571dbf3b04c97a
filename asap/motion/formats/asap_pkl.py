"""The ASAP reference's retargeted motion ``.pkl`` (joblib): import and export.

A file is a dict ``{motion_key: {root_trans_offset (T,3) f32, root_rot (T,4) xyzw, pose_aa (T,1+J+3,3) f32,
dof (T,J) f32, smpl_joints (T,24,3) f32, fps}}`` with J = 23 (joint order of the 23-DoF spec). ``pose_aa[:,0]``
is the root rotation vector, ``pose_aa[:,1+j] = dof[:,j] * axis_j`` (the joint axes of the MJCF), and the last
three rows (extended bodies) are zero. ``smpl_joints`` is kept in ``Motion.extras`` so a round trip is exact.

An optional ``action`` (T,J) (recorded rollouts) follows the reference's alignment, the action applied during
(t_f-1, t_f] in frame f (asap-method.md section 5.1); inside the project frame f holds the action applied after
it (:data:`asap.control.ACTION_ALIGNMENT`), so import shifts it one frame earlier (the last frame gets 0) and
export one frame later (the first frame gets 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

from asap.control import ACTION_ALIGNMENT
from asap.motion.formats._common import check_writable, checked, joint_axes, load_pickle, read_fps, spec_for_count
from asap.motion.formats.joint_order import order_names
from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import EXTENDED_BODIES, RobotSpec, get_spec
from asap.utils.rotations import axis_angle_to_quat, quat_to_axis_angle, wxyz_to_xyzw, xyzw_to_wxyz

KEY_META = "asap_pkl_key"
"""``Motion.meta`` entry holding the pkl's motion key (reused on export)."""
DEFAULT_FPS = 30
"""Frame rate of the reference's files when ``fps`` is absent."""


def _load_dict(path: Path) -> dict[str, Any]:
    return as_motion_dict(load_pickle(path), path)


def as_motion_dict(data: Any, path: Path) -> dict[str, Any]:
    """``{key: motion dict}`` of a loaded reference pkl (a bare motion dict is keyed by the file stem)."""
    if not isinstance(data, dict):
        raise MotionFormatError(f"{path}: expected a dict of motions, got {type(data).__name__}")
    if "root_trans_offset" in data:  # a bare motion dict, not wrapped in {key: ...}
        data = {path.stem: data}
    if not data:
        raise MotionFormatError(f"{path}: the pkl holds no motions")
    return data


def _to_motion(key: str, d: Any, where: str, joint_order: str | None = None) -> Motion:
    if not isinstance(d, dict):
        raise MotionFormatError(f"{where}: entry {key!r} is a {type(d).__name__}, not a motion dict")
    missing = [k for k in ("root_trans_offset",) if k not in d]
    if "dof" not in d and "pose_aa" not in d:
        missing.append("dof (or pose_aa)")
    if "root_rot" not in d and "pose_aa" not in d:
        missing.append("root_rot (or pose_aa)")
    if missing:
        raise MotionFormatError(f"{where}: motion {key!r} is missing key(s) {missing}")
    root_pos = np.asarray(d["root_trans_offset"], dtype=np.float64)
    pose_aa = np.asarray(d["pose_aa"], dtype=np.float64) if "pose_aa" in d else None
    if "dof" in d:
        dof = np.asarray(d["dof"], dtype=np.float64)
        if dof.ndim != 2:
            raise MotionFormatError(f"{where}: dof must have shape (T, J), got {dof.shape}")
        spec = spec_for_count(dof.shape[1], f"{where}: dof")
    else:
        assert pose_aa is not None
        nb = pose_aa.shape[1] if pose_aa.ndim == 3 else -1
        spec = spec_for_count(nb - 1 - len(EXTENDED_BODIES), f"{where}: pose_aa")
        dof = (pose_aa[:, 1 : 1 + spec.num_joints] * joint_axes(spec)[None]).sum(-1)
    if "root_rot" in d:
        rr = np.asarray(d["root_rot"], dtype=np.float64)
        if rr.ndim != 2 or rr.shape[1] != 4:
            raise MotionFormatError(f"{where}: root_rot must have shape (T, 4) xyzw, got {rr.shape}")
        root_quat = xyzw_to_wxyz(rr)
    else:
        assert pose_aa is not None
        root_quat = axis_angle_to_quat(pose_aa[:, 0])
    fps = read_fps(d.get("fps", DEFAULT_FPS), where)
    meta: dict[str, Any] = {"source": str(where), "format": "asap_pkl", KEY_META: str(key)}
    if "fps" not in d:
        meta["fps_assumed"] = True
    names = spec.joint_names
    meta["joint_order"] = "unitree" if spec.num_joints == 29 else "unitree_23"
    meta["joint_order_check"] = "assumed: the reference (IsaacGym) writes the depth-first order"
    if joint_order is not None:
        names = order_names(joint_order, spec.num_joints, f"{where}: dof")
        meta.update(joint_order=joint_order, joint_order_check="given")
    extras, dropped = {}, []
    t = root_pos.shape[0] if root_pos.ndim else -1
    for k, v in d.items():
        if k in ("root_trans_offset", "root_rot", "pose_aa", "dof", "fps"):
            continue
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == t:
            extras[k] = v  # per-frame data (smpl_joints, contact_mask, ...) travels with the motion
        else:
            dropped.append(str(k))  # per-clip values (betas, names, ...) are not motion data
    if dropped:
        meta["dropped_keys"] = dropped
    m = Motion(
        fps=fps, joint_names=names, body_names=spec.body_names, root_pos=root_pos,
        root_quat=root_quat, dof_pos=dof, extras=extras, meta=meta,
    )  # fmt: skip
    for k in ("action", "dof_vel", "root_lin_vel", "root_ang_vel"):
        if k in d:
            setattr(m, k, np.asarray(d[k], dtype=np.float64))
            m.extras.pop(k, None)
    if m.action is not None and m.action.ndim == 2:  # reference alignment -> ours (module docstring)
        m.action = np.concatenate([m.action[1:], np.zeros_like(m.action[:1])], axis=0)
        m.meta["action_alignment"] = ACTION_ALIGNMENT
    return checked(m, f"{where}: motion {key!r}")


def read_asap_pkl_all(path: str | Path, joint_order: str | None = None) -> dict[str, Motion]:
    """Every motion of a reference pkl, by motion key."""
    p = Path(path)
    return {str(k): _to_motion(str(k), v, str(p), joint_order) for k, v in _load_dict(p).items()}


def read_asap_pkl(path: str | Path, key: str | None = None, joint_order: str | None = None, data: Any = None) -> Motion:
    """One motion of a reference pkl: ``key``, or the only one (an error lists the keys when there are several).

    Joint columns are in the depth-first order the reference (IsaacGym) writes unless ``joint_order`` says
    otherwise; ``data`` is the already loaded pickle, if any. Per-frame arrays other than the motion's own
    (``smpl_joints``, PBHC's ``contact_mask``, ...) are kept in ``extras``; per-clip values are dropped and
    listed in ``meta['dropped_keys']``; a missing ``fps`` is 30 (``meta['fps_assumed']``).
    """
    p = Path(path)
    data = _load_dict(p) if data is None else as_motion_dict(data, p)
    if key is None:
        if len(data) > 1:
            keys = list(data)
            raise MotionFormatError(f"{p} holds {len(keys)} motions; choose one with key= (--key): {keys[:5]}")
        key = next(iter(data))
    if key not in data:
        raise MotionFormatError(f"{p}: no motion {key!r}; keys: {list(data)[:5]}")
    return _to_motion(key, data[key], str(p), joint_order)


def motion_to_asap_dict(motion: Motion, spec: RobotSpec | str = "g1_23dof") -> dict[str, Any]:
    """The reference's per-motion dict of a motion (reordered to the spec's joints)."""
    rs = get_spec(spec) if isinstance(spec, str) else spec
    m = motion.for_robot(rs)
    m.check()
    t, j = m.num_frames, rs.num_joints
    pose_aa = np.zeros((t, 1 + j + len(EXTENDED_BODIES), 3), dtype=np.float32)
    pose_aa[:, 0] = quat_to_axis_angle(m.root_quat)
    pose_aa[:, 1 : 1 + j] = m.dof_pos[:, :, None] * joint_axes(rs)[None]
    fps: int | float = int(m.fps) if float(m.fps).is_integer() else float(m.fps)
    out: dict[str, Any] = {
        "root_trans_offset": m.root_pos.astype(np.float32),
        "pose_aa": pose_aa,
        "dof": m.dof_pos.astype(np.float32),
        "root_rot": wxyz_to_xyzw(m.root_quat).astype(np.float64),
        "smpl_joints": np.asarray(m.extras.get("smpl_joints", np.zeros((t, 24, 3))), dtype=np.float32),
        "fps": fps,
    }
    for k in ("action", "dof_vel", "root_lin_vel", "root_ang_vel"):
        v = getattr(m, k)
        if v is not None:
            out[k] = v.astype(np.float32)
    if m.action is not None:  # ours -> the reference's alignment (module docstring)
        out["action"] = np.concatenate([np.zeros_like(out["action"][:1]), out["action"][:-1]], axis=0)
    for k, v in m.extras.items():
        out.setdefault(k, v)
    return out


def write_asap_pkl(
    motions: Motion | dict[str, Motion], path: str | Path, overwrite: bool = False, spec: RobotSpec | str = "g1_23dof"
) -> Path:
    """Write one motion (key from ``meta``, else the file stem) or a dict of them as a reference pkl."""
    p = check_writable(path, overwrite)
    if isinstance(motions, Motion):
        motions = {str(motions.meta.get(KEY_META, p.stem)): motions}
    data = {k: motion_to_asap_dict(m, spec) for k, m in motions.items()}
    tmp = p.with_name(p.name + ".tmp")
    joblib.dump(data, tmp)
    tmp.replace(p)
    return p
