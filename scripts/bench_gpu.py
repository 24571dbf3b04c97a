"""GPU benchmark: simulator and training throughput of the demo task at 1k-8k envs, in one run under 10 minutes.

For each batch size it builds the demo pretraining run (configs/pretrain/demo.yaml: arm-wave clip, residual actions,
[256,128,64] networks) with ``num_envs=N`` on ``--device`` and ``--backend``, and measures

* PPO: ``--iterations`` iterations of :class:`asap.rl.runner.Trainer` (rollout of 24 steps per env + the PPO
  update); the first iteration (warm-up, kernel compilation) is dropped, the rest give the median iteration time,
  its rollout and update parts, and training env steps/s (N * 24 / iteration time);
* simulator: ``--sim-seconds`` of control steps with PD targets plus every read a training env makes
  (``bench_sim.py``'s step + reads) on the same simulator: simulator env steps/s;

plus the build time (Genesis compiles kernels at its first build; ``~/.cache/genesis`` keeps them) and the peak GPU
memory. Sizes that would start after ``--budget-s`` are skipped and listed as such, so the run stays inside its
slot. ``--quick`` runs tiny sizes (8 and 16 envs, 2 iterations) on whatever device is given (CPU by default when
no GPU is visible) to check that the script works. Examples::

    python scripts/bench_gpu.py --json bench_gpu.json                         # a GPU machine: Genesis on CUDA
    python scripts/bench_gpu.py --backend mujoco --device cuda --json b.json  # CPU MuJoCo, PPO on the GPU
    python scripts/bench_gpu.py --quick --backend mujoco --json /tmp/q.json   # a smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from typing import Any

import torch
from bench_sim import _read_all, _targets  # same directory: the simulator benchmark's step + reads

from asap.config import load_config
from asap.rl.config import PretrainConfig
from asap.rl.runner import Trainer

DEMO = "configs/pretrain/demo.yaml"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_size(n: int, args: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    """PPO iterations, then simulator stepping, of the demo run with ``n`` envs (see module docstring)."""
    overrides = [f"num_envs={n}", f"device={args.device}", f"sim={args.backend}", f"threads={args.threads}",
                 f"run.out_dir={out_dir}/n{n}", f"run.max_iterations={args.iterations}", "run.eval_interval=0",
                 "run.eval_start_phases=1", "run.export_onnx=false", "run.logger=none", "run.progress_every=0",
                 "run.save_interval=0"]  # fmt: skip
    cfg = load_config(PretrainConfig, DEMO, overrides)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    tr = Trainer(cfg)
    build = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        tr.train()
        train_wall = time.perf_counter() - t0
        rows = tr.history[1:] or tr.history  # the first iteration warms up (kernel compilation, allocator)
        it_s = statistics.median(r["collect_s"] + r["learn_s"] for r in rows)
        steps = cfg.ppo.num_steps_per_env * n
        res: dict[str, Any] = {
            "num_envs": n, "build_s": build, "iterations_timed": len(rows), "iteration_s": it_s,
            "rollout_s": statistics.median(r["collect_s"] for r in rows),
            "update_s": statistics.median(r["learn_s"] for r in rows),
            "train_env_steps_per_s": steps / it_s, "samples_per_iteration": steps,
            "train_wall_s": train_wall,
        }  # fmt: skip
        sim = tr.sim
        targets = [_targets(sim, k) for k in range(50)]
        for tgt in targets[:5]:  # warm-up
            sim.step(tgt)
            _read_all(sim)
        _sync(args.device)
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.sim_seconds or k < 10:
            sim.step(targets[k % len(targets)])
            _read_all(sim)
            k += 1
        _sync(args.device)
        res["sim_env_steps_per_s"] = k * n / (time.perf_counter() - t0)
        if args.device.startswith("cuda"):
            res["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    finally:
        tr.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="genesis", help="simulator backend (genesis, mujoco)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch/sim device")
    ap.add_argument("--sizes", default="1024,2048,4096,8192", help="comma-separated env counts")
    ap.add_argument("--iterations", type=int, default=4, help="PPO iterations per size (the first is dropped)")
    ap.add_argument("--sim-seconds", type=float, default=10.0, help="seconds of simulator stepping per size")
    ap.add_argument("--threads", type=int, default=0, help="simulator threads (MuJoCo; 0: all cores)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no size after this many seconds")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (8, 16), 2 iterations, 2 s: a smoke run")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.iterations, args.sim_seconds = "8,16", 2, 2.0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    info: dict[str, Any] = {"backend": args.backend, "device": args.device, "torch": torch.__version__,
                            "python": platform.python_version(), "machine": platform.machine(),
                            "quick": args.quick, "config": DEMO}  # fmt: skip
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda but torch sees no CUDA GPU: use --device cpu (with --quick) or a GPU")
        p = torch.cuda.get_device_properties(torch.device(args.device))
        info.update({"gpu": p.name, "gpu_memory_gib": p.total_memory / 2**30, "cuda": torch.version.cuda})
    if args.backend == "genesis":
        import genesis

        info["genesis"] = genesis.__version__
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as out:
        for n in sizes:
            if time.perf_counter() - start > args.budget_s:
                results.append({"num_envs": n, "skipped": f"budget of {args.budget_s:.0f} s spent"})
                continue
            try:
                r = bench_size(n, args, out)
            except torch.OutOfMemoryError as e:
                r = {"num_envs": n, "error": f"out of GPU memory: {str(e).splitlines()[0]}"}
            results.append(r)
            if "error" in r:
                print(f"{n:6d} envs: {r['error']}", flush=True)
                continue
            print(f"{n:6d} envs: build {r['build_s']:6.1f} s | PPO iteration {r['iteration_s']:6.3f} s (rollout "
                  f"{r['rollout_s']:.3f}, update {r['update_s']:.3f}) = {r['train_env_steps_per_s']:9.0f} env "
                  f"steps/s | simulator {r['sim_env_steps_per_s']:9.0f} env steps/s", flush=True)  # fmt: skip
    info["wall_s"] = time.perf_counter() - start
    info["sizes"] = results
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)
        print(f"json: {args.json}")


if __name__ == "__main__":
    main()
