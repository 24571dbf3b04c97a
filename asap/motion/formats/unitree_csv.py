"""Unitree/LAFAN-style G1 csv: no header; per row root pos (3), root quat **xyzw** (4), 29 (or 23) joint angles.

The joints follow Unitree's motor order (left leg 6, right leg 6, waist yaw/roll/pitch, left arm 7, right
arm 7); a 23-column file is ASAP's 23-DoF G1 in the same depth-first order (no wrists). The file carries no
names, body poses or frame rate: the order is the depth-first one of the column count unless ``joint_order`` says
otherwise (recorded in ``meta['joint_order']``), 30 fps unless told otherwise. Rows of another robot (an H1's 19
or 27 joints) are refused by their column count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asap.motion.formats._common import check_writable, checked, motor_columns, normalize_quat
from asap.motion.formats.joint_order import JOINT_ORDERS, default_order, order_names
from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import MOTOR_NAMES, get_spec
from asap.utils.rotations import wxyz_to_xyzw, xyzw_to_wxyz

DEFAULT_FPS = 30.0
"""Frame rate assumed for csv files (LAFAN1 retargeted to the G1 is 30 fps)."""
ROOT_COLUMNS = 3 + 4
"""Columns before the joints: root position and quaternion (xyzw)."""
NUM_COLUMNS = ROOT_COLUMNS + len(MOTOR_NAMES)
"""Columns per row of a 29-joint file (36)."""
OTHER_ROBOTS = {19: "a Unitree H1 (19 joints)", 27: "a Unitree H1-2 (27 joints)"}
"""Joint counts of other robots' csv files, named in the refusal."""


def read_unitree_csv(path: str | Path, fps: float | None = None, joint_order: str | None = None) -> Motion:
    """Read a G1 csv (29 or 23 joint columns); ``joint_order`` overrides the depth-first default."""
    p = Path(path)
    if not p.exists():
        raise MotionFormatError(f"{p}: no such file")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise MotionFormatError(f"{p}: not a text csv file") from None
    rows = [r for r in text.splitlines() if r.strip()]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # tolerate one header line
    if not rows:
        raise MotionFormatError(f"{p}: the csv holds no rows")
    try:
        data = np.array([[float(x) for x in r.split(",")] for r in rows], dtype=np.float64)
    except ValueError as e:
        raise MotionFormatError(f"{p}: non-numeric or ragged csv ({e})") from None
    joints = data.shape[-1] - ROOT_COLUMNS
    if data.ndim != 2 or joints not in {len(v) for v in JOINT_ORDERS.values()}:
        other = f" ({joints} joints: the shape of {OTHER_ROBOTS[joints]} csv)" if joints in OTHER_ROBOTS else ""
        raise MotionFormatError(
            f"{p}: a G1 csv row has {NUM_COLUMNS} columns (root pos 3, quat xyzw 4, 29 joints) or "
            f"{ROOT_COLUMNS + len(JOINT_ORDERS['unitree_23'])} (23 joints), got {data.shape[-1]}{other}"
        )
    order = joint_order or default_order(joints, f"{p}")
    names = order_names(order, joints, f"{p}")
    rate = DEFAULT_FPS if fps is None else float(fps)
    m = Motion(
        fps=rate, joint_names=names, body_names=get_spec("g1_29dof").body_names, root_pos=data[:, :3],
        root_quat=xyzw_to_wxyz(normalize_quat(data[:, 3:7], f"{p}: root quaternion")), dof_pos=data[:, 7:],
        meta={"source": str(p), "format": "unitree_csv", "fps_assumed": fps is None, "joint_order": order,
              "joint_order_check": "given" if joint_order else "assumed: a csv has no names or body poses"},
    )  # fmt: skip
    return checked(m, str(p))


def _numeric(row: str) -> bool:
    try:
        float(row.split(",")[0])
    except ValueError:
        return False
    return True


def write_unitree_csv(motion: Motion, path: str | Path, overwrite: bool = False, joint_order: str = "unitree") -> Path:
    """Write a motion as a G1 csv with the joints of ``joint_order`` (default: Unitree's 29; joints the motion
    lacks, the held wrists, get their default)."""
    motion.check()
    if joint_order not in JOINT_ORDERS:
        raise MotionFormatError(f"unknown joint order {joint_order!r}; choose one of {list(JOINT_ORDERS)}")
    p = check_writable(path, overwrite)
    q = motor_columns(motion)[:, [MOTOR_NAMES.index(n) for n in JOINT_ORDERS[joint_order]]]
    data = np.concatenate([motion.root_pos, wxyz_to_xyzw(motion.root_quat), q], axis=1).astype(np.float32)
    tmp = p.with_name(p.name + ".tmp")
    np.savetxt(tmp, data, delimiter=",", fmt="%.9g")
    tmp.replace(p)
    return p
