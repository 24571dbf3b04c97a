"""Read and write motions in other tools' formats, chosen by file extension and, for ``.npz`` / ``.pkl``, by keys.

=============  ==========  ==========================================================================
format         extension   notes
=============  ==========  ==========================================================================
``motion``     .npz        ours (:class:`asap.motion.motion.Motion`)
``mjlab``      .npz        mjlab / BeyondMimic tracking npz (no names: joint order checked by FK)
``isaaclab``   .npz        IsaacLab motion-loader npz ("AMASS retargeted for G1"; by names)
``asap_pkl``   .pkl        the ASAP reference's (and PBHC's) retargeted joblib dict
``gmr``        .pkl        GMR robot-motion pickle (root_rot xyzw)
``csv``        .csv        Unitree/LAFAN-style G1 csv (no header, quat xyzw, 29 or 23 joints)
=============  ==========  ==========================================================================

:data:`LAYOUTS` is the one list of what each layout holds; detection, the refusal of an unknown file and
docs/motion.md's table follow it. Orders of nameless joint columns: :mod:`asap.motion.formats.joint_order`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asap.motion.formats._common import load_pickle
from asap.motion.formats.asap_pkl import read_asap_pkl, read_asap_pkl_all, write_asap_pkl
from asap.motion.formats.gmr_pkl import is_gmr_dict, read_gmr_pkl, write_gmr_pkl
from asap.motion.formats.isaaclab_npz import read_isaaclab_npz, write_isaaclab_npz
from asap.motion.formats.joint_order import JOINT_ORDERS
from asap.motion.formats.mjlab_npz import read_mjlab_npz, write_mjlab_npz
from asap.motion.formats.unitree_csv import read_unitree_csv, write_unitree_csv
from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import RobotSpec


@dataclass(frozen=True)
class Layout:
    """A motion layout we read and write."""

    name: str
    """Format name (``fmt=``, CLI ``--to``)."""
    suffix: str
    """File extension."""
    title: str
    """What it is, for people."""
    keys: tuple[str, ...]
    """Keys it needs (a ``|`` separates alternatives); empty for csv."""
    signature: tuple[str, ...]
    """Keys whose presence identifies it among the layouts of its extension."""


LAYOUTS: tuple[Layout, ...] = (
    Layout("motion", ".npz", "ours", ("fps", "joint_names", "root_pos", "root_quat", "dof_pos"),
           ("dof_pos", "root_quat")),
    Layout("mjlab", ".npz", "mjlab/BeyondMimic", ("fps", "joint_pos", "body_pos_w", "body_quat_w"),
           ("joint_pos", "body_pos_w")),
    Layout("isaaclab", ".npz", "IsaacLab motion (AMASS retargeted for G1)",
           ("fps", "dof_names", "body_names", "dof_positions", "body_positions", "body_rotations"),
           ("dof_positions", "body_positions")),
    Layout("asap_pkl", ".pkl", "ASAP/PBHC", ("root_trans_offset", "dof|pose_aa", "root_rot|pose_aa"),
           ("root_trans_offset",)),
    Layout("gmr", ".pkl", "GMR", ("fps", "root_pos", "root_rot", "dof_pos"), ("root_pos", "root_rot", "dof_pos")),
    Layout("csv", ".csv", "Unitree/LAFAN G1 csv", (), ()),
)  # fmt: skip
"""Every layout we read and write."""

FORMATS = tuple(layout.name for layout in LAYOUTS)
"""Format names accepted by ``fmt=``."""
MOTION_SUFFIXES = tuple(dict.fromkeys(layout.suffix for layout in LAYOUTS))
"""File extensions that hold motions."""
SMPL_KEYS = ("poses", "trans")
"""Keys of AMASS SMPL parameters (a human motion: retarget it, do not convert it)."""

__all__ = [
    "FORMATS", "JOINT_ORDERS", "LAYOUTS", "MOTION_SUFFIXES", "detect_format", "read_motion", "write_motion",
    "read_asap_pkl", "read_asap_pkl_all", "write_asap_pkl", "read_gmr_pkl", "write_gmr_pkl", "read_isaaclab_npz",
    "write_isaaclab_npz", "read_mjlab_npz", "write_mjlab_npz", "read_unitree_csv", "write_unitree_csv",
]  # fmt: skip


def layouts_line() -> str:
    """The layouts we read, with their keys, in one line (for refusals)."""
    return "; ".join(f"{x.title} {x.suffix}" + (f" ({', '.join(x.keys)})" if x.keys else "") for x in LAYOUTS)


def _unknown(path: Path, keys: list[str]) -> MotionFormatError:
    return MotionFormatError(f"{path}: unknown motion layout (keys {sorted(keys)}); we read: {layouts_line()}")


def _npz_format(path: Path) -> str:
    """Layout of an existing npz from its keys; one-line error for SMPL parameters or an unknown layout."""
    with zipfile.ZipFile(path) as z:
        keys = [n[:-4] if n.endswith(".npy") else n for n in z.namelist()]
    for layout in LAYOUTS:
        if layout.suffix == ".npz" and any(k in keys for k in layout.signature):
            return layout.name
    if all(k in keys for k in SMPL_KEYS):
        raise MotionFormatError(
            f"{path}: AMASS/SMPL body parameters ({', '.join(SMPL_KEYS)}), a human motion: retarget it to the G1 "
            "with `asap retarget FILE --body-model DIR`"
        )
    raise _unknown(path, keys)


def _pkl_format(data: Any, path: Path) -> tuple[str, Any]:
    """Layout of a loaded pickle and the dict to read (a GMR motion may sit under a key)."""
    if is_gmr_dict(data):
        return "gmr", data
    if isinstance(data, dict) and data and "root_trans_offset" not in data:
        if all(isinstance(v, dict) for v in data.values()):
            if all(is_gmr_dict(v) for v in data.values()):
                return "gmr", data
            if not any("root_trans_offset" in v or "pose_aa" in v for v in data.values()):
                raise _unknown(path, [f"{k}: {sorted(v)}" for k, v in list(data.items())[:3]])
        else:
            raise _unknown(path, [str(k) for k in data])
    return "asap_pkl", data


def detect_format(path: str | Path, for_writing: bool = False) -> str:
    """Format of a file from its extension and, for an existing ``.npz`` / ``.pkl`` read, its keys.

    Raises :class:`MotionFormatError` for an unknown extension, and (reading) for SMPL parameters or an unknown
    layout, naming the keys found and the layouts we read.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in MOTION_SUFFIXES:
        if suffix == ".bvh" and not for_writing:
            raise MotionFormatError(f"{p}: human motion capture (BVH), not a robot motion: retarget it to the G1 with "
                                    f"`asap retarget {p} -o OUT.npz`")  # fmt: skip
        raise MotionFormatError(f"{p}: unknown motion file extension {suffix!r}; use one of {list(MOTION_SUFFIXES)}")
    default = next(x.name for x in LAYOUTS if x.suffix == suffix)
    if for_writing or not p.exists():
        return default
    if suffix == ".npz" and zipfile.is_zipfile(p):
        return _npz_format(p)
    if suffix == ".pkl":
        return _pkl_format(load_pickle(p), p)[0]
    return default


