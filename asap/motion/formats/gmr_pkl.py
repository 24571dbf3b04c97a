"""GMR (General Motion Retargeting) robot-motion pickle: import and export.

A plain pickle of one dict: ``fps`` (number), ``root_pos`` (T, 3) m, ``root_rot`` (T, 4) **xyzw**, ``dof_pos``
(T, J) rad in the joint order of the robot's MJCF (for the G1: Unitree's depth-first motor order, 29 joints), and
optionally ``local_body_pos`` / ``link_body_list`` (bodies; not needed here) or ``dof_names``. The file carries no
joint names unless ``dof_names`` is present, and no world body poses to check an order against, so the columns are
read in the depth-first order of their count unless ``joint_order`` says otherwise (``meta['joint_order']``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from asap.motion.formats._common import check_writable, checked, load_pickle, motor_columns, normalize_quat, read_fps
from asap.motion.formats.joint_order import default_order, order_names
from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import MOTOR_NAMES, get_spec
from asap.utils.rotations import wxyz_to_xyzw, xyzw_to_wxyz

REQUIRED = ("fps", "root_pos", "root_rot", "dof_pos")
"""Keys of a GMR robot motion."""


def is_gmr_dict(data: Any) -> bool:
    """True for a dict with GMR's motion keys (``root_pos``, ``root_rot``, ``dof_pos``)."""
    return isinstance(data, dict) and {"root_pos", "root_rot", "dof_pos"} <= set(data)


def read_gmr_pkl(path: str | Path, joint_order: str | None = None, data: Any = None) -> Motion:
    """Read a GMR robot-motion pickle (``data``: the already loaded dict, if any)."""
    p = Path(path)
    d = load_pickle(p) if data is None else data
    if not isinstance(d, dict):
        raise MotionFormatError(f"{p}: expected a dict with {list(REQUIRED)}, got {type(d).__name__}")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise MotionFormatError(f"{p}: missing key(s) {missing}; a GMR motion needs {list(REQUIRED)}")
    q = np.asarray(d["dof_pos"], dtype=np.float64)
    rot = np.asarray(d["root_rot"], dtype=np.float64)
    if q.ndim != 2 or rot.ndim != 2 or rot.shape[1] != 4:
        raise MotionFormatError(f"{p}: dof_pos must be (T, J) and root_rot (T, 4) xyzw, got {q.shape}, {rot.shape}")
    meta: dict[str, Any] = {"source": str(p), "format": "gmr_pkl"}
    if d.get("dof_names") is not None and joint_order is None:
        names = tuple(str(n) for n in d["dof_names"])
        if len(names) != q.shape[1]:
            raise MotionFormatError(f"{p}: {len(names)} dof_names for {q.shape[1]} dof_pos columns")
        meta["joint_order"] = "names in the file"
    else:
        order = joint_order or default_order(q.shape[1], f"{p}: dof_pos")
        names = order_names(order, q.shape[1], f"{p}: dof_pos")
        how = "given" if joint_order else "assumed: GMR writes the MJCF's depth-first order"
        meta.update(joint_order=order, joint_order_check=how)
    m = Motion(
        fps=read_fps(d["fps"], str(p)), joint_names=names, body_names=get_spec("g1_29dof").body_names,
        root_pos=np.asarray(d["root_pos"], dtype=np.float64),
        root_quat=xyzw_to_wxyz(normalize_quat(rot, f"{p}: root_rot")), dof_pos=q, meta=meta,
    )  # fmt: skip
    return checked(m, str(p))


def write_gmr_pkl(motion: Motion, path: str | Path, overwrite: bool = False) -> Path:
    """Write a GMR robot-motion pickle: 29 joints in Unitree's order (held wrists at their default), root_rot xyzw."""
    motion.check()
    p = check_writable(path, overwrite)
    out = {
        "fps": float(motion.fps),
        "root_pos": motion.root_pos.astype(np.float64),
        "root_rot": wxyz_to_xyzw(motion.root_quat).astype(np.float64),
        "dof_pos": motor_columns(motion).astype(np.float64),
        "local_body_pos": None,
        "link_body_list": None,
    }
    assert out["dof_pos"].shape[1] == len(MOTOR_NAMES)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(out, f)
    tmp.replace(p)
    return p
