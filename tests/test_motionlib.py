"""MotionLib: forward kinematics, interpolation, velocities and batched queries (real files, real MuJoCo)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from asap.motion.formats._common import kinematic_model
from asap.motion.motion import Motion, MotionFormatError
from asap.motion.motionlib import MotionLib
from asap.motion.synthetic import synthetic_motion
from asap.utils.rotations import slerp


def _quat_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest component error between quaternions, up to sign."""
    return float(np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)).max())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    a = synthetic_motion(num_frames=40, fps=50.0, seed=1, action=True)
    b = synthetic_motion(num_frames=25, fps=30.0, seed=2, action=True, yaw_rate=-1.0)
    pa, pb = a.save(d / "a.npz"), b.save(d / "b.npz")
    return a, b, pa, pb


@pytest.fixture(scope="module")
def lib(clips):
    return MotionLib([clips[2], clips[3]])


def test_fk_matches_mujoco(lib, clips):
    a = Motion.load(clips[2])  # float32 as stored
    model = kinematic_model("g1_23dof")
    data = mujoco.MjData(model)
    ids = [model.body(n).id for n in lib.body_names]
    for f in (0, 17, 39):
        data.qpos[:3], data.qpos[3:7] = a.root_pos[f], a.root_quat[f] / np.linalg.norm(a.root_quat[f])
        for j, n in enumerate(a.joint_names):
            data.qpos[model.joint(n).qposadr[0]] = a.dof_pos[f, j]
        mujoco.mj_kinematics(model, data)
        s = lib.get_state(torch.tensor([0]), torch.tensor([f / a.fps]))
        np.testing.assert_allclose(s.body_pos[0].numpy(), data.xpos[ids], atol=2e-5)
        assert _quat_err(s.body_quat[0].numpy(), data.xquat[ids]) < 1e-5


def test_interpolation_clipping_and_phase(lib, clips):
    a = Motion.load(clips[2])
    dt = 1.0 / a.fps
    ids = torch.tensor([0, 0, 0, 0, 1])
    times = torch.tensor([-1.0, 10.5 * dt, 100.0, lib.motion_lengths[0].item(), 0.0])
    s = lib.get_state(ids, times)
    np.testing.assert_allclose(s.dof_pos[0].numpy(), a.dof_pos[0], atol=1e-6)
    np.testing.assert_allclose(s.dof_pos[1].numpy(), 0.5 * (a.dof_pos[10] + a.dof_pos[11]), atol=1e-5)
    np.testing.assert_allclose(s.dof_pos[2].numpy(), a.dof_pos[-1], atol=1e-6)
    np.testing.assert_allclose(s.root_pos[3].numpy(), a.root_pos[-1], atol=1e-6)
    mid = slerp(torch.as_tensor(a.root_quat[10]), torch.as_tensor(a.root_quat[11]), torch.tensor(0.5))
    assert _quat_err(s.root_quat[1].numpy(), mid.numpy()) < 1e-6
    assert s.phase.tolist() == pytest.approx([0.0, 10.5 / 39, 1.0, 1.0, 0.0], abs=1e-5)
    assert lib.motion_lengths.tolist() == pytest.approx([39 / 50, 24 / 30])
    assert lib.num_motions == 2 and lib.num_bodies == 27 and lib.num_joints == 23
    off = torch.tensor([[1.0, 2.0, 0.0]] * 5)
    so = lib.get_state(ids, times, offset=off)
    np.testing.assert_allclose((so.body_pos - s.body_pos)[:, 5].numpy(), off.numpy(), atol=1e-6)


