"""Data-parallel PPO (asap.rl.distributed): 2 ranks on CPU with Gloo keep identical networks, and resume."""

from __future__ import annotations

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
        try:
            dist.per_rank(PretrainConfig(device="cuda"), d)
        except RuntimeError as e:
            assert "device=cpu" in str(e)
        else:
            raise AssertionError("cuda without a GPU must fail")


def test_two_gloo_ranks_stay_identical_and_resume(tmp_path):
    clip = tmp_path / "clip.npz"
    synthetic_motion(num_frames=16, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(clip)
    out = tmp_path / "run"
    cfg = load_config(PretrainConfig, None, [f"motion={clip}", f"run.out_dir={out}", "run.max_iterations=3", *TINY])
    res = dist.launch(pretrain, 2, cfg)
    assert sorted(res) == [0, 1]
    r0, r1 = res[0], res[1]
    assert r0["world_size"] == 2 and r0["ranks_in_sync"] and r0["iterations"] == 3
    assert r1 == {"rank": 1, "iterations": 3, "network_sha256": r1["network_sha256"]}  # rank 1 writes nothing
    assert r0["network_sha256"] == r1["network_sha256"]
    ck = r0["checkpoint"]
    assert ck.endswith("model_2.pt") and _checkpoint_digest(ck) == r0["network_sha256"]
    assert (out / "metrics.json").is_file()
    saved = load_config(PretrainConfig, str(out / "config.yaml"), [])
    assert saved.seed == cfg.seed and saved.threads == cfg.threads  # the config as given, not rank 0's share

    # resume: every rank loads the checkpoint, trains 2 more iterations, the ranks still agree
    cfg.run.resume, cfg.run.max_iterations = ck, 2
    res2 = dist.launch(pretrain, 2, cfg)
    a, b = res2[0], res2[1]
    assert a["iterations"] == 5 and b["iterations"] == 5 and a["checkpoint"].endswith("model_4.pt")
    assert a["network_sha256"] == b["network_sha256"] == _checkpoint_digest(a["checkpoint"])
    assert a["network_sha256"] != r0["network_sha256"]  # the resumed run did update the networks
