"""TrackingEnv on the real MuJoCo backend: timing/phase, observations, residual actions, terminations, resets, DR."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from asap.motion.motionlib import MotionLib
from asap.motion.synthetic import synthetic_motion
from asap.sim.base import SimConfig, make_simulator
from envs.tracking.config import DomainRandConfig, TerminationConfig, TrackingEnvConfig
from envs.tracking.env import TrackingEnv

N = 3


@pytest.fixture(scope="module")
def lib() -> MotionLib:
    m = synthetic_motion(num_frames=26, fps=50, speed=(0.0, 0.0, 0.0), yaw_rate=0.0, amplitude=0.05)  # 0.5 s
    return MotionLib([m])


@pytest.fixture(scope="module")
def sim():
    s = make_simulator(SimConfig(num_envs=N, threads=1))
    yield s
    s.close()


@pytest.fixture
def sim16():
    """16 envs: enough draws for the initial-state noise tests' statistics."""
    s = make_simulator(SimConfig(num_envs=16, threads=1))
    yield s
    s.close()


def _env(sim, lib, **kw) -> TrackingEnv:
    cfg = TrackingEnvConfig(**kw)
    return TrackingEnv(cfg, sim, lib)


def test_shapes_phase_and_reference_init(sim, lib):
    env = _env(sim, lib, obs_noise_level=0.0)
    starts = torch.tensor([0.0, 0.2, 0.4])
    obs = env.reset_to(torch.zeros(N, dtype=torch.long), starts)
    assert obs["actor"].shape == (N, 380) and obs["critic"].shape == (N, 557)
    # phase of the first observation = (t0 + dt) / length
    length = float(lib.motion_lengths[0])
    assert torch.allclose(obs["actor"][:, 379], (starts + 0.02) / length, atol=1e-6)
    # reference-state init: joints at the reference, history empty, last action zero
    ref = lib.get_state(torch.zeros(N, dtype=torch.long), starts)
    q, _ = sim.get_joint_state()
    assert torch.allclose(q, ref.dof_pos, atol=1e-5)
    assert torch.allclose(obs["actor"][:, 26:49], ref.dof_pos - env.default_pos, atol=1e-5)
    assert torch.all(obs["actor"][:, 72:376] == 0) and torch.all(obs["actor"][:, :23] == 0)


def test_step_history_timeout_at_clip_end(sim, lib):
    env = _env(sim, lib, obs_noise_level=0.0, residual_actions=True)
    env.set_eval(True)
    env.reset_to(torch.zeros(N, dtype=torch.long), torch.tensor([0.0, 0.3, 0.44]))
    obs, info = env.step(torch.zeros(N, env.num_actions))
    # residual zero action = reference joint angles at t0 + dt in action units; recorded as the last action
    first = env.actions.clone()
    assert torch.allclose(first, (env.ref_now.dof_pos - env.default_pos) / 0.25, atol=1e-5)
    assert torch.allclose(obs["actor"][:, :23], first, atol=1e-6)
    assert torch.all(obs["actor"][:, 72:95] == 0)  # history = the reset observation (last action 0)
    assert torch.all(info.reward > 0)
    assert not info.terminated.any()
    obs, info = env.step(torch.zeros(N, env.num_actions))
    assert torch.allclose(obs["actor"][:, 72:95], first, atol=1e-6)  # newest history frame = previous step
    # env 2 started 0.44 s into a 0.5 s clip: 3 steps to the end -> time-out, not termination
    obs, info = env.step(torch.zeros(N, env.num_actions))
    assert info.time_out.tolist() == [False, False, True] and not info.terminated.any()
    errs = env.tracking_errors()
    assert float(errs["mpjpe"].max()) < 0.05  # following the reference's joint angles open loop, 3 steps in
    env.set_eval(False)


def test_tilt_and_far_terminate_and_reset(sim, lib):
    env = _env(sim, lib, termination=TerminationConfig(far_threshold=0.3, far_curriculum=False))
    env.reset_to(torch.zeros(N, dtype=torch.long), torch.zeros(N))
    root = sim.get_root_state().clone()
    root[0, 0] += 1.0  # env 0 teleported 1 m away from its reference
    sim.set_root_state(torch.tensor([0]), root[:1])
    obs, info = env.step(torch.zeros(N, env.num_actions))
    assert info.terminated.tolist() == [True, False, False]
    assert info.terms["termination"][0] == pytest.approx(-200 * 0.02)
    assert env.episode_length_buf.tolist() == [0, 1, 1]  # env 0 was reset
    assert torch.all(obs["actor"][0, 72:376] == 0)
    # a robot lying on its side ends by the tilt condition
    root = sim.get_root_state().clone()
    root[1, 3:7] = torch.tensor([0.7071068, 0.7071068, 0.0, 0.0])
    sim.set_root_state(torch.tensor([1]), root[1:2])
    _, info = env.step(torch.zeros(N, env.num_actions))
    assert bool(info.terminated[1])


