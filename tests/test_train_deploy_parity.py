"""Training and the robot runtime agree step by step on the same physical states (issue: training <-> deploy).

One closed loop of the training env (MuJoCo, eval mode) runs a small policy exported through the real exporter
(residual, random init, with an elbow bias that drives targets past the joint limits and a first step the rate
limit cuts) on a 30 fps clip whose length is not a whole number of control steps. Its physical states are then fed,
step by step, through the runtime's own path (:class:`deploy.controller.Controller`: gyro = body-frame angular
velocity, phase from its step counter, last action from its own ONNX output) and logged with the runtime's row
builder. Required, at every step: the same actor vector (<= 1e-5), the same action and the same shaped joint
target; the same number of steps; and the log converted as ``asap collect`` converts it lines up, frame by frame,
with the rollout ``asap play`` writes for the same policy.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from asap.contract import PolicyContract
from asap.control import ACTION_ALIGNMENT, TargetShaping, motion_steps
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.motion.ops import resample
from asap.paths import repo_path
from asap.rl.export import TrackingPolicy, _phase_index, export_onnx
from asap.rl.play import closed_loop, eval_env_config, load_policy, play
from asap.robot.model import ModelOptions
from asap.robot.spec import get_spec
from asap.sim.base import SimConfig, make_simulator
from asap.utils.rotations import quat_rotate_inverse
from envs.tracking.config import TrackingEnvConfig
from envs.tracking.env import TrackingEnv

pytest.importorskip("onnxruntime")

VARIANT = "g1_23dof"
FRAMES = 29
"""Frames of the 30 fps test clip: 28/30 s = 46.67 control steps (47 by the shared rule, 46 by the old floor).
An untrained policy stands about 1 s (the G1's ankles are too soft for a PD stand), so the clip is short."""
ELBOWS = (18, 22)
"""Policy indices of the elbows, biased towards targets beyond their lower limit."""


@pytest.fixture(scope="module")
def clip30(tmp_path_factory) -> Path:
    m = resample(Motion.load(repo_path("motions/builtin/arm_wave.npz")), 30.0).slice(0, FRAMES)
    m.meta["name"] = "arm_wave_30fps"
    return m.save(tmp_path_factory.mktemp("clip") / "arm_wave_30fps.npz")


def _export(clip: Path, out: Path, shaping: TargetShaping) -> Path:
    rs = get_spec(VARIANT)
    lib = MotionLib(clip, spec=VARIANT)
    q = lib.frame_data("dof_pos", 0).cpu().float()
    table = (q - torch.as_tensor(rs.default_pos, dtype=torch.float32)) / rs.action_scale
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(380, 32), torch.nn.ELU(), torch.nn.Linear(32, rs.num_joints))
    with torch.no_grad():
        mlp[2].weight.mul_(0.2)
        mlp[2].bias.zero_()
        mlp[2].bias[list(ELBOWS)] = -8.0  # elbow targets 2 rad below the reference: past the -1.05 rad stop
    pol = TrackingPolicy(mlp, table, _phase_index("asap_v1", rs.num_joints), rs.action_clip)
    contract = PolicyContract.for_robot(VARIANT, "asap_v1", lib.motion_names[0], float(lib.motion_lengths[0]),
                                        start_joint_pos=q[0].double().numpy(), shaping=shaping)  # fmt: skip
    return export_onnx(pol, contract, out)


def _training_rollout(policy: Path, clip: Path) -> dict:
    """The training env closed loop (what `asap play` runs), recording what each step saw and did."""
    lib = MotionLib(clip, spec=VARIANT)
    act, facts = load_policy(policy, lib)
    sim = make_simulator(
        SimConfig(variant=VARIANT, num_envs=1, threads=1, model=facts.get("physics") or ModelOptions())
    )
    env = TrackingEnv(eval_env_config(TrackingEnvConfig(target_shaping=facts["shaping"]), residual=False), sim, lib)
    steps: list[dict] = []

    def state() -> dict:
        q, qd = env.sim.get_joint_state()
        return {"root": env.sim.get_root_state()[0].double().numpy().copy(), "q": q[0].double().numpy().copy(),
                "qd": qd[0].double().numpy().copy()}  # fmt: skip

    def recording_act(obs: torch.Tensor) -> torch.Tensor:
        if steps:
            steps[-1]["target"] = env.targets[0].double().numpy().copy()  # what the previous step sent
        a = act(obs)
        steps.append({**state(), "obs": obs[0].numpy().copy(), "action": np.asarray(a[0], dtype=np.float64)})
        return a

    res = closed_loop(env, recording_act, torch.zeros(1, dtype=torch.long), torch.zeros(1), record=True)
    steps[-1]["target"] = env.targets[0].double().numpy().copy()
    final = state()
    sim.close()
    return {"steps": steps, "final": final, "result": res, "length_s": float(lib.motion_lengths[0])}


def _robot_state(s: dict, tick: int, now: float, default_q: np.ndarray, motors: np.ndarray):
    """A LowState as the robot reports it: 29 motors (held wrists at their default), IMU quaternion and gyro."""
    from deploy.controller import RobotState

    q, dq = default_q.copy(), np.zeros(29)
    q[motors], dq[motors] = s["q"], s["qd"]
    quat = s["root"][3:7]
    gyro = quat_rotate_inverse(quat[None], s["root"][10:13][None])[0]  # the IMU measures the body-frame rate
    return RobotState(tick, q, dq, np.zeros(29), quat.copy(), gyro, np.zeros(3), np.zeros(40, np.uint8), 5, now)


def _root(s: dict) -> SimpleNamespace:
    r = s["root"]
    return SimpleNamespace(pos=r[0:3], quat=r[3:7], lin_vel=r[7:10], ang_vel=r[10:13])


