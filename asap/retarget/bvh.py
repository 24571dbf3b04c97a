"""A BVH (Biovision hierarchy) reader written for this project.

Supports any channel order per joint (rotation channels in any permutation, position channels on any joint),
any hierarchy (``End Site`` leaves included), units in metres / centimetres / millimetres / inches / CMU skeleton
units (detected from the skeleton's height along the up axis, or given), and y-up or z-up files (y-up ones are
turned to z-up). Which joints are which, and which way is up, comes from the skeleton families of
:mod:`asap.retarget.skeletons`.
Malformed files raise :class:`BvhFormatError` with one line that names the file, the line and the problem.

Conventions: a joint's rotation channels listed as ``Zrotation Xrotation Yrotation`` compose as
``R = Rz(a) @ Rx(b) @ Ry(c)`` (angles in degrees); the world transform of a joint is its parent's world
transform times ``[R | t]`` where ``t`` is the joint's OFFSET, with any position channels replacing the
corresponding OFFSET component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asap.retarget.human import HumanMotion
from asap.utils.rotations import axis_rotation_matrix

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
"""Channel names a BVH file may use (case-insensitive)."""

UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
"""Metres per file unit. 'cmu' is the CMU mocap skeleton unit (inches / 0.45)."""

TYPICAL_HEIGHT = 1.6
"""Joint-span height (m) of a typical adult skeleton, used to detect units (joint centres span less than stature)."""

# y-up (x left/right, y up, z forward) -> z-up (x forward, y left, z up): a proper rotation (cyclic permutation).
Y_UP_TO_Z_UP = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""Rotation that maps a y-up BVH world to the project's z-up world (BVH forward +z becomes +x)."""


class BvhFormatError(ValueError):
    """A BVH file is malformed; the message names the file, line and problem in one line."""


@dataclass
class BvhJoint:
    """One node of the hierarchy (``End Site`` leaves have no channels)."""

    name: str
    """Joint name (End Sites are named '<parent>_end')."""
    parent: int
    """Index of the parent joint, -1 for the root."""
    offset: np.ndarray
    """OFFSET from the parent, file units."""
    channels: tuple[str, ...] = ()
    """Channel names in file order."""
    channel_start: int = 0
    """Column of the first channel in a frame line."""
    end_site: bool = False
    """True for an End Site leaf."""


