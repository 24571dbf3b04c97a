"""The canonical motion file: one clip of G1 motion in a ``.npz``.

Keys: ``fps``, ``joint_names``, ``body_names``, ``root_pos (T,3)`` m, ``root_quat (T,4)`` **wxyz**,
``dof_pos (T,J)`` rad; optional ``action (T,J)`` (raw policy output of a logged rollout: frame f holds the action
computed from frame f's state and applied until frame f+1, declared by ``meta["action_alignment"]``; see
:data:`asap.control.ACTION_ALIGNMENT`), measured
``dof_vel (T,J)``, ``root_lin_vel (T,3)`` and ``root_ang_vel (T,3)`` (world frame); ``meta`` (a JSON string:
source, units, retarget settings, ...); ``extra_<name>`` per-frame arrays (T, ...) carried through from other
formats (e.g. the reference pkl's ``smpl_joints``). Names are stored in the file, so a file never depends on one
simulator's ordering. Body poses and velocities are derived on load by forward kinematics (MotionLib).
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from asap.control import ACTION_ALIGNMENT
from asap.robot.spec import RobotSpec, get_spec

REQUIRED_KEYS = ("fps", "joint_names", "root_pos", "root_quat", "dof_pos")
"""Keys every motion file must hold."""
OPTIONAL_ARRAYS = ("action", "dof_vel", "root_lin_vel", "root_ang_vel")
"""Optional per-frame arrays."""
EXTRA_PREFIX = "extra_"
"""Key prefix of the free per-frame arrays in :attr:`Motion.extras`."""
QUAT_TOL = 1e-3
"""Allowed deviation of a root quaternion's norm from 1."""


class MotionFormatError(ValueError):
    """A motion file or array is malformed; the message names the problem in one line."""


class JointLimitWarning(UserWarning):
    """Joint values of a motion exceed the robot's limits."""


