"""The proprioceptive root estimate (``--root-source estimate``), its NumPy kinematics, and the delta training's
trust in each root source (root-relative terms for a root without a trustworthy global position)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from asap.motion.motion import Motion
from asap.root_source import ROOT_TRUST, trusted
from asap.utils.rotations import quat_rotate_inverse


def test_numpy_tree_matches_the_simulator_kinematics() -> None:
    """The MJCF tree read without MuJoCo gives the same body poses as the torch FK built from the compiled model."""
    from asap.robot.kinematics import shared_kinematics
    from asap.robot.tree import g1_tree

    kin, tree = shared_kinematics("g1_29dof"), g1_tree()
    rng = np.random.default_rng(0)
    q = rng.uniform(-0.6, 0.6, (6, 29))
    rp = rng.normal(size=(6, 3))
    rq = rng.normal(size=(6, 4))
    rq /= np.linalg.norm(rq, axis=-1, keepdims=True)
    with torch.no_grad():
        p, r = kin.forward_all(*(torch.as_tensor(x) for x in (rp, rq, q)))
    names = [n for n in kin.all_body_names if n in tree.index]
    assert len(names) >= 29  # every jointed link (extended points are added by the model builder only)
    idx = [kin.all_body_names.index(n) for n in names]
    pos, quat = tree.forward(rp, rq, dict(zip(kin.spec.joint_names, q.T, strict=True)), names)
    assert np.abs(pos - p.numpy()[:, idx]).max() < 1e-5
    assert np.abs(np.abs((quat * r.numpy()[:, idx]).sum(-1)) - 1).max() < 1e-6
    assert len(tree.bodies[tree.index["left_ankle_roll_link"]].points) > 0  # the sole is known


@pytest.mark.parametrize(("clip", "z_mm", "xy_mm", "vel"), [("squat", 2.0, 5.0, 0.01), ("side_step", 8.0, 60.0, 0.1)])
def test_estimate_follows_a_clips_root(clip: str, z_mm: float, xy_mm: float, vel: float) -> None:
    """On built-in clips (feet on the floor, stepping in side_step) the estimate from joint angles and orientation
    alone tracks the clip's pelvis height, horizontal travel and velocity."""
    from deploy.root_estimate import estimate_root

    m = Motion.load(f"motions/builtin/{clip}.npz")
    dt = 1.0 / m.fps
    gyro = np.zeros((m.num_frames, 3))
    e = estimate_root(m.dof_pos, m.root_quat, gyro, dt, names=m.joint_names)
    gt = m.root_pos
    z_err = np.abs(e["pos"][:, 2] - gt[:, 2]).max() * 1e3
    xy_err = np.abs((e["pos"][:, :2] - e["pos"][0, :2]) - (gt[:, :2] - gt[0, :2])).max() * 1e3
    v_rms = np.sqrt(((e["lin_vel"] - np.gradient(gt, dt, axis=0)) ** 2).sum(-1).mean())
    print(f"[estimate] {clip}: height max {z_err:.1f} mm, travel max {xy_err:.1f} mm, velocity RMS {v_rms:.3f} m/s")
    assert z_err < z_mm and xy_err < xy_mm and v_rms < vel
    np.testing.assert_allclose(e["pos"][0, :2], 0.0)  # every episode starts at x = y = 0
    assert (e["stance"].max(axis=1) == 1.0).all()  # some foot is always on the floor
    if clip == "side_step":
        assert (e["stance"].min(axis=1) == 0.0).any()  # ...and single stance happens


def test_estimate_angular_velocity_is_the_gyro_in_the_world_frame() -> None:
    from deploy.root_estimate import estimate_root

    m = Motion.load("motions/builtin/arm_wave.npz")
    q = m.root_quat[:20]
    w_world = np.tile([0.1, -0.2, 0.3], (20, 1))
    gyro = quat_rotate_inverse(q, w_world)
    e = estimate_root(m.dof_pos[:20], q, gyro, 0.02, names=m.joint_names)
    np.testing.assert_allclose(e["ang_vel"], w_world, atol=1e-12)
    with pytest.raises(ValueError, match="no rows"):
        estimate_root(np.zeros((0, 23)), np.zeros((0, 4)), np.zeros((0, 3)), 0.02, names=m.joint_names)


def test_trust_table() -> None:
    for source in ROOT_TRUST:
        assert all(trusted(source, q) for q in ("orientation", "joints", "relative_position"))
    assert trusted("odometry", "global_position") and trusted("mocap", "global_position")
    assert trusted(None, "global_position")  # a simulator rollout without meta
    assert not trusted("estimate", "global_position") and not trusted("estimate", "linear_velocity")
    assert not trusted("imu_only", "linear_velocity")
    with pytest.raises(ValueError, match="unknown root source"):
        trusted("gps", "joints")


def test_delta_rewards_use_root_relative_positions_for_an_estimated_root() -> None:
    """A logged clip whose root drifts (as a leg-odometry estimate does) is scored like the undrifted clip when its
    root source is ``estimate`` (position terms root-relative), and worse when it claims a global position."""
    from asap.motion.motionlib import MotionLib
    from asap.sim.base import SimConfig, make_simulator
    from envs.delta.config import DeltaEnvConfig
    from envs.delta.env import DeltaEnv
    from tests.test_delta_env import SHAPING, make_gapped_log

    log = make_gapped_log(steps=40)
    t = np.arange(log.num_frames)[:, None] * 0.02
    drifted = replace(log, root_pos=log.root_pos + t * np.array([0.5, -0.3, 0.0]))
    sim = make_simulator(SimConfig(num_envs=4, threads=1))
    env = DeltaEnv(DeltaEnvConfig(window_s=0.4), sim, MotionLib([log, drifted, log, drifted]), SHAPING,
                   root_sources=["estimate", "estimate", "simulator", "simulator"])  # fmt: skip
    env.eval_mode = True
    env.reset_to(torch.arange(4), torch.full((4,), 5))
    sums: dict[str, torch.Tensor] = {}
    for _ in range(env.window):
        _, info = env.step(torch.zeros(4, env.num_actions))
        for k, v in info.terms.items():
            sums[k] = sums.get(k, torch.zeros(4)) + v
    sim.close()
    for k in ("body_pos", "vr_3point", "feet_pos"):
        assert torch.allclose(sums[k][0], sums[k][1], rtol=1e-4), k  # the drift is invisible root-relative
        assert sums[k][3] < 0.9 * sums[k][2], k  # ...and costs a clip that claims a global position
    for k in ("joint_pos", "joint_vel", "body_rot"):
        assert torch.allclose(sums[k][0], sums[k][2], rtol=1e-5), k  # joints and orientation: always, unchanged
