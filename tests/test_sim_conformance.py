"""Every importable simulator backend behaves the same under the :class:`asap.sim.Simulator` protocol.

One simulator per backend (4 envs) is shared by the module; each test resets it and restores nominal dynamics.
Physics checks run the robot high in the air (free fall: joints move as in zero gravity, nothing touches) or
standing on the floor.
"""

from __future__ import annotations

import math

import pytest
import torch

from asap.sim import DynamicsParams, SimConfig, Simulator, available_backends, make_simulator

N = 4
G = 9.81
SKY = 50.0  # m: high enough to fall freely for a second

BACKENDS = [pytest.param(name, marks=[pytest.mark.slow] if name == "genesis" else []) for name in available_backends()]


@pytest.fixture(scope="module", params=BACKENDS)
def sim(request) -> Simulator:
    s = make_simulator(SimConfig(backend=request.param, num_envs=N, threads=2))
    yield s
    s.close()


@pytest.fixture
def fresh(sim: Simulator) -> Simulator:
    sim.set_dynamics(None, sim.default_dynamics(N))
    sim.reset()
    return sim


def _default(sim: Simulator) -> torch.Tensor:
    return torch.as_tensor(sim.spec.default_pos, dtype=torch.float32, device=sim.device).expand(N, -1).clone()


