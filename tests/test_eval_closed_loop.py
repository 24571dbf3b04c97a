"""`asap eval`: the reality-gap protocol target (against the plain simulator and the oracle), the closed-loop
evaluation and its report, and the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from asap.delta.aligned import AlignedSimulator
from asap.delta.oracle import OracleDelta
from asap.eval.targets import GapSimulator, latency_split
from asap.motion.motion import Motion
from asap.paths import repo_path
from asap.robot.spec import get_spec
from asap.sim.base import DynamicsParams, SimConfig, make_simulator
from deploy.gap import ActuatorLaw, RealGapConfig, load_gap

pytest.importorskip("onnxruntime")

ANKLE_WEAK = "configs/real_gap/ankle_weak.yaml"
HARD = "configs/real_gap/hard.yaml"


def _targets(spec, k: int, n: int) -> torch.Tensor:
    """A smooth, leg-heavy target sequence (N, J) around the default pose at control step k."""
    base = torch.as_tensor(spec.default_pos, dtype=torch.float32)
    w = torch.linspace(0.5, 1.5, spec.num_joints)
    return (base + 0.25 * torch.sin(2 * math.pi * w * k * 0.03)).expand(n, -1).clone()


def _state(sim) -> list[torch.Tensor]:
    q, qd = sim.get_joint_state()
    return [sim.get_root_state(), q, qd, sim.get_body_state().pos, sim.get_applied_torques()]


# ---------------------------------------------------------------------------------------------- the gap target
def test_actuator_law_hand_computed():
    gap = RealGapConfig(kp_scale={"ankle": 0.5}, kd_scale={"knee": 2.0}, torque_scale={"hip": 0.8},
                        torque_limit_scale=0.5)  # fmt: skip
    names = ("left_hip_pitch_joint", "left_knee_joint", "left_ankle_pitch_joint")
    law = ActuatorLaw.of(gap, names, np.array([100.0, 100.0, 10.0]))
    assert law.effort.tolist() == [50.0, 50.0, 5.0]
    tau = law.torque(np.array([0.1, 0.1, 0.1]), np.zeros(3), np.array([0.0, 1.0, 0.0]), np.full(3, 100.0),
                     np.full(3, 2.0), tau_ff=np.array([1.0, 0.0, 0.0]))  # fmt: skip
    assert tau.tolist() == pytest.approx([0.8 * 10.0 + 1.0, 10.0 - 4.0, 5.0])  # the ankle saturates at 0.5 x 10
    assert law.torque(np.array([np.nan, np.inf, 0.0]), np.zeros(3), np.zeros(3), np.ones(3), np.ones(3)).tolist() == [
        0.0, 0.0, 0.0]  # fmt: skip


def test_no_gap_target_is_the_plain_simulator_bit_for_bit():
    cfg = SimConfig(num_envs=2, threads=1)
    plain = make_simulator(cfg)
    targets = [GapSimulator(cfg, None), GapSimulator(cfg, "configs/real_gap/none.yaml", seed=3)]
    assert all(t.describe()["dynamics_set"] == [] and t.delay == 0 for t in targets)
    for k in range(15):
        tg = _targets(plain.spec, k, 2)
        for s in (plain, *targets):
            s.step(targets=tg)
        for t in targets:
            for a, b in zip(_state(plain), _state(t), strict=True):
                assert torch.equal(a, b), f"step {k}"
    for s in (plain, *targets):
        s.close()


def test_ankle_weak_target_matches_the_oracle_step_by_step():
    """Along a 40-step trajectory of the ankle_weak target, one step from each of its states: the plain simulator
    corrected by the oracle Δa (the same law in closed form) lands on the target's next state, the plain one does
    not."""
    cfg = SimConfig(num_envs=2, threads=1)
    target = GapSimulator(cfg, ANKLE_WEAK)
    aligned = AlignedSimulator(make_simulator(cfg), OracleDelta(load_gap(repo_path(ANKLE_WEAK))))
    plain = make_simulator(cfg)
    spec = target.spec
    ank = [i for i, n in enumerate(spec.joint_names) if "ankle" in n]
    assert target.get_dynamics().kp_scale[0, ank].tolist() == pytest.approx([0.65] * 4)
    err_oracle, err_plain = [], []
    for k in range(40):
        t = _targets(spec, k, 2)
        root, (q, qd) = target.get_root_state().clone(), (x.clone() for x in target.get_joint_state())
        for s in (aligned, plain):
            s.reset(root_state=root, q=q, qd=qd)
            s.step(targets=t)
        target.step(targets=t)
        qg = target.get_joint_state()[0]
        err_oracle.append((aligned.get_joint_state()[0] - qg).abs().max().item())
        err_plain.append((plain.get_joint_state()[0] - qg).abs().max().item())
    print(f"oracle {max(err_oracle):.2e} rad, plain {max(err_plain):.2e} rad")
    assert max(err_plain) > 1e-3, "the ankle gap should move the joints measurably within one step"
    assert max(err_oracle) < 2e-3 and max(err_oracle) < 0.2 * max(err_plain)
    for s in (target, aligned, plain):
        s.close()


def test_hard_gap_target_applies_every_part_of_the_profile():
    gap = load_gap(repo_path(HARD))
    cfg = SimConfig(num_envs=1, threads=1)
    plain, target = make_simulator(cfg), GapSimulator(cfg, gap)
    spec = get_spec(cfg.variant)
    # the actuator law: Kp/strength factors as per-env dynamics, saturation in the actuators' force range
    dyn = target.get_dynamics()
    law = ActuatorLaw.of(gap, spec.joint_names, spec.effort_limit)
    assert torch.allclose(dyn.kp_scale[0], torch.as_tensor(law.kp_scale, dtype=torch.float32))
    assert torch.allclose(dyn.motor_strength[0], torch.as_tensor(law.torque_scale, dtype=torch.float32))
    assert int(dyn.action_delay[0]) == target.delay == latency_split(0.02, 0.005, 4)[0] == 1
    # model edits: +2 kg, joint damping and friction
    assert target.total_mass == pytest.approx(plain.total_mass + 2.0)
    assert dyn.joint_damping[0].tolist() == pytest.approx([0.05] * spec.num_joints)
    assert dyn.joint_frictionloss[0].tolist() == pytest.approx([0.3] * spec.num_joints)
    # saturation: targets far away drive every motor to 0.9 x its effort limit, not beyond
    far = torch.as_tensor(spec.default_pos + 3.0, dtype=torch.float32)[None]
    target.step(targets=far)
    target.step(targets=far)  # one step of latency: the first step still held the default pose
    tau = target.get_applied_torques()[0].abs().numpy()
    assert (tau <= law.effort + 1e-3).all() and np.isclose(tau, law.effort, rtol=1e-4).sum() >= spec.num_joints // 2
    with pytest.raises(ValueError, match="joint targets"):
        target.step(torques=torch.zeros(1, spec.num_joints))
    with pytest.raises(ValueError, match="sets kp_scale"):
        target.set_dynamics(None, DynamicsParams(kp_scale=torch.ones(1, spec.num_joints)))
    for s in (plain, target):
        s.close()


def test_latency_is_whole_control_steps_and_noise_only_in_what_sensors_report():
    cfg = SimConfig(num_envs=2, threads=1)
    plain = make_simulator(cfg)
    delayed = GapSimulator(cfg, RealGapConfig(name="late", latency_s=0.04))
    assert delayed.delay == 2
    hold = torch.as_tensor(plain.spec.default_pos, dtype=torch.float32).expand(2, -1)
    seq = [_targets(plain.spec, k, 2) for k in range(8)]
    for k in range(8):
        delayed.step(targets=seq[k])
        plain.step(targets=seq[k - 2] if k >= 2 else hold)
        for a, b in zip(_state(plain), _state(delayed), strict=True):
            assert torch.equal(a, b), f"step {k}"
    noisy = [GapSimulator(cfg, RealGapConfig(name="noisy", joint_vel_noise=0.1, imu_gyro_noise=0.05), seed=s)
             for s in (0, 0, 1)]  # fmt: skip
    reads = []
    for s in noisy:
        s.step(targets=hold)
        (q, qd), root = s.get_joint_state(), s.get_root_state()
        assert torch.equal(qd, s.get_joint_state()[1]), "one draw per control step"
        true_q, true_qd = s.sim.get_joint_state()
        true_root = s.sim.get_root_state()
        assert torch.equal(q, true_q) and torch.equal(root[:, :10], true_root[:, :10])
        assert 0.05 < float((qd - true_qd).std()) < 0.2 and float((root[:, 10:] - true_root[:, 10:]).abs().max()) > 0
        reads.append(qd - true_qd)
    assert torch.equal(reads[0], reads[1]) and not torch.equal(reads[0], reads[2])  # the seed decides the noise
    for s in (plain, delayed, *noisy):
        s.close()


# ---------------------------------------------------------------------------------------------- closed loop
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A 0.6 s slice of the built-in arm wave and two small random policies with a contract."""
    from deploy.testing import make_policy, test_contract

    d = tmp_path_factory.mktemp("eval")
    clip = Motion.load(repo_path("motions/builtin/arm_wave.npz")).slice(0, 31)
    clip.meta["name"] = "wave_short"
    motion = clip.save(d / "wave_short.npz")
    c = test_contract(motion_length_s=0.6, motion_name="wave_short")
    return {"motion": motion, "a": make_policy(d / "a" / "policy.onnx", c, seed=1),
            "b": make_policy(d / "b" / "policy.onnx", c, seed=2)}  # fmt: skip


