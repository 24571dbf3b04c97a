"""The open-loop delta task on a log made by a Kp-scaled simulator: replay timing, oracle vs plain, reward table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from asap.control import ACTION_ALIGNMENT, TargetShaping, shape_targets
from asap.delta.aligned import AlignedSimulator
from asap.delta.oracle import OracleDelta
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.sim.base import DynamicsParams, SimConfig, make_simulator
from deploy.gap import RealGapConfig
from envs.common.reward_terms import RewardTable
from envs.delta.config import DeltaEnvConfig
from envs.delta.env import DeltaEnv

SHAPING = TargetShaping()


def make_gapped_log(steps: int = 60, seed: int = 0, substep_delay: int = 0) -> Motion:
    """Roll a Kp x0.65-ankle simulator (with a command latency of ``substep_delay`` physics substeps) with smooth
    actions; store s_f and the action applied from s_f (50 fps)."""
    sim = make_simulator(SimConfig(num_envs=1, threads=1))
    spec = sim.spec
    k = torch.ones(1, spec.num_joints)
    k[:, [i for i, n in enumerate(spec.joint_names) if "ankle" in n]] = 0.65
    sim.set_dynamics(None, DynamicsParams(kp_scale=k, substep_delay=torch.tensor([substep_delay])))
    sim.reset()
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.5, 1.5, spec.num_joints)
    default = torch.as_tensor(spec.default_pos, dtype=torch.float32)
    lo, hi = (torch.as_tensor(x, dtype=torch.float32) for x in (spec.pos_lower, spec.pos_upper))
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("rp", "rq", "rl", "ra", "q", "qd", "a")}
    prev = None
    for f in range(steps):
        a = torch.as_tensor(0.6 * np.sin(2 * math.pi * freq * f * 0.02), dtype=torch.float32)[None]
        root = sim.get_root_state()[0]
        q, qd = (x[0] for x in sim.get_joint_state())
        for key, v in zip(("rp", "rq", "rl", "ra", "q", "qd", "a"),
                          (root[0:3], root[3:7], root[7:10], root[10:13], q, qd, a[0]), strict=True):  # fmt: skip
            rows[key].append(v.numpy().copy())
        _, _, prev = shape_targets(a, prev, default, spec.action_scale, lo, hi, SHAPING)
        sim.step(targets=prev)
    sim.close()
    arr = {k: np.stack(v) for k, v in rows.items()}
    arr["a"][-1] = 0.0
    return Motion(fps=50.0, joint_names=spec.joint_names, root_pos=arr["rp"], root_quat=arr["rq"], dof_pos=arr["q"],
                  action=arr["a"], dof_vel=arr["qd"], root_lin_vel=arr["rl"], root_ang_vel=arr["ra"],
                  meta={"action_alignment": ACTION_ALIGNMENT, "root_source": "simulator"})  # fmt: skip


@pytest.fixture(scope="module")
def log() -> Motion:
    return make_gapped_log()


def _replay_error(log: Motion, model=None, window_s: float = 0.5) -> float:
    sim = make_simulator(SimConfig(num_envs=2, threads=1))
    if model is not None:
        sim = AlignedSimulator(sim, model)
    env = DeltaEnv(DeltaEnvConfig(window_s=window_s), sim, MotionLib([log]), SHAPING)
    env.eval_mode = True
    env.reset_to(torch.zeros(2, dtype=torch.long), torch.tensor([0, 20]))
    err = []
    for _ in range(env.window):
        env.step(torch.zeros(2, env.num_actions))
        ref = env.logs.frame_state(env.motion_ids, env.frame())
        err.append((sim.get_body_state().pos - ref.body_pos).norm(dim=-1).mean().item())
    sim.close()
    return float(np.mean(err))


def test_replay_of_its_own_simulator_is_exact(log):
    """Replaying the log in the simulator that made it (Kp-scaled) reproduces the logged states: the step timing,
    the action alignment and the target shaping of the replay all agree with how the log was made."""
    sim = make_simulator(SimConfig(num_envs=2, threads=1))
    k = torch.ones(2, sim.num_joints)
    k[:, [i for i, n in enumerate(sim.spec.joint_names) if "ankle" in n]] = 0.65
    sim.set_dynamics(None, DynamicsParams(kp_scale=k))
    env = DeltaEnv(DeltaEnvConfig(window_s=0.5), sim, MotionLib([log]), SHAPING)
    env.eval_mode = True
    env.reset_to(torch.zeros(2, dtype=torch.long), torch.tensor([0, 20]))
    errs = []
    for _ in range(env.window):
        env.step(torch.zeros(2, env.num_actions))
        ref = env.logs.frame_state(env.motion_ids, env.frame())
        errs.append((sim.get_joint_state()[0] - ref.dof_pos).abs().max().item())
    print("replay errors", [f"{e:.1e}" for e in errs])
    assert errs[0] < 2e-3 and max(errs) < 1e-2, errs
    sim.close()


def test_oracle_replay_beats_plain_replay(log):
    plain = _replay_error(log)
    oracle = _replay_error(log, OracleDelta(RealGapConfig(name="ankle_weak", kp_scale={"ankle": 0.65})))
    assert oracle < 0.5 * plain, (oracle, plain)


def test_delta_env_shapes_and_rewards(log):
    sim = make_simulator(SimConfig(num_envs=3, threads=1))
    env = DeltaEnv(DeltaEnvConfig(window_s=0.2, joints="ankles"), sim, MotionLib([log]), SHAPING)
    assert env.num_actions == 4 and env.window == 10
    obs = env.get_observations()
    assert obs["actor"].shape == (3, 131) and obs["critic"].shape == (3, 131 + 162)
    _, info = env.step(torch.ones(3, 4))
    assert set(info.terms) >= {"body_pos", "action_norm", "action_rate"}
    assert torch.allclose(info.terms["action_norm"], torch.full((3,), -0.1 * 0.02 * math.expm1(2.0)), rtol=1e-5)
    full = env.get_observations()["actor"]
    sim.close()
    sim = make_simulator(SimConfig(num_envs=3, threads=1))
    narrow = DeltaEnv(DeltaEnvConfig(window_s=0.2, joints="ankles", obs_scope="driven"), sim, MotionLib([log]), SHAPING)
    assert narrow.num_obs == 20 and narrow.meta.obs_scope == "driven"
    narrow.reset_to(env.motion_ids, env.frame() - 1)
    narrow.step(torch.ones(3, 4))  # the same windows, steps and actions: the same state, fewer columns
    obs = narrow.get_observations()
    assert obs["actor"].shape == (3, 20) and obs["critic"].shape == (3, 131 + 162)
    assert torch.allclose(obs["actor"], full[:, narrow.meta.input_columns()], atol=1e-5)
    sim.close()


def test_reward_table_refuses_unknown_terms():
    with pytest.raises(ValueError, match="unknown reward terms"):
        RewardTable({"body_poss": {"weight": 1.0}}, 0.02)
    with pytest.raises(ValueError, match="has no weight"):
        RewardTable({"body_pos": {"sigma_upper": 0.03}}, 0.02)


def test_delta_env_refuses_logs_without_action(log):
    bare = Motion(fps=50.0, joint_names=log.joint_names, root_pos=log.root_pos, root_quat=log.root_quat,
                  dof_pos=log.dof_pos)  # fmt: skip
    sim = make_simulator(SimConfig(num_envs=1, threads=1))
    with pytest.raises(ValueError, match="must carry 'action'"):
        DeltaEnv(DeltaEnvConfig(), sim, MotionLib([bare]), SHAPING)
    sim.close()


def test_train_delta_end_to_end_tiny(tmp_path):
    """A few PPO iterations on three logged episodes: delta.pt loads, the report has Table III's JSON shape, the
    held-out split is by episode, and the oracle row beats plain replay."""
    import json

    from asap.config import load_config
    from asap.delta.config import DeltaTrainConfig
    from asap.delta.model import DeltaModel
    from asap.delta.train import train_delta

    logs = tmp_path / "logs"
    for i in range(3):
        make_gapped_log(steps=45, seed=i).save(logs / f"ep{i}.npz")
    cfg = load_config(DeltaTrainConfig, None, [
        f"motions=[{logs}]", f"run.out_dir={tmp_path / 'delta'}", "run.max_iterations=2", "run.logger=none",
        "num_envs=8", "threads=1", "ppo.num_steps_per_env=4", "env.window_s=0.3", "horizons_s=[0.25,0.5]",
        "report_stride_s=0.2", "gap=configs/real_gap/ankle_weak.yaml", "held_out=0.34",
    ])  # fmt: skip
    s = train_delta(cfg)
    out = tmp_path / "delta"
    model = DeltaModel.load(out / "delta.pt")
    assert model.meta.delta_scale == 0.25 and len(model.meta.joints) == 23
    rep = json.loads((out / "openloop.json").read_text())
    assert set(rep) == {"0.25", "0.5"}
    assert set(rep["0.5"]) == {"OpenLoop", "ASAP", "Oracle"}
    assert set(rep["0.5"]["ASAP"]) == {"E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc"}
    assert rep["0.5"]["Oracle"]["E_g_mpjpe"] < rep["0.5"]["OpenLoop"]["E_g_mpjpe"]
    split = json.loads((out / "split.json").read_text())
    assert len(split["held_out"]) == 1 and not set(split["held_out"]) & set(split["train"])
    assert s["episodes"] == {"train": 2, "held_out": 1}
    gain = json.loads((out / "gain.json").read_text())  # calibrated on the training episodes, stored in delta.pt
    assert model.meta.gain == s["gain"] == gain["gain"] and set(gain["errors_mm"]) == {"0.75", "1", "1.25", "1.5",
                                                                                       "1.75", "2"}  # fmt: skip
    assert (out / "openloop.md").read_text().count("| 0.5 |") == 3
    assert (out / "openloop.png").stat().st_size > 1000


def test_train_delta_motor_local_tiny(tmp_path):
    """model=motor_local: delta.pt round-trips through DeltaModel.load and each ankle's Δa depends on that ankle's
    own columns only; the motor-local model refuses the full observation in one line."""
    from asap.config import load_config
    from asap.delta.config import DeltaTrainConfig
    from asap.delta.model import DeltaModel
    from asap.delta.obs import DRIVEN_TERMS, actor_dim, term_slice
    from asap.delta.train import actor_class, train_delta

    logs = tmp_path / "logs"
    for i in range(2):
        make_gapped_log(steps=30, seed=i).save(logs / f"ep{i}.npz")
    args = [f"motions=[{logs}]", f"run.out_dir={tmp_path / 'delta'}", "run.max_iterations=2", "run.logger=none",
            "num_envs=4", "threads=1", "ppo.num_steps_per_env=4", "env.window_s=0.3", "horizons_s=[0.25]",
            "report_stride_s=0.2", "held_out=0.5", "gain_grid=[]", "env.joints=ankles", "model=motor_local",
            "ppo.actor_hidden_dims=[8]", "joint_gain_factors=[2.0]"]  # fmt: skip
    with pytest.raises(ValueError, match="add env.obs_scope=driven"):
        actor_class(load_config(DeltaTrainConfig, None, args))
    train_delta(load_config(DeltaTrainConfig, None, [*args, "env.obs_scope=driven"]))
    model = DeltaModel.load(tmp_path / "delta" / "delta.pt")
    assert model.meta.obs_scope == "driven" and model.columns is not None and model.columns.numel() == 20
    cal = json.loads((tmp_path / "delta" / "gain.json").read_text())  # the joint-group calibration ran and is stored
    assert len(cal["joint_gain_tries"]) == 1 + 2 and list(cal["joint_gain"].values()) == list(model.meta.joint_gain)
    assert set(model.meta.joint_gain) <= {1.0, 2.0}
    idx = model.meta.joint_index()
    obs = torch.randn(8, actor_dim(23))
    base = model(obs)[:, idx]
    moved = obs.clone()
    for t in DRIVEN_TERMS:  # every signal of the second ankle
        moved[:, term_slice(t, 23).start + idx[1]] += 1.0
    changed = (model(moved)[:, idx] - base).abs().amax(0)
    assert changed[1] > 0 and torch.equal(changed[[0, 2, 3]], torch.zeros(3))
