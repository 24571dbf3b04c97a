"""The delta model's seams: oracle Δa vs a Kp-scaled simulator, the Δa scaling rule, the delta observation's timing."""

from __future__ import annotations

import math

import pytest
import torch

from asap.delta import obs as dobs
from asap.delta.aligned import AlignedSimulator
from asap.delta.model import DeltaMeta, apply_delta, expand_delta, resolve_joints
from asap.delta.oracle import OracleDelta
from asap.sim.base import DynamicsParams, SimConfig, make_simulator
from asap.sim.state import read_state
from deploy.gap import RealGapConfig

ANKLE_WEAK = RealGapConfig(name="ankle_weak", kp_scale={"ankle": 0.65})


def _targets(spec, k: int, n: int) -> torch.Tensor:
    """A smooth, leg-heavy target sequence (N, J) around the default pose at control step k."""
    base = torch.as_tensor(spec.default_pos, dtype=torch.float32)
    w = torch.linspace(0.5, 1.5, spec.num_joints)
    off = 0.25 * torch.sin(2 * math.pi * w * k * 0.02 * 1.5)
    return (base + off).expand(n, -1).clone()


class _Recorder:
    """A delta 'model' that records what it was shown and returns a constant Δa."""

    def __init__(self, meta: DeltaMeta, value: float) -> None:
        self.meta, self.value, self.seen = meta, value, []

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen.append(obs.clone())
        sub = torch.full((obs.shape[0], len(self.meta.joints)), self.value)
        return expand_delta(self.meta, sub, 23)


def _pair(n: int = 2):
    nominal = make_simulator(SimConfig(num_envs=n, threads=1))
    gapped = make_simulator(SimConfig(num_envs=n, threads=1))
    spec = nominal.spec
    k = torch.ones(n, spec.num_joints)
    ank = [i for i, name in enumerate(spec.joint_names) if "ankle" in name]
    k[:, ank] = 0.65
    gapped.set_dynamics(None, DynamicsParams(kp_scale=k))
    return nominal, gapped


def test_oracle_reproduces_kp_scaled_simulator_step_by_step():
    """Along a 40-step trajectory of the Kp x0.65 simulator, one step from each of its states: the oracle-aligned
    nominal simulator lands on the gapped next state far closer than the plain nominal one does."""
    nominal, gapped = _pair()
    plain = make_simulator(SimConfig(num_envs=2, threads=1))
    aligned = AlignedSimulator(nominal, OracleDelta(ANKLE_WEAK))
    spec = nominal.spec
    ank = [i for i, name in enumerate(spec.joint_names) if "ankle" in name]
    err_oracle, err_plain = [], []
    gapped.reset()
    for k in range(40):
        t = _targets(spec, k, 2)
        root, (q, qd) = gapped.get_root_state().clone(), (x.clone() for x in gapped.get_joint_state())
        for s in (aligned, plain):
            s.reset(root_state=root, q=q, qd=qd)
            s.step(targets=t)
        gapped.step(targets=t)
        qg = gapped.get_joint_state()[0]
        err_oracle.append((aligned.get_joint_state()[0] - qg)[:, ank].abs().max().item())
        err_plain.append((plain.get_joint_state()[0] - qg)[:, ank].abs().max().item())
    assert max(err_plain) > 1e-3, "the Kp gap should move the ankles measurably within one step"
    print(f"oracle {max(err_oracle):.2e} rad, plain {max(err_plain):.2e} rad")
    assert max(err_oracle) < 0.2 * max(err_plain), (max(err_oracle), max(err_plain))
    for s in (nominal, gapped, plain):
        s.close()


