"""The MuJoCo backend against plain MuJoCo: same trajectories, same kinematics, same contact forces."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from asap.config import load_config
from asap.sim import DynamicsParams, SimConfig, as_env_ids, make_simulator
from asap.sim.mujoco_backend import MujocoSimulator

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"


@pytest.fixture(scope="module")
def sim() -> MujocoSimulator:
    s = make_simulator(SimConfig(num_envs=3, threads=2))
    assert isinstance(s, MujocoSimulator)
    return s


def _data_of(sim: MujocoSimulator, env: int) -> mujoco.MjData:
    d = mujoco.MjData(sim.model)
    d.qpos[:] = sim.batch.bind("qpos")[env]
    d.qvel[:] = sim.batch.bind("qvel")[env]
    mujoco.mj_forward(sim.model, d)
    return d


@pytest.mark.parametrize("persistent", [True, False])
def test_batch_matches_a_plain_mjdata_loop(persistent: bool):
    s = MujocoSimulator(SimConfig(num_envs=2, threads=2, persistent=persistent))
    m = s.model
    d = mujoco.MjData(m)
    d.qpos[:] = s.default_qpos
    rng = np.random.default_rng(0)
    for _ in range(8):
        tgt = s.spec.default_pos + 0.2 * rng.standard_normal(s.num_joints)
        s.step(torch.as_tensor(tgt, dtype=torch.float32).expand(2, -1))
        d.ctrl[s._act] = tgt.astype(np.float32)  # the protocol's tensors are float32
        for _ in range(s.spec.decimation):
            mujoco.mj_step(m, d)
    q, qd = s.get_joint_state()
    np.testing.assert_allclose(q[1].numpy(), d.qpos[s._qadr], atol=1e-6)
    np.testing.assert_allclose(qd[1].numpy(), d.qvel[s._vadr], atol=1e-5)
    np.testing.assert_allclose(s.get_applied_torques()[0].numpy(), d.actuator_force[s._act], atol=1e-4)


@pytest.mark.parametrize("late", [1, 3])
def test_substep_delay_matches_a_plain_mjdata_loop(late: int):
    """substep_delay d: the first d substeps of each control step still apply the previous command (env 1), and
    env 0 (d = 0) is untouched by its neighbour's delay."""
    s = MujocoSimulator(SimConfig(num_envs=2, threads=2))
    s.set_dynamics([1], DynamicsParams(substep_delay=torch.tensor([late])))
    m = s.model
    plain, delayed = mujoco.MjData(m), mujoco.MjData(m)
    for d in (plain, delayed):
        d.qpos[:] = s.default_qpos
    previous = s.spec.default_pos.astype(np.float32)
    rng = np.random.default_rng(1)
    for _ in range(6):
        tgt = (s.spec.default_pos + 0.2 * rng.standard_normal(s.num_joints)).astype(np.float32)
        s.step(torch.as_tensor(tgt).expand(2, -1))
        for i in range(s.spec.decimation):
            plain.ctrl[s._act] = tgt
            delayed.ctrl[s._act] = previous if i < late else tgt
            mujoco.mj_step(m, plain)
            mujoco.mj_step(m, delayed)
        previous = tgt
    q, qd = s.get_joint_state()
    np.testing.assert_allclose(q[0].numpy(), plain.qpos[s._qadr], atol=1e-6)
    np.testing.assert_allclose(q[1].numpy(), delayed.qpos[s._qadr], atol=1e-6)
    np.testing.assert_allclose(qd[1].numpy(), delayed.qvel[s._vadr], atol=1e-5)
    assert np.abs(plain.qpos - delayed.qpos).max() > 1e-3  # the delay changed the motion
    with pytest.raises(ValueError, match="substep_delay"):
        s.set_dynamics([0], DynamicsParams(substep_delay=torch.tensor([4])))