def test_curricula_move_with_episode_length(sim, lib):
    cfg = TrackingEnvConfig()
    cfg = replace(cfg, termination=replace(cfg.termination, far_curriculum_degree=0.1))
    env = TrackingEnv(cfg, sim, lib)
    env.average_episode_length = 10.0  # short episodes -> loosen
    before = env.far_threshold
    env._after_episodes(torch.tensor([True, False, False]), torch.tensor([True, False, False]), env.motion_time())
    assert env.far_threshold > before
    assert env.penalty_scale < 0.1


def test_domain_randomisation_reaches_the_simulator(sim, lib):
    dr = DomainRandConfig(friction=True, kp_kd=True, control_delay=True, link_mass=True, com_offset=True,
                          substep_delay=True, substep_delay_range=(1, 2))  # fmt: skip
    env = _env(sim, lib, domain_rand=dr)
    d = sim.get_dynamics()
    assert set(d.substep_delay.tolist()) <= {1, 2}
    assert bool(((d.friction >= 0.5) & (d.friction <= 1.25)).all())
    assert bool(((d.kp_scale >= 0.75) & (d.kp_scale <= 1.25)).all()) and float(d.kp_scale.std()) > 0
    assert set(d.action_delay.tolist()) <= {0, 1, 2}
    env.step(torch.zeros(N, env.num_actions))
    sim.set_dynamics(None, sim.default_dynamics(N))


def test_far_threshold_tightens_with_timeout_rate(sim, lib):
    cfg = TrackingEnvConfig()
    term = replace(cfg.termination, far_threshold=0.5, far_threshold_min=0.25, far_threshold_max=0.5,
                   far_curriculum_mode="timeout_rate")  # fmt: skip
    env = TrackingEnv(replace(cfg, termination=term, curriculum=replace(cfg.curriculum, average_window=1)), sim, lib)
    done = torch.tensor([True, True, False])
    env._after_episodes(done, torch.tensor([False, False, False]), env.motion_time())  # all ended episodes succeed
    assert env.timeout_rate == pytest.approx(1.0) and env.far_threshold == pytest.approx(0.25)
    env._after_episodes(done, done, env.motion_time())  # all fail
    assert env.far_threshold == pytest.approx(0.5)


def test_init_noise_tilt_only_rotates_about_horizontal_axes(lib, sim16):
    from asap.utils.rotations import quat_conj, quat_mul
    from envs.tracking.config import InitNoiseConfig

    sim, n = sim16, sim16.num_envs
    ids, t0 = torch.zeros(n, dtype=torch.long), torch.zeros(n)
    ref = lib.get_state(ids, t0).root_quat
    for tilt in (True, False):
        cfg = InitNoiseConfig(level=1.0, root_rot_deg=10.0, root_rot_tilt_only=tilt)
        env = TrackingEnv(TrackingEnvConfig(init_noise=cfg), sim, lib)
        env.reset_to(ids, t0)
        noise = quat_mul(sim.get_root_state()[:, 3:7], quat_conj(ref))  # world-frame rotation applied, wxyz
        angle = 2 * torch.atan2(noise[:, 1:].norm(dim=-1), noise[:, 0].abs())
        assert float(angle.max()) > 0.02  # perturbed
        vertical = noise[:, 3].abs() / noise[:, 1:].norm(dim=-1).clamp(min=1e-9)  # |axis_z|
        assert (float(vertical.max()) < 1e-4) if tilt else (float(vertical.max()) > 0.1)


def test_init_noise_clean_ratio_keeps_some_starts_exact(lib, sim16):
    from envs.tracking.config import InitNoiseConfig

    sim, n = sim16, sim16.num_envs
    env = TrackingEnv(TrackingEnvConfig(init_noise=InitNoiseConfig(level=1.0, clean_ratio=0.5)), sim, lib)
    env.reset_to(torch.zeros(n, dtype=torch.long), torch.zeros(n))
    q = sim.get_joint_state()[0]
    ref = lib.get_state(torch.zeros(n, dtype=torch.long), torch.zeros(n)).dof_pos
    ref = torch.maximum(torch.minimum(ref, env.pos_upper), env.pos_lower)
    clean = (q - ref).abs().amax(dim=-1) < 1e-5
    assert 0 < int(clean.sum()) < n  # some starts exact, the others perturbed (P(all alike) = 2^-15)
    assert float((q - ref).abs().amax(dim=-1)[~clean].min()) > 1e-3


