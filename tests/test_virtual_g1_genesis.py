"""The virtual G1's Genesis engine, driven directly (no DDS), against the MuJoCo engine.

One Genesis scene for the module (importing genesis ~20 s, building the scene ~15 s on a warm kernel cache).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from asap.utils.rotations import quat_rotate, quat_rotate_inverse
from deploy.engine import Engine, MujocoEngine, robot_spec
from deploy.gap import load_gap
from deploy.genesis_engine import AVAILABLE
from deploy.virtual_g1 import SupportParams, support_wrench

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="genesis-world is not installed")

GAP = "configs/real_gap/hard.yaml"  # exercises the model edits: +2 kg torso, joint friction and damping


@pytest.fixture(scope="module")
def engines() -> tuple[Engine, MujocoEngine]:
    from deploy.genesis_engine import GenesisEngine

    gap = load_gap(GAP)
    return GenesisEngine(gap), MujocoEngine(gap)


def _quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (f(a / 2) for a in (roll, pitch, yaw) for f in (np.cos, np.sin))
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])  # fmt: skip


def test_gap_model_edits(engines: tuple[Engine, MujocoEngine]) -> None:
    gen, muj = engines
    r = gen.robot  # type: ignore[attr-defined]
    torso = r.get_link("torso_link").idx_local
    assert float(r.get_links_mass([torso])[0]) == pytest.approx(muj.model.body("torso_link").mass[0], rel=1e-4)
    assert np.allclose(r.get_dofs_frictionloss(gen._dofs).cpu().numpy(), 0.3)  # type: ignore[attr-defined]
    assert np.allclose(r.get_dofs_damping(gen._dofs).cpu().numpy(), 0.05)  # type: ignore[attr-defined]
    assert gen.dt == muj.dt == 0.005
    assert gen.stand_z == pytest.approx(muj.stand_z)


def test_readout_conventions_match_mujoco(engines: tuple[Engine, MujocoEngine]) -> None:
    rs = robot_spec()
    pos = np.array([0.1, -0.2, 0.9])
    quat = _quat(0.1, -0.05, 0.3)
    q = rs.default_pos + 0.05 * np.sin(np.arange(rs.num_joints))
    states = []
    for e in engines:
        e.reset(pos, quat, q)
        e.add_velocity(np.array([0.2, -0.1, 0.05]), np.array([0.3, -0.2, 0.1]))
        states.append(e.state())
    g, m = states
    assert np.allclose(g.pos, m.pos, atol=1e-5)
    assert np.allclose(g.quat * np.sign(g.quat[0]), m.quat * np.sign(m.quat[0]), atol=1e-5)
    assert np.allclose(g.q, m.q, atol=1e-5)
    down_g = quat_rotate_inverse(g.quat, np.array([0.0, 0.0, -1.0]))
    down_m = quat_rotate_inverse(m.quat, np.array([0.0, 0.0, -1.0]))
    assert np.allclose(down_g, down_m, atol=1e-5) and down_g[2] < -0.99
    assert np.allclose(g.lin_vel, m.lin_vel, atol=1e-5)
    assert np.allclose(g.gyro, m.gyro, atol=1e-5) and np.allclose(g.gyro, [0.3, -0.2, 0.1], atol=1e-5)
    assert np.allclose(g.ang_vel, m.ang_vel, atol=1e-5)
    assert np.allclose(g.ang_vel, quat_rotate(g.quat, g.gyro), atol=1e-6)


def test_holds_default_pose_in_support(engines: tuple[Engine, MujocoEngine]) -> None:
    rs = robot_spec()
    final, rtf = [], 0.0
    for e in engines:
        e.reset(np.array([0.0, 0.0, e.stand_z]), np.array([1.0, 0.0, 0.0, 0.0]), rs.default_pos)
        s = e.state()
        anchor = s.pos.copy()
        t0 = time.perf_counter()
        for _ in range(200):  # 1 s
            tau = np.clip(rs.kp * (rs.default_pos - s.q) - rs.kd * s.dq, -rs.effort_limit, rs.effort_limit)
            e.set_torque(tau)
            e.apply_external(support_wrench(s, anchor, SupportParams()))
            e.step()
            s = e.state()
        if e.name == "genesis":
            rtf = 1.0 / (time.perf_counter() - t0)
        final.append(s)
    print(f"Genesis engine real-time factor on CPU: {rtf:.2f}")
    g, m = final
    up = quat_rotate(g.quat, np.array([0.0, 0.0, 1.0]))
    assert up[2] > 0.99
    assert abs(g.pos[2] - engines[0].stand_z) < 0.03
    assert np.abs(g.q - rs.default_pos).max() < 0.1
    assert np.abs(g.dq).max() < 0.3
    assert np.allclose(g.acc, [0.0, 0.0, 9.81], atol=0.5)  # at rest: the specific force points up
    assert np.abs(g.gyro).max() < 0.05
    # and the two engines agree
    assert np.allclose(g.pos, m.pos, atol=0.01)
    assert np.abs(g.q - m.q).max() < 0.02


def test_one_genesis_preparation_for_the_simulator_and_the_virtual_g1(engines: tuple[Engine, MujocoEngine]) -> None:
    """The Genesis simulator backend and the virtual G1's Genesis engine load the G1 through one preparation
    (asap.robot.genesis): same collision geoms, step, integrator and floor; only the gap's edits differ."""
    from asap.robot.model import ModelOptions
    from asap.sim import SimConfig, make_simulator

    gen, muj = engines
    gap = load_gap(GAP)
    opts = ModelOptions(joint_damping=gap.joint_damping, joint_frictionloss=gap.joint_friction,
                        floor_friction=gap.floor_friction)  # fmt: skip
    sim = make_simulator(SimConfig(backend="genesis", variant="g1_29dof", num_envs=1, model=opts))
    try:
        a, b = gen.robot, sim.robot  # type: ignore[attr-defined]
        assert [g.type for g in a.geoms] == [g.type for g in b.geoms] and len(a.geoms) > 20
        assert [link.name for link in a.links] == [link.name for link in b.links]
        assert gen.scene.dt == sim.scene.dt == 0.005  # type: ignore[attr-defined]
        ra, rb = gen.scene.rigid_solver, sim.scene.rigid_solver  # type: ignore[attr-defined]
        assert ra._integrator == rb._integrator and ra._enable_self_collision == rb._enable_self_collision
        assert float(gen.plane.geoms[0].get_friction()) == float(sim.plane.geoms[0].get_friction())  # type: ignore[attr-defined]
        assert sim.spec.default_pos.tolist() == robot_spec().default_pos.tolist()
        assert sim._standing_z == pytest.approx(gen.stand_z, abs=1e-9)  # type: ignore[attr-defined]
        torso = a.get_link("torso_link").idx_local
        dm = float(a.get_links_mass([torso])[0]) - float(b.get_links_mass([torso])[0, 0])
        assert dm == pytest.approx(sum(gap.added_mass.values()), rel=1e-4)  # the gap's added mass is the difference
        assert muj.model.opt.timestep == gen.dt
    finally:
        sim.close()
