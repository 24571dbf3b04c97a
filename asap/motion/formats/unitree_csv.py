"""Unitree/LAFAN-style G1 csv: no header; per row root pos (3), root quat **xyzw** (4), 29 joint angles.

The joints follow Unitree's motor order (left leg 6, right leg 6, waist yaw/roll/pitch, left arm 7, right
arm 7). The file carries no frame rate: 30 fps unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asap.motion.formats._common import check_writable, motor_columns, normalize_quat
from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import MOTOR_NAMES, get_spec
from asap.utils.rotations import wxyz_to_xyzw, xyzw_to_wxyz

DEFAULT_FPS = 30.0
"""Frame rate assumed for csv files (LAFAN1 retargeted to the G1 is 30 fps)."""
NUM_COLUMNS = 3 + 4 + len(MOTOR_NAMES)
"""Columns per row (36)."""


def read_unitree_csv(path: str | Path, fps: float | None = None) -> Motion:
    """Read a G1 csv as a 29-joint motion."""
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
    if data.ndim != 2 or data.shape[1] != NUM_COLUMNS:
        raise MotionFormatError(
            f"{p}: a G1 csv row has {NUM_COLUMNS} columns (root pos 3, quat xyzw 4, 29 joints), got {data.shape[-1]}"
        )
    rate = DEFAULT_FPS if fps is None else float(fps)
    m = Motion(
        fps=rate, joint_names=MOTOR_NAMES, body_names=get_spec("g1_29dof").body_names, root_pos=data[:, :3],
        root_quat=xyzw_to_wxyz(normalize_quat(data[:, 3:7], f"{p}: root quaternion")), dof_pos=data[:, 7:],
        meta={"source": str(p), "format": "unitree_csv", "fps_assumed": fps is None},
    )  # fmt: skip
    try:
        m.check()
    except MotionFormatError as e:
        raise MotionFormatError(f"{p}: {e}") from None
    return m


def _numeric(row: str) -> bool:
    try:
        float(row.split(",")[0])
    except ValueError:
        return False
    return True


def write_unitree_csv(motion: Motion, path: str | Path, overwrite: bool = False) -> Path:
    """Write a motion as a G1 csv (29 joints; joints the motion lacks, the held wrists, get their default)."""
    motion.check()
    p = check_writable(path, overwrite)
    data = np.concatenate([motion.root_pos, wxyz_to_xyzw(motion.root_quat), motor_columns(motion)], axis=1).astype(
        np.float32
    )
    tmp = p.with_name(p.name + ".tmp")
    np.savetxt(tmp, data, delimiter=",", fmt="%.9g")
    tmp.replace(p)
    return p
