"""Tracking metrics of a recorded rollout (a Motion) against its reference motion.

The rollout's frame f is compared with the reference at time ``start_time + f / fps`` (clipped to the clip's
end); frame 0 is the start state, frames up to half a frame past the clip's end are kept (the last control step of
an episode, as the training env ends it), and :func:`asap.eval.metrics.tracking_metrics` averages the errors over
the same frames as ``asap play``. Both trajectories go through the same forward kinematics, so the metrics cover
the 27 tracked bodies (with their body-group errors), and the joint angles of both give the joint-angle error.
With ``align="start"`` the reference is moved (translation in xy and heading) so that its root at
``start_time`` coincides with the rollout's first root pose — needed when the robot did not start where the
reference starts (a robot on the floor of a lab, the virtual G1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asap.control import motion_steps
from asap.eval.metrics import TrackingMetrics, tracking_metrics
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib, MotionState
from asap.robot.kinematics import shared_kinematics
from asap.robot.spec import get_spec
from asap.utils.rotations import quat_from_yaw, quat_mul, quat_rotate, yaw_from_quat


def rollout_body_positions(rollout: Motion, variant: str = "g1_23dof") -> np.ndarray:
    """World positions (T, 27, 3) of the tracked bodies along a recorded rollout."""
    m = rollout.for_robot(variant)
    pos, _ = shared_kinematics(variant).forward_numpy(m.root_pos, m.root_quat, m.dof_pos)
    return pos


def _reference_state(reference: MotionLib, times: np.ndarray, motion_id: int) -> MotionState:
    """The reference's state at ``times`` (s), clipped to the clip."""
    t = torch.as_tensor(np.clip(times, 0.0, float(reference.motion_lengths[motion_id])), dtype=torch.float32)
    ids = torch.full((len(times),), motion_id, dtype=torch.long)
    return reference.get_state(ids, t)


def reference_dof_pos(reference: MotionLib, times: np.ndarray, motion_id: int = 0) -> np.ndarray:
    """Reference joint angles (T, J) in rad at ``times``, in the library's joint order."""
    return _reference_state(reference, times, motion_id).dof_pos.double().cpu().numpy()


def reference_body_positions(
    reference: MotionLib, times: np.ndarray, align_to: tuple[np.ndarray, np.ndarray] | None = None, motion_id: int = 0
) -> np.ndarray:
    """Reference body positions (T, 27, 3) at ``times``; optionally re-anchored so that the root pose at
    ``times[0]`` maps onto ``align_to = (root_pos, root_quat)`` (xy and heading only)."""
    st = _reference_state(reference, times, motion_id)
    body = st.body_pos.double().cpu().numpy()
    if align_to is None:
        return body
    return _Anchoring.of(st, align_to).positions(body)


@dataclass(frozen=True)
class _Anchoring:
    """A rigid move of the reference in xy and heading (rotation about world z, then translation)."""

    quat: np.ndarray
    """(4,) wxyz rotation about world z."""
    pivot: np.ndarray
    """(3,) m, the point (z = 0) rotated about: the reference's root at the anchor time, in xy."""
    to: np.ndarray
    """(3,) m, where the pivot lands (z = 0): the rollout's first root position, in xy."""

    @classmethod
    def of(cls, st: MotionState, align_to: tuple[np.ndarray, np.ndarray]) -> _Anchoring:
        """The move that puts the root of ``st``'s first entry onto ``align_to = (root_pos, root_quat)``."""
        r0_pos = st.root_pos[0].double().cpu().numpy()
        dyaw = float(yaw_from_quat(np.asarray(align_to[1], dtype=np.float64))
                     - yaw_from_quat(st.root_quat[0].double().cpu().numpy()))  # fmt: skip
        return cls(np.asarray(quat_from_yaw(dyaw)), np.array([r0_pos[0], r0_pos[1], 0.0]),
                   np.array([align_to[0][0], align_to[0][1], 0.0]))  # fmt: skip

    def positions(self, p: np.ndarray) -> np.ndarray:
        """Moved world positions (..., 3)."""
        return quat_rotate(np.broadcast_to(self.quat, p.shape[:-1] + (4,)), p - self.pivot) + self.to

    def orientations(self, q: np.ndarray) -> np.ndarray:
        """Moved world orientations (..., 4), wxyz."""
        return quat_mul(np.broadcast_to(self.quat, q.shape), q)


