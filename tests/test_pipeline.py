"""`asap pipeline` / `asap demo`: the stages wired together, on a tiny budget."""

from __future__ import annotations

import json

import pytest
import yaml

from asap.cli import main
from asap.motion.motion import load_motion
from asap.pipeline import PipelineConfig, run_pipeline

TINY_PRETRAIN = [
    "num_envs=2", "threads=1", "ppo.num_steps_per_env=4", "ppo.actor_hidden_dims=[32,16]",
    "ppo.critic_hidden_dims=[16]", "ppo.num_mini_batches=1", "ppo.num_learning_epochs=1",
    "run.eval_start_phases=1", "run.logger=none", "run.max_iterations=2",
]  # fmt: skip


def test_quick_demo_retargets_and_is_resumable(tmp_path, capsys):
    run = tmp_path / "demo"
    assert main(["demo", "--quick", f"run_dir={run}", "render=false"]) == 0
    motion = run / "motions" / "arm_wave.npz"
    m = load_motion(motion)
    assert m.fps == 50 and m.num_frames > 100
    summary = json.loads((run / "summary.json").read_text())
    assert summary["motion"] == str(motion) and "training_sim" not in summary
    mtime = motion.stat().st_mtime_ns
    assert main(["demo", "--quick", f"run_dir={run}", "render=false"]) == 0  # the second run reuses the motion
    assert motion.stat().st_mtime_ns == mtime and "exists: skipped" in capsys.readouterr().out


TINY_DELTA = [
    "run.max_iterations=2", "run.logger=none", "num_envs=4", "threads=1", "ppo.num_steps_per_env=4",
    "ppo.actor_hidden_dims=[16]", "ppo.critic_hidden_dims=[16]", "env.window_s=0.1", "horizons_s=[0.1]",
    "report_stride_s=0.1", "held_out=0.5",
]  # fmt: skip
TINY_FINETUNE = ["max_iterations=2", "eval_interval=0", "pretrain.num_envs=2", "pretrain.run.eval_start_phases=1"]