@pytest.mark.parametrize("shaping", [TargetShaping(), TargetShaping(clamp=False, max_step=0.0)],
                         ids=["runtime_shaping", "unshaped"])  # fmt: skip
def test_training_env_and_runtime_agree_step_by_step(clip30: Path, tmp_path: Path, shaping: TargetShaping) -> None:
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, ControllerConfig, Mode
    from deploy.logger import RolloutLogger, control_row, log_to_motions

    policy = _export(clip30, tmp_path / "policy.onnx", shaping)
    train = _training_rollout(policy, clip30)
    steps, res = train["steps"], train["result"]
    k_train = len(steps)
    # item 5: one step count; the clip is 46.67 steps long
    assert res.success.all() and int(res.steps[0]) == k_train == motion_steps(train["length_s"], 0.02) == 47

    pol = OnnxPolicy(policy)
    c = pol.contract
    assert c.shaping == shaping  # the contract carries the training's shaping to the runtime
    ctl = Controller(c, pol, ControllerConfig(ramp_s=0.0, start_blend_s=0.0))
    assert ctl.steps_per_motion == k_train
    jm = c.motor_index
    lo = ctl.safety.lower[jm]
    meta = {"joint_names": list(c.joint_names), "joint_motor_index": jm.tolist(), "control_dt": c.control_dt,
            "motion_name": c.motion_name, "steps_per_motion": ctl.steps_per_motion}  # fmt: skip
    logger = RolloutLogger(tmp_path / "log", meta)

    def feed(s: dict, k: int):
        now = 0.02 * (k + 1)
        ctl.on_state(_robot_state(s, k + 2, now, ctl.default_q, jm))
        assert ctl.check(now) is None
        info = ctl.policy_step(now)
        cmd = ctl.command(now)  # what the robot receives until the next policy step
        logger.log(control_row(now, ctl.state, info, cmd, _root(s), c.num_joints, c.obs_dim))
        return info, cmd

    ctl.on_state(_robot_state(steps[0], 1, 0.0, ctl.default_q, jm))
    ctl.request("start", 0.0)
    ctl.policy_step(0.0)
    assert ctl.mode == Mode.HOLD
    ctl.request("run", 0.0)  # blend to the clip's start pose (0 s), then the policy runs at the next step
    worst = {"obs": 0.0, "action": 0.0, "target": 0.0}
    clamped = rate_limited = 0
    for k, s in enumerate(steps):
        info, cmd = feed(s, k)
        assert info.mode == Mode.RUN and info.run_step == k, (k, info.mode)
        worst["obs"] = max(worst["obs"], float(np.abs(info.obs - s["obs"]).max()))
        worst["action"] = max(worst["action"], float(np.abs(info.action - s["action"]).max()))
        worst["target"] = max(worst["target"], float(np.abs(cmd.q[jm] - s["target"]).max()))
        unshaped = c.default_joint_pos + c.action_scale * np.clip(info.action, -100, 100)
        clamped += int(((unshaped < lo - 1e-6) & (s["target"] <= lo + 1e-6)).any())
        rate_limited += int(k == 0 and np.abs(unshaped - ctl.start_q[jm]).max() > 0.5 + 1e-6)
    assert worst["obs"] <= 1e-5 and worst["action"] <= 1e-5 and worst["target"] <= 1e-5, worst
    if shaping.clamp:
        assert clamped > 0 and rate_limited == 1  # both rules were exercised, identically on both sides
    else:
        assert (np.stack([s["target"] for s in steps])[:, ELBOWS] < lo[list(ELBOWS)] - 0.3).any()  # unclamped
    info, _ = feed(train["final"], k_train)  # the row after the last policy step (the runtime ramps back)
    assert info.mode == Mode.RAMP
    logger.close()

    # item 6: the converted log (what `asap collect` writes) and `asap play`'s rollout line up to the step
    collected = Motion.load(log_to_motions(tmp_path / "log")[0].save(tmp_path / "collected.npz"))
    summary = play(policy, clip30, out_dir=tmp_path / "play", video=False)
    played = Motion.load(summary["rollout"])
    assert collected.meta["action_alignment"] == played.meta["action_alignment"] == ACTION_ALIGNMENT
    assert collected.num_frames == played.num_frames == k_train + 1
    np.testing.assert_allclose(collected.dof_pos, played.dof_pos, atol=1e-6)
    np.testing.assert_allclose(collected.root_pos, played.root_pos, atol=1e-6)
    np.testing.assert_allclose(collected.action, played.action, atol=1e-5)
    np.testing.assert_allclose(played.action[:k_train], np.stack([s["action"] for s in steps]), atol=1e-6)
    assert not played.action[-1].any() and not collected.action[-1].any()  # no step follows the last frame


def test_bench_shaping_runs_on_a_tiny_policy(clip30: Path, tmp_path: Path) -> None:
    """scripts/bench_shaping.py: success and errors per shaping rule, the policy's own rule marked."""
    import json
    import subprocess
    import sys

    policy = _export(clip30, tmp_path / "p.onnx", TargetShaping(clamp=False, max_step=0.0))
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, str(repo_path("scripts/bench_shaping.py")), str(policy), "--motion", str(clip30),
         "--start-phases", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res["rules"]) == {"runtime", "clamp", "none"} and res["trained_rule"] == "none"
    for v in res["rules"].values():
        assert 0.0 <= v["success_rate"] <= 1.0 and v["E_mpjpe_mm"] > 0 and len(v["steps_survived"]) == 2
    # the elbows pushed past their stop: the clamp changes the tracking
    assert res["rules"]["runtime"]["E_mpjpe_mm"] != res["rules"]["none"]["E_mpjpe_mm"]
    assert "none" in r.stdout and "*" in r.stdout
