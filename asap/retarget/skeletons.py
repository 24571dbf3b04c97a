"""BVH skeleton families: which correspondence table fits a skeleton, which joints are its keypoints, which way is up.

The families are data (``configs/retarget/bvh_skeletons.yaml``): LAFAN1, CMU (MotionBuilder-friendly, 3dsMax-friendly
and original ASF names), Mixamo (with or without the ``mixamorig:`` prefix) and a generic family whose keypoints are
found by name patterns. :func:`match_skeleton` tries them in order and returns the first whose every table keypoint
resolves to a joint, or refuses in one line naming the keypoint that the closest family lacks and the tables that
exist. :func:`detect_up` reads the up axis from the rest skeleton (OFFSETs only): the line from the feet keypoints to
the neck keypoint of the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from asap.config import load_config
from asap.retarget.config import CONFIG_DIR, TABLES, RetargetConfig

FAMILIES_FILE = CONFIG_DIR / "bvh_skeletons.yaml"
"""The shipped skeleton families."""
UP_SHARE = 0.8
"""Smallest share of the feet-to-neck line along one axis for that axis to count as up (cos of about 37 degrees)."""
SIDES = {"Left": "left|l", "Right": "right|r"}
"""Side words a generic pattern accepts as a prefix or suffix of a Left*/Right* keypoint's joint name."""
RIG_PREFIX = re.compile(r"^(bip0?1|character\d*|mixamorig\d*)")
"""Rig prefixes dropped from names before generic patterns are tried."""


class SkeletonError(ValueError):
    """No table fits a skeleton, or its up axis cannot be told; one line naming the problem and the fix."""


class UpAxisWarning(UserWarning):
    """The up axis given for a BVH file is not the one its rest skeleton stands along."""


@dataclass
class Family:
    """A skeleton family: the table it uses and how its joints are named."""

    name: str = ""
    """Short name (recorded in the motion's meta)."""
    title: str = ""
    """What it is, for people."""
    table: str = "bvh_lafan"
    """Shipped correspondence table the family's keypoints are named for."""
    names: dict[str, list[str]] = field(default_factory=dict)
    """Table keypoint -> joint names to try in order (exact, after ``strip``); unlisted: the keypoint's own name."""
    require: list[str] = field(default_factory=list)
    """Joints (after ``strip``) that must exist for the family to apply."""
    strip: str = ""
    """Regular expression removed from every joint name before matching."""
    patterns: dict[str, list[str]] = field(default_factory=dict)
    """Generic family: table keypoint -> regular expressions tried in order on normalised names."""


@dataclass
class Families:
    """The contents of ``bvh_skeletons.yaml``."""

    families: list[Family] = field(default_factory=list)
    """Families in the order they are tried."""


@dataclass
class SkeletonMatch:
    """A skeleton matched to a table."""

    family: str
    """Name of the family that fits (``table`` when a table was given and matched by its own names)."""
    table: str
    """Table name or YAML path."""
    keypoints: dict[str, str]
    """Table keypoint -> joint name in the file."""


@cache
def families() -> tuple[Family, ...]:
    """The shipped families, in the order they are tried."""
    return tuple(load_config(Families, FAMILIES_FILE).families)


@cache
def table_keypoints(table: str) -> tuple[str, ...]:
    """The human keypoints a table matches (shipped name or YAML path)."""
    from asap.retarget.config import load_table

    return tuple(m.human for m in load_table(table).matches)


def _normalise(name: str, strip: str) -> str:
    n = re.sub(strip, "", name) if strip else name
    n = RIG_PREFIX.sub("", n.lower().strip())
    return re.sub(r"[\s_.\-]", "", n)


