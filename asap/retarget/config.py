"""Retargeting configuration: the correspondence table (data, in configs/retarget/*.yaml) and solver settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asap.config import load_config
from asap.paths import shipped_dir

CONFIG_DIR = shipped_dir("configs") / "retarget"
"""Folder of the built-in tables (one YAML per source skeleton)."""
TABLES = ("builtin", "bvh_cmu", "bvh_lafan", "smpl")
"""Names of the shipped tables."""


@dataclass
class Match:
    """One correspondence: a human keypoint tracked by a point on a G1 body."""

    human: str = ""
    """Keypoint (joint) name in the source skeleton."""
    body: str = ""
    """G1 tracked body (one of the spec's 27 body names)."""
    weight: float = 1.0
    """Weight of this keypoint's position error."""
    offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Point on the G1 body, in the body frame (m), that tracks the keypoint."""
    parent: str | None = None
    """Human keypoint this one hangs from when proportions are fitted (None: the root)."""
    group: str = "body"
    """Scale group (legs, arms, torso, feet, ...) used by scale_mode 'group'."""
    frame: str | None = None
    """Rigid bone: take the G1's own zero-pose offset from the parent, turned by this human frame (see frames)."""


@dataclass
class Frame:
    """An orientation of the human built from keypoints: x = left x up (forward), y = left, z = up."""

    name: str = ""
    """Name used by Match.frame."""
    left: list[str] = field(default_factory=list)
    """Two keypoints [a, b]: the left direction is a - b."""
    up: list[str] = field(default_factory=list)
    """Two keypoints [a, b]: the up direction is b - a (made orthogonal to left)."""


@dataclass
class Foot:
    """A G1 foot and the human keypoints on it (used for contact detection, pinning and the floor)."""

    body: str = ""
    """G1 foot body (ankle roll link)."""
    keypoints: list[str] = field(default_factory=list)
    """Human keypoints on this foot (ankle, toe), all listed in matches."""


@dataclass
class SolverConfig:
    """Batched Levenberg-Marquardt inverse kinematics over all frames at once."""

    iterations: int = 15
    """Gauss-Newton / LM iterations."""
    damping: float = 1e-3
    """Initial LM damping (scaled by the diagonal of the normal matrix)."""
    smooth_weight: float = 0.02
    """Weight pulling each frame's joint angles toward the time-smoothed solution (temporal smoothness)."""
    smooth_root_weight: float = 0.05
    """Same for the root position and orientation."""
    smooth_sigma: float = 1.5
    """Gaussian sigma (frames at the output rate) of the temporal smoothing."""
    rest_weight: float = 0.002
    """Weight pulling joint angles toward the default pose (resolves redundant joints)."""
    limit_margin: float = 0.0
    """Joint angles are clamped to [lower + margin, upper - margin] (rad)."""
    dtype: str = "float64"
    """Torch dtype of the solver."""


@dataclass
class ContactConfig:
    """Stance detection on the human feet and the floor fix."""

    speed: float = 0.35
    """A foot keypoint is in contact when slower than this (m/s, after scaling) ..."""
    height: float = 0.04
    """... and lower than this above its resting height (m)."""
    min_frames: int = 3
    """Contact runs shorter than this are dropped, gaps shorter than this are filled."""
    weight: float = 5.0
    """Weight multiplier of a pinned (in-contact) foot keypoint."""
    blend_frames: int = 5
    """Frames over which a pin's correction fades into the swing path."""
    fix_floor: bool = True
    """Put stance feet on the floor and lift frames that would penetrate it."""


@dataclass
class RetargetConfig:
    """How to retarget one source skeleton to the G1."""

    source: str = "builtin"
    """Source kind this table is for (builtin, bvh, smpl)."""
    robot: str = "g1_23dof"
    """Robot variant."""
    fps: float = 50.0
    """Output frame rate."""
    units: str = "auto"
    """BVH units: auto, m, cm, mm, inch, cmu, or metres per unit as a number."""
    up: str = "auto"
    """Up axis of BVH files: 'auto' (from the rest skeleton, asap.retarget.skeletons), 'y' or 'z'."""
    scale_mode: str = "segment"
    """Fit of proportions: 'segment' (each bone to the G1's length), 'group' (least squares per group), 'uniform'."""
    normalize_start: bool = True
    """Start at the origin facing +x."""
    matches: list[Match] = field(default_factory=list)
    """The correspondence table."""
    feet: list[Foot] = field(default_factory=list)
    """The feet (contact and floor)."""
    frames: list[Frame] = field(default_factory=list)
    """Human frames for rigid bones (Match.frame)."""
    root: str = "pelvis"
    """Human keypoint whose match drives the root position (first match when absent)."""
    solver: SolverConfig = field(default_factory=SolverConfig)
    """IK solver settings."""
    contact: ContactConfig = field(default_factory=ContactConfig)
    """Stance and floor settings."""


def table_path(name_or_path: str | Path) -> Path:
    """Path of a shipped table name (builtin, bvh_cmu, bvh_lafan, smpl) or a YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    if str(name_or_path) not in TABLES:
        raise ValueError(f"unknown retarget table {name_or_path!r}; choose one of {TABLES} or pass a YAML path")
    return CONFIG_DIR / f"{name_or_path}.yaml"


def load_table(name_or_path: str | Path, overrides: list[str] | None = None) -> RetargetConfig:
    """Load a retarget config (table + settings) with optional ``key.sub=value`` overrides."""
    cfg = load_config(RetargetConfig, table_path(name_or_path), overrides)
    if not cfg.matches:
        raise ValueError(f"{table_path(name_or_path)}: the table has no matches")
    names = [m.human for m in cfg.matches]
    for m in cfg.matches:
        if m.parent is not None and m.parent not in names:
            raise ValueError(f"match {m.human!r}: parent {m.parent!r} is not a matched keypoint")
        if len(m.offset) != 3:
            raise ValueError(f"match {m.human!r}: offset needs 3 numbers")
    frame_names = {f.name for f in cfg.frames}
    for fr in cfg.frames:
        bad = [k for k in fr.left + fr.up if k not in names]
        if len(fr.left) != 2 or len(fr.up) != 2 or bad:
            raise ValueError(f"frame {fr.name!r}: left and up need two matched keypoints each (unknown: {bad})")
    for m in cfg.matches:
        if m.frame is not None and m.frame not in frame_names:
            raise ValueError(f"match {m.human!r}: frame {m.frame!r} is not defined under frames")
        if m.frame is not None and m.parent is None:
            raise ValueError(f"match {m.human!r}: a rigid bone (frame) needs a parent")
    for f in cfg.feet:
        missing = [k for k in f.keypoints if k not in names]
        if missing:
            raise ValueError(f"foot {f.body!r}: keypoints {missing} are not matched")
    if cfg.scale_mode not in ("segment", "group", "uniform"):
        raise ValueError(f"scale_mode must be segment, group or uniform, not {cfg.scale_mode!r}")
    return cfg
