"""The delta model's seams: oracle Δa vs a Kp-scaled simulator, the Δa scaling rule, the delta observation's timing."""

from __future__ import annotations

import math

import pytest
import torch

from asap.delta import obs as dobs
from asap.delta.aligned import AlignedSimulator
from asap.delta.model import DeltaMeta, apply_delta, expand_delta
from asap.delta.oracle import OracleDelta
from asap.robot.spec import resolve_joints
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


def test_oracle_covers_latency_saturation_and_joint_friction():
    """A multi-source per-motor gap (Kp and strength scales, 90% torque limits, one control step of latency, joint
    damping and dry friction) served by the protocol target: one step from each state of its trajectory, the
    oracle-aligned nominal simulator (told the previous step's targets) lands closer to the target's next state
    than the plain one, on every joint group; and the latency term needs ``last_action``: an oracle that sees the
    current action in its place does worse."""
    from asap.eval.targets import GapSimulator

    gap = RealGapConfig(name="multi", kp_scale={"ankle": 0.65}, torque_scale={"knee": 0.8}, torque_limit_scale=0.9,
                        joint_friction=0.3, joint_damping=0.05, latency_s=0.02)  # fmt: skip
    target = GapSimulator(SimConfig(num_envs=2, threads=1), gap)
    oracle = OracleDelta(gap)
    blind = _Fn(oracle.meta, lambda obs: oracle(_without_history(obs)))  # shown the current action as the previous
    sims = {"oracle": AlignedSimulator(make_simulator(SimConfig(num_envs=2, threads=1)), oracle),
            "blind": AlignedSimulator(make_simulator(SimConfig(num_envs=2, threads=1)), blind),
            "plain": make_simulator(SimConfig(num_envs=2, threads=1))}  # fmt: skip
    spec = target.spec
    err = {k: [] for k in sims}
    target.reset()
    prev = _targets(spec, 0, 2)
    target.step(targets=prev)
    for k in range(1, 40):
        t = _targets(spec, k, 2)
        root, (q, qd) = target.get_root_state().clone(), (x.clone() for x in target.get_joint_state())
        for s in sims.values():
            s.reset(root_state=root, q=q, qd=qd)
            if isinstance(s, AlignedSimulator):
                s.set_previous_targets(None, prev)
            s.step(targets=t)
        target.step(targets=t)
        prev = t
        qg = target.get_joint_state()[0]
        for name, s in sims.items():
            err[name].append((s.get_joint_state()[0] - qg).abs().mean().item())
    mean = {k: sum(v) / len(v) for k, v in err.items()}
    print({k: f"{v:.2e}" for k, v in mean.items()})
    assert mean["oracle"] < 0.35 * mean["plain"], mean
    assert mean["oracle"] < 0.5 * mean["blind"], mean
    for s in (target, *sims.values()):
        s.close()


class _Fn:
    """A delta 'model' from a function of the observation."""

    def __init__(self, meta: DeltaMeta, fn) -> None:
        self.meta, self.fn = meta, fn

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fn(obs)


def _without_history(obs: torch.Tensor) -> torch.Tensor:
    """``obs`` with its last_action replaced by the applied action (what a model without history would see)."""
    out = obs.clone()
    out[:, dobs.term_slice("last_action", 23)] = obs[:, dobs.term_slice("applied_action", 23)]
    return out


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
    previous = None
    for k in range(4):
        t = _targets(sim.spec, k, 1)
        before = read_state(sim)
        aligned.step(targets=t)
        obs = rec.seen[-1]
        assert obs.shape == (1, dobs.actor_dim(j)) == (1, 131)
        assert torch.allclose(obs[:, dobs.term_slice("applied_action", j)], (t - default) / 0.25, atol=1e-6)
        assert torch.allclose(obs[:, dobs.term_slice("dof_pos", j)], before.q - default, atol=1e-6)
        # the step before's action (after a reset, with no history: the applied one)
        last = t if previous is None else previous
        assert torch.allclose(obs[:, dobs.term_slice("last_action", j)], (last - default) / 0.25, atol=1e-6)
        previous = t
    aligned.reset()
    aligned.step(targets=t + 0.1)
    assert torch.allclose(rec.seen[-1][:, dobs.term_slice("last_action", j)], (t + 0.1 - default) / 0.25, atol=1e-6)
    aligned.reset()
    aligned.set_previous_targets(None, t)
    aligned.step(targets=t + 0.1)
    assert torch.allclose(rec.seen[-1][:, dobs.term_slice("last_action", j)], (t - default) / 0.25, atol=1e-6)
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
    with pytest.raises(ValueError, match="unknown joint set or joint 'wrists'"):
        resolve_joints("g1_23dof", "ankles,wrists")
    with pytest.raises(ValueError, match="no joints given"):
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
    """The 'driven' observation scope: 20 columns for the ankles (action, position, velocity, last action, last Δa of
    each), the other columns do not reach the network, and a linear map of those columns is the ankle_weak oracle
    exactly."""
    from torch import nn

    from asap.delta.model import DeltaModel

    j = 23
    meta = DeltaMeta.for_variant("g1_23dof", "ankles", "driven")
    idx = meta.joint_index()
    cols = meta.input_columns()
    assert cols.tolist() == [dobs.term_slice(t, j).start + i for t in dobs.DRIVEN_TERMS for i in idx.tolist()]
    assert DeltaMeta.from_dict(meta.to_dict()).obs_scope == "driven"
    older = {k: v for k, v in meta.to_dict().items() if k != "obs_scope"}  # models saved before scopes: all columns
    assert DeltaMeta.from_dict(older).obs_scope == "full" and DeltaMeta.from_dict(older).input_columns().numel() == 131
    # models of the layout before last_action read their 108 columns out of today's observation, in their order
    v1 = DeltaMeta.from_dict({**older, "obs_version": "delta_v1"}).input_columns()
    history = dobs.term_slice("last_action", j)
    assert v1.numel() == 108 and not ((v1 >= history.start) & (v1 < history.stop)).any()
    assert v1.tolist() == sorted(v1.tolist())
    v1_driven = DeltaMeta.from_dict({**meta.to_dict(), "obs_version": "delta_v1"}).input_columns()
    assert v1_driven.tolist() == [
        dobs.term_slice(t, j).start + i
        for t in ("applied_action", "dof_pos", "dof_vel", "last_delta")
        for i in idx.tolist()
    ]
    with pytest.raises(ValueError, match="retrain it"):
        DeltaMeta.from_dict({**meta.to_dict(), "obs_version": "delta_v0"})
    with pytest.raises(ValueError, match="unknown delta observation scope"):
        DeltaMeta.for_variant("g1_23dof", "ankles", "local")

    # ankle Kp x0.65: Δa = -0.35 (q* - q) / scale = -0.35 applied_action + 0.35 dof_pos / scale, per ankle
    net = nn.Linear(20, 4, bias=False)
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
