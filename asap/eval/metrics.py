"""The paper's tracking metrics on body-position trajectories (pure NumPy).

Inputs are world positions of the tracked bodies, ``(T, B, 3)`` in metres, sampled at the control rate;
body 0 is the root (pelvis). Outputs follow the paper's units: E_g-mpjpe and E_mpjpe in mm, E_vel in
mm/frame and E_acc in mm/frame^2 (differences per frame, not divided by dt).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FAIL_DISTANCE_M = 0.5
"""A rollout fails when the mean body distance to the reference exceeds this (m) at any step."""


@dataclass
class TrackingMetrics:
    """Tracking errors of one rollout against its reference."""

    success: bool
    """No step had a mean body distance above FAIL_DISTANCE_M."""
    frames: int
    """Number of compared frames."""
    E_g_mpjpe: float
    """Mean global body-position error (mm)."""
    E_mpjpe: float
    """Mean root-relative body-position error (mm)."""
    E_vel: float
    """Mean error of per-frame body displacements (mm/frame)."""
    E_acc: float
    """Mean error of per-frame body accelerations (mm/frame^2)."""

    def as_dict(self) -> dict[str, float | bool | int]:
        """Plain dict (for JSON)."""
        return asdict(self)


def _check(sim: np.ndarray, ref: np.ndarray) -> None:
    if sim.shape != ref.shape or sim.ndim != 3 or sim.shape[-1] != 3:
        raise ValueError(f"body positions must both be (T, B, 3); got {sim.shape} and {ref.shape}")
    if sim.shape[0] < 3:
        raise ValueError(f"need at least 3 frames to compute E_acc, got {sim.shape[0]}")


def tracking_metrics(sim: np.ndarray, ref: np.ndarray, root_index: int = 0) -> TrackingMetrics:
    """E_g-mpjpe, E_mpjpe, E_vel, E_acc and success of ``sim`` against ``ref`` (both (T, B, 3), m)."""
    sim = np.asarray(sim, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    _check(sim, ref)
    dist = np.linalg.norm(sim - ref, axis=-1)  # (T, B)
    local = np.linalg.norm(
        (sim - sim[:, root_index : root_index + 1]) - (ref - ref[:, root_index : root_index + 1]), axis=-1
    )
    vel = np.linalg.norm(np.diff(sim, axis=0) - np.diff(ref, axis=0), axis=-1)
    acc = np.linalg.norm(np.diff(sim, 2, axis=0) - np.diff(ref, 2, axis=0), axis=-1)
    return TrackingMetrics(
        success=bool((dist.mean(-1) <= FAIL_DISTANCE_M).all()),
        frames=int(sim.shape[0]),
        E_g_mpjpe=float(1000 * dist.mean()),
        E_mpjpe=float(1000 * local.mean()),
        E_vel=float(1000 * vel.mean()),
        E_acc=float(1000 * acc.mean()),
    )


def mean_metrics(items: list[TrackingMetrics]) -> dict[str, float]:
    """Average of several rollouts' metrics, with the success rate."""
    if not items:
        raise ValueError("no rollouts to average")
    out = {k: float(np.mean([getattr(m, k) for m in items])) for k in ("E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc")}
    out["success_rate"] = float(np.mean([m.success for m in items]))
    out["rollouts"] = float(len(items))
    return out
