"""Each tracking reward / penalty / termination term on small hand-computed states."""

from __future__ import annotations

import math

import pytest
import torch

from envs.tracking import rewards as R


def _q(axis: str, ang: float) -> torch.Tensor:
    c, s = math.cos(ang / 2), math.sin(ang / 2)
    v = {"x": [c, s, 0, 0], "y": [c, 0, s, 0], "z": [c, 0, 0, s]}[axis]
    return torch.tensor(v, dtype=torch.float64)


def test_body_position_extend_splits_upper_lower():
    body = torch.zeros(1, 4, 3, dtype=torch.float64)
    ref = body.clone()
    ref[0, 0] = torch.tensor([0.3, 0.0, 0.0])  # upper body 0 off by 0.3 m in x
    ref[0, 2] = torch.tensor([0.0, 0.0, 0.6])  # lower body 2 off by 0.6 m in z
    upper = torch.tensor([True, True, False, False])
    r = R.body_position_extend(body, ref, upper)
    mse_u = 0.09 / 6  # one component of 2 bodies x 3
    mse_l = 0.36 / 6
    assert r.item() == pytest.approx(1.0 * math.exp(-mse_u / 0.03) + 0.5 * math.exp(-mse_l / 0.1))
    assert R.body_position_extend(body, body, upper).item() == pytest.approx(1.5)


def test_body_position_subset():
    body = torch.zeros(2, 5, 3, dtype=torch.float64)
    ref = body.clone()
    ref[1, 3, 1] = 0.1
    r = R.body_position_subset(body, ref, torch.tensor([3, 4]), sigma=0.03)
    assert r[0].item() == pytest.approx(1.0)
    assert r[1].item() == pytest.approx(math.exp(-(0.01 / 6) / 0.03))


def test_body_rotation():
    cur = torch.stack([_q("z", 0.0), _q("x", 0.0)])[None]
    ref = torch.stack([_q("z", 0.4), _q("x", 0.0)])[None]
    r = R.body_rotation(cur, ref, sigma=1.0)
    assert r.item() == pytest.approx(math.exp(-(0.16 / 2)), rel=1e-6)
    # q and -q are the same rotation
    assert R.body_rotation(cur, -cur).item() == pytest.approx(1.0)


def test_velocity_and_joint_tracking():
    v = torch.zeros(1, 2, 3, dtype=torch.float64)
    rv = v.clone()
    rv[0, 0] = torch.tensor([1.0, 2.0, 0.0])
    assert R.body_velocity(v, rv).item() == pytest.approx(math.exp(-5 / 6))
    q = torch.zeros(1, 4, dtype=torch.float64)
    rq = torch.tensor([[0.2, 0.0, -0.2, 0.0]], dtype=torch.float64)
    assert R.joint_tracking(q, rq).item() == pytest.approx(math.exp(-0.08 / 4))


def test_torques_and_action_rate():
    assert R.torques(torch.tensor([[3.0, -4.0]])).item() == 25.0
    assert R.action_rate(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 3.0]])).item() == 5.0


def test_feet_orientation():
    feet = torch.stack([_q("x", 0.0), _q("y", 0.3)])[None]
    # a foot pitched by 0.3 sees gravity (sin 0.3, 0, -cos 0.3) in its frame
    assert R.feet_orientation(feet).item() == pytest.approx(math.sin(0.3))


def test_feet_heading_wraps():
    root = _q("z", 3.0)[None]
    feet = torch.stack([_q("z", -3.0), _q("z", 3.1)])[None]
    expected = abs(2 * math.pi - 6.0) + 0.1
    assert R.feet_heading(feet, root).item() == pytest.approx(expected, rel=1e-6)


def test_slippage_only_in_contact():
    vel = torch.tensor([[[0.3, 0.4, 0.0], [1.0, 0.0, 0.0]]])
    force = torch.tensor([[[0.0, 0.0, 100.0], [0.0, 0.0, 0.5]]])
    assert R.slippage(vel, force).item() == pytest.approx(0.5)


def test_soft_limits():
    lo, hi = R.soft_range(torch.tensor([-1.0]), torch.tensor([3.0]), 0.9)
    assert lo.item() == pytest.approx(-0.8) and hi.item() == pytest.approx(2.8)
    q = torch.tensor([[-1.0], [3.0], [1.0]])
    assert R.dof_pos_limits(q, lo, hi).tolist() == pytest.approx([0.2, 0.2, 0.0])
    x = torch.tensor([[10.0, -30.0, 100.0]])
    lim = torch.tensor([10.0, 30.0, 30.0])
    # |x| - 0.9 lim = 1, 3, 73 -> clipped to 1, 1, 1
    assert R.magnitude_limits(x, lim, 0.9).item() == pytest.approx(3.0)
    assert R.magnitude_limits(torch.tensor([[9.5]]), torch.tensor([10.0]), 0.9).item() == pytest.approx(0.5)


def test_terminations():
    up = _q("x", 0.0)
    tilted = _q("x", 1.0)  # |g_y| = sin 1 = 0.84 > 0.8
    slight = _q("y", 0.9)  # |g_x| = sin 0.9 = 0.78 < 0.8
    t = R.gravity_tilt(torch.stack([up, tilted, slight]).float())
    assert t.tolist() == [False, True, False]
    body = torch.zeros(2, 3, 3)
    ref = body.clone()
    ref[1, 2, 2] = 0.5
    assert R.motion_far(body, ref, 0.4).tolist() == [False, True]
    assert R.motion_far(body, ref, torch.tensor([0.4, 0.6])).tolist() == [False, False]