def test_bodies_and_contacts_match_mujoco(sim: MujocoSimulator):
    sim.set_dynamics(None, sim.default_dynamics(3))
    sim.reset()
    tgt = torch.as_tensor(sim.spec.default_pos, dtype=torch.float32).expand(3, -1).clone()
    tgt[:, 15] += torch.tensor([0.0, 0.3, -0.3])
    for _ in range(6):
        sim.step(tgt)
    body = sim.get_body_state()
    d = _data_of(sim, 1)
    v = np.zeros(6)
    for i, bid in enumerate(sim._body):
        np.testing.assert_allclose(body.pos[1, i].numpy(), d.xpos[bid], atol=1e-5)
        np.testing.assert_allclose(body.quat[1, i].numpy(), d.xquat[bid], atol=1e-5)
        mujoco.mj_objectVelocity(sim.model, d, mujoco.mjtObj.mjOBJ_XBODY, bid, v, 0)
        np.testing.assert_allclose(body.ang_vel[1, i].numpy(), v[:3], atol=1e-4)
        np.testing.assert_allclose(body.lin_vel[1, i].numpy(), v[3:], atol=1e-4)
    # the extended points sit at their offsets from their parents
    hand = sim.spec.body_names.index("left_hand_link")
    elbow = sim.spec.body_names.index("left_elbow_link")
    assert torch.linalg.norm(body.pos[:, hand] - body.pos[:, elbow], dim=-1).tolist() == pytest.approx([0.25] * 3)

    # contact sensors = the world-frame sum of mj_contactForce over each foot's contacts, during the last substep:
    # replay that substep from the state before it
    s2 = MujocoSimulator(SimConfig(num_envs=1, threads=1))
    s2.reset()
    for _ in range(5):
        s2.step(tgt[:1])
    d = mujoco.MjData(s2.model)
    d.qpos[:] = s2.batch.bind("qpos")[0]
    d.qvel[:] = s2.batch.bind("qvel")[0]
    d.qacc_warmstart[:] = s2.batch.bind("qacc_warmstart")[0]
    d.ctrl[:] = s2.batch.bind("ctrl")[0]
    mujoco.mj_step(s2.model, d)
    expect = np.zeros((2, 3))
    f = np.zeros(6)
    feet = [s2.model.body(n).id for n in ("left_ankle_roll_link", "right_ankle_roll_link")]
    for c in range(d.ncon):
        con = d.contact[c]
        mujoco.mj_contactForce(s2.model, d, c, f)
        world = con.frame.reshape(3, 3).T @ f[:3]  # force of geom1 on geom2
        for k, foot in enumerate(feet):
            if s2.model.geom_bodyid[con.geom2] == foot:
                expect[k] += world
            if s2.model.geom_bodyid[con.geom1] == foot:
                expect[k] -= world
    got = -d.sensordata[s2._foot_cols].reshape(2, 3)
    np.testing.assert_allclose(got, expect, atol=1e-3, rtol=1e-4)
    assert expect[:, 2].sum() > 0.5 * s2.total_mass * 9.81


def test_model_fields_are_expanded_only_when_dynamics_differ(sim: MujocoSimulator):
    fresh = MujocoSimulator(SimConfig(num_envs=2, threads=1))
    fresh.set_dynamics(None, fresh.default_dynamics(2))
    for name in ("actuator_gainprm", "actuator_biasprm", "geom_friction", "body_mass", "dof_damping"):
        assert fresh.batch.expanded(name) is None, name
    fresh.set_dynamics([1], DynamicsParams(kp_scale=torch.full((1, 23), 0.8), joint_damping=torch.full((1, 23), 0.3)))
    gain = fresh.batch.expanded("actuator_gainprm")
    assert gain is not None and gain[0, fresh._act[3], 0] == pytest.approx(200.0)
    assert gain[1, fresh._act[3], 0] == pytest.approx(160.0)
    assert fresh.batch.expanded("actuator_biasprm")[1, fresh._act[3], 1] == pytest.approx(-160.0)
    assert fresh.batch.expanded("dof_damping")[1, fresh._vadr].tolist() == pytest.approx([0.3] * 23)
    assert fresh.batch.expanded("geom_friction") is None


def test_mass_and_com_reach_the_model():
    s = MujocoSimulator(SimConfig(num_envs=2, threads=1))
    scale = torch.ones(1, 24)
    scale[0, 15] = 1.5  # torso
    com = torch.zeros(1, 24, 3)
    com[0, 15, 0] = 0.05
    s.set_dynamics([1], DynamicsParams(mass_scale=scale, mass_add=torch.zeros(1, 24), com_offset=com))
    torso = s.model.body("torso_link").id
    mass = s.batch.expanded("body_mass")
    assert mass[1, torso] == pytest.approx(1.5 * s.model.body_mass[torso])
    assert mass[0, torso] == pytest.approx(s.model.body_mass[torso])
    sub = s.batch.expanded("body_subtreemass")  # set_const ran
    assert sub[1, 1] - sub[0, 1] == pytest.approx(0.5 * s.model.body_mass[torso], rel=1e-6)
    assert s.batch.expanded("body_ipos")[1, torso, 0] == pytest.approx(s.model.body_ipos[torso, 0] + 0.05)


def test_config_file_and_errors():
    cfg = load_config(SimConfig, CONFIGS / "mujoco.yaml", ["num_envs=2"])
    assert cfg.backend == "mujoco" and cfg.num_envs == 2
    s = make_simulator(cfg)
    with pytest.raises(ValueError, match="not both"):
        s.step(targets=torch.zeros(2, 23), torques=torch.zeros(2, 23))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        as_env_ids([5], 2)
    assert as_env_ids(torch.tensor([True, False]), 2).tolist() == [0]
    with pytest.raises(ValueError, match="unknown simulator backend"):
        make_simulator(SimConfig(backend="bullet"))


def test_29dof_variant_runs():
    s = make_simulator(SimConfig(variant="g1_29dof", num_envs=2, threads=1))
    assert s.num_joints == 29
    tgt = torch.as_tensor(s.spec.default_pos, dtype=torch.float32).expand(2, -1)
    for _ in range(5):
        s.step(tgt)
    assert s.get_joint_state()[0].shape == (2, 29) and s.get_body_state().pos.shape == (2, 27, 3)
    weight = s.get_foot_contact_forces()[:, :, 2].sum(dim=1)
    assert weight.min().item() > 0.5 * s.total_mass * 9.81
