"""Rollout-vs-reference metrics: identical motions give zero error; a shifted start is aligned away."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from asap.eval.compare import compare_rollout
from asap.motion.synthetic import synthetic_motion
from asap.utils.rotations import quat_mul, quat_rotate


def test_identical_rollout_has_zero_error():
    ref = synthetic_motion(num_frames=60, seed=1)
    m = compare_rollout(ref, ref)
    assert m.frames == 59 and m.success  # frames 1..59 after the start state
    assert m.E_g_mpjpe == pytest.approx(0.0, abs=1e-3) and m.E_mpjpe == pytest.approx(0.0, abs=1e-3)


def test_start_alignment_removes_a_rigid_xy_yaw_offset():
    ref = synthetic_motion(num_frames=60, seed=2)
    yaw = 0.7
    q = np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    moved = replace(
        ref,
        root_pos=quat_rotate(np.broadcast_to(q, ref.root_pos.shape[:-1] + (4,)), ref.root_pos) + [1.5, -2.0, 0.0],
        root_quat=quat_mul(np.broadcast_to(q, ref.root_quat.shape), ref.root_quat),
    )
    raw = compare_rollout(moved, ref)
    aligned = compare_rollout(moved, ref, align="start")
    assert raw.E_g_mpjpe > 500 and not raw.success
    assert aligned.E_g_mpjpe == pytest.approx(0.0, abs=1e-2) and aligned.success
    assert raw.E_mpjpe > aligned.E_mpjpe  # root-relative error still sees the heading change


def test_rollout_longer_than_reference_is_cut():
    ref = synthetic_motion(num_frames=30, seed=3)
    m = compare_rollout(ref, ref, start_time=ref.duration / 2)
    assert m.frames == 14  # 0.29 s of clip left: 14.5 steps, the episode ends within half a step
