"""`asap pipeline` / `asap demo`: the stages wired together, on a tiny budget."""

from __future__ import annotations

import json

import pytest

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


def test_full_chain_on_a_tiny_budget(tmp_path):
    pytest.importorskip("cyclonedds")
    cfg = PipelineConfig(
        run_dir=str(tmp_path / "run"), source="builtin:balance", render=False,
        pretrain_config="configs/pretrain/demo.yaml", pretrain_overrides=TINY_PRETRAIN, collect=True,
        gap="configs/real_gap/ankle_weak.yaml", episodes=1,
    )  # fmt: skip
    report = run_pipeline(cfg)
    run = tmp_path / "run"
    assert (run / "pretrain" / "policy.onnx").exists() and report["pretrain"]["iterations"] == 2
    for key in ("training_sim", "virtual_g1"):
        m = report[key]
        assert m["E_mpjpe"] > 0 and m["E_g_mpjpe"] >= 0 and m["E_vel"] >= 0
    assert report["virtual_g1"]["rollouts"] == 1 and report["virtual_g1"]["gap"].endswith("ankle_weak.yaml")
    episode = json.loads((run / "collect" / "summary.json").read_text())["motions"][0]
    assert load_motion(episode).action is not None  # logged actions, ready for the delta action model
    assert json.loads((run / "summary.json").read_text())["virtual_g1"]["rollouts"] == 1
