"""Early terminations of the tracking task: tilt, motion-far (training) and the paper's failure criterion (eval)."""

from __future__ import annotations

import torch

from asap.control import TARGET_FAULT_MARGIN
from asap.eval.metrics import body_position_errors, tracking_failed
from asap.motion.motionlib import MotionState
from asap.sim.state import SimState
from asap.utils.rotations import projected_gravity
from envs.tracking import rewards as R
from envs.tracking.config import TerminationConfig


def tracking_terminations(
    st: SimState, ref: MotionState, tc: TerminationConfig, far_threshold: float, eval_mode: bool,
    target_excess: torch.Tensor | None = None, gravity: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """(N,) bool: the pelvis tilts past ``tc.gravity_tilt``; in training, a body farther than ``far_threshold``
    (m) from its reference (``tc.motion_far``); in evaluation, the paper's failure criterion instead
    (:func:`asap.eval.metrics.tracking_failed`); with ``tc.target_limit_fault``, an unshaped target whose
    ``target_excess`` (N, J) (:func:`asap.control.target_limit_excess`) passes the robot's fault margin.
    ``gravity`` (N, 3), optional: the pelvis' projected gravity when the caller already has it."""
    out = torch.zeros(st.q.shape[0], dtype=torch.bool, device=st.q.device)
    if tc.target_limit_fault and target_excess is not None:
        out |= (target_excess > TARGET_FAULT_MARGIN).any(dim=-1)
    if tc.gravity_tilt > 0:
        g = projected_gravity(st.root_quat) if gravity is None else gravity
        out |= R.gravity_tilt_of(g, tc.gravity_tilt)
    if eval_mode:
        out |= tracking_failed(body_position_errors(st.body_pos, ref.body_pos)[0])
    elif tc.motion_far:
        out |= R.motion_far(st.body_pos, ref.body_pos, far_threshold)
    return out