def _logged_start(tmp_path, lib, name: str, ankle_sag: float = -0.1):
    """A logged episode (as `asap collect` writes it) whose first frame is the clip's first pose with the ankle
    pitches ``ankle_sag`` rad below it and a small joint velocity: the support-release start of a weak-ankle robot."""
    from asap.control import ACTION_ALIGNMENT
    from asap.motion.motion import Motion

    ref = lib.get_state(torch.zeros(2, dtype=torch.long), torch.tensor([0.0, 0.02]))
    q = ref.dof_pos.numpy().copy()
    ankles = [i for i, n in enumerate(lib.joint_names) if "ankle_pitch" in n]
    q[:, ankles] += ankle_sag
    root_pos = ref.root_pos.numpy().copy()
    root_pos[:, 2] -= 0.01
    m = Motion(
        fps=50.0,
        joint_names=lib.joint_names,
        root_pos=root_pos,
        root_quat=ref.root_quat.numpy(),
        dof_pos=q,
        action=torch.zeros_like(ref.dof_pos).numpy(),
        dof_vel=torch.full_like(ref.dof_vel, 0.3).numpy(),
        root_lin_vel=ref.root_lin_vel.numpy(),
        root_ang_vel=ref.root_ang_vel.numpy(),
        meta={"action_alignment": ACTION_ALIGNMENT, "motion_name": name},
    )
    return m.save(tmp_path / "ep000.npz"), q[0], root_pos[0], ankles


def test_logged_starts_reset_to_the_logged_state_with_the_held_target(sim, lib, tmp_path):
    """A share of training resets starts from the first frame of a logged episode, at time 0 of its clip, with the
    previous target the runtime held (the clip's first pose), not the sagged measured joints; never in evaluation."""
    from envs.tracking.config import LoggedStartsConfig

    path, q_log, root_log, ankles = _logged_start(tmp_path, lib, lib.motion_names[0])
    env = _env(sim, lib, obs_noise_level=0.0, logged_starts=LoggedStartsConfig(logs=[str(tmp_path)], ratio=1.0))
    env.reset_to(torch.zeros(N, dtype=torch.long), torch.tensor([0.1, 0.2, 0.3]))
    q, qd = sim.get_joint_state()
    assert torch.allclose(q, torch.as_tensor(q_log).expand(N, -1), atol=1e-5)
    assert torch.allclose(qd, torch.full_like(qd, 0.3), atol=1e-5)
    assert torch.allclose(sim.get_root_state()[:, :3], torch.as_tensor(root_log).float().expand(N, -1), atol=1e-5)
    assert torch.all(env.motion_start == 0)  # the logged start is the clip's start, whatever was asked
    ref0 = lib.get_state(torch.zeros(N, dtype=torch.long), torch.zeros(N))
    assert torch.allclose(env.targets, ref0.dof_pos, atol=1e-6)  # the held target: the clip's first pose
    assert torch.allclose(env.targets[:, ankles] - q[:, ankles], torch.full((N, len(ankles)), 0.1), atol=1e-4)
    env.set_eval(True)  # evaluation starts where it is told, from the reference state
    env.reset_to(torch.zeros(N, dtype=torch.long), torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(sim.get_joint_state()[0], env.motion_lib.get_state(env.motion_ids, env.motion_start).dof_pos,
                          atol=1e-5)  # fmt: skip
    assert env.motion_start.tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_logged_starts_share_and_errors(sim16, lib, tmp_path):
    """About ``ratio`` of the resets start from the logs; bad settings and logs of other clips fail in one line."""
    from envs.tracking.config import LoggedStartsConfig

    _logged_start(tmp_path, lib, lib.motion_names[0])
    cfg = LoggedStartsConfig(logs=[str(tmp_path)], ratio=0.5)
    env = _env(sim16, lib, obs_noise_level=0.0, logged_starts=cfg)
    picked = 0
    for _ in range(8):
        env.reset_to(torch.zeros(16, dtype=torch.long), torch.full((16,), 0.2))
        picked += int((env.motion_start == 0).sum())
    assert 32 <= picked <= 96  # 128 resets at share 0.5
    with pytest.raises(ValueError, match="needs logged_starts.logs"):
        _env(sim16, lib, logged_starts=LoggedStartsConfig(ratio=0.5))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        _env(sim16, lib, logged_starts=LoggedStartsConfig(logs=[str(tmp_path)], ratio=1.5))
    other = tmp_path / "other"
    other.mkdir()
    _logged_start(other, lib, "kick")
    with pytest.raises(ValueError, match="'kick' is not among the training motions"):
        _env(sim16, lib, logged_starts=LoggedStartsConfig(logs=[str(other)], ratio=0.5))