def test_closed_loop_eval_writes_metrics_report_and_plot(tiny, tmp_path):
    from asap.eval.closed_loop import PAPER_COLUMNS, evaluate
    from asap.rl.play import play

    out = tmp_path / "eval"
    r = evaluate([tiny["a"], tiny["b"]], [tiny["motion"]], out, gap=ANKLE_WEAK, episodes=2, seeds=2, init_noise=0.5,
                 progress=False)  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["policies"]) == {"a/policy", "b/policy"} and m["target"]["gap"] == "ankle_weak"
    for p in m["policies"].values():
        for key, _ in PAPER_COLUMNS:
            assert set(p["metrics"][key]) == {"mean", "std"}
        assert len(p["per_seed"]) == 2 and p["motions"]["wave_short"]["metrics"]["episodes"]["mean"] == 2
        assert len(p["motions"]["wave_short"]["episodes"][0]) == 2
        assert p["metrics"]["E_g_mpjpe"]["std"] > 0, "the seeds draw different initial states"
    md = (out / "report.md").read_text()
    assert "| Policy | Succ | E_g-mpjpe | E_mpjpe | E_acc | E_vel |" in md and "| a/policy |" in md
    assert (out / "report.png").stat().st_size > 10_000 and r["files"]["report"] == str(out / "report.md")
    # without noise and gap: every seed gives the same numbers, and they are `asap play`'s
    r0 = evaluate([tiny["a"]], [tiny["motion"]], tmp_path / "e0", episodes=1, seeds=2, progress=False)
    st = r0["policies"]["policy"]["metrics"]
    s = play(tiny["a"], tiny["motion"], out_dir=tmp_path / "play", video=False)
    assert st["E_mpjpe"]["std"] == 0.0 and st["E_mpjpe"]["mean"] == pytest.approx(s["E_mpjpe_mm"], abs=0.01)
    assert st["success_rate"]["mean"] == float(s["success"])


