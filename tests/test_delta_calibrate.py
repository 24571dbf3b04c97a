"""Gain calibration of a delta model: a model that learned half of the needed correction is scaled back to it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from asap.delta import obs as dobs
from asap.delta.calibrate import calibrate_gain
from asap.delta.model import DeltaMeta, DeltaModel, save_delta
from asap.motion.motionlib import MotionLib
from asap.sim.base import SimConfig, make_simulator
from tests.test_delta_env import SHAPING, make_gapped_log


def half_oracle() -> DeltaModel:
    """A linear π^Δ on the ankles giving half the closed-form Δa of ankle Kp x0.65 (Kd unchanged):
    Δa = (0.65 - 1) (q* - q) / delta_scale, with q* - q = 0.25 applied_action - dof_pos (both relative to default)."""
    meta = DeltaMeta.for_variant("g1_23dof", "ankles")
    j, idx = 23, meta.joint_index()
    net = torch.nn.Linear(dobs.actor_dim(j), len(idx), bias=False)
    w = torch.zeros_like(net.weight)
    a0, q0 = dobs.term_slice("applied_action", j).start, dobs.term_slice("dof_pos", j).start
    c = 0.5 * (0.65 - 1.0) / meta.delta_scale
    for i, ji in enumerate(idx.tolist()):
        w[i, a0 + ji] = c * 0.25
        w[i, q0 + ji] = -c
    net.weight.data = w
    return DeltaModel(net, meta)


def test_calibration_restores_the_missing_half():
    logs = MotionLib([make_gapped_log(steps=40, seed=s) for s in range(2)], spec="g1_23dof")

    def make(n: int):
        return make_simulator(SimConfig(num_envs=n, threads=1))

    gain, errors = calibrate_gain(half_oracle(), logs, make, SHAPING, [0.0, 1.0, 2.0, 3.0], horizon_s=0.6, stride_s=0.2)
    assert gain == 2.0, errors
    assert errors[2.0] < errors[1.0] < errors[0.0] and errors[2.0] < errors[3.0]

    gain, errors = calibrate_gain(half_oracle(), logs, make, SHAPING, [0.5, 1.0], horizon_s=0.6, stride_s=0.2)
    assert 1.5 < gain < 2.5 and max(errors) > 1.0, errors  # the grid's edge was best: extended upwards past 2


def test_the_gain_travels_with_the_model_file(tmp_path):
    """The gain is metadata of delta.pt, applied by DeltaModel itself (report, fine-tuning and play alike)."""
    from tests.test_finetune import constant_delta

    p = constant_delta(tmp_path / "delta.pt", 0.4)
    ck = torch.load(str(p), map_location="cpu", weights_only=False)
    meta = DeltaMeta.from_dict(ck["delta_meta"])
    assert meta.gain == 1.0
    save_delta(p, replace(meta, gain=2.0), ck["actor_cfg"], ck["actor_state_dict"])
    m = DeltaModel.load(p)
    out = m(torch.zeros(2, dobs.actor_dim(23)))
    assert m.meta.gain == 2.0 and torch.allclose(out[:, m.meta.joint_index()], torch.full((2, 4), 0.8), atol=1e-6)
    older = {k: v for k, v in meta.to_dict().items() if k != "gain"}  # files written before the gain existed
    assert DeltaMeta.from_dict(older).gain == 1.0


def test_joint_group_calibration_repairs_sizes_that_differ_by_joint(tmp_path):
    """A model at half the oracle's Δa on the ankle pitches and the full one on the ankle rolls: no scalar gain fits
    both, the group calibration doubles the pitch pair only; the multipliers travel in delta.pt per joint."""
    from asap.delta.calibrate import calibrate_joint_gains, joint_groups

    logs = MotionLib([make_gapped_log(steps=40, seed=s) for s in range(2)], spec="g1_23dof")
    model = half_oracle()
    rolls = [i for i, n in enumerate(model.meta.joints) if "roll" in n]
    model.net.weight.data[rolls] *= 2.0  # the rolls at the full correction
    assert joint_groups(model.meta.joints) == {"ankle_pitch_joint": [0, 2], "ankle_roll_joint": [1, 3]}

    def make(n: int):
        return make_simulator(SimConfig(num_envs=n, threads=1))

    gains, tries = calibrate_joint_gains(model, logs, make, SHAPING, [0.5, 2.0], horizon_s=0.6, stride_s=0.2)
    assert gains == (2.0, 1.0, 2.0, 1.0), tries
    assert len(tries) == 1 + 2 * 2 and tries[-1]["group"] == "ankle_roll_joint"
    assert min(t["error_mm"] for t in tries) < tries[0]["error_mm"]

    # one side short: only per-joint groups can fix the left pitch alone
    one_side = half_oracle()
    one_side.net.weight.data[[1, 2, 3]] *= 2.0  # all but the left ankle pitch at the full correction
    assert joint_groups(one_side.meta.joints, "joint") == {n: [i] for i, n in enumerate(one_side.meta.joints)}
    per_joint, _ = calibrate_joint_gains(one_side, logs, make, SHAPING, [2.0], horizon_s=0.6, stride_s=0.2,
                                         grouping="joint")  # fmt: skip
    assert per_joint == (2.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="joint grouping must be one of"):
        joint_groups(one_side.meta.joints, "side")

    calibrated = DeltaModel(model.net, replace(model.meta, gain=1.5, joint_gain=gains))
    obs = torch.randn(5, dobs.actor_dim(23))
    idx = model.meta.joint_index()
    assert torch.allclose(calibrated(obs)[:, idx], model(obs)[:, idx] * 1.5 * torch.tensor(gains), atol=1e-6)
    from tests.test_finetune import constant_delta

    p = constant_delta(tmp_path / "delta.pt", 0.4)
    ck = torch.load(str(p), map_location="cpu", weights_only=False)
    meta = replace(DeltaMeta.from_dict(ck["delta_meta"]), joint_gain=(1.0, 2.0, 3.0, 4.0))
    save_delta(p, meta, ck["actor_cfg"], ck["actor_state_dict"])
    m = DeltaModel.load(p)
    assert m.meta.joint_gain == (1.0, 2.0, 3.0, 4.0)
    assert torch.allclose(m(torch.zeros(1, dobs.actor_dim(23)))[0, idx], torch.tensor([0.4, 0.8, 1.2, 1.6]))
    with pytest.raises(ValueError, match="joint_gain has 2 values for 4 driven joints"):
        replace(meta, joint_gain=(1.0, 2.0))
