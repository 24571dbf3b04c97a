"""A human motion as keypoints: the common form every source (BVH, SMPL, built-in clips) is turned into.

Positions are world positions in metres, z-up. The retargeter only needs keypoint positions over time;
global rotations are kept when a source has them (BVH, SMPL) for users who want them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


class HumanMotionError(ValueError):
    """A human motion is malformed (one-line message)."""


@dataclass
class HumanMotion:
    """Keypoint trajectories of one human clip (z-up, metres)."""

    names: tuple[str, ...]
    """Keypoint (joint) names, N."""
    positions: np.ndarray
    """World positions (T, N, 3), m, z-up."""
    fps: float
    """Frames per second of ``positions``."""
    parents: tuple[int, ...] | None = None
    """Parent index of each keypoint in the source skeleton (-1 for the root), when known."""
    rotations: np.ndarray | None = None
    """Global orientations (T, N, 4) wxyz, when the source has them."""
    source: str = ""
    """Where the clip came from (file path or ``builtin:name``)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Source details (format, units, frame count, ...)."""

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        if self.positions.ndim != 3 or self.positions.shape[2] != 3:
            raise HumanMotionError(f"positions must have shape (T, N, 3), got {self.positions.shape}")
        if self.positions.shape[1] != len(self.names):
            raise HumanMotionError(f"{len(self.names)} names but positions hold {self.positions.shape[1]} keypoints")
        if self.positions.shape[0] < 2:
            raise HumanMotionError(f"a human motion needs at least 2 frames, got {self.positions.shape[0]}")
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise HumanMotionError(f"fps must be > 0, got {self.fps}")
        if not np.isfinite(self.positions).all():
            raise HumanMotionError("positions contain NaN/inf")

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.positions.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds, (T - 1) / fps."""
        return (self.num_frames - 1) / self.fps

    def index(self, name: str) -> int:
        """Index of a keypoint; KeyError naming the available ones."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"keypoint {name!r} not in the source skeleton; it has {list(self.names)}") from None

    def get(self, name: str) -> np.ndarray:
        """Trajectory (T, 3) of one keypoint."""
        return self.positions[:, self.index(name)]

    def resample(self, fps: float) -> HumanMotion:
        """Linear interpolation of positions (and slerp-free nearest rotations) at a new frame rate."""
        if abs(fps - self.fps) < 1e-9:
            return self
        n = int(np.floor(self.duration * fps + 1e-6)) + 1
        t = np.arange(n) / fps * self.fps  # fractional source frame
        i0 = np.clip(np.floor(t).astype(int), 0, self.num_frames - 1)
        i1 = np.clip(i0 + 1, 0, self.num_frames - 1)
        a = (t - i0)[:, None, None]
        pos = (1 - a) * self.positions[i0] + a * self.positions[i1]
        rot = None
        if self.rotations is not None:
            rot = self.rotations[np.where(a[:, 0, 0] < 0.5, i0, i1)]
        return replace(self, positions=pos, rotations=rot, fps=float(fps))