def test_dds_scoring_of_a_finished_collection(tiny, tmp_path):
    """evaluate_over_dds scores a collection (here: a finished one, reused from its summary) episode by episode."""
    from asap.eval.closed_loop import evaluate_over_dds
    from asap.eval.compare import compare_rollout
    from asap.rl.play import play

    s = play(tiny["a"], tiny["motion"], out_dir=tmp_path / "play", video=False)
    col = tmp_path / "col"
    col.mkdir()
    (col / "summary.json").write_text(json.dumps({"motions": [s["rollout"], s["rollout"]], "completed": [True, False]}))
    r = evaluate_over_dds(tiny["a"], tiny["motion"], col, episodes=2, gap=ANKLE_WEAK)
    ref = compare_rollout(s["rollout"], tiny["motion"], align="start")
    assert r["E_mpjpe"] == pytest.approx(ref.E_mpjpe) and r["completed"] == [True, False]
    assert r["success_rate"] == (0.5 if ref.success else 0.0) and len(r["per_episode"]) == 2


def test_a_finished_collection_is_reused_only_for_the_same_request(tiny, tmp_path, capsys):
    """A collection folder asked again with other settings (episodes, gap, policy) is refused in one line, not
    silently scored with what it holds (`asap pipeline episodes=3` over a run of 2)."""
    from asap.eval.closed_loop import evaluate_over_dds
    from asap.rl.play import play
    from deploy.collect import collection_request

    s = play(tiny["a"], tiny["motion"], out_dir=tmp_path / "play", video=False)
    col = tmp_path / "col"
    col.mkdir()
    req = collection_request(tiny["a"], 2, ANKLE_WEAK, True, "mujoco")
    (col / "summary.json").write_text(json.dumps({"motions": [s["rollout"]] * 2, "completed": [True, True],
                                                   "request": req}))  # fmt: skip
    r = evaluate_over_dds(tiny["a"], tiny["motion"], col, episodes=2, gap=ANKLE_WEAK)
    assert len(r["per_episode"]) == 2 and "reusing its 2 finished episode(s)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"episodes 2 \(asked: 3\)"):
        evaluate_over_dds(tiny["a"], tiny["motion"], col, episodes=3, gap=ANKLE_WEAK)
    with pytest.raises(ValueError, match=r"holds a finished collection with other settings: gap"):
        evaluate_over_dds(tiny["a"], tiny["motion"], col, episodes=2, gap=None)