def aligned_reference(
    rollout: Motion, reference: MotionLib, start_time: float = 0.0, align: str = "start", motion_id: int = 0
) -> Motion:
    """The reference as a Motion at the rollout's frame times (``start_time + f / rollout.fps`` s, clipped to the
    clip; the rollout's rate), in the library's joint order: the clip's root pose and joint angles, with
    ``align="start"`` the root moved in xy and heading exactly as :func:`reference_body_positions` moves the bodies
    (its first root pose onto the rollout's first one), with ``align="none"`` as the clip has it. For drawing the
    reference beside a rollout (:func:`asap.motion.render.render_ghost_video`)."""
    if align not in ("none", "start"):
        raise ValueError(f"align must be 'none' or 'start', not {align!r}")
    times = start_time + np.arange(rollout.num_frames) / float(rollout.fps)
    st = _reference_state(reference, times, motion_id)
    root_pos = st.root_pos.double().cpu().numpy()
    root_quat = st.root_quat.double().cpu().numpy()
    if align == "start":
        move = _Anchoring.of(st, (rollout.root_pos[0], rollout.root_quat[0]))
        root_pos, root_quat = move.positions(root_pos), move.orientations(root_quat)
    return Motion(fps=float(rollout.fps), joint_names=tuple(reference.spec.joint_names), root_pos=root_pos,
                  root_quat=root_quat, dof_pos=st.dof_pos.double().cpu().numpy(),
                  meta={"source": f"reference {reference.motion_names[motion_id]}, align={align}"})  # fmt: skip


def rollout_against_reference(
    rollout: Motion | str | Path,
    reference: Motion | str | Path | MotionLib,
    start_time: float = 0.0,
    align: str = "none",
    variant: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frames :func:`compare_rollout` scores: (rollout bodies (T, B, 3) m, reference bodies (T, B, 3) m,
    rollout joint angles (T, J) rad, reference joint angles (T, J) rad), frames 0..K of an episode from
    ``start_time`` (see module docstring). ``align``: 'none' or 'start'."""
    ro = rollout if isinstance(rollout, Motion) else Motion.load(rollout)
    v = variant or ("g1_29dof" if len(ro.joint_names) == 29 else "g1_23dof")
    get_spec(v)
    lib = reference if isinstance(reference, MotionLib) else MotionLib(reference, spec=v)
    if align not in ("none", "start"):
        raise ValueError(f"align must be 'none' or 'start', not {align!r}")
    sim = rollout_body_positions(ro, v)
    times = start_time + np.arange(ro.num_frames) / float(ro.fps)
    # frames 0..K, K = the steps an episode from start_time runs (asap.control.motion_steps, one frame per step)
    last = motion_steps(float(lib.motion_lengths[0]), 1.0 / float(ro.fps), start_time)
    keep = np.arange(len(times)) <= last
    sim, times = sim[keep], times[keep]
    anchor = (ro.root_pos[0], ro.root_quat[0]) if align == "start" else None
    ref = reference_body_positions(lib, times, anchor)
    return sim, ref, ro.for_robot(v).dof_pos[keep], reference_dof_pos(lib, times)


def compare_rollout(
    rollout: Motion | str | Path,
    reference: Motion | str | Path | MotionLib,
    start_time: float = 0.0,
    align: str = "none",
    variant: str | None = None,
) -> TrackingMetrics:
    """Metrics of ``rollout`` against ``reference`` (see module docstring). ``align``: 'none' or 'start'."""
    sim, ref, q, q_ref = rollout_against_reference(rollout, reference, start_time, align, variant)
    return tracking_metrics(sim, ref, dof_pos=q, ref_dof_pos=q_ref)
