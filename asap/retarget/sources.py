"""Reading any human source (``builtin:NAME``, .bvh, AMASS/SMPL .npz) and picking its correspondence table."""

from __future__ import annotations

import warnings
from pathlib import Path

from asap.retarget.builtin import CLIPS, builtin_clip
from asap.retarget.bvh import load_bvh
from asap.retarget.human import HumanMotion
from asap.retarget.skeletons import SkeletonError, UpAxisWarning, detect_up, match_skeleton
from asap.retarget.smpl import load_smpl_human

FORMATS = ("bvh", "smpl", "builtin")
"""Source formats."""


def refuse_robot_motion(source: str | Path) -> None:
    """Raise ``ValueError`` when ``source`` is already a robot motion file (a G1 clip of ours, ASAP's .pkl, GMR,
    mjlab/Isaac Lab .npz, Unitree .csv), naming the command that reads it instead of retargeting it."""
    from asap.motion.formats import robot_motion_layout

    layout = robot_motion_layout(source)
    if layout is not None:
        raise ValueError(f"{source}: already a robot motion ({layout} layout), not human motion: no retargeting "
                         f"needed; `asap motion convert {source} OUT.npz` reads it (or give it to `asap pretrain "
                         "motion=...` or `asap pipeline source=...` as it is)")  # fmt: skip


def detect_format(source: str | Path) -> str:
    """'builtin' for builtin:NAME, 'bvh' for .bvh, 'smpl' for .npz; ValueError otherwise (naming `asap motion
    convert` for a robot motion file)."""
    s = str(source)
    if s.startswith("builtin:"):
        return "builtin"
    refuse_robot_motion(s)
    suffix = Path(s).suffix.lower()
    if suffix == ".bvh":
        return "bvh"
    if suffix == ".npz":
        return "smpl"
    raise ValueError(f"{s}: cannot tell the format from the name; pass --format bvh|smpl|builtin")


def bvh_table(names: tuple[str, ...] | list[str], path: str = "") -> str:
    """Which shipped BVH table fits a skeleton, from its joint names (see :mod:`asap.retarget.skeletons`)."""
    return match_skeleton(names, where=path).table


def load_bvh_source(source: str | Path, units: str | float = "auto", up: str = "auto", table: str | None = None):
    """Read a BVH clip as keypoints (metres, z-up) with its skeleton family, table and up axis.

    ``up='auto'`` takes the up axis from the rest skeleton (one-line error when it cannot be told); a given axis
    that the rest skeleton contradicts is used with an :class:`UpAxisWarning`. Units are measured along the up
    axis. ``meta`` records ``table``, ``skeleton`` (the family), ``keypoints`` (table keypoint -> joint) and ``up``.
    """
    clip = load_bvh(source)
    match = match_skeleton(clip.names, table, str(source))
    if up == "auto":
        use, how = detect_up(clip.rest_positions(), clip.names, match, str(source)), "rest skeleton"
    else:
        use, how = up, "given"
        try:
            found = detect_up(clip.rest_positions(), clip.names, match, str(source))
        except SkeletonError:
            found = up
        if found != up:
            warnings.warn(f"{source}: --up {up}, but the rest skeleton stands along +{found}", UpAxisWarning, 2)
    human = clip.to_human(units=units, up=use)
    human.meta.update(table=match.table, skeleton=match.family, keypoints=match.keypoints, up_from=how)
    return human


def load_source(
    source: str | Path,
    fmt: str | None = None,
    body_model: str | Path | None = None,
    units: str | float = "auto",
    up: str = "auto",
    table: str | None = None,
) -> HumanMotion:
    """Read one human clip as keypoints (metres, z-up); ``units``, ``up`` and ``table`` concern BVH files
    (:func:`load_bvh_source`)."""
    fmt = fmt or detect_format(source)
    if fmt == "builtin":
        name = str(source).split(":", 1)[1] if str(source).startswith("builtin:") else str(source)
        return builtin_clip(name)
    if fmt == "bvh":
        return load_bvh_source(source, units=units, up=up, table=table)
    if fmt == "smpl":
        refuse_robot_motion(source)
        human = load_smpl_human(source, body_model)
        human.meta["table"] = "smpl"
        return human
    raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")


def table_for(human: HumanMotion) -> str:
    """Shipped table name for a loaded human clip."""
    if "table" in human.meta:
        return str(human.meta["table"])
    fmt = human.meta.get("format", "builtin")
    if fmt == "bvh":
        return bvh_table(human.names, human.source)
    return "smpl" if fmt == "smpl" else "builtin"


def expand_sources(source: str, fmt: str | None = None) -> list[str]:
    """A file, a folder (all .bvh / .npz files under it, sorted), builtin:NAME or builtin:all."""
    if source == "builtin:all":
        return [f"builtin:{n}" for n in CLIPS]
    if source.startswith("builtin:"):
        return [source]
    p = Path(source)
    if p.is_dir():
        exts = {"bvh": (".bvh",), "smpl": (".npz",)}.get(fmt or "", (".bvh", ".npz"))
        files = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in exts and f.is_file())
        if not files:
            raise FileNotFoundError(f"{p}: no {' or '.join(exts)} files in this folder")
        return files
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (built-in clips: builtin:{'|'.join(CLIPS)}|all)")
    return [str(p)]