def test_delta_scaling_is_one_rule():
    """The inner simulator receives exactly q* + delta_scale * Δa, delta_scale = the spec's action scale (0.25)."""
    sim = make_simulator(SimConfig(num_envs=2, threads=1))
    meta = DeltaMeta.for_variant("g1_23dof", "ankles")
    assert meta.delta_scale == pytest.approx(sim.spec.action_scale) == pytest.approx(0.25)
    seen: list[torch.Tensor] = []
    inner_step = sim.step

    def spy(targets=None, torques=None):
        seen.append(targets.clone())
        inner_step(targets=targets, torques=torques)

    sim.step = spy  # observe what reaches the physics; the physics itself still runs
    aligned = AlignedSimulator(sim, _Recorder(meta, 0.4))
    t = _targets(sim.spec, 3, 2)
    aligned.step(targets=t)
    full = expand_delta(meta, torch.full((2, 4), 0.4), sim.num_joints)
    assert torch.allclose(seen[0], apply_delta(t, full, 0.25))
    idx = meta.joint_index()
    assert torch.allclose(seen[0][:, idx] - t[:, idx], torch.full((2, 4), 0.1))
    others = torch.ones(sim.num_joints, dtype=torch.bool)
    others[idx] = False
    assert torch.equal(seen[0][:, others], t[:, others])
    sim.close()


def test_delta_observation_holds_the_action_applied_this_step():
    sim = make_simulator(SimConfig(num_envs=1, threads=1))
    rec = _Recorder(DeltaMeta.for_variant("g1_23dof"), 0.0)
    aligned = AlignedSimulator(sim, rec)
    j = sim.num_joints
    default = torch.as_tensor(sim.spec.default_pos, dtype=torch.float32)
    for k in range(4):
        t = _targets(sim.spec, k, 1)
        before = read_state(sim)
        aligned.step(targets=t)
        obs = rec.seen[-1]
        assert obs.shape == (1, dobs.actor_dim(j)) == (1, 108)
        assert torch.allclose(obs[:, dobs.term_slice("applied_action", j)], (t - default) / 0.25, atol=1e-6)
        assert torch.allclose(obs[:, dobs.term_slice("dof_pos", j)], before.q - default, atol=1e-6)
    sim.close()


def test_joint_sets_and_errors():
    assert resolve_joints("g1_23dof", "ankles") == (
        "left_ankle_pitch_joint", "left_ankle_roll_joint", "right_ankle_pitch_joint", "right_ankle_roll_joint",
    )  # fmt: skip
    assert len(resolve_joints("g1_23dof", "all")) == 23
    lower = resolve_joints("g1_23dof", "knees, ankles")  # sets combined, in policy order
    assert lower == ("left_knee_joint", "left_ankle_pitch_joint", "left_ankle_roll_joint", "right_knee_joint",
                     "right_ankle_pitch_joint", "right_ankle_roll_joint")  # fmt: skip
    assert resolve_joints("g1_23dof", "left_knee_joint,ankles") == lower[:3] + lower[4:]
    assert resolve_joints("g1_23dof", "legs") == resolve_joints("g1_23dof", "hips,knees,ankles")
    with pytest.raises(ValueError, match="unknown delta joint set or joint 'wrists'"):
        resolve_joints("g1_23dof", "ankles,wrists")
    with pytest.raises(ValueError, match="no delta joints"):
        resolve_joints("g1_23dof", " , ")
    with pytest.raises(ValueError, match="not joints of"):
        resolve_joints("g1_23dof", ["nose_joint"])