def test_cli_runs_the_tiny_case_and_refuses_what_it_cannot_do(tiny, tmp_path, capsys):
    from asap.cli import main

    out = tmp_path / "cli"
    rc = main(["eval", str(tiny["a"]), "--motions", str(tiny["motion"]), "--gap", HARD, "--episodes", "1",
               "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0 and (out / "metrics.json").exists() and (out / "report.md").exists()
    assert json.loads((out / "metrics.json").read_text())["target"]["latency_control_steps"] == 1
    assert "policy" in capsys.readouterr().out
    rc = main(["eval", str(tiny["a"]), "--motions", str(tiny["motion"]), "--target", "genesis", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "target 'genesis' is not available" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--out", str(out)]) == 1
    rc = main(["eval", str(tiny["a"]), "--motions", str(tiny["motion"]), "--over-dds", "--init-noise", "0.5", "--out",
               str(out)])  # fmt: skip
    assert rc == 1 and "initial-state noise applies to protocol targets" in capsys.readouterr().err


def test_logs_target_scores_a_robots_episodes(tiny, tmp_path, capsys):
    """`asap eval --logs`: each collect folder is a row; `completed` from its summary enters success."""
    from asap.cli import main
    from asap.eval.compare import compare_rollout
    from asap.rl.play import play

    s = play(tiny["a"], tiny["motion"], out_dir=tmp_path / "play", video=False)
    before, after = tmp_path / "before", tmp_path / "after"
    for d, done in ((before, [False, False]), (after, [True, True])):
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({"motions": [s["rollout"]] * 2, "completed": done}))
    out = tmp_path / "logs_eval"
    assert main(["eval", "--logs", str(before), str(after), "--motions", str(tiny["motion"]), "--out", str(out)]) == 0
    rep = json.loads((out / "metrics.json").read_text())
    ref = compare_rollout(s["rollout"], tiny["motion"], align="start")
    assert set(rep["policies"]) == {"before", "after"} and rep["target"]["backend"] == "logs"
    assert rep["policies"]["before"]["metrics"]["success_rate"]["mean"] == 0.0
    assert rep["policies"]["after"]["metrics"]["success_rate"]["mean"] == (1.0 if ref.success else 0.0)
    assert rep["policies"]["after"]["metrics"]["E_mpjpe"]["mean"] == pytest.approx(ref.E_mpjpe)
    assert "logged episodes against" in capsys.readouterr().out
    assert main(["eval", "--logs", str(before), "--out", str(out)]) == 1  # no clip given: one-line error


@pytest.mark.shared_data
def test_eval_runs_one_policy_over_the_eight_asap_clips(shared_data, tmp_path):
    """The ASAP authors' 8 retargeted clips (pkl): one policy trained on all of them (2 PPO iterations: the
    plumbing, not the tracking) is evaluated on each, and the report has a row per clip."""
    from asap.cli import main
    from asap.config import load_config
    from asap.rl.config import PretrainConfig
    from asap.rl.runner import pretrain

    clips = sorted((shared_data / "asap" / "g1_23dof").glob("*.pkl"))
    assert len(clips) == 8
    cfg = load_config(PretrainConfig, "configs/pretrain/demo.yaml", [
        f"motion={','.join(map(str, clips))}", f"run.out_dir={tmp_path / 'pre'}", "num_envs=8", "threads=1",
        "ppo.num_steps_per_env=4", "ppo.actor_hidden_dims=[32]", "ppo.critic_hidden_dims=[16]",
        "ppo.num_mini_batches=1", "ppo.num_learning_epochs=1", "run.eval_start_phases=1", "run.logger=none",
        "run.max_iterations=2",
    ])  # fmt: skip
    pretrain(cfg)
    out = tmp_path / "eval8"
    rc = main(["eval", str(tmp_path / "pre" / "policy.onnx"), "--motions", *map(str, clips), "--out", str(out),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    rep = json.loads((out / "metrics.json").read_text())
    (pol,) = rep["policies"].values()
    assert set(pol["motions"]) == {c.stem for c in clips}
    for m in pol["motions"].values():
        assert m["metrics"]["E_g_mpjpe"]["mean"] > 0
    report = (out / "report.md").read_text()
    assert all(c.stem in report for c in clips)


# ---------------------------------------------------------------------------------------------- --video
def test_aligned_reference_moves_the_clip_onto_the_rollouts_start(tiny):
    """The reference as a Motion at the rollout's times: root moved in xy and heading onto the rollout's first root
    pose (the same move as reference_body_positions' bodies), joint angles the clip's."""
    from asap.eval.compare import aligned_reference, reference_body_positions, rollout_body_positions
    from asap.motion.motionlib import MotionLib
    from asap.utils.rotations import quat_from_yaw, quat_mul, quat_rotate, yaw_from_quat

    clip = Motion.load(tiny["motion"])
    lib = MotionLib(clip, spec="g1_23dof")
    q = np.broadcast_to(quat_from_yaw(0.7), clip.root_quat.shape)
    moved_pos = quat_rotate(q, clip.root_pos) + [1.0, -2.0, 0.0]  # the clip turned by 0.7 rad and shifted
    rollout = Motion(fps=clip.fps, joint_names=clip.joint_names, root_pos=moved_pos,
                     root_quat=quat_mul(q, clip.root_quat), dof_pos=clip.dof_pos + 0.1)  # fmt: skip
    ref = aligned_reference(rollout, lib, align="start")
    assert ref.num_frames == rollout.num_frames and ref.fps == rollout.fps
    np.testing.assert_allclose(ref.root_pos[0, :2], rollout.root_pos[0, :2], atol=1e-6)
    assert float(yaw_from_quat(ref.root_quat[0])) == pytest.approx(float(yaw_from_quat(rollout.root_quat[0])), abs=1e-6)
    np.testing.assert_allclose(ref.root_pos, rollout.root_pos, atol=1e-5)  # the whole clip, moved
    np.testing.assert_allclose(ref.dof_pos, clip.for_robot("g1_23dof").dof_pos, atol=1e-6)  # the clip's joints
    times = np.arange(rollout.num_frames) / rollout.fps
    bodies = reference_body_positions(lib, times, (rollout.root_pos[0], rollout.root_quat[0]))
    np.testing.assert_allclose(rollout_body_positions(ref), bodies, atol=1e-5)  # one transform for both
    plain = aligned_reference(rollout, lib, align="none")
    np.testing.assert_allclose(plain.root_pos, clip.root_pos, atol=1e-6)
    with pytest.raises(ValueError, match="align"):
        aligned_reference(rollout, lib, align="end")


@pytest.fixture(scope="module")
def offscreen_gl():
    """Skip when no offscreen OpenGL context can be made (the renderer needs EGL or OSMesa)."""
    from asap.eval.closed_loop import check_offscreen_gl

    try:
        check_offscreen_gl()
    except RuntimeError as e:
        pytest.skip(str(e))


def test_video_of_the_first_episode_per_policy_and_motion(tiny, tmp_path, offscreen_gl, monkeypatch, capsys):
    """`--video`: one mp4 per policy x motion (seed 0's first episode, a frame per control step), its path in
    metrics.json and report.md; the --logs target renders its logged episodes the same way (CLI)."""
    import imageio_ffmpeg

    import asap.eval.closed_loop as cl
    from asap.cli import main
    from asap.rl.play import play

    small = cl.VideoConfig(width=64, height=48, geoms="collision")
    out = tmp_path / "eval"
    r = cl.evaluate([tiny["a"]], [tiny["motion"]], out, episodes=2, progress=False, video=small)
    path = out / "videos" / "policy_wave_short.mp4"
    assert r["videos"] == {"policy": {"wave_short": str(path)}}
    assert json.loads((out / "metrics.json").read_text())["videos"] == r["videos"]
    steps = r["policies"]["policy"]["motions"]["wave_short"]["episodes"][0][0]["steps"]
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == steps + 1
    assert "[videos/policy_wave_short.mp4](videos/policy_wave_short.mp4)" in (out / "report.md").read_text()
    s = play(tiny["a"], tiny["motion"], out_dir=tmp_path / "play", video=False)
    log = tmp_path / "robot" / "run 1"
    log.mkdir(parents=True)
    (log / "summary.json").write_text(json.dumps({"motions": [s["rollout"]], "completed": [True]}))
    monkeypatch.setattr(cl, "VideoConfig", lambda: small)
    rc = main(["eval", "--logs", str(log), "--motions", str(tiny["motion"]), "--video", "--no-progress", "--out",
               str(tmp_path / "logs")])  # fmt: skip
    assert rc == 0 and "video: " in capsys.readouterr().out
    (video,) = (tmp_path / "logs" / "videos").glob("*.mp4")
    assert video.name == "run_1_wave_short.mp4"
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == Motion.load(s["rollout"]).num_frames


def test_over_dds_evaluation_runs_the_virtual_g1_on_the_requested_engine(tmp_path, monkeypatch):
    """`asap eval --over-dds --engine genesis`: the engine reaches the virtual G1's collection; without --over-dds
    an engine is refused in one line."""
    from asap.eval.closed_loop import evaluate, evaluate_over_dds
    from deploy import collect as collect_mod

    seen = {}

    def fake_collect(*args, **kwargs):
        seen.update(kwargs)
        return {"motions": []}

    monkeypatch.setattr(collect_mod, "collect", fake_collect)
    with pytest.raises(RuntimeError, match="no episodes"):
        evaluate_over_dds("p.onnx", "m.npz", tmp_path / "o", 1, None, engine="genesis")
    assert seen["engine"] == "genesis"
    with pytest.raises(ValueError, match="--over-dds"):
        evaluate(["p.onnx"], ["m.npz"], tmp_path / "e", engine="genesis")


def test_the_progress_bar_ends_at_its_total_when_episodes_fall_early(tmp_path, capsys):
    """Episodes that fall end before the clip does; the bar still ends at 100% (it stopped at 310/800 before)."""
    from asap.eval.closed_loop import evaluate
    from deploy.testing import make_policy, test_contract

    clip = Motion.load(repo_path("motions/builtin/arm_wave.npz")).slice(0, 101)
    clip.meta["name"] = "wave_2s"
    motion = clip.save(tmp_path / "wave_2s.npz")
    c = test_contract(motion_length_s=2.0, motion_name="wave_2s")
    pol = make_policy(tmp_path / "p" / "policy.onnx", c, seed=1, fault="huge", fault_phase=0.0)
    evaluate([pol], [motion], tmp_path / "ev", gap="configs/real_gap/hard.yaml", episodes=2, progress=True)
    eps = json.loads((tmp_path / "ev" / "metrics.json").read_text())["policies"]["policy"]["motions"]["wave_2s"]
    steps = [e["steps"] for e in eps["episodes"][0]]
    assert max(steps) < eps["episodes"][0][0]["expected_steps"], "the episodes must fall early for this test"
    assert "| 200/200 [" in capsys.readouterr().err.rsplit("\r", 1)[-1]


def test_eval_start_from_logged_first_frames(tiny, tmp_path):
    """--start-from: the episode's first recorded state is the logged first frame (a sagged support-release start),
    not the reference state, and the report names the logs; over DDS it is refused."""
    from asap.control import ACTION_ALIGNMENT
    from asap.eval.closed_loop import evaluate, load_eval_policy, run_on_target

    clip = Motion.load(tiny["motion"])
    q = clip.dof_pos[:2].copy()
    ankles = [i for i, n in enumerate(clip.joint_names) if "ankle_pitch" in n]
    q[:, ankles] -= 0.1
    log = Motion(fps=50.0, joint_names=clip.joint_names, root_pos=clip.root_pos[:2], root_quat=clip.root_quat[:2],
                 dof_pos=q, action=np.zeros_like(q), dof_vel=np.zeros_like(q), root_lin_vel=np.zeros((2, 3)),
                 root_ang_vel=np.zeros((2, 3)), meta={"action_alignment": ACTION_ALIGNMENT,
                                                      "motion_name": "wave_short"})  # fmt: skip
    logs = tmp_path / "logs"
    log.save(logs / "ep000.npz")
    pol, var = load_eval_policy(tiny["a"])
    es = run_on_target(pol, var, tiny["motion"], start_from=[str(logs)])
    first = es.episodes[0]
    ro = es.rollout
    assert np.allclose(ro.dof_pos[0], q[0], atol=1e-4), "the episode starts from the logged state"
    plain = run_on_target(pol, var, tiny["motion"])
    assert not np.allclose(plain.rollout.dof_pos[0], q[0], atol=1e-3)
    assert first["E_mpjpe"] != plain.episodes[0]["E_mpjpe"]
    r = evaluate([tiny["a"]], [tiny["motion"]], tmp_path / "e", start_from=[str(logs)], progress=False)
    assert r["target"]["start_from"] == [str(logs)]
    with pytest.raises(ValueError, match="--start-from applies to protocol targets"):
        evaluate([tiny["a"]], [tiny["motion"]], tmp_path / "e2", over_dds=True, start_from=[str(logs)],
                 progress=False)  # fmt: skip
