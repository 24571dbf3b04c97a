"""Read and write motions in other tools' formats, chosen by file extension (and content for ``.npz``).

=============  ==========  ==================================================================
format         extension   notes
=============  ==========  ==================================================================
``motion``     .npz        ours (:class:`asap.motion.motion.Motion`)
``mjlab``      .npz        mjlab / BeyondMimic tracking npz (detected by its keys)
``asap_pkl``   .pkl        the ASAP reference's retargeted joblib dict
``csv``        .csv        Unitree/LAFAN-style G1 csv (no header, quat xyzw, 29 joints)
=============  ==========  ==================================================================
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from asap.motion.formats.asap_pkl import read_asap_pkl, read_asap_pkl_all, write_asap_pkl
from asap.motion.formats.mjlab_npz import is_mjlab_npz, read_mjlab_npz, write_mjlab_npz
from asap.motion.formats.unitree_csv import read_unitree_csv, write_unitree_csv
from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import RobotSpec

FORMATS = ("motion", "mjlab", "asap_pkl", "csv")
"""Format names accepted by ``fmt=``."""
MOTION_SUFFIXES = (".npz", ".pkl", ".csv")
"""File extensions that hold motions."""

__all__ = [
    "FORMATS", "MOTION_SUFFIXES", "detect_format", "read_motion", "write_motion", "read_asap_pkl",
    "read_asap_pkl_all", "write_asap_pkl", "read_mjlab_npz", "write_mjlab_npz", "read_unitree_csv",
    "write_unitree_csv",
]  # fmt: skip


def detect_format(path: str | Path, for_writing: bool = False) -> str:
    """Format of a file from its extension (and, for an existing ``.npz``, its keys)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".pkl":
        return "asap_pkl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".npz":
        if not for_writing and p.exists() and zipfile.is_zipfile(p) and is_mjlab_npz(p):
            return "mjlab"
        return "motion"
    raise MotionFormatError(f"{p}: unknown motion file extension {suffix!r}; use one of {list(MOTION_SUFFIXES)}")


def read_motion(path: str | Path, fmt: str | None = None, key: str | None = None, fps: float | None = None) -> Motion:
    """Read a motion in any known format (``key``: motion of a multi-motion pkl; ``fps``: csv frame rate)."""
    p = Path(path)
    if not p.exists():
        raise MotionFormatError(f"{p}: no such file")
    f = fmt or detect_format(p)
    if f == "motion":
        return Motion.load(p)
    if f == "mjlab":
        return read_mjlab_npz(p)
    if f == "asap_pkl":
        return read_asap_pkl(p, key=key)
    if f == "csv":
        return read_unitree_csv(p, fps=fps)
    raise MotionFormatError(f"unknown motion format {f!r}; use one of {list(FORMATS)}")


def write_motion(
    motion: Motion, path: str | Path, fmt: str | None = None, overwrite: bool = False,
    spec: RobotSpec | str = "g1_23dof",
) -> Path:  # fmt: skip
    """Write a motion in the format of ``path``'s extension (``.npz`` = ours unless ``fmt='mjlab'``).

    ``spec`` chooses the joint set of the ASAP pkl (the reference's files are 23-DoF).
    """
    f = fmt or detect_format(path, for_writing=True)
    if f == "motion":
        p = Path(path)
        if p.suffix != ".npz":
            raise MotionFormatError(f"{p}: our motion files end in .npz")
        return motion.save(p, overwrite=overwrite)
    if f == "mjlab":
        return write_mjlab_npz(motion, path, overwrite=overwrite)
    if f == "asap_pkl":
        return write_asap_pkl(motion, path, overwrite=overwrite, spec=spec)
    if f == "csv":
        return write_unitree_csv(motion, path, overwrite=overwrite)
    raise MotionFormatError(f"unknown motion format {f!r}; use one of {list(FORMATS)}")
