"""The control rule every stage shares: action -> joint target, steps per clip, phase, logged-action alignment.

Training (``envs.tracking``), evaluation and ``asap play``, and the robot runtime (``deploy``, which also runs
the policy against the virtual G1) all call these functions, so a policy meets on the robot exactly the rule
it was trained with. Everything here is array-agnostic (NumPy or torch, like :mod:`asap.obs`) and imports no
torch, so the onboard runtime uses it with NumPy only.

**Target shaping** (:func:`shape_targets`). A raw policy action ``a`` (J,) becomes a joint target in four steps:

1. clip ``a`` to ``+-ACTION_CLIP`` (100, the reference's ``action_clip_value``); this clipped action is also the
   observation's last-action term;
2. ``q* = default + action_scale * a`` (the reference's rule, action_scale 0.25);
3. rate limit: at most ``TargetShaping.max_step`` rad of change per control step against the previous target
   (0 switches it off);
4. clamp to the joint position limits (``TargetShaping.clamp``).

Steps 3 and 4 are what the robot runtime always applied; the reference trained without them, and its policies
push the soft ankles (Kp 20) up to ~1 rad past their stop to get torque, which the robot's clamp then removes.
The choice is part of the policy contract (ONNX metadata ``target_clamp``, ``target_max_step``), so the runtime
applies what training applied; the tracking task trains with both by default.

**Steps per clip** (:func:`motion_steps`) and **phase** (:func:`policy_phase`): see their docstrings.

**Logged actions** (:data:`ACTION_ALIGNMENT`): a Motion with ``action`` stores in frame f the state s_f and the
action a_f the policy computed from s_f's observation, applied over [t_f, t_f+1): s_f+1 = sim(s_f, a_f). This is
the pairing a delta action model learns from (replay a_f from s_f, compare with s_f+1), the one
:meth:`asap.motion.MotionLib.get_action` answers (the action in force at time t is the one of the frame at or
before t) and the one resampling keeps (actions are held, not interpolated). The last frame has no successor;
writers store 0 there. The reference's files store the action applied during (t_f-1, t_f] instead; its pkl
importer/exporter shifts by one frame at the file boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from asap.robot.spec import ACTION_CLIP

Array = Any  # np.ndarray | torch.Tensor | float

ACTION_ALIGNMENT = "state_then_action"
"""``meta["action_alignment"]`` of every Motion with ``action``: frame f holds s_f and the action applied over
[t_f, t_f+1) (see module docstring). Readers refuse any other value."""

STEP_TOL = 1e-6
"""Tolerance (in steps) of the step count against float rounding of clip lengths."""


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _clip(x: Array, lo: Array, hi: Array) -> Array:
    if _is_torch(x):
        import torch

        lo_t = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
        hi_t = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
        return torch.minimum(torch.maximum(x, lo_t), hi_t)
    return np.minimum(np.maximum(x, lo), hi)


# ---------------------------------------------------------------------------------------------- target shaping
@dataclass(frozen=True)
class TargetShaping:
    """What happens to ``default + action_scale * a`` before it is sent (policy contract; see module docstring)."""

    clamp: bool = True
    """Clamp joint targets to the joint position limits (metadata ``target_clamp``)."""
    max_step: float = 0.5
    """Largest change of a joint target per control step, rad; 0 = no rate limit (metadata ``target_max_step``)."""

    METADATA_KEYS = ("target_clamp", "target_max_step")
    """ONNX metadata keys of these fields."""

    def __post_init__(self) -> None:
        if not (self.max_step >= 0 and math.isfinite(self.max_step)):
            raise ValueError(f"target max_step must be a finite number >= 0 (0 = off), got {self.max_step}")

    def to_metadata(self) -> dict[str, str]:
        """Metadata strings (``target_clamp`` "1"/"0", ``target_max_step`` rad)."""
        return {"target_clamp": "1" if self.clamp else "0", "target_max_step": repr(float(self.max_step))}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str = "policy") -> TargetShaping:
        """Parse the metadata; a file without the keys gets the defaults (what the runtime always applied)."""
        clamp = meta.get("target_clamp", "1").strip().lower()
        if clamp not in ("1", "0", "true", "false"):
            raise ValueError(f"{where}: metadata target_clamp={clamp!r} must be 1 or 0")
        raw = meta.get("target_max_step", repr(cls.max_step))
        try:
            return cls(clamp=clamp in ("1", "true"), max_step=float(raw))
        except ValueError:
            raise ValueError(
                f"{where}: metadata target_max_step={raw!r} must be a number >= 0 (rad per step)"
            ) from None

    def describe(self) -> str:
        """One line for logs and reports."""
        rate = f"rate limit {self.max_step:g} rad/step" if self.max_step > 0 else "no rate limit"
        return f"targets {'clamped to the joint limits' if self.clamp else 'not clamped'}, {rate}"


TARGET_FAULT_MARGIN = 2.0
"""rad: an unshaped target (``default + action_scale * a``) more than this past a joint limit is a fault. The robot
runtime damps (``deploy.safety.SafetyConfig.limit_margin`` defaults to it); the tracking task ends the episode as a
failure, so no policy learns to rely on targets the robot refuses (a fine-tuned policy did: 2.0 rad past the left
ankle pitch stop)."""


def target_limit_excess(unshaped: Array, lower: Array, upper: Array) -> Array:
    """How far (rad) unshaped targets (..., J) lie beyond [lower, upper] (J,), per joint (negative inside)."""
    if _is_torch(unshaped):
        import torch

        lo = torch.as_tensor(lower, dtype=unshaped.dtype, device=unshaped.device)
        hi = torch.as_tensor(upper, dtype=unshaped.dtype, device=unshaped.device)
        return torch.maximum(lo - unshaped, unshaped - hi)
    return np.maximum(np.asarray(lower) - unshaped, unshaped - np.asarray(upper))


def shape_targets(
    action: Array, previous: Array | None, default: Array, action_scale: float, lower: Array, upper: Array,
    shaping: TargetShaping, action_clip: float = ACTION_CLIP,
) -> tuple[Array, Array, Array]:  # fmt: skip
    """Raw policy actions -> joint targets (the one definition; see module docstring).

    ``action`` (..., J) raw policy output; ``previous`` (..., J) the previous joint targets (rad; None: no rate
    limit this step, e.g. nothing was commanded before); ``default`` (J,) default pose (rad); ``lower``/``upper``
    (J,) position limits (rad). NumPy or torch (all arrays of one kind).

    Returns ``(a, unshaped, target)``: the clipped action (the observation's last-action term), the target
    ``default + scale * a`` before steps 3-4 (what a safety check compares with the limits), and the target to send.
    """
    a = _clip(action, -action_clip, action_clip)
    unshaped = default + action_scale * a
    target = unshaped
    if shaping.max_step > 0 and previous is not None:
        target = _clip(target, previous - shaping.max_step, previous + shaping.max_step)
    if shaping.clamp:
        target = _clip(target, lower, upper)
    return a, unshaped, target


# ---------------------------------------------------------------------------------------------- timing
def motion_steps(length_s: Array, control_dt: float, start_s: Array = 0.0) -> Array:
    """Control steps of an episode that starts at motion time ``start_s`` and runs to the clip's end.

    After k steps the robot is at motion time ``start_s + k dt``; the episode ends at the first k with
    ``start_s + k dt >= length_s - dt / 2`` (the last step lands within half a step of the end, so a clip whose
    length is not a whole number of steps rounds to the nearest step, ties up), and lasts at least one step.
    Example: a 30 fps clip of 119 frames (CR7, length 118/30 = 3.933 s = 196.7 steps) runs 197 steps.
    Scalars give an ``int``; NumPy/torch arrays (per env) give int64 arrays/tensors.
    """
    if _is_torch(length_s) or _is_torch(start_s):
        import torch

        ref = length_s if _is_torch(length_s) else start_s
        ln = torch.as_tensor(length_s, dtype=torch.float64, device=ref.device)
        st = torch.as_tensor(start_s, dtype=torch.float64, device=ref.device)
        return torch.ceil((ln - st) / control_dt - 0.5 - STEP_TOL).clamp(min=1).long()
    x = (np.asarray(length_s, dtype=np.float64) - np.asarray(start_s, dtype=np.float64)) / control_dt - 0.5 - STEP_TOL
    k = np.maximum(np.ceil(x), 1).astype(np.int64)
    return int(k) if k.ndim == 0 else k


def policy_phase(steps_done: Array, control_dt: float, length_s: Array, start_s: Array = 0.0) -> Array:
    """Phase in the observation built after ``steps_done`` control steps of an episode started at ``start_s``.

    The observation carries the phase of the *next* target: ``(start_s + (k + 1) dt) / length_s``, clipped to
    [0, 1] (the reference's rule; asap-method.md section 4). NumPy, torch or scalars.
    """
    ph = (start_s + (steps_done + 1) * control_dt) / length_s
    if _is_torch(ph):
        return ph.clamp(0.0, 1.0)
    out = np.clip(ph, 0.0, 1.0)
    return float(out) if np.ndim(out) == 0 else out