def test_full_chain_on_a_tiny_budget(tmp_path, capsys):
    """retarget -> pretrain -> collect -> train-delta -> finetune -> eval, then a rerun that skips every stage."""
    pytest.importorskip("cyclonedds")
    cfg = PipelineConfig(
        run_dir=str(tmp_path / "run"), source="builtin:balance", render=False,
        pretrain_config="configs/pretrain/demo.yaml", pretrain_overrides=TINY_PRETRAIN, pretrain_nproc=2, collect=True,
        gap="configs/real_gap/ankle_weak.yaml", episodes=2, collect_excitation=0.05,
        delta_config="configs/delta/demo.yaml",
        delta_overrides=TINY_DELTA, finetune_overrides=TINY_FINETUNE, eval_episodes=1,
        # an untrained policy's targets run far past the joint limits: let its episodes last a few steps anyway
        deploy_config="configs/deploy/virtual.yaml", deploy_overrides=["controller.safety.limit_margin=100"],
    )  # fmt: skip
    report = run_pipeline(cfg)
    run = tmp_path / "run"
    assert (run / "pretrain" / "policy.onnx").exists() and report["pretrain"]["iterations"] == 2
    pre = json.loads((run / "pretrain" / "metrics.json").read_text())
    assert pre["world_size"] == 2 and pre["ranks_in_sync"]  # pretrain_nproc=2: two data-parallel ranks
    for key in ("training_sim", "virtual_g1", "pretrained", "asap"):
        m = report[key]
        assert m["E_mpjpe"] > 0 and m["E_g_mpjpe"] >= 0 and m["E_vel"] >= 0
    assert report["virtual_g1"]["rollouts"] == 2 and report["virtual_g1"]["gap"].endswith("ankle_weak.yaml")
    episode = json.loads((run / "collect" / "summary.json").read_text())["motions"][0]
    assert load_motion(episode).action is not None  # logged actions, ready for the delta action model
    assert load_motion(episode).meta["excitation_std"] == 0.05  # excited while collecting, never in the evaluation
    for key in ("pretrained", "asap"):
        evaluated = json.loads((run / "eval" / key / "summary.json").read_text())["motions"][0]
        assert load_motion(evaluated).meta["excitation_std"] == 0.0
    assert (run / "delta" / "delta.pt").exists() and set(report["openloop"]["0.1"]) == {"OpenLoop", "ASAP", "Oracle"}
    assert (run / "finetune" / "policy.onnx").exists()
    summary = json.loads((run / "summary.json").read_text())
    for key in ("pretrained", "asap"):
        assert {"success_rate", "E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc"} <= set(summary[key])
        assert summary[key]["rollouts"] == 1
    out = capsys.readouterr().out
    assert "before/after ASAP" in out and "asap, virtual G1 (ankle_weak)" in out
    windows = json.loads((run / "delta" / "summary.json").read_text())["openloop_windows"]["0.1"]
    assert windows >= 1 and "open-loop replay of held-out logs, 0.1 s, E_g-mpjpe (mm): OpenLoop " in out
    assert f" ({windows} window(s))" in out
    run_pipeline(cfg)  # everything is done: each stage is skipped
    out = capsys.readouterr().out
    assert "holds a finished delta model: skipped" in out and "holds a finished fine-tuning run: skipped" in out
    assert out.count("reusing its") == 3  # the collection and both evaluations, each said once

    # a second ASAP round on top of the finished first one: collect with round 1's policy, π^Δ on both rounds' logs,
    # fine-tune from round 1's policy; the final evaluation scores round 2's policy
    from dataclasses import replace

    report = run_pipeline(replace(cfg, rounds=2, round_finetune_overrides=["max_iterations=1"]))
    (rnd,) = report["rounds"]
    assert rnd["round"] == 2 and rnd["rollouts"] == 2 and 0.0 <= rnd["success_rate"] <= 1.0
    col2 = json.loads((run / "collect_r2" / "summary.json").read_text())["motions"][0]
    assert load_motion(col2).meta["policy"] == str(run / "finetune" / "policy.onnx")  # collected with round 1's
    split = json.loads((run / "delta_r2" / "split.json").read_text())
    episodes = [p for part in split.values() for p in part]
    assert any("collect_r2" in p for p in episodes) and any("/collect/" in p for p in episodes)
    ft2 = yaml.safe_load((run / "finetune_r2" / "finetune.yaml").read_text())
    assert ft2["checkpoint"].startswith(str(run / "finetune" / "model_")) and ft2["max_iterations"] == 1
    evaluated = json.loads((run / "eval" / "asap_r2" / "summary.json").read_text())["motions"][0]
    assert load_motion(evaluated).meta["policy"] == str(run / "finetune_r2" / "policy.onnx")
    out = capsys.readouterr().out
    assert "holds a finished fine-tuning run: skipped" in out and "asap round 2, virtual G1 (ankle_weak)" in out
    said = "was last run with other settings (rounds: 1 -> 2; round_finetune_overrides: [] -> ['max_iterations=1'])"
    assert said in out  # the finished stages are kept, and the run says so
    assert "asap round 1, virtual G1 (ankle_weak)" in out
    with pytest.raises(ValueError, match="rounds=1"):
        run_pipeline(replace(cfg, rounds=2, delta=str(run / "delta" / "delta.pt")))

    # another clip's policy fine-tuned against this π^Δ: no collection, no delta training (delta=...)
    import shutil

    run2 = tmp_path / "run2"
    for d in ("motions", "pretrain", "play"):
        shutil.copytree(run / d, run2 / d)
    r2 = run_pipeline(replace(cfg, run_dir=str(run2), delta=str(run / "delta" / "delta.pt")))
    assert not (run2 / "collect").exists() and not (run2 / "delta").exists()
    assert (run2 / "finetune" / "policy.onnx").exists() and r2["delta"].endswith("delta.pt")
    assert {"pretrained", "asap"} <= set(json.loads((run2 / "summary.json").read_text()))
    assert "asap, virtual G1 (ankle_weak)" in capsys.readouterr().out


def test_a_robot_motion_source_is_read_not_retargeted(tmp_path, capsys):
    """`asap pipeline source=CLIP` with a G1 clip (ours, or another tool's) reads it; `asap retarget` refuses one and
    `asap motion convert` a BVH, each naming the command that fits."""
    import numpy as np

    from asap.motion.synthetic import synthetic_motion

    clip = synthetic_motion(num_frames=21, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05)
    src = clip.save(tmp_path / "my_clip.npz")
    run = tmp_path / "run"
    report = run_pipeline(PipelineConfig(run_dir=str(run), source=str(src), render=False, pretrain_config=""))
    out = load_motion(report["motion"])
    assert report["motion"] == str(run / "motions" / "my_clip.npz")
    np.testing.assert_allclose(out.dof_pos, load_motion(src).dof_pos)
    assert "1. read " in capsys.readouterr().out
    assert main(["retarget", str(src), "-o", str(tmp_path / "x.npz")]) == 1
    assert f"`asap motion convert {src} OUT.npz`" in capsys.readouterr().err
    bvh = tmp_path / "take.bvh"
    bvh.write_text("HIERARCHY\n")
    assert main(["motion", "convert", str(bvh), str(tmp_path / "y.npz")]) == 1
    assert f"`asap retarget {bvh} -o OUT.npz`" in capsys.readouterr().err