def test_delta_training_and_aligned_simulator_apply_the_same_shift():
    """The same Δa moves the targets reaching the physics by the same amount in open-loop training (DeltaEnv, the
    policy's action) and in the aligned simulator (fine-tuning and `asap play --delta`): the reference's 0.25 in
    one and not the other would fail here."""
    from asap.control import ACTION_ALIGNMENT, TargetShaping
    from asap.motion.motion import Motion
    from asap.motion.motionlib import MotionLib
    from envs.delta.config import DeltaEnvConfig
    from envs.delta.env import DeltaEnv

    def spied(n: int):
        sim = make_simulator(SimConfig(num_envs=n, threads=1))
        seen: list[torch.Tensor] = []
        inner = sim.step

        def spy(targets=None, torques=None):
            seen.append(targets.clone())
            inner(targets=targets, torques=torques)

        sim.step = spy
        return sim, seen

    spec = make_simulator(SimConfig(num_envs=1, threads=1)).spec
    t = 12
    q = torch.as_tensor(spec.default_pos, dtype=torch.float64).numpy()[None].repeat(t, 0)
    act = torch.linspace(-1, 1, t)[:, None].expand(t, spec.num_joints).numpy().copy()
    log = Motion(fps=50.0, joint_names=spec.joint_names, root_pos=torch.tensor([[0, 0, 0.79]]).repeat(t, 1).numpy(),
                 root_quat=torch.tensor([[1.0, 0, 0, 0]]).repeat(t, 1).numpy(), dof_pos=q, action=act,
                 meta={"action_alignment": ACTION_ALIGNMENT})  # fmt: skip
    meta = DeltaMeta.for_variant("g1_23dof", "ankles")
    idx = meta.joint_index()

    sim_a, seen_a = spied(1)
    env = DeltaEnv(DeltaEnvConfig(window_s=0.1, joints="ankles"), sim_a, MotionLib([log]), TargetShaping())
    env.reset_to(torch.zeros(1, dtype=torch.long), torch.tensor([2]))
    shaped = env.targets.clone()
    env.step(torch.full((1, 4), 0.4))
    shift_training = (seen_a[0] - shaped)[:, idx]

    sim_b, seen_b = spied(1)
    aligned = AlignedSimulator(sim_b, _Recorder(meta, 0.4))
    aligned.step(targets=shaped)
    shift_aligned = (seen_b[0] - shaped)[:, idx]

    assert torch.allclose(shift_training, shift_aligned, atol=1e-7)
    assert torch.allclose(shift_aligned, torch.full((1, 4), 0.4 * 0.25), atol=1e-7)


def test_driven_scope_reads_only_the_driven_joints_and_can_express_the_oracle():
    """The 'driven' observation scope: 16 columns for the ankles (action, position, velocity, last Δa of each), the
    other columns do not reach the network, and a linear map of those columns is the ankle_weak oracle exactly."""
    from torch import nn

    from asap.delta.model import DeltaModel

    j = 23
    meta = DeltaMeta.for_variant("g1_23dof", "ankles", "driven")
    idx = meta.joint_index()
    cols = meta.input_columns()
    assert cols.tolist() == [dobs.term_slice(t, j).start + i for t in dobs.DRIVEN_TERMS for i in idx.tolist()]
    assert DeltaMeta.from_dict(meta.to_dict()).obs_scope == "driven"
    older = {k: v for k, v in meta.to_dict().items() if k != "obs_scope"}  # models saved before scopes: all columns
    assert DeltaMeta.from_dict(older).obs_scope == "full" and DeltaMeta.from_dict(older).input_columns().numel() == 108
    with pytest.raises(ValueError, match="unknown delta observation scope"):
        DeltaMeta.for_variant("g1_23dof", "ankles", "local")

    # ankle Kp x0.65: Δa = -0.35 (q* - q) / scale = -0.35 applied_action + 0.35 dof_pos / scale, per ankle
    net = nn.Linear(16, 4, bias=False)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[:, 0:4] = -0.35 * torch.eye(4)
        net.weight[:, 4:8] = 0.35 / meta.delta_scale * torch.eye(4)
    model = DeltaModel(net, meta)
    oracle = OracleDelta(ANKLE_WEAK, "g1_23dof", "ankles")
    obs = torch.randn(64, dobs.actor_dim(j))
    assert torch.allclose(model(obs), oracle(obs), atol=1e-5)
    other = torch.ones(dobs.actor_dim(j), dtype=torch.bool)
    other[cols] = False
    moved = obs.clone()
    moved[:, other] += 5.0  # body velocities, gravity, contact forces, the other joints
    assert torch.equal(model(moved), model(obs))