@dataclass
class Motion:
    """One motion clip (see module docstring for the meaning of each field)."""

    fps: float
    """Frames per second."""
    joint_names: tuple[str, ...]
    """Names of the columns of dof_pos."""
    root_pos: np.ndarray
    """Root (pelvis) position in the world, (T, 3), m."""
    root_quat: np.ndarray
    """Root orientation, (T, 4), wxyz."""
    dof_pos: np.ndarray
    """Joint angles, (T, J), rad."""
    body_names: tuple[str, ...] = ()
    """Tracked bodies of the robot this motion is for (informative; FK recomputes them)."""
    action: np.ndarray | None = None
    """Raw policy output per frame (T, J) for logged rollouts: ``action[f]`` was computed from frame f's state and
    applied over [t_f, t_f+1) (0 in the last frame); ``meta["action_alignment"]`` must say so."""
    dof_vel: np.ndarray | None = None
    """Measured joint velocities (T, J), rad/s."""
    root_lin_vel: np.ndarray | None = None
    """Measured root linear velocity (T, 3), world frame, m/s."""
    root_ang_vel: np.ndarray | None = None
    """Measured root angular velocity (T, 3), world frame, rad/s."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance (source, units, settings)."""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Other per-frame arrays (T, ...) kept from source formats; resampled and sliced along with the clip."""

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        """Clip length in seconds, (T - 1) / fps."""
        return (self.num_frames - 1) / float(self.fps)

    def check(self) -> None:
        """Raise :class:`MotionFormatError` on structural problems (shapes, NaN, quaternions, fps)."""
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise MotionFormatError(f"fps must be > 0, got {self.fps}")
        t = self.root_pos.shape[0] if self.root_pos.ndim == 2 else -1
        if self.root_pos.ndim != 2 or self.root_pos.shape[1] != 3:
            raise MotionFormatError(f"root_pos must have shape (T, 3), got {self.root_pos.shape}")
        if t < 2:
            raise MotionFormatError(f"a motion needs at least 2 frames, got {t}")
        if self.root_quat.shape != (t, 4):
            raise MotionFormatError(f"root_quat must have shape ({t}, 4), got {self.root_quat.shape}")
        j = len(self.joint_names)
        if self.dof_pos.shape != (t, j):
            raise MotionFormatError(f"dof_pos must have shape ({t}, {j}) for {j} joint names, got {self.dof_pos.shape}")
        if len(set(self.joint_names)) != j:
            raise MotionFormatError("joint_names contains duplicates")
        for name in ("root_pos", "root_quat", "dof_pos", *OPTIONAL_ARRAYS):
            arr = getattr(self, name)
            if arr is None:
                continue
            want = (t, j) if name in ("action", "dof_vel") else (t, 3) if name.startswith("root_") else None
            if name not in ("root_pos", "root_quat", "dof_pos") and arr.shape != want:
                raise MotionFormatError(f"{name} must have shape {want}, got {arr.shape}")
            bad = ~np.isfinite(arr)
            if bad.any():
                frame = int(np.argwhere(bad)[0][0])
                raise MotionFormatError(f"{name} has {int(bad.sum())} NaN/inf values (first at frame {frame})")
        if self.action is not None and self.meta.get("action_alignment") != ACTION_ALIGNMENT:
            got = self.meta.get("action_alignment")
            raise MotionFormatError(
                f"action alignment {'missing' if got is None else repr(got)} (meta['action_alignment'] must be "
                f"{ACTION_ALIGNMENT!r}: action[f] applied after frame f); re-create the file with `asap collect` "
                "or `asap play` of this version"
            )
        for name, arr in self.extras.items():
            if arr.ndim < 1 or arr.shape[0] != t:
                raise MotionFormatError(f"extra array {name!r} must have {t} frames, got shape {arr.shape}")
        norm = np.linalg.norm(self.root_quat, axis=-1)
        off = np.abs(norm - 1.0)
        if (off > QUAT_TOL).any():
            frame = int(np.argmax(off))
            raise MotionFormatError(
                f"root_quat is not unit norm (|q| = {norm[frame]:.4f} at frame {frame}); quaternions must be unit wxyz"
            )

    def for_robot(self, spec: RobotSpec | str = "g1_23dof") -> Motion:
        """Return this motion with columns in the robot's joint order; error naming missing/extra joints."""
        rs = get_spec(spec) if isinstance(spec, str) else spec
        if tuple(self.joint_names) == rs.joint_names:
            return self
        have = {n: i for i, n in enumerate(self.joint_names)}
        missing = [n for n in rs.joint_names if n not in have]
        if missing:
            extra = [n for n in self.joint_names if n not in rs.joint_names]
            head = (
                f"joint names do not match robot {rs.name}"
                if len(self.joint_names) == rs.num_joints
                else f"motion has {len(self.joint_names)} joints but robot {rs.name} needs {rs.num_joints}"
            )
            raise MotionFormatError(
                f"{head}: missing {missing[:4]}{'...' if len(missing) > 4 else ''}"
                + (f", unknown {extra[:4]}" if extra else "")
            )
        idx = np.array([have[n] for n in rs.joint_names])
        return replace(
            self,
            joint_names=rs.joint_names,
            dof_pos=self.dof_pos[:, idx],
            action=None if self.action is None else self.action[:, idx],
            dof_vel=None if self.dof_vel is None else self.dof_vel[:, idx],
            body_names=rs.body_names,
        )

    def limit_violations(self, spec: RobotSpec | str = "g1_23dof") -> dict[str, dict[str, float]]:
        """Joints outside the robot's position limits: {joint: {frames, max_excess_rad}}."""
        rs = get_spec(spec) if isinstance(spec, str) else spec
        m = self.for_robot(rs)
        below = rs.pos_lower[None] - m.dof_pos
        above = m.dof_pos - rs.pos_upper[None]
        excess = np.maximum(below, above)
        out: dict[str, dict[str, float]] = {}
        for j, name in enumerate(rs.joint_names):
            bad = excess[:, j] > 1e-6
            if bad.any():
                out[name] = {"frames": int(bad.sum()), "max_excess_rad": float(excess[:, j].max())}
        return out

    def validate(self, spec: RobotSpec | str = "g1_23dof") -> dict[str, dict[str, float]]:
        """Full check for a robot: structure (raises), joint names (raises), limits (warns; returned)."""
        self.check()
        viol = self.limit_violations(spec)
        if viol:
            worst = max(viol.items(), key=lambda kv: kv[1]["max_excess_rad"])
            warnings.warn(
                f"{len(viol)} joint(s) exceed their limits; worst {worst[0]} by "
                f"{worst[1]['max_excess_rad']:.3f} rad over {worst[1]['frames']} frames",
                JointLimitWarning,
                stacklevel=2,
            )
        return viol

    def slice(self, start: int, stop: int) -> Motion:
        """Frames [start, stop) as a new motion."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop].copy()

        return replace(
            self, root_pos=cut(self.root_pos), root_quat=cut(self.root_quat), dof_pos=cut(self.dof_pos),
            action=cut(self.action), dof_vel=cut(self.dof_vel), root_lin_vel=cut(self.root_lin_vel),
            root_ang_vel=cut(self.root_ang_vel), extras={k: v[start:stop].copy() for k, v in self.extras.items()},
        )  # fmt: skip

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the motion as ``.npz``; refuses to replace an existing file unless ``overwrite``."""
        self.check()
        p = Path(path)
        if p.suffix != ".npz":
            p = p.with_suffix(".npz")
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        p.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "fps": np.array(float(self.fps)),
            "joint_names": np.array(self.joint_names, dtype=str),
            "body_names": np.array(self.body_names, dtype=str),
            "root_pos": self.root_pos.astype(np.float32),
            "root_quat": self.root_quat.astype(np.float32),
            "dof_pos": self.dof_pos.astype(np.float32),
            "meta": np.array(json.dumps(self.meta, default=str)),
        }
        for k in OPTIONAL_ARRAYS:
            v = getattr(self, k)
            if v is not None:
                arrays[k] = np.asarray(v, dtype=np.float32)
        for k, v in self.extras.items():
            arrays[EXTRA_PREFIX + k] = np.asarray(v)
        tmp = p.with_name(p.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> Motion:
        """Read a motion ``.npz``; malformed files raise :class:`MotionFormatError` with one line."""
        p = Path(path)
        data = read_npz_arrays(p, "motion")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise MotionFormatError(f"{p}: missing key(s) {missing}; a motion needs {list(REQUIRED_KEYS)}")
        try:
            fps = float(np.asarray(data["fps"]).reshape(-1)[0])
        except (TypeError, ValueError, IndexError) as e:
            raise MotionFormatError(f"{p}: fps is not a number") from e
        meta: dict[str, Any] = {}
        if "meta" in data:
            try:
                meta = json.loads(str(data["meta"]))
            except json.JSONDecodeError as e:
                raise MotionFormatError(f"{p}: meta is not valid JSON") from e
        motion = cls(
            fps=fps,
            joint_names=tuple(str(n) for n in data["joint_names"]),
            body_names=tuple(str(n) for n in data.get("body_names", [])),
            root_pos=np.asarray(data["root_pos"], dtype=np.float64),
            root_quat=np.asarray(data["root_quat"], dtype=np.float64),
            dof_pos=np.asarray(data["dof_pos"], dtype=np.float64),
            meta=meta,
            extras={k[len(EXTRA_PREFIX) :]: data[k] for k in data if k.startswith(EXTRA_PREFIX)},
            **{k: np.asarray(data[k], dtype=np.float64) for k in OPTIONAL_ARRAYS if k in data},
        )
        try:
            motion.check()
        except MotionFormatError as e:
            raise MotionFormatError(f"{p}: {e}") from None
        return motion


def read_npz_arrays(path: Path, kind: str = "") -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (no pickles); a missing, non-zip or corrupt file raises MotionFormatError."""
    if not path.exists():
        raise MotionFormatError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise MotionFormatError(f"{path}: not an .npz {kind + ' ' if kind else ''}file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # a corrupt archive
        raise MotionFormatError(f"{path}: cannot read npz ({type(e).__name__}: {e})") from None


def load_motion(path: str | Path, spec: RobotSpec | str = "g1_23dof") -> Motion:
    """Load a motion file and reorder it for a robot variant (validating names and limits)."""
    m = Motion.load(path)
    try:
        m = m.for_robot(spec)
    except MotionFormatError as e:
        raise MotionFormatError(f"{path}: {e}") from None
    m.validate(spec)
    return m


def frame_count_at(duration: float, fps: float) -> int:
    """Number of frames that cover ``duration`` seconds at ``fps`` (inclusive of both ends)."""
    return int(math.floor(duration * fps + 1e-6)) + 1