def _in_the_sky(sim: Simulator) -> None:
    root = sim.get_root_state().clone()
    root[:, 2] = SKY
    root[:, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    root[:, 7:] = 0.0
    sim.reset(None, root_state=root)


def test_building_leaves_the_float_mode_alone(sim: Simulator):
    """No backend leaves float32 denormals flushed to zero in the process (Genesis' build did: later MuJoCo and
    torch results in the same process then differed in their last bits from a process without Genesis)."""
    from asap.robot.genesis import flushes_denormals

    assert not flushes_denormals()


def test_protocol_and_shapes(fresh: Simulator):
    sim = fresh
    assert isinstance(sim, Simulator)
    j, b = sim.spec.num_joints, sim.spec.num_bodies
    assert sim.control_dt == pytest.approx(0.02)
    assert sim.get_root_state().shape == (N, 13)
    q, qd = sim.get_joint_state()
    assert q.shape == qd.shape == (N, j) and q.dtype == torch.float32
    torch.testing.assert_close(q, _default(sim))
    body = sim.get_body_state()
    assert body.pos.shape == (N, b, 3) and body.quat.shape == (N, b, 4)
    assert body.lin_vel.shape == body.ang_vel.shape == (N, b, 3)
    assert sim.get_foot_contact_forces().shape == (N, 2, 3)
    sim.step(_default(sim))
    assert sim.get_applied_torques().shape == (N, j)
    assert 25.0 < sim.total_mass < 45.0


def test_state_round_trip(fresh: Simulator):
    sim = fresh
    gen = torch.Generator().manual_seed(0)
    root = torch.randn(N, 13, generator=gen)
    root[:, 2] += 2.0
    root[:, 3:7] /= root[:, 3:7].norm(dim=1, keepdim=True)
    lo, hi = (torch.as_tensor(x, dtype=torch.float32) for x in (sim.spec.pos_lower, sim.spec.pos_upper))
    q = lo + (hi - lo) * torch.rand(N, sim.num_joints, generator=gen)
    qd = torch.randn(N, sim.num_joints, generator=gen)
    sim.set_root_state(None, root)
    sim.set_joint_state(None, q, qd)
    got = sim.get_root_state()
    same_rot = torch.where((got[:, 3:4] * root[:, 3:4]) < 0, -got[:, 3:7], got[:, 3:7])  # q and -q are one rotation
    torch.testing.assert_close(
        got[:, [0, 1, 2, 7, 8, 9, 10, 11, 12]], root[:, [0, 1, 2, 7, 8, 9, 10, 11, 12]], atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(same_rot, root[:, 3:7], atol=1e-5, rtol=0)
    gq, gqd = sim.get_joint_state()
    torch.testing.assert_close(gq, q, atol=1e-5, rtol=0)
    torch.testing.assert_close(gqd, qd, atol=1e-4, rtol=1e-4)
    # the pelvis is body 0: its pose and velocity are the root's
    body = sim.get_body_state()
    torch.testing.assert_close(body.pos[:, 0], root[:, 0:3], atol=1e-4, rtol=0)
    torch.testing.assert_close(body.lin_vel[:, 0], root[:, 7:10], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(body.ang_vel[:, 0], root[:, 10:13], atol=1e-3, rtol=1e-3)
    # a subset of envs: the others keep their state
    before = sim.get_root_state()
    sim.set_root_state(torch.tensor([2]), root[:1])
    after = sim.get_root_state()
    torch.testing.assert_close(after[[0, 1, 3]], before[[0, 1, 3]])
    torch.testing.assert_close(after[2, :3], root[0, :3], atol=1e-4, rtol=0)


def test_env_ids_keep_the_callers_order(fresh: Simulator):
    """Row i of a setter belongs to env ids[i], whatever the order of the ids; repeated ids are refused."""
    sim = fresh
    _in_the_sky(sim)
    root = sim.get_root_state().clone()
    root[:, 0] = torch.arange(N, dtype=torch.float32)  # x = env index: rows are tagged
    sim.set_root_state(None, root)
    rows = root[[0, 1]].clone()
    rows[:, 0] = torch.tensor([10.0, 20.0])
    rows[:, 7] = torch.tensor([0.5, -0.5])
    sim.set_root_state([2, 0], rows)
    got = sim.get_root_state()
    assert got[[2, 0, 1, 3], 0].tolist() == pytest.approx([10.0, 20.0, 1.0, 3.0], abs=1e-4)
    assert got[[2, 0], 7].tolist() == pytest.approx([0.5, -0.5], abs=1e-4)

    q0, qd0 = sim.get_joint_state()
    q = q0[[0, 0]].clone()
    q[:, 3] = torch.tensor([0.9, 0.1])  # left knee
    sim.set_joint_state(torch.tensor([3, 1]), q, torch.zeros_like(q))
    gq, _ = sim.get_joint_state()
    assert gq[[3, 1], 3].tolist() == pytest.approx([0.9, 0.1], abs=1e-5)
    torch.testing.assert_close(gq[[0, 2]], q0[[0, 2]])

    reset_root = root[[0, 1]].clone()
    reset_root[:, 0] = torch.tensor([-7.0, 7.0])
    sim.reset([1, 0], root_state=reset_root)
    assert sim.get_root_state()[[1, 0], 0].tolist() == pytest.approx([-7.0, 7.0], abs=1e-4)

    dyn = sim.default_dynamics(2)
    dyn.kp_scale[:] = torch.tensor([[0.3], [0.7]])
    dyn.action_delay = torch.tensor([2, 1])
    sim.set_dynamics([3, 1], dyn)
    got_dyn = sim.get_dynamics([1, 3])
    assert got_dyn.kp_scale[:, 0].tolist() == pytest.approx([0.7, 0.3])
    assert got_dyn.action_delay.tolist() == [1, 2]

    before = sim.get_root_state()
    sim.push([3, 0], torch.tensor([[1.5, 0.0], [0.0, -1.5]]))
    after = sim.get_root_state()
    assert after[3, 7:9].tolist() == pytest.approx([1.5, 0.0], abs=1e-5)
    assert after[0, 7:9].tolist() == pytest.approx([0.0, -1.5], abs=1e-5)
    torch.testing.assert_close(after[[1, 2]], before[[1, 2]])

    with pytest.raises(ValueError, match="must not repeat"):
        sim.set_root_state([1, 1], root[:2])
    with pytest.raises(ValueError, match="must not repeat"):
        sim.set_dynamics(torch.tensor([0, 2, 0]), sim.default_dynamics(3))


def test_gravity_free_fall(fresh: Simulator):
    sim = fresh
    _in_the_sky(sim)
    steps = 10
    for _ in range(steps):
        sim.step(_default(sim))
    t = steps * sim.control_dt
    root = sim.get_root_state()
    assert root[:, 9].mean().item() == pytest.approx(-G * t, rel=0.01)
    assert (SKY - root[:, 2]).mean().item() == pytest.approx(0.5 * G * t * t, rel=0.03)
    assert sim.get_foot_contact_forces().abs().max().item() < 1e-6


def test_pd_reaches_target(fresh: Simulator):
    sim = fresh
    _in_the_sky(sim)
    target = _default(sim)
    target[:, 3] += 0.4  # left knee
    target[:, 15] -= 0.5  # left shoulder pitch
    target[:, 12] += 0.2  # waist yaw
    for _ in range(50):
        sim.step(target)
    q, qd = sim.get_joint_state()
    assert (q - target).abs().max().item() < 0.02
    assert qd.abs().max().item() < 0.2
    # the reported torques are the PD law with the spec's gains (clipped to effort limits)
    kp, kd, eff = (torch.as_tensor(x, dtype=torch.float32) for x in (sim.spec.kp, sim.spec.kd, sim.spec.effort_limit))
    sim.step(target + 0.3)
    tau = sim.get_applied_torques()
    assert (tau.abs() <= eff + 1e-3).all()
    assert torch.all(tau[:, [3, 15]] > 0)  # pushing towards the raised targets


def test_standing_contact_forces_carry_the_weight(fresh: Simulator):
    sim = fresh
    total = torch.zeros(N)
    steps = 0
    for k in range(15):
        sim.step(_default(sim))
        if k >= 5:
            total += sim.get_foot_contact_forces()[:, :, 2].sum(dim=1)
            steps += 1
    weight = sim.total_mass * G
    assert (total / steps).mean().item() == pytest.approx(weight, rel=0.08)
    assert sim.get_root_state()[:, 2].min().item() > 0.6  # still upright


def test_per_env_dynamics_change_behaviour(fresh: Simulator):
    sim = fresh
    _in_the_sky(sim)
    dyn = sim.default_dynamics(N)
    dyn.kp_scale[1] = 0.25
    dyn.kd_scale[1] = 0.25
    dyn.motor_strength[2] = 0.0
    sim.set_dynamics(None, dyn)
    got = sim.get_dynamics([1, 2])
    assert got.kp_scale[0, 0].item() == pytest.approx(0.25) and got.motor_strength[1, 3].item() == 0.0
    target = _default(sim)
    target[:, 3] += 0.5
    for _ in range(3):
        sim.step(target)
    q, _ = sim.get_joint_state()
    err = (q[:, 3] - target[:, 3]).abs()
    assert err[0] < err[1] - 0.05, err  # softer gains: slower
    assert err[2] == pytest.approx(0.5, abs=0.02), err  # no motor strength: the knee stays where it was
    assert err[3] == pytest.approx(err[0].item(), abs=1e-4)  # untouched env = nominal
    tau = sim.get_applied_torques()
    assert tau[2].abs().max().item() < 1e-6

    # mass: 10 kg on the pelvis of env 1 shows up in its foot forces; friction and CoM can be set too
    sim.set_dynamics(None, sim.default_dynamics(N))
    sim.reset()
    extra = torch.zeros(1, 24)
    extra[0, 0] = 10.0
    sim.set_dynamics([1], DynamicsParams(mass_add=extra, friction=torch.tensor([0.6])))
    sim.set_dynamics([3], DynamicsParams(com_offset=torch.full((1, 24, 3), 0.001)))
    load = torch.zeros(N)
    for k in range(12):
        sim.step(_default(sim))
        if k >= 6:
            load += sim.get_foot_contact_forces()[:, :, 2].sum(dim=1) / 6
    assert (load[1] - load[0]).item() == pytest.approx(10.0 * G, rel=0.2)
    assert sim.get_dynamics([1]).friction.item() == pytest.approx(0.6)


def test_action_delay_delays(fresh: Simulator):
    sim = fresh
    _in_the_sky(sim)
    sim.set_dynamics(None, DynamicsParams(action_delay=torch.tensor([0, 1, 2, 0])))
    target = _default(sim)
    target[:, 3] += 0.4
    traj = []
    for _ in range(6):
        sim.step(target)
        traj.append(sim.get_joint_state()[0][:, 3].clone())
    knee = torch.stack(traj)  # (steps, N)
    q0 = float(sim.spec.default_pos[3])
    assert knee[0, 1].item() == pytest.approx(q0, abs=1e-5)  # 1 step late: still holding the default
    assert knee[1, 2].item() == pytest.approx(q0, abs=1e-5)  # 2 steps late
    assert knee[0, 0].item() > q0 + 0.02
    # the delayed envs follow the same trajectory, shifted
    torch.testing.assert_close(knee[1:, 1], knee[:-1, 0], atol=2e-3, rtol=0)
    torch.testing.assert_close(knee[2:, 2], knee[:-2, 0], atol=2e-3, rtol=0)
    with pytest.raises(ValueError):
        sim.set_dynamics([0], DynamicsParams(action_delay=torch.tensor([99])))


def test_substep_delay_is_a_latency_below_one_control_step(fresh: Simulator):
    sim = fresh
    _in_the_sky(sim)
    sim.set_dynamics(None, DynamicsParams(substep_delay=torch.tensor([0, 1, 3, 0]),
                                          action_delay=torch.tensor([0, 0, 0, 1])))  # fmt: skip
    target = _default(sim)
    target[:, 3] += 0.4
    sim.step(target)
    knee = sim.get_joint_state()[0][:, 3]
    q0 = float(sim.spec.default_pos[3])
    # later commands move the knee less within the step: 0 > 1 > 3 substeps > one whole control step (not at all)
    assert knee[0] > knee[1] > knee[2] > q0 + 1e-4
    assert knee[3].item() == pytest.approx(q0, abs=1e-5)
    assert sim.get_dynamics([1, 2]).substep_delay.tolist() == [1, 3]


def test_direct_torques_and_push(fresh: Simulator):
    sim = fresh
    _in_the_sky(sim)
    tau = torch.zeros(N, sim.num_joints)
    tau[:, 3] = 20.0
    tau[:, 15] = 1000.0  # beyond the 25 Nm limit: clipped
    sim.step(torques=tau)
    applied = sim.get_applied_torques()
    assert torch.allclose(applied[:, 3], torch.full((N,), 20.0))
    assert torch.allclose(applied[:, 15], torch.full((N,), float(sim.spec.effort_limit[15])))
    q, qd = sim.get_joint_state()
    assert (qd[:, 3] > 0.1).all()  # the knee accelerates with the torque
    sim.step(_default(sim))  # back to PD targets
    assert sim.get_applied_torques()[:, 15].abs().max().item() < float(sim.spec.effort_limit[15])
    before = sim.get_root_state()
    sim.push([1, 2], torch.tensor([[0.5, -0.3], [1.0, 0.0]]))
    root = sim.get_root_state()
    assert root[1, 7:9].tolist() == pytest.approx([0.5, -0.3], abs=1e-5)
    assert root[2, 7:9].tolist() == pytest.approx([1.0, 0.0], abs=1e-5)
    torch.testing.assert_close(root[[0, 3]], before[[0, 3]])


def test_reset_restores_standing(fresh: Simulator):
    sim = fresh
    for _ in range(3):
        sim.step(_default(sim) + 0.3)
    sim.reset(torch.tensor([0, 2]))
    q, qd = sim.get_joint_state()
    torch.testing.assert_close(q[[0, 2]], _default(sim)[[0, 2]])
    assert qd[[0, 2]].abs().max().item() == 0.0
    assert not torch.allclose(q[1], _default(sim)[1])
    root = sim.get_root_state()
    assert root[[0, 2], 3].tolist() == pytest.approx([1.0, 1.0])
    assert math.isclose(root[0, 2].item(), root[2, 2].item())
