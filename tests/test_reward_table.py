"""Reward terms as data: the tracking task's table reproduces Table I term by term, curricula included."""

from __future__ import annotations

import pytest
import torch

from asap.motion.motionlib import MotionLib
from asap.motion.synthetic import synthetic_motion
from asap.sim.base import SimConfig, make_simulator
from asap.sim.state import read_state
from envs.common.reward_terms import REWARD_TERMS, RewardTable
from envs.tracking import rewards as R
from envs.tracking.config import RewardConfig, TrackingEnvConfig
from envs.tracking.env import TrackingEnv


def test_table_carries_every_table_i_weight():
    t = RewardConfig().table()
    assert set(t) <= set(REWARD_TERMS)
    want = {"body_pos": 1.0, "vr_3point": 1.6, "feet_pos": 2.1, "body_rot": 0.5, "body_ang_vel": 0.5,
            "body_vel": 0.5, "joint_pos": 0.75, "joint_vel": 0.5, "limits_dof_pos": -10.0, "limits_dof_vel": -5.0,
            "limits_torque": -5.0, "torques": -1e-6, "action_rate": -0.5, "feet_ori": -2.0, "feet_heading": -0.1,
            "slippage": -1.0}  # fmt: skip
    assert {k: v["weight"] for k, v in t.items()} == want


def test_tracking_rewards_equal_the_term_functions_with_curricula():
    lib = MotionLib([synthetic_motion(num_frames=30, fps=50, amplitude=0.2)])
    sim = make_simulator(SimConfig(num_envs=3, threads=1))
    env = TrackingEnv(TrackingEnvConfig(), sim, lib)
    env.set_eval(True)
    env.penalty_scale, env.limit_fracs = 0.3, [0.9, 0.8, 0.7]
    _, info = env.step(0.5 * torch.randn(3, 23, generator=torch.Generator().manual_seed(0)))
    st, ref, c, dt = read_state(sim), env.ref_now, env.cfg.rewards, env.dt
    feet = st.body_quat[:, env.feet_idx]
    lo, hi = R.soft_range(env.pos_lower, env.pos_upper, 0.9)
    expect = {
        "body_pos": c.body_pos * R.body_position_extend(st.body_pos, ref.body_pos, env.upper_mask),
        "vr_3point": c.vr_3point * R.body_position_subset(st.body_pos, ref.body_pos, env.vr_idx),
        "feet_pos": c.feet_pos * R.body_position_subset(st.body_pos, ref.body_pos, env.feet_idx),
        "body_rot": c.body_rot * R.body_rotation(st.body_quat, ref.body_quat),
        "joint_pos": c.joint_pos * R.joint_tracking(st.q, ref.dof_pos),
        "action_rate": 0.3 * c.action_rate * R.action_rate(env.actions, env.last_actions),
        "feet_ori": 0.3 * c.feet_ori * R.feet_orientation(feet),
        "limits_dof_pos": 0.3 * c.limits_dof_pos * R.dof_pos_limits(st.q, lo, hi),
        "limits_torque": 0.3 * c.limits_torque * R.magnitude_limits(st.tau, env.effort_limit, 0.7),
    }
    for name, value in expect.items():
        assert torch.allclose(info.terms[name], dt * value, rtol=1e-5, atol=1e-9), name
    sim.close()


def test_per_call_params_and_scales():
    table = RewardTable({"action_rate": {"weight": -1.0}, "limits_dof_vel": {"weight": -2.0, "soft": 1.0}}, 0.5)
    assert table.terms["action_rate"][0] == pytest.approx(-0.5)
    assert "limits_dof_vel" in table.terms and table.terms["limits_dof_vel"][1] == {"soft": 1.0}
    assert RewardTable({"torques": {"weight": 0.0}}, 0.02).terms == {}
