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

Beyond the paper's four: PA-MPJPE (mm; per frame, the root-relative bodies after the similarity transform —
rotation, translation, scale — that best maps the rollout's bodies onto the reference's, Umeyama's closed form),
the joint-angle error (degrees, when the joint angles are given) and E_g-mpjpe/E_mpjpe per body group (upper,
lower, feet, vr_3point: the groups of :mod:`asap.robot.spec`; by default looked up there for the G1's 27 tracked
bodies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

import numpy as np

from asap.robot.spec import FEET, VR_3POINT, get_spec

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


SLOW_SIGMA_S = 0.1
"""Gaussian smoothing (s, standard deviation) that separates the slow part of a tracking error (posture, drift:
below ~2 Hz) from the fast part (dither, shaking)."""


def slow_fast_mpjpe(sim: np.ndarray, ref: np.ndarray, fps: float, sigma_s: float = SLOW_SIGMA_S,
                    root_index: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """(E_mpjpe, its slow part, its fast part) in mm of a rollout's bodies ``sim`` against ``ref`` (both (T, B, 3),
    m, at ``fps``; frames 1..T-1 as :func:`tracking_metrics`). The root-relative error vectors are split into a
    Gaussian-smoothed part (``sigma_s``) and the rest; each part is scored as E_mpjpe is (mean body distance).
    The two parts do not add up to the total (norms of a sum): they say which kind of error dominates."""
    from scipy.ndimage import gaussian_filter1d

    sim, ref = np.asarray(sim, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    _check(sim, ref)
    r = root_index
    d = (sim - sim[:, r : r + 1]) - (ref - ref[:, r : r + 1])
    slow = gaussian_filter1d(d, sigma_s * fps, axis=0, mode="nearest")

    def score(x: np.ndarray) -> float:
        return float(1000 * np.linalg.norm(x[1:], axis=-1).mean())

    return score(d), score(slow), score(d - slow)


BODY_GROUPS = ("upper", "lower", "feet", "vr_3point")
"""Body groups with their own E_g-mpjpe/E_mpjpe (upper: :data:`asap.robot.spec.UPPER_BODY`, lower: the other
tracked bodies, root included; feet: :data:`~asap.robot.spec.FEET`; vr_3point: :data:`~asap.robot.spec.VR_3POINT`)."""


@cache
def g1_body_groups() -> dict[str, tuple[int, ...]]:
    """Indices of :data:`BODY_GROUPS` in the G1's tracked-body list (the same 27 bodies for every variant)."""
    spec = get_spec()
    upper = spec.upper_body_mask
    return {
        "upper": tuple(np.flatnonzero(upper).tolist()),
        "lower": tuple(np.flatnonzero(~upper).tolist()),
        "feet": tuple(spec.body_index(FEET).tolist()),
        "vr_3point": tuple(spec.body_index(VR_3POINT).tolist()),
    }


def procrustes_align(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x`` mapped onto ``y`` by the per-frame similarity transform that minimises the squared error.

    ``x``, ``y``: point sets ``(..., N, 3)``; returns ``s R x + t`` of ``x``'s shape, with R a proper rotation,
    s > 0 and t chosen per leading index (Umeyama 1991: the SVD of the cross-covariance, with the reflection
    fixed by the sign of its determinant). A point set with no spread keeps scale 1.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mx, my = x.mean(-2, keepdims=True), y.mean(-2, keepdims=True)
    xc, yc = x - mx, y - my
    cov = np.swapaxes(yc, -1, -2) @ xc / x.shape[-2]  # (..., 3, 3)
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones(sv.shape)
    d[..., -1] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ (d[..., :, None] * vt)  # U diag(d) V^T
    var_x = (xc * xc).sum(-1).mean(-1)
    safe = var_x > 1e-12
    scale = np.where(safe, (sv * d).sum(-1) / np.where(safe, var_x, 1.0), 1.0)
    return scale[..., None, None] * xc @ np.swapaxes(rot, -1, -2) + my


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
    PA_MPJPE: float
    """Mean body-position error after a per-frame Procrustes alignment (rotation, translation, scale) (mm)."""
    E_joint_angle: float | None = None
    """Mean absolute joint-angle error over joints and frames (degrees); None without joint angles."""
    E_g_mpjpe_upper: float | None = None
    """E_g-mpjpe over the 'upper' body group (mm); None without body groups (as are all group fields)."""
    E_mpjpe_upper: float | None = None
    """E_mpjpe over the 'upper' body group (mm)."""
    E_g_mpjpe_lower: float | None = None
    """E_g-mpjpe over the 'lower' body group (mm)."""
    E_mpjpe_lower: float | None = None
    """E_mpjpe over the 'lower' body group (mm)."""
    E_g_mpjpe_feet: float | None = None
    """E_g-mpjpe over the feet (mm)."""
    E_mpjpe_feet: float | None = None
    """E_mpjpe over the feet (mm)."""
    E_g_mpjpe_vr_3point: float | None = None
    """E_g-mpjpe over the VR 3-point group: both hands and the head (mm)."""
    E_mpjpe_vr_3point: float | None = None
    """E_mpjpe over the VR 3-point group (mm)."""

    def as_dict(self) -> dict[str, float | bool | int]:
        """Plain dict (for JSON)."""
        return asdict(self)


def _check(sim: np.ndarray, ref: np.ndarray) -> None:
    if sim.shape != ref.shape or sim.ndim != 3 or sim.shape[-1] != 3:
        raise ValueError(f"body positions must both be (T, B, 3); got {sim.shape} and {ref.shape}")
    if sim.shape[0] < 3:
        raise ValueError(f"need at least 3 frames to compute E_acc, got {sim.shape[0]}")


def tracking_metrics(
    sim: np.ndarray,
    ref: np.ndarray,
    root_index: int = 0,
    dof_pos: np.ndarray | None = None,
    ref_dof_pos: np.ndarray | None = None,
    groups: Mapping[str, Sequence[int]] | None = None,
) -> TrackingMetrics:
    """The metrics of ``sim`` against ``ref`` (body positions, both (T, B, 3), m, T >= 3).

    Frame 0 is the start state (see the module docstring): position errors, PA-MPJPE, the joint-angle error and
    success cover frames 1..T-1. ``dof_pos``/``ref_dof_pos``: joint angles (T, J) in rad, same joint order, for
    the joint-angle error. ``groups``: body indices of each group (name -> indices); None: the G1's
    :func:`g1_body_groups` when B is the G1's tracked-body count, no group errors otherwise.
    """
    sim = np.asarray(sim, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    _check(sim, ref)
    g, local = body_position_errors(sim[1:], ref[1:], root_index)  # (T-1,) each
    vel = np.linalg.norm(np.diff(sim, axis=0) - np.diff(ref, axis=0), axis=-1)
    acc = np.linalg.norm(np.diff(sim, 2, axis=0) - np.diff(ref, 2, axis=0), axis=-1)
    r = root_index
    sim_rel, ref_rel = sim[1:] - sim[1:, r : r + 1], ref[1:] - ref[1:, r : r + 1]
    pa = np.linalg.norm(procrustes_align(sim_rel, ref_rel) - ref_rel, axis=-1).mean()
    extra: dict[str, float] = {}
    if (dof_pos is None) != (ref_dof_pos is None):
        raise ValueError("give both dof_pos and ref_dof_pos, or neither")
    if dof_pos is not None:
        q, q_ref = np.asarray(dof_pos, dtype=np.float64), np.asarray(ref_dof_pos, dtype=np.float64)
        if q.shape != q_ref.shape or q.ndim != 2 or q.shape[0] != sim.shape[0]:
            raise ValueError(f"joint angles must both be (T={sim.shape[0]}, J); got {q.shape} and {q_ref.shape}")
        extra["E_joint_angle"] = float(np.degrees(np.abs(q[1:] - q_ref[1:]).mean()))
    if groups is None and sim.shape[1] == get_spec().num_bodies:
        groups = g1_body_groups()
    d = sim[1:] - ref[1:]
    d_local = d - d[:, r : r + 1]
    for name, idx in (groups or {}).items():
        ix = np.asarray(idx, dtype=np.int64)
        extra[f"E_g_mpjpe_{name}"] = float(1000 * np.linalg.norm(d[:, ix], axis=-1).mean())
        extra[f"E_mpjpe_{name}"] = float(1000 * np.linalg.norm(d_local[:, ix], axis=-1).mean())
    return TrackingMetrics(
        success=not bool(tracking_failed(g).any()),
        frames=int(sim.shape[0] - 1),
        E_g_mpjpe=float(1000 * g.mean()),
        E_mpjpe=float(1000 * local.mean()),
        E_vel=float(1000 * vel.mean()),
        E_acc=float(1000 * acc.mean()),
        PA_MPJPE=float(1000 * pa),
        **extra,
    )


def mean_metrics(items: list[TrackingMetrics]) -> dict[str, float]:
    """Average of several rollouts' metrics, with the success rate.

    Every float metric is averaged; an optional one (joint angles, body groups) only when every rollout has it.
    """
    if not items:
        raise ValueError("no rollouts to average")
    keys = [f.name for f in fields(TrackingMetrics) if f.name not in ("success", "frames")]
    out = {
        k: float(np.mean([getattr(m, k) for m in items])) for k in keys if all(getattr(m, k) is not None for m in items)
    }
    out["success_rate"] = float(np.mean([m.success for m in items]))
    out["rollouts"] = float(len(items))
    return out