def _resolve(family: Family, names: tuple[str, ...], keys: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Keypoint -> joint for one family, and the keypoints left unresolved (in table order)."""
    stripped = {re.sub(family.strip, "", n) if family.strip else n: n for n in reversed(names)}  # first wins
    if any(r not in stripped for r in family.require):
        return {}, list(keys)
    found: dict[str, str] = {}
    missing: list[str] = []
    normal = [(_normalise(n, family.strip), n) for n in names]
    for key in keys:
        hit = None
        if family.patterns:
            side = next((s for s in SIDES if key.startswith(s)), None)
            for pat in family.patterns.get(key, []):
                rx = (
                    re.compile(f"^(?:{SIDES[side]})(?:{pat})$|^(?:{pat})(?:{SIDES[side]})$")
                    if side
                    else re.compile(f"^(?:{pat})$")
                )
                hit = next((orig for norm, orig in normal if rx.match(norm)), None)
                if hit is not None:
                    break
        else:
            hit = next((stripped[c] for c in family.names.get(key, [key]) if c in stripped), None)
        if hit is None:
            missing.append(key)
        else:
            found[key] = hit
    return found, missing


def _candidates(family: Family, key: str) -> list[str]:
    return family.patterns.get(key, []) if family.patterns else family.names.get(key, [key])


def match_skeleton(names: tuple[str, ...] | list[str], table: str | None = None, where: str = "") -> SkeletonMatch:
    """Find the table and keypoints of a BVH skeleton from its joint names.

    ``table``: a shipped table name or a YAML path to use instead of choosing one; its keypoints are looked up
    through the families made for it (and by their own names). Raises :class:`SkeletonError` with one line that
    names the keypoint the closest family lacks and the tables that exist.
    """
    names = tuple(names)
    fams = [f for f in families() if table is None or f.table == table]
    if table is not None and not fams:  # a table no family is made for (a YAML of the user's): its own names
        fams = [Family(name="table", title=f"table {table}", table=table)]
    best: tuple[Family, list[str]] | None = None
    for fam in fams:
        found, missing = _resolve(fam, names, table_keypoints(fam.table))
        if not missing:
            return SkeletonMatch(family=fam.name, table=fam.table, keypoints=found)
        if found and (best is None or len(missing) < len(best[1])):
            best = (fam, missing)
    tables = ", ".join(TABLES)
    fam, missing = best if best is not None else (fams[0], list(table_keypoints(fams[0].table)))
    key = missing[0]
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise SkeletonError(
        f"{where}: no BVH table fits this skeleton: closest is {fam.title} (table {fam.table}), which lacks keypoint "
        f"{key!r}{more} (tried {_candidates(fam, key)}); tables: {tables}; pass --table NAME, or write a table for "
        "these joint names (like configs/retarget/bvh_lafan.yaml) and pass --table PATH"
    )


def up_vector(rest: np.ndarray, names: tuple[str, ...], match: SkeletonMatch, cfg: RetargetConfig) -> np.ndarray:
    """Feet-to-neck line (3,) of a pose (N, 3): mean of the table's foot keypoints to the top of its first frame."""
    top = cfg.frames[0].up[1] if cfg.frames else cfg.matches[-1].human
    feet = [k for f in cfg.feet for k in f.keypoints] or [m.human for m in cfg.matches if m.group == "legs"]
    idx = {n: i for i, n in enumerate(names)}
    foot = np.mean([rest[idx[match.keypoints[k]]] for k in feet], axis=0)
    return rest[idx[match.keypoints[top]]] - foot


def detect_up(rest: np.ndarray, names: tuple[str, ...], match: SkeletonMatch, where: str = "") -> str:
    """Up axis ('y' or 'z') of a skeleton from its rest pose (N, 3), file axes.

    The feet-to-neck line must lie mostly (share :data:`UP_SHARE`) along +y or +z; otherwise
    :class:`SkeletonError` says which way the skeleton stands and to pass ``--up``.
    """
    from asap.retarget.config import load_table

    v = up_vector(rest, names, match, load_table(match.table))
    norm = float(np.linalg.norm(v))
    if norm <= 0:
        raise SkeletonError(f"{where}: cannot tell the up axis: the rest skeleton's feet and neck coincide; pass --up")
    axis = int(np.argmax(np.abs(v)))
    share = abs(v[axis]) / norm
    label = ("-" if v[axis] < 0 else "+") + "xyz"[axis]
    if share < UP_SHARE:
        raise SkeletonError(
            f"{where}: cannot tell the up axis: the rest skeleton's feet-to-neck line {np.round(v / norm, 2).tolist()}"
            f" is not along one axis (closest {label}); pass --up y or --up z"
        )
    if label not in ("+y", "+z"):
        raise SkeletonError(
            f"{where}: the rest skeleton stands along {label}; files with +y or +z up are read (re-export it)"
        )
    return label[1]