@dataclass
class BvhClip:
    """A parsed BVH file: hierarchy plus frame data (file units, file axes)."""

    joints: list[BvhJoint]
    """Joints in file order (parents before children)."""
    frames: np.ndarray
    """Channel values (T, C) as written in the file."""
    frame_time: float
    """Seconds per frame."""
    path: str = ""
    """Source file."""
    meta: dict = field(default_factory=dict)
    """Details collected while parsing."""

    @property
    def names(self) -> tuple[str, ...]:
        """Joint names (including End Sites)."""
        return tuple(j.name for j in self.joints)

    @property
    def parents(self) -> tuple[int, ...]:
        """Parent indices."""
        return tuple(j.parent for j in self.joints)

    @property
    def fps(self) -> float:
        """Frames per second."""
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.frames.shape[0])

    def rest_positions(self) -> np.ndarray:
        """Joint positions (N, 3) of the OFFSET-only rest pose, file units and axes."""
        pos = np.zeros((len(self.joints), 3))
        for i, j in enumerate(self.joints):
            pos[i] = j.offset if j.parent < 0 else pos[j.parent] + j.offset
        return pos

    def up_axis(self) -> str:
        """The file's up axis ('y' or 'z') from its rest skeleton (:func:`asap.retarget.skeletons.detect_up`; raises
        :class:`asap.retarget.skeletons.SkeletonError` naming ``up=`` when it cannot be told)."""
        from asap.retarget.skeletons import detect_up, match_skeleton

        return detect_up(self.rest_positions(), self.names, match_skeleton(self.names, None, self.path), self.path)

    def _up(self, up: str) -> str:
        return self.up_axis() if up == "auto" else up

    def detect_units(self, up: str = "auto") -> str:
        """Name of the unit (key of UNIT_SCALES) whose scale makes the rest skeleton closest to a human height
        (``up``: the file's up axis, 'auto' from its rest skeleton)."""
        axis = {"x": 0, "y": 1, "z": 2}[self._up(up)]
        rest = self.rest_positions()
        height = float(rest[:, axis].max() - rest[:, axis].min())
        if height <= 0:
            # A skeleton that is flat along 'up' in its rest pose: use its largest extent instead.
            height = float(np.ptp(rest, axis=0).max())
        if height <= 0:
            raise BvhFormatError(f"{self.path}: cannot detect units: the rest skeleton has zero size")
        return min(UNIT_SCALES, key=lambda u: abs(np.log(height * UNIT_SCALES[u] / TYPICAL_HEIGHT)))

    def forward_kinematics(self, scale: float = 1.0, up: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """World positions (T, N, 3) in metres (``scale`` m per unit) and orientations (T, N, 4) wxyz, z-up, from a
        file whose up axis is ``up`` ('y', 'z', or 'auto': from its rest skeleton, :meth:`up_axis`)."""
        from asap.utils.rotations import matrix_to_quat

        up = self._up(up)
        t_count = self.num_frames
        n = len(self.joints)
        gpos = np.zeros((t_count, n, 3))
        grot = np.zeros((t_count, n, 3, 3))
        for i, j in enumerate(self.joints):
            trans = np.broadcast_to(j.offset, (t_count, 3)).copy()
            rot = np.broadcast_to(np.eye(3), (t_count, 3, 3)).copy()
            for k, ch in enumerate(j.channels):
                col = self.frames[:, j.channel_start + k]
                axis = "xyz".index(ch[0].lower())
                if ch[1:].lower() == "position":
                    trans[:, axis] = col
                else:
                    rot = rot @ axis_rotation_matrix(axis, np.deg2rad(col))
            if j.parent < 0:
                gpos[:, i] = trans
                grot[:, i] = rot
            else:
                pr = grot[:, j.parent]
                gpos[:, i] = gpos[:, j.parent] + np.einsum("tij,tj->ti", pr, trans)
                grot[:, i] = pr @ rot
        gpos *= scale
        if up == "y":
            gpos = gpos @ Y_UP_TO_Z_UP.T
            grot = np.einsum("ij,tnjk->tnik", Y_UP_TO_Z_UP, grot)
        elif up != "z":
            raise ValueError(f"up must be 'y' or 'z', not {up!r}")
        return gpos, matrix_to_quat(grot)

    def to_human(self, units: str | float = "auto", up: str = "auto") -> HumanMotion:
        """Keypoints of every joint and End Site in metres, z-up (``up``: the file's up axis, 'auto' from its rest
        skeleton; ``units``: 'auto' from its height, a :data:`UNIT_SCALES` name or metres per unit)."""
        up = self._up(up)
        unit = self.detect_units(up) if units == "auto" else units
        if isinstance(unit, str):
            if unit not in UNIT_SCALES:
                raise ValueError(f"unknown units {unit!r}; choose auto, a number, or one of {list(UNIT_SCALES)}")
            scale = UNIT_SCALES[unit]
        else:
            scale = float(unit)
        pos, rot = self.forward_kinematics(scale, up)
        meta = dict(self.meta, format="bvh", units=unit, metres_per_unit=scale, up=up, source_fps=self.fps)
        return HumanMotion(
            names=self.names, positions=pos, fps=self.fps, parents=self.parents, rotations=rot,
            source=self.path, meta=meta,
        )  # fmt: skip


def _floats(tokens: list[str], where: str, what: str) -> np.ndarray:
    try:
        return np.array([float(t) for t in tokens])
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise BvhFormatError(f"{where}: non-numeric value {bad!r} in {what}") from None


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_bvh(text: str, path: str = "<bvh>") -> BvhClip:
    """Parse BVH text into a :class:`BvhClip`; raise :class:`BvhFormatError` naming the problem."""
    lines = text.splitlines()
    joints: list[BvhJoint] = []
    stack: list[int] = []  # indices of open joints
    pending: int | None = None  # joint declared, waiting for '{'
    n_channels = 0
    i = 0
    seen_header = False
    root_done = False

    def err(line_no: int, msg: str) -> BvhFormatError:
        return BvhFormatError(f"{path} line {line_no}: {msg}")

    while i < len(lines):
        toks = lines[i].split()
        line_no = i + 1
        i += 1
        if not toks:
            continue
        kw = toks[0].upper()
        if not seen_header:
            if kw != "HIERARCHY":
                raise err(line_no, f"expected 'HIERARCHY' at the start of a BVH file, found {toks[0]!r}")
            seen_header = True
            continue
        if kw == "MOTION":
            if stack or pending is not None:
                name = joints[stack[-1] if stack else pending].name  # type: ignore[index]
                raise err(line_no, f"truncated hierarchy: MOTION before joint {name!r} was closed with '}}'")
            break
        # braces may share a line with other tokens: handle them token by token
        j = 0
        while j < len(toks):
            tok = toks[j]
            up = tok.upper()
            if tok == "{":
                if pending is None:
                    raise err(line_no, "'{' without a ROOT/JOINT/End Site before it")
                stack.append(pending)
                pending = None
                j += 1
            elif tok == "}":
                if not stack:
                    raise err(line_no, "unmatched '}'")
                idx = stack.pop()
                if not joints[idx].end_site and joints[idx].offset is None:
                    raise err(line_no, f"joint {joints[idx].name!r} has no OFFSET")
                if not stack:
                    root_done = True
                j += 1
            elif up in ("ROOT", "JOINT"):
                if up == "ROOT" and (stack or root_done):
                    raise err(line_no, "only one ROOT per file is supported")
                if up == "JOINT" and not stack:
                    raise err(line_no, "JOINT outside of the ROOT's braces")
                if pending is not None:
                    raise err(line_no, f"joint {joints[pending].name!r} declared without '{{'")
                rest = toks[j + 1 :]
                opens = bool(rest) and rest[-1] == "{"
                name = " ".join(rest[:-1] if opens else rest).strip()
                if not name:
                    raise err(line_no, f"{tok} without a name")
                joints.append(BvhJoint(name, stack[-1] if stack else -1, None))  # type: ignore[arg-type]
                pending = len(joints) - 1
                if opens:  # 'JOINT name {' on one line
                    stack.append(pending)
                    pending = None
                j = len(toks)
            elif up == "END":
                if not stack:
                    raise err(line_no, "End Site outside of a joint")
                parent = stack[-1]
                joints.append(BvhJoint(joints[parent].name + "_end", parent, None, end_site=True))  # type: ignore[arg-type]
                pending = len(joints) - 1
                j += 2 if j + 1 < len(toks) and toks[j + 1].upper() == "SITE" else 1
            elif up == "OFFSET":
                if not stack:
                    raise err(line_no, "OFFSET outside of a joint")
                vals = toks[j + 1 : j + 4]
                if len(vals) != 3 or any(v in ("{", "}") for v in vals):
                    raise err(line_no, f"OFFSET needs 3 numbers, got {len([v for v in vals if v not in '{}'])}")
                joints[stack[-1]].offset = _floats(vals, f"{path} line {line_no}", "OFFSET")
                j += 4
            elif up == "CHANNELS":
                if not stack:
                    raise err(line_no, "CHANNELS outside of a joint")
                jt = joints[stack[-1]]
                if jt.end_site:
                    raise err(line_no, "an End Site cannot have CHANNELS")
                if j + 1 >= len(toks) or not toks[j + 1].isdigit():
                    raise err(line_no, "CHANNELS needs a count followed by channel names")
                count = int(toks[j + 1])
                names = [t for t in toks[j + 2 :] if t not in ("{", "}")]
                if count != len(names):
                    raise err(line_no, f"bad channel count: CHANNELS declares {count} but lists {len(names)} names")
                canon = {c.lower(): c for c in CHANNEL_NAMES}
                unknown = [c for c in names if c.lower() not in canon]
                if unknown:
                    raise err(line_no, f"unknown channel {unknown[0]!r}; valid: {', '.join(CHANNEL_NAMES)}")
                if len({c.lower() for c in names}) != len(names):
                    raise err(line_no, f"duplicate channel in {names}")
                jt.channels = tuple(canon[c.lower()] for c in names)
                jt.channel_start = n_channels
                n_channels += count
                j = len(toks)
            else:
                raise err(line_no, f"unexpected token {tok!r} in the hierarchy")
    else:
        if not seen_header:
            raise BvhFormatError(f"{path}: empty file (no HIERARCHY)")
        if stack or pending is not None:
            open_name = joints[stack[-1]].name if stack else joints[pending].name  # type: ignore[index]
            raise BvhFormatError(
                f"{path}: truncated hierarchy: file ends inside joint {open_name!r} ({len(stack)} '{{' not closed)"
            )
        raise BvhFormatError(f"{path}: no MOTION section (truncated file?)")
    if not joints:
        raise BvhFormatError(f"{path}: the hierarchy has no ROOT joint")
    for jt in joints:
        if jt.offset is None:
            raise BvhFormatError(f"{path}: joint {jt.name!r} has no OFFSET")
    if n_channels == 0:
        raise BvhFormatError(f"{path}: the hierarchy declares no CHANNELS")

    # ---- MOTION section
    declared: int | None = None
    frame_time: float | None = None
    while i < len(lines) and (declared is None or frame_time is None):
        raw = lines[i].strip()
        line_no = i + 1
        i += 1
        if not raw:
            continue
        low = raw.lower()
        if low.startswith("frames:"):
            val = raw.split(":", 1)[1].strip()
            if not val.isdigit():
                raise err(line_no, f"'Frames:' needs a whole number, got {val!r}")
            declared = int(val)
        elif low.startswith("frame time:"):
            val = raw.split(":", 1)[1].strip()
            if not _is_float(val) or float(val) <= 0:
                raise err(line_no, f"'Frame Time:' needs a positive number of seconds, got {val!r}")
            frame_time = float(val)
        else:
            raise err(line_no, f"expected 'Frames:' and 'Frame Time:' after MOTION, found {raw[:30]!r}")
    if declared is None or frame_time is None:
        raise BvhFormatError(f"{path}: MOTION section lacks {'Frames:' if declared is None else 'Frame Time:'}")
    data_lines = [(k + 1, ln) for k, ln in enumerate(lines[i:], start=i) if ln.strip()]
    if declared == 0 or not data_lines:
        raise BvhFormatError(f"{path}: zero frames of motion data (Frames: {declared})")
    if len(data_lines) < declared:
        raise BvhFormatError(
            f"{path}: truncated motion data: 'Frames: {declared}' but only {len(data_lines)} frame lines"
        )
    data_lines = data_lines[:declared]
    rows = []
    for f_idx, (line_no, ln) in enumerate(data_lines):
        toks = ln.split()
        if len(toks) != n_channels:
            raise err(line_no, f"frame {f_idx} has {len(toks)} values but the hierarchy declares {n_channels} channels")
        rows.append(toks)
    try:
        frames = np.array(rows, dtype=np.float64)
    except ValueError:
        for f_idx, (line_no, ln) in enumerate(data_lines):
            for t in ln.split():
                if not _is_float(t):
                    raise err(line_no, f"non-numeric value {t!r} in frame {f_idx}") from None
        raise
    if not np.isfinite(frames).all():
        f_bad = int(np.argwhere(~np.isfinite(frames))[0][0])
        raise err(data_lines[f_bad][0], f"NaN/inf value in frame {f_bad}")
    meta = {"bvh_frames": int(declared), "bvh_channels": n_channels, "bvh_joints": len(joints)}
    return BvhClip(joints=joints, frames=frames, frame_time=frame_time, path=path, meta=meta)


def load_bvh(path: str | Path) -> BvhClip:
    """Read and parse a BVH file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BvhFormatError(f"{p}: not a text file (is it really a BVH?)") from None
    return parse_bvh(text, str(p))


def load_bvh_human(
    path: str | Path, units: str | float = "auto", up: str = "auto", table: str | None = None
) -> HumanMotion:
    """Read a BVH file into keypoints (metres, z-up) with its skeleton family and table, the up axis from its rest
    skeleton (:func:`asap.retarget.sources.load_bvh_source`); :meth:`BvhClip.to_human` reads with given axes."""
    from asap.retarget.sources import load_bvh_source

    return load_bvh_source(path, units=units, up=up, table=table)