def test_velocities_of_a_rigid_turning_drift(tmp_path):
    """Frozen joints, root moving at constant velocity and yaw rate: pelvis velocity and every body's angular
    velocity are exact; dof_vel is zero; measured dof_vel wins when present."""
    m = synthetic_motion(num_frames=50, fps=50.0, amplitude=0.0, speed=(0.4, -0.2, 0.1), yaw_rate=0.8)
    lib = MotionLib(m)
    s = lib.get_state(torch.zeros(7, dtype=torch.long), torch.linspace(0.0, lib.motion_lengths[0].item(), 7))
    np.testing.assert_allclose(s.root_lin_vel.numpy(), [[0.4, -0.2, 0.1]] * 7, atol=1e-4)
    np.testing.assert_allclose(s.body_ang_vel.numpy(), np.broadcast_to([0, 0, 0.8], (7, 27, 3)), atol=1e-4)
    np.testing.assert_allclose(s.root_ang_vel.numpy(), [[0, 0, 0.8]] * 7, atol=1e-4)
    assert float(s.dof_vel.abs().max()) < 1e-6
    # a body away from the root moves with v + w x r
    r = (s.body_pos[:, 26] - s.root_pos).numpy()
    want = np.array([0.4, -0.2, 0.1]) + np.cross([0, 0, 0.8], r)
    np.testing.assert_allclose(s.body_lin_vel[1:-1, 26].numpy(), want[1:-1], atol=2e-3)
    m.dof_vel = np.full_like(m.dof_pos, 0.25)
    assert float(MotionLib(m).get_state(torch.tensor([0]), torch.tensor([0.3])).dof_vel.mean()) == pytest.approx(0.25)


def test_dof_vel_forward_difference():
    m = synthetic_motion(num_frames=30, fps=30.0, seed=3)
    lib = MotionLib(m, dtype=torch.float64)
    dv = lib.frame_data("dof_vel", 0).numpy()
    want = np.diff(m.dof_pos, axis=0) * 30.0
    np.testing.assert_allclose(dv[:-1], want, atol=1e-9)
    np.testing.assert_allclose(dv[-1], want[-1], atol=1e-9)


def test_batched_query_equals_single_and_actions(lib, clips):
    g = torch.Generator().manual_seed(0)
    ids = lib.sample_motions(64, generator=g)
    times = lib.sample_times(ids, generator=g)
    assert ((times >= 0) & (times <= lib.motion_lengths[ids])).all()
    batch = lib.get_state(ids, times)
    for i in (0, 13, 63):
        one = lib.get_state(ids[i : i + 1], times[i : i + 1])
        for k, v in one.to_dict().items():
            torch.testing.assert_close(v[0], getattr(batch, k)[i])
    a, b = clips[0], clips[1]
    act = lib.get_action(torch.tensor([0, 1, 1]), torch.tensor([10.9 / 50, 0.0, 99.0]))
    np.testing.assert_allclose(act.numpy(), np.stack([a.action[10], b.action[0], b.action[-1]]), atol=1e-6)
    assert not MotionLib(synthetic_motion(num_frames=5)).has_action
    with pytest.raises(MotionFormatError, match="action"):
        MotionLib(synthetic_motion(num_frames=5)).get_action(torch.tensor([0]), torch.tensor([0.0]))


def test_joint_order_by_name_and_errors(tmp_path):
    m = synthetic_motion(num_frames=20, seed=4)
    perm = np.random.default_rng(0).permutation(m.dof_pos.shape[1])
    shuffled = Motion(
        fps=m.fps, joint_names=tuple(m.joint_names[i] for i in perm), root_pos=m.root_pos, root_quat=m.root_quat,
        dof_pos=m.dof_pos[:, perm],
    )  # fmt: skip
    t = torch.tensor([0.13])
    s1 = MotionLib(m).get_state(torch.tensor([0]), t)
    s2 = MotionLib(shuffled).get_state(torch.tensor([0]), t)
    torch.testing.assert_close(s1.body_pos, s2.body_pos)
    torch.testing.assert_close(s1.dof_pos, s2.dof_pos)
    short = Motion(fps=50, joint_names=m.joint_names[:20], root_pos=m.root_pos, root_quat=m.root_quat,
                   dof_pos=m.dof_pos[:, :20])  # fmt: skip
    with pytest.raises(MotionFormatError, match="missing"):
        MotionLib(short)
    with pytest.raises(MotionFormatError, match="no motion files"):
        MotionLib(tmp_path)
    # a 29-DoF clip serves the 23-DoF robot (wrists dropped by name)
    full = synthetic_motion(num_frames=10, spec="g1_29dof")
    assert MotionLib(full).num_joints == 23


def test_folder_and_shared_pkls(shared_data):
    lib = MotionLib(shared_data / "asap" / "g1_23dof")
    assert lib.num_motions == 8 and "CR7_level1" in lib.motion_names
    ids = torch.arange(8)
    s = lib.get_state(ids, lib.motion_lengths * 0.5)
    assert torch.isfinite(s.body_lin_vel).all() and s.body_pos.shape == (8, 27, 3)
    assert float(s.body_lin_vel.norm(dim=-1).max()) < 10.0
