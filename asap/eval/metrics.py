"""The paper's tracking metrics: the one implementation every stage uses (pure array code, NumPy or torch).

Inputs are world positions of the tracked bodies, ``(..., B, 3)`` in metres, sampled at the control rate;
body 0 is the root (pelvis). Per-frame errors (:func:`body_position_errors`) are what the training env's
eval-mode termination, ``asap play`` (per step) and the rollout comparison of the demo table all compute; a
trajectory's summary (:func:`tracking_metrics`) follows the paper's units: E_g-mpjpe and E_mpjpe in mm, E_vel in
mm/frame and E_acc in mm/frame^2 (differences per frame, not divided by dt).

Frames of a rollout: frame 0 is the state the rollout started from (a reset or the robot's state when the
policy took over), frame k (k >= 1) the state after k policy steps, compared with the reference at
``t0 + k dt``. Position errors and success cover frames 1..K (what the policy did); velocity and acceleration
errors use frame 0 as the first previous frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Array = Any  # np.ndarray | torch.Tensor

FAIL_DISTANCE_M = 0.5
"""A rollout fails when the mean body distance to the reference (the frame's E_g-mpjpe) exceeds this (m) at any
frame (ASAP's success criterion, asap-method.md)."""


def body_position_errors(body_pos: Array, ref_body_pos: Array, root_index: int = 0) -> tuple[Array, Array]:
    """Per-frame (E_g-mpjpe, E_mpjpe) in m of bodies ``(..., B, 3)`` against the reference, each ``(...)``.

    E_g-mpjpe: mean over bodies of the world position error. E_mpjpe: the same after subtracting each side's
    root (body ``root_index``) position. NumPy arrays or torch tensors (the result is of the same kind).
    """
    d = body_pos - ref_body_pos
    g = ((d * d).sum(-1) ** 0.5).mean(-1)
    r = root_index
    local = d - d[..., r : r + 1, :]
    return g, ((local * local).sum(-1) ** 0.5).mean(-1)


def tracking_failed(g_mpjpe: Array) -> Array:
    """Where a frame's E_g-mpjpe (m, any shape) exceeds :data:`FAIL_DISTANCE_M` (the failure criterion)."""
    return g_mpjpe > FAIL_DISTANCE_M


@dataclass
class TrackingMetrics:
    """Tracking errors of one rollout against its reference."""

    success: bool
    """No frame after the start had a mean body distance above FAIL_DISTANCE_M."""
    frames: int
    """Number of frames whose position errors were averaged (the policy steps: frames 1..T-1)."""
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
    """E_g-mpjpe, E_mpjpe, E_vel, E_acc and success of ``sim`` against ``ref`` (both (T, B, 3), m, T >= 3).

    Frame 0 is the start state (see the module docstring): position errors and success cover frames 1..T-1.
    """
    sim = np.asarray(sim, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    _check(sim, ref)
    g, local = body_position_errors(sim[1:], ref[1:], root_index)  # (T-1,) each
    vel = np.linalg.norm(np.diff(sim, axis=0) - np.diff(ref, axis=0), axis=-1)
    acc = np.linalg.norm(np.diff(sim, 2, axis=0) - np.diff(ref, 2, axis=0), axis=-1)
    return TrackingMetrics(
        success=not bool(tracking_failed(g).any()),
        frames=int(sim.shape[0] - 1),
        E_g_mpjpe=float(1000 * g.mean()),
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
