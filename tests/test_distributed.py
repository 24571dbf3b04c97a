"""Data-parallel PPO (asap.rl.distributed): 2 ranks on CPU with Gloo keep identical networks, and resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from asap.config import load_config
from asap.motion.synthetic import synthetic_motion
from asap.rl import distributed as dist
from asap.rl.config import PretrainConfig
from asap.rl.runner import pretrain

TINY = ["num_envs=4", "threads=1", "ppo.num_steps_per_env=4", "ppo.actor_hidden_dims=[16]",
        "ppo.critic_hidden_dims=[16]", "ppo.num_mini_batches=2", "ppo.num_learning_epochs=1",
        "ppo.obs_normalization=true", "run.eval_start_phases=1", "env.residual_actions=true", "run.logger=none",
        "run.export_onnx=false", "run.progress_every=0"]  # fmt: skip


def _checkpoint_digest(path: str) -> str:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return dist.state_digest([ck["actor_state_dict"], ck["critic_state_dict"]])


def test_rank_layout_threads_and_seeds(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    d = dist.info()
    assert (d.rank, d.local_rank, d.world_size, d.distributed, d.is_main) == (1, 1, 2, True, False)
    share = max(1, dist.usable_cores() // 2)
    cfg = dist.per_rank(PretrainConfig(seed=7, threads=0, torch_threads=64), d)
    assert (cfg.seed, cfg.threads, cfg.torch_threads, cfg.device) == (8, share, min(64, share), "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="set device=cpu"):
            dist.per_rank(PretrainConfig(device="cuda"), d)


def _sequence(pre: PretrainConfig, ft: Any, delta: Any) -> list[Any]:
    """One rank's pretraining, resumed pretraining, fine-tuning and train-delta (one launch: spawning is slow)."""
    from asap.delta.finetune import finetune
    from asap.delta.train import train_delta

    first = pretrain(pre)
    resumed = pretrain(replace(pre, run=replace(pre.run, resume=f"{pre.run.out_dir}/model_2.pt", max_iterations=2)))
    written = [Path(pre.run.out_dir, "model_4.pt").is_file()]  # every rank returns after rank 0 wrote its files
    tuned = finetune(ft)
    written.append(Path(ft.out_dir, "metrics.json").is_file())
    fitted = train_delta(delta)
    written.append(Path(delta.run.out_dir, "summary.json").is_file())
    return [first, resumed, tuned, fitted, written]


def test_two_gloo_ranks_stay_identical_resume_finetune_and_train_delta(tmp_path):
    from test_delta_env import make_gapped_log

    from asap.delta.config import DeltaTrainConfig
    from asap.delta.finetune import FinetuneConfig

    clip = tmp_path / "clip.npz"
    synthetic_motion(num_frames=16, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(clip)
    out = tmp_path / "run"
    cfg = load_config(PretrainConfig, None, [f"motion={clip}", f"run.out_dir={out}", "run.max_iterations=3", *TINY])
    oracle = "delta=oracle:configs/real_gap/ankle_weak.yaml"
    ft = load_config(FinetuneConfig, None, [f"checkpoint={out / 'model_4.pt'}", oracle, f"out_dir={tmp_path / 'ft'}",
                                            "max_iterations=2", "eval_interval=0"])  # fmt: skip
    logs = tmp_path / "logs"
    for i in range(2):
        make_gapped_log(steps=30, seed=i).save(logs / f"ep{i}.npz")
    dcfg = load_config(DeltaTrainConfig, None, [
        f"motions=[{logs}]", f"run.out_dir={tmp_path / 'delta'}", "run.max_iterations=2", "run.logger=none",
        "num_envs=4", "threads=1", "ppo.num_steps_per_env=4", "env.window_s=0.3", "horizons_s=[0.25]",
        "report_stride_s=0.2", "held_out=0.5", "gain_grid=[]", "run.progress_every=0",
    ])  # fmt: skip

    res = dist.launch(_sequence, 2, cfg, ft, dcfg)
    assert sorted(res) == [0, 1]
    (r0, a, f0, d0, w0), (r1, b, f1, d1, w1) = res[0], res[1]
    assert w0 == w1 == [True, True, True]  # no rank leaves a stage before rank 0's checkpoint/report exists
    # pretraining: 3 iterations, the networks agree across ranks and with rank 0's checkpoint
    assert r0["world_size"] == 2 and r0["ranks_in_sync"] and r0["iterations"] == 3
    assert r1 == {"rank": 1, "iterations": 3, "network_sha256": r1["network_sha256"]}  # rank 1 writes nothing
    assert r0["network_sha256"] == r1["network_sha256"] == _checkpoint_digest(r0["checkpoint"])
    assert r0["checkpoint"].endswith("model_2.pt") and (out / "metrics.json").is_file()
    saved = load_config(PretrainConfig, str(out / "config.yaml"), [])
    assert saved.seed == cfg.seed and saved.threads == cfg.threads  # the config as given, not rank 0's share
    # resume: every rank loads the checkpoint, trains 2 more iterations, the ranks still agree
    assert a["iterations"] == 5 and b["iterations"] == 5 and a["checkpoint"].endswith("model_4.pt")
    assert a["network_sha256"] == b["network_sha256"] == _checkpoint_digest(a["checkpoint"])
    assert a["network_sha256"] != r0["network_sha256"]  # the resumed run did update the networks
    # fine-tuning against the closed-form oracle delta from the resumed checkpoint
    assert f0["ranks_in_sync"] and f0["network_sha256"] == f1["network_sha256"] and f0["iterations"] == 7
    assert (tmp_path / "ft" / "metrics.json").is_file()
    # train-delta: rank 0 exports delta.pt and the report; rank 1's networks equal rank 0's last checkpoint
    assert d1["network_sha256"] == _checkpoint_digest(d0["checkpoint"])
    assert (tmp_path / "delta" / "delta.pt").is_file() and d0["episodes"] == {"train": 1, "held_out": 1}


def test_genesis_engine_follows_the_device():
    from asap.sim.genesis_backend import engine_backend

    assert engine_backend("cpu", "cpu") == "cpu" and engine_backend("cpu", "gpu") == "gpu"
    if torch.cuda.is_available():
        assert engine_backend("cuda", "cpu") == "cuda" and engine_backend("cuda:0", "vulkan") == "vulkan"
    else:
        with pytest.raises(RuntimeError, match="set sim.device=cpu"):
            engine_backend("cuda", "cpu")