def robot_motion_layout(path: str | Path) -> str | None:
    """The layout (a :data:`FORMATS` name) of an existing robot motion file that :func:`read_motion` reads, or None
    for anything else (human sources such as SMPL parameters or BVH, unknown files): what tells `asap retarget` and
    `asap pipeline` that a clip needs no retargeting."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return detect_format(p)
    except (MotionFormatError, OSError, ValueError):
        return None


def read_motion(
    path: str | Path, fmt: str | None = None, key: str | None = None, fps: float | None = None,
    joint_order: str | None = None,
) -> Motion:  # fmt: skip
    """Read a motion in any known layout.

    ``key``: motion of a multi-motion pkl; ``fps``: csv frame rate; ``joint_order``: order of nameless joint
    columns (a key of :data:`JOINT_ORDERS`), overriding the check or the default (``meta['joint_order']`` records
    the order used).
    """
    p = Path(path)
    if not p.exists():
        raise MotionFormatError(f"{p}: no such file")
    if joint_order is not None and joint_order not in JOINT_ORDERS:
        raise MotionFormatError(f"unknown joint order {joint_order!r}; choose one of {list(JOINT_ORDERS)}")
    data = None
    if fmt is None and p.suffix.lower() == ".pkl":
        fmt, data = _pkl_format(load_pickle(p), p)
    f = fmt or detect_format(p)
    if f == "motion":
        return Motion.load(p)
    if f == "mjlab":
        return read_mjlab_npz(p, joint_order=joint_order)
    if f == "isaaclab":
        return read_isaaclab_npz(p)
    if f == "asap_pkl":
        return read_asap_pkl(p, key=key, joint_order=joint_order, data=data)
    if f == "gmr":
        if isinstance(data, dict) and not is_gmr_dict(data):  # {key: GMR dict}
            if key is None and len(data) > 1:
                keys = list(data)[:5]
                raise MotionFormatError(f"{p} holds {len(data)} motions; choose one with key= (--key): {keys}")
            k = key if key is not None else next(iter(data))
            if k not in data:
                raise MotionFormatError(f"{p}: no motion {k!r}; keys: {list(data)[:5]}")
            data = data[k]
        return read_gmr_pkl(p, joint_order=joint_order, data=data)
    if f == "csv":
        return read_unitree_csv(p, fps=fps, joint_order=joint_order)
    raise MotionFormatError(f"unknown motion format {f!r}; use one of {list(FORMATS)}")


def write_motion(
    motion: Motion, path: str | Path, fmt: str | None = None, overwrite: bool = False,
    spec: RobotSpec | str = "g1_23dof", joint_order: str | None = None,
) -> Path:  # fmt: skip
    """Write a motion in ``fmt`` (default: the first layout of ``path``'s extension: ours, ASAP pkl, csv).

    ``spec`` chooses the joint set of the ASAP pkl (the reference's files are 23-DoF); ``joint_order`` the column
    order of an mjlab npz (``unitree`` or ``isaaclab``) or a csv (any of :data:`JOINT_ORDERS`).
    """
    p = Path(path)
    f = fmt or detect_format(p, for_writing=True)
    layout = next((x for x in LAYOUTS if x.name == f), None)
    if layout is None:
        raise MotionFormatError(f"unknown motion format {f!r}; use one of {list(FORMATS)}")
    if p.suffix.lower() != layout.suffix:
        raise MotionFormatError(f"{p}: a {layout.title} file ends in {layout.suffix}")
    if joint_order is not None and f not in ("mjlab", "csv"):
        raise MotionFormatError(f"a joint order applies to mjlab npz and csv outputs; {layout.title} files hold names")
    if f == "motion":
        return motion.save(p, overwrite=overwrite)
    if f == "mjlab":
        return write_mjlab_npz(motion, p, overwrite=overwrite, joint_order=joint_order or "unitree")
    if f == "isaaclab":
        return write_isaaclab_npz(motion, p, overwrite=overwrite)
    if f == "asap_pkl":
        return write_asap_pkl(motion, p, overwrite=overwrite, spec=spec)
    if f == "gmr":
        return write_gmr_pkl(motion, p, overwrite=overwrite)
    return write_unitree_csv(motion, p, overwrite=overwrite, joint_order=joint_order or "unitree")
