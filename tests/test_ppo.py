"""PPO pretraining end to end on a tiny problem: runner, split optimisers, checkpoints, resume, artifacts, CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import yaml

from asap.config import load_config
from asap.motion.synthetic import synthetic_motion
from asap.rl.config import PretrainConfig, rsl_train_cfg
from asap.rl.ppo import SplitOptimizer

TINY = ["num_envs=4", "threads=1", "ppo.num_steps_per_env=4", "ppo.actor_hidden_dims=[16]",
        "ppo.critic_hidden_dims=[16]", "ppo.num_mini_batches=2", "ppo.num_learning_epochs=1",
        "run.eval_start_phases=2", "env.residual_actions=true"]  # fmt: skip


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "clip.npz"
    synthetic_motion(num_frames=16, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(p)
    return p


def test_train_cfg_defaults_follow_the_reference():
    c = rsl_train_cfg(PretrainConfig())
    assert c["actor"]["hidden_dims"] == [512, 256, 128] and c["critic"]["hidden_dims"] == [512, 256, 128]
    assert c["actor"]["activation"] == "elu" and c["actor"]["distribution_cfg"]["init_std"] == 0.8
    a = c["algorithm"]
    assert (a["num_learning_epochs"], a["num_mini_batches"], a["clip_param"], a["gamma"], a["lam"]) == (
        5, 4, 0.2, 0.99, 0.95)  # fmt: skip
    assert a["class_name"] == "asap.rl.ppo:SplitPPO" and a["learning_rate"] == 1e-3
    assert c["num_steps_per_env"] == 24 and c["obs_groups"] == {"actor": ["actor"], "critic": ["critic"]}
    linear = rsl_train_cfg(load_config(PretrainConfig, None, ["ppo.actor_activation=identity"]))
    assert linear["actor"]["activation"] == "identity" and linear["critic"]["activation"] == "elu"


def test_split_optimizer_schedule_touches_actor_only():
    a, c = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    opt = SplitOptimizer(a.parameters(), c.parameters(), 1e-3, 5e-4)
    for g in opt.param_groups:
        g["lr"] = 1e-5
    assert opt.critic.param_groups[0]["lr"] == 5e-4
    st = opt.state_dict()
    opt.load_state_dict(st)
    with pytest.raises(ValueError, match="split"):
        opt.load_state_dict(opt.actor.state_dict())


def test_pretrain_checkpoint_resume_and_artifacts(tmp_path, motion_file):
    from asap.rl.runner import pretrain

    out = tmp_path / "run"
    cfg = load_config(PretrainConfig, None, [f"motion={motion_file}", f"run.out_dir={out}", "run.max_iterations=2",
                                              "run.logger=tensorboard", "run.save_interval=1", *TINY])  # fmt: skip
    r = pretrain(cfg)
    assert r["iterations"] == 2 and (out / "model_1.pt").exists()
    for name in ("config.yaml", "policy.onnx", "metrics.json", "learning_curve.png", "progress.csv"):
        assert (out / name).exists(), name
    assert list(out.glob("events.out.tfevents*"))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["num_envs"] == 4 and saved["env"]["residual_actions"] is True
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["final_eval"]) >= {"success_rate", "E_mpjpe_mm", "E_g_mpjpe_mm"}
    ck = torch.load(out / "model_1.pt", weights_only=False)
    assert {"actor_state_dict", "critic_state_dict", "optimizer_state_dict", "iter"} <= set(ck)
    assert set(ck["optimizer_state_dict"]) == {"actor", "critic"}
    assert ck["infos"]["config"]["motion"] == str(motion_file) and "far_threshold" in ck["infos"]["env_state"]

    # resume: continues at the next iteration with the same curricula
    out2 = tmp_path / "resumed"
    cfg2 = load_config(PretrainConfig, None, [f"motion={motion_file}", f"run.out_dir={out2}", "run.max_iterations=1",
                                               f"run.resume={out / 'model_1.pt'}", "run.logger=none",
                                               "run.export_onnx=false", *TINY])  # fmt: skip
    r2 = pretrain(cfg2)
    assert r2["iterations"] == 3 and (out2 / "model_2.pt").exists()
    ck2 = torch.load(out2 / "model_2.pt", weights_only=False)
    assert ck2["iter"] == 2 and len(ck2["infos"]["history"]) == 3


def test_cli_pretrain_with_overrides(tmp_path, motion_file, capsys):
    from asap.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  max_iterations: 1\n  logger: none\n  export_onnx: false\n")
    rc = main(["pretrain", "--config", str(cfg), f"motion={motion_file}", "sim=mujoco", f"run.out_dir={tmp_path}/o",
               *TINY])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "it/s" in out and "reward" in out and "ep len" in out
    assert (tmp_path / "o" / "model_0.pt").exists()


def test_wandb_offline_logging(tmp_path, motion_file, monkeypatch):
    pytest.importorskip("wandb")
    from asap.rl.runner import pretrain

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = load_config(PretrainConfig, None, [f"motion={motion_file}", f"run.out_dir={tmp_path}/w",
                                              "run.max_iterations=1", "run.logger=wandb", "run.export_onnx=false",
                                              *TINY])  # fmt: skip
    pretrain(cfg)
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_training_reports_a_floating_clip(tmp_path, capsys):
    from asap.motion.formats import read_motion
    from asap.rl.runner import Trainer

    m = read_motion("motions/builtin/arm_wave.npz")
    m.root_pos[:, 2] += 0.05
    path = m.save(tmp_path / "floating.npz")
    cfg = load_config(PretrainConfig, None, [f"motion={path}", f"run.out_dir={tmp_path}/run", *TINY])
    Trainer(cfg).close()
    out = capsys.readouterr().out
    assert "clip floating: its stance feet are 5.0 cm above the floor" in out
    assert "centre of mass" not in out  # arm_wave stands on both feet


def test_temporal_smoothness_skips_pairs_across_episode_ends():
    from asap.rl.ppo import temporal_smoothness

    means = torch.tensor([[[0.0, 0.0]], [[1.0, 3.0]], [[1.0, 3.0]], [[9.0, 9.0]]])  # (T=4, N=1, A=2)
    dones = torch.tensor([[0], [0], [1], [0]])
    # pairs (0,1): mean of 1^2 and 3^2 = 5; (1,2): 0; (2,3) crosses an episode end and is skipped
    assert temporal_smoothness(means, dones).item() == pytest.approx(2.5)
    assert temporal_smoothness(means, torch.ones(4, 1)).item() == 0.0


def _actor_pass_cfg(out_dir: Any, motion_file: Any, coef: str, *extra: str) -> PretrainConfig:
    """A tiny pretraining config with ``ppo.<coef>`` (an actor-pass coefficient) at 10 and ``extra`` overrides."""
    overrides = [f"motion={motion_file}", f"run.out_dir={out_dir}", "run.logger=none", f"ppo.{coef}=10.0", *extra]
    return load_config(PretrainConfig, None, [*overrides, *TINY])


@pytest.mark.parametrize("coef", ["smoothness_coef", "anchor_coef"])
def test_actor_pass_coefficients_reach_ppo_and_need_separate_optimizers(coef):
    assert rsl_train_cfg(load_config(PretrainConfig, None, [f"ppo.{coef}=10.0"]))["algorithm"][coef] == 10.0
    with pytest.raises(ValueError, match="separate_optimizers"):
        rsl_train_cfg(load_config(PretrainConfig, None, [f"ppo.{coef}=1", "ppo.separate_optimizers=false"]))


def _trainer_after_one_rollout(cfg: PretrainConfig) -> tuple[Any, Any]:
    """A Trainer of ``cfg`` whose PPO storage holds one rollout (no update yet), and the last observations."""
    from asap.rl.runner import Trainer

    tr = Trainer(cfg)
    alg = tr.runner.alg
    obs = tr.vec.get_observations()
    alg.train_mode()
    with torch.inference_mode():
        for _ in range(cfg.ppo.num_steps_per_env):
            obs, rew, dones, extras = tr.vec.step(alg.act(obs))
            alg.process_env_step(obs, rew, dones, extras)
    return tr, obs


def test_smoothness_pass_makes_the_mean_action_smoother(tmp_path, motion_file):
    from asap.rl.ppo import temporal_smoothness

    tr, obs = _trainer_after_one_rollout(_actor_pass_cfg(tmp_path, motion_file, "smoothness_coef"))
    alg = tr.runner.alg

    def smoothness() -> float:
        with torch.no_grad():
            return temporal_smoothness(alg.actor(alg.storage.observations), alg.storage.dones).item()

    before = smoothness()
    passes = [alg._smoothness_pass() for _ in range(30)]
    assert passes[0] == pytest.approx(before, rel=0.5) and smoothness() < 0.5 * before


def test_anchor_pass_pulls_the_mean_action_back_to_the_first_update(tmp_path, motion_file):
    from asap.rl.runner import Trainer

    tr, obs = _trainer_after_one_rollout(_actor_pass_cfg(tmp_path, motion_file, "anchor_coef"))
    alg = tr.runner.alg
    with torch.inference_mode():
        alg.compute_returns(obs)
    start = {k: v.clone() for k, v in alg.actor.state_dict().items()}
    alg.update()  # the first update freezes a copy of the actor as it was before it
    assert alg.anchor is not None
    assert all(torch.equal(start[k], v) for k, v in alg.anchor.state_dict().items())

    def distance() -> float:
        with torch.no_grad():
            o = alg.storage.observations
            return (alg.actor(o) - alg.anchor(o)).pow(2).mean().item()

    with torch.no_grad():  # move the actor away from the anchor, then let the passes pull it back
        for p in alg.actor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    before = distance()
    passes = [alg._anchor_pass() for _ in range(30)]
    assert before > 0 and passes[0] == pytest.approx(before, rel=0.5) and distance() < 0.3 * before
    ck = tr.save(tmp_path / "model_1.pt")  # a resumed run keeps the anchor it had, not the resumed actor
    resumed = Trainer(_actor_pass_cfg(tmp_path / "r", motion_file, "anchor_coef", f"run.resume={ck}"))
    assert all(torch.equal(alg.anchor.state_dict()[k], v) for k, v in resumed.runner.alg.anchor.state_dict().items())


def test_anchor_distance_leaves_free_joints_out():
    from asap.rl.ppo import anchor_distance, anchor_weights_tensor

    mean, target = torch.tensor([[1.0, 2.0, 3.0]]), torch.zeros(1, 3)
    assert anchor_distance(mean, target).item() == pytest.approx(14 / 3)
    assert anchor_distance(mean, target, torch.ones(3)).item() == pytest.approx(14 / 3)
    w = anchor_weights_tensor([1.0, 0.0, 1.0], "cpu")
    assert anchor_distance(mean, target, w).item() == pytest.approx(5.0)  # (1 + 9) / 2: the free joint neither counts
    moved = mean.clone()
    moved[0, 1] = 50.0
    assert anchor_distance(moved, target, w).item() == pytest.approx(5.0)  # nor pulls
    with pytest.raises(ValueError, match="anchor_coef=0"):
        anchor_weights_tensor([0.0, 0.0], "cpu")


def test_anchor_free_joints_reach_ppo_as_zero_weights():
    from asap.robot.spec import get_spec

    cfg = load_config(PretrainConfig, None, ["ppo.anchor_coef=1", "ppo.anchor_free_joints=ankles,left_knee_joint"])
    w = rsl_train_cfg(cfg)["algorithm"]["anchor_weights"]
    names = get_spec("g1_23dof").joint_names
    free = [n for n, x in zip(names, w, strict=True) if x == 0.0]
    assert free == ["left_knee_joint", "left_ankle_pitch_joint", "left_ankle_roll_joint", "right_ankle_pitch_joint",
                    "right_ankle_roll_joint"]  # fmt: skip
    assert "anchor_weights" not in rsl_train_cfg(load_config(PretrainConfig, None, ["ppo.anchor_coef=1"]))["algorithm"]
    with pytest.raises(ValueError, match="unknown joint set or joint 'ankle'"):
        rsl_train_cfg(load_config(PretrainConfig, None, ["ppo.anchor_coef=1", "ppo.anchor_free_joints=ankle"]))


def test_anchor_pass_holds_the_anchored_joints_and_not_the_free_ones(tmp_path, motion_file):
    from asap.robot.spec import resolve_joints

    cfg = _actor_pass_cfg(tmp_path, motion_file, "anchor_coef", "ppo.anchor_free_joints=ankles")
    tr, obs = _trainer_after_one_rollout(cfg)
    alg = tr.runner.alg
    alg.set_anchor()
    names = tr.env.spec.joint_names
    free = torch.tensor([n in resolve_joints("g1_23dof", "ankles") for n in names])
    last = alg.actor.mlp[-1]  # the output layer (rsl-rl MLPModel): one row per joint
    with torch.no_grad():  # shift every output by 0.5: the anchor must undo the shift of the held joints only
        last.bias.add_(0.5)
    before = (last.weight.detach().clone(), last.bias.detach().clone())

    def offsets() -> torch.Tensor:
        with torch.no_grad():
            o = alg.storage.observations
            return (alg.actor(o) - alg.anchor(o)).reshape(-1, len(names)).mean(dim=0)

    for _ in range(30):
        alg._anchor_pass()
    assert offsets()[~free].abs().max() < 0.15  # held joints pulled back
    # the free joints' output rows get no gradient from the anchor at all (a fresh Adam leaves them exactly as they
    # were; only the shared hidden layers move under them)
    assert torch.equal(last.weight[free], before[0][free]) and torch.equal(last.bias[free], before[1][free])
    assert not torch.equal(last.bias[~free], before[1][~free])


def test_set_action_std_on_both_parameterisations():
    from rsl_rl.modules.distribution import GaussianDistribution

    from asap.rl.ppo import set_action_std

    for kind in ("scalar", "log"):
        actor = torch.nn.Module()
        actor.distribution = GaussianDistribution(3, init_std=0.8, std_type=kind)
        set_action_std(actor, 0.3)
        p = getattr(actor.distribution, "std_param", None)
        std = p if p is not None else actor.distribution.log_std_param.exp()
        assert torch.allclose(std, torch.full((3,), 0.3))
    with pytest.raises(ValueError, match="> 0"):
        set_action_std(actor, 0.0)
    with pytest.raises(ValueError, match="no Gaussian"):
        set_action_std(torch.nn.Linear(2, 2), 0.3)
