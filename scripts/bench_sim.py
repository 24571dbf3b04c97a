"""Benchmark the batched simulator: env control steps/s of the training path versus raw MuJoCo stepping.

Side by side in one run, on the same model, batch and thread count, alternating 1-second episodes (50 control steps
from the standing pose, PD targets swaying around the default pose):

* ``asap``: ``MujocoSimulator.step(targets)`` then every read a training env makes (root, joints, 27 bodies, foot
  contact forces, applied torques) as float32 torch tensors;
* ``raw``: ``mujoco.rollout.Rollout(nthread=T)`` over the same batch, 4 substeps per control step, no reads.

Each control step is timed on both paths in turn (lockstep), so load from other processes hits both alike. The ratio
asap/raw is what the protocol costs (target >= 0.7). With ``genesis-world`` installed it also times
the Genesis backend on CPU (same step + reads). Example::

    nice python scripts/bench_sim.py --num-envs 64 --threads 2 --seconds 20 --json bench_sim.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import mujoco
import numpy as np
import torch
from mujoco import rollout

from asap.sim import SimConfig, available_backends, make_simulator
from asap.sim.mujoco_backend import MujocoSimulator

EPISODE = 50  # control steps per timed block (1 s of simulated time)


def _targets(sim, k: int) -> torch.Tensor:
    base = torch.as_tensor(sim.spec.default_pos, dtype=torch.float32)
    phase = torch.linspace(0, math.pi, sim.num_envs)[:, None]
    return base + 0.1 * torch.sin(2 * math.pi * k * sim.control_dt + phase)


def _read_all(sim) -> None:
    sim.get_root_state()
    sim.get_joint_state()
    sim.get_body_state()
    sim.get_foot_contact_forces()
    sim.get_applied_torques()


def time_asap_episode(sim, targets: list[torch.Tensor]) -> float:
    """Seconds for one episode of step + reads (reset outside the timing)."""
    sim.reset()
    _read_all(sim)
    t = time.perf_counter()
    for tgt in targets:
        sim.step(tgt)
        _read_all(sim)
    return time.perf_counter() - t


class RawRollout:
    """Plain ``mujoco.rollout`` of the same model and batch: 4 substeps per control step, no reads."""

    def __init__(self, sim: MujocoSimulator, threads: int) -> None:
        self.model = sim.model
        self.n = sim.num_envs
        self.pool = rollout.Rollout(nthread=threads)
        self.datas = [mujoco.MjData(self.model) for _ in range(max(1, threads))]
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.nstate = mujoco.mj_stateSize(self.model, spec)
        d = mujoco.MjData(self.model)
        d.qpos[:] = sim.default_qpos
        d.ctrl[sim._act] = sim.spec.default_pos
        s0 = np.empty(self.nstate)
        mujoco.mj_getState(self.model, d, s0, spec)
        self.s0 = np.tile(s0, (self.n, 1))
        self.decimation = sim.spec.decimation
        self.state = np.empty((self.n, self.decimation, self.nstate))
        self.sensordata = np.empty((self.n, self.decimation, self.model.nsensordata))
        self.act = sim._act
        self.models = [self.model] * self.n

    def controls(self, targets: list[torch.Tensor]) -> list[np.ndarray]:
        out = []
        for tgt in targets:
            ctrl = np.zeros((self.n, self.decimation, self.model.nu))
            ctrl[:, :, self.act] = tgt.numpy()[:, None, :]
            out.append(ctrl)
        return out

    def step(self, state: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
        """One control step of every env from ``state``; returns the new (N, nstate) state."""
        self.pool.rollout(
            self.models,
            self.datas,
            state,
            ctrl,
            nstep=self.decimation,
            state=self.state,
            sensordata=self.sensordata,
            skip_checks=True,
        )
        return self.state[:, -1].copy()


def bench_mujoco(num_envs: int, threads: int, seconds: float) -> dict:
    """Both paths in lockstep: each control step is timed on the protocol path, then on raw rollout.

    Interleaving at every control step exposes both to the same load from other processes on a shared machine.
    """
    sim = make_simulator(SimConfig(num_envs=num_envs, threads=threads))
    assert isinstance(sim, MujocoSimulator)
    raw = RawRollout(sim, threads)
    targets = [_targets(sim, k) for k in range(EPISODE)]
    controls = raw.controls(targets)
    t_asap, t_raw, episodes = 0.0, 0.0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or episodes < 2:
        sim.reset()
        _read_all(sim)
        state = raw.s0.copy()
        for tgt, ctrl in zip(targets, controls, strict=True):
            t0 = time.perf_counter()
            sim.step(tgt)
            _read_all(sim)
            t1 = time.perf_counter()
            state = raw.step(state, ctrl)
            t2 = time.perf_counter()
            if episodes > 0:  # the first episode warms up both
                t_asap += t1 - t0
                t_raw += t2 - t1
        episodes += 1
    steps = (episodes - 1) * EPISODE * num_envs
    sim.close()
    return {
        "episodes": episodes - 1,
        "asap_env_steps_per_s": steps / t_asap,
        "raw_env_steps_per_s": steps / t_raw,
        "raw_mj_steps_per_s": steps * 4 / t_raw,
        "ratio": t_raw / t_asap,
    }


def bench_genesis(num_envs: int, seconds: float) -> dict:
    t0 = time.perf_counter()
    sim = make_simulator(SimConfig(backend="genesis", num_envs=num_envs))
    build = time.perf_counter() - t0
    targets = [_targets(sim, k) for k in range(EPISODE)]
    time_asap_episode(sim, targets[:5])
    total, episodes = 0.0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or episodes < 1:
        total += time_asap_episode(sim, targets)
        episodes += 1
    sim.close()
    return {"build_s": build, "episodes": episodes, "env_steps_per_s": episodes * EPISODE * num_envs / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-envs", type=int, default=64, help="batch size N")
    ap.add_argument("--threads", type=int, default=2, help="native threads (both paths)")
    ap.add_argument("--seconds", type=float, default=20.0, help="wall time of the MuJoCo comparison")
    ap.add_argument("--genesis-seconds", type=float, default=10.0, help="wall time of the Genesis run")
    ap.add_argument("--no-genesis", action="store_true", help="skip Genesis even if installed")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    result: dict = {
        "num_envs": args.num_envs,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "mujoco": mujoco.__version__,
        "torch": torch.__version__,
    }
    result["mujoco_backend"] = bench_mujoco(args.num_envs, args.threads, args.seconds)
    m = result["mujoco_backend"]
    print(
        f"MuJoCo N={args.num_envs} threads={args.threads}: asap {m['asap_env_steps_per_s']:.0f} env steps/s, "
        f"raw rollout {m['raw_env_steps_per_s']:.0f} env steps/s ({m['raw_mj_steps_per_s']:.0f} mj_step/s), "
        f"ratio {m['ratio']:.2f}"
    )
    if not args.no_genesis and "genesis" in available_backends():
        result["genesis_cpu"] = bench_genesis(args.num_envs, args.genesis_seconds)
        g = result["genesis_cpu"]
        print(f"Genesis CPU N={args.num_envs}: {g['env_steps_per_s']:.0f} env steps/s (build {g['build_s']:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
