"""Benchmark the whole env step (tracking and delta tasks) against raw ``mujoco.rollout`` of the same model and batch.

One run, one process, the two paths in lockstep (each control step timed on one path, then on the other), so that
load from other processes on a shared machine hits both alike:

* ``env``: ``TrackingEnv.step`` / ``DeltaEnv.step`` with random actions (no policy): joint-target shaping, the
  simulator step, the state read, the reference query, rewards, terminations, resets and observations;
* ``raw``: ``mujoco.rollout.Rollout(nthread=T)`` of the same model and batch, replaying the joint targets the env
  sent, from the env's full physics state at the start of each block of ``--block`` steps (4 substeps per control
  step, no reads) -- about the physics load of the env (contacts, falls), without its resets.

The ratio ``env / raw`` (env steps per second) is what the task machinery around the simulator costs; 1.0 would be
free. ``sim_step_ratio`` is raw over the simulator step alone inside those env blocks (what the physics of the
env's own states -- resets to reference poses, cold solver warm-starts -- costs, before any torch work).
A second phase times the env alone with each part wrapped (exclusive time per part: ``sim`` step, ``state`` read,
``reference`` query, ``obs``, ``rewards`` (+ terminations), ``resets``, ``other``), in wall time and in the main
thread's CPU time (robust to other processes' load; the simulator's native threads excluded), and the torch
operations each part dispatches per step (independent of load). torch runs on one thread, as in training
(``RunnerConfig.env_torch_threads``). Example::

    nice python scripts/bench_env.py --envs 64 128 --threads 2 --seconds 20 --json run/bench_env.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from asap.control import TargetShaping
from asap.motion.motionlib import MotionLib
from asap.sim.base import SimConfig, make_simulator
from asap.sim.mujoco_backend import MujocoSimulator
from envs.delta.config import DeltaEnvConfig
from envs.delta.env import DeltaEnv
from envs.tracking.config import TrackingEnvConfig
from envs.tracking.env import TrackingEnv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_sim import RawRollout  # noqa: E402

PARTS = ("sim", "state", "reference", "obs", "rewards", "resets", "other")
"""Parts of the env step in the breakdown (``other``: everything not inside a wrapped call)."""


def _delta_log():
    """The delta task's logged segment of the equality test (a simulated G1 under smooth actions)."""
    spec = importlib.util.spec_from_file_location("_env_equality", ROOT / "tests" / "test_env_equality.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.delta_log(steps=200)


def make_env(task: str, num_envs: int, threads: int, motion: Path) -> Any:
    """A tracking env on ``motion`` with the demo's settings (residual actions, observation noise), or a delta env
    on a simulated log (1 s windows)."""
    sim = make_simulator(SimConfig(num_envs=num_envs, threads=threads))
    if task == "tracking":
        return TrackingEnv(TrackingEnvConfig(residual_actions=True), sim, MotionLib(motion))
    return DeltaEnv(DeltaEnvConfig(), sim, MotionLib([_delta_log()]), TargetShaping())


class PartTimer:
    """Exclusive time of wrapped calls, by part (a call inside another pauses the outer one's clocks), on two
    clocks: wall time, and the calling thread's CPU time (which other processes' load barely changes; the
    simulator's native threads are not in it)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []
        self._undo: list[Callable[[], None]] = []

    @staticmethod
    def now() -> tuple[float, float]:
        """(wall, thread CPU) seconds."""
        return time.perf_counter(), time.thread_time()

    def _charge(self, part: str, since: tuple[float, float], now: tuple[float, float]) -> None:
        self.wall[part] += now[0] - since[0]
        self.cpu[part] += now[1] - since[1]

    def wrap(self, owner: Any, attr: str, part: str) -> None:
        """Replace ``owner.attr`` (a function, bound method or callable object) by a timed call."""
        fn = getattr(owner, attr, None)
        if fn is None:
            return
        had = attr in vars(owner) if hasattr(owner, "__dict__") else False

        def timed(*args: Any, **kw: Any) -> Any:
            t = self.now()
            if self._stack:
                self._charge(self._stack[-1][0], self._stack[-1][1], t)
            self._stack.append([part, t])
            try:
                return fn(*args, **kw)
            finally:
                t2 = self.now()
                p, s = self._stack.pop()
                self._charge(p, s, t2)
                if self._stack:
                    self._stack[-1][1] = t2

        setattr(owner, attr, timed)
        self._undo.append((lambda: setattr(owner, attr, fn)) if had else (lambda: delattr(owner, attr)))

    def current(self) -> str:
        """The part running now (``other`` outside every wrapped call)."""
        return self._stack[-1][0] if self._stack else "other"

    def unwrap(self) -> None:
        """Restore everything wrapped."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


class OpCounter(TorchDispatchMode):
    """Counts the torch operations dispatched in each part of a :class:`PartTimer` (a load-independent measure of
    the per-step work: on small tensors each operation costs about the same fixed overhead)."""

    def __init__(self, timer: PartTimer) -> None:
        super().__init__()
        self.timer = timer
        self.ops: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[self.timer.current()] += 1
        return func(*args, **(kwargs or {}))


def wrap_env(env: Any, timer: PartTimer) -> None:
    """Wrap the env's parts (names of both tasks; missing ones are skipped)."""
    import envs.delta.env as delta_mod
    import envs.tracking.env as tracking_mod

    sim = env.sim
    timer.wrap(sim, "step", "sim")
    for mod in (tracking_mod, delta_mod):
        timer.wrap(mod, "read_state", "state")
    for name in ("get_root_state", "get_joint_state", "get_body_state", "get_applied_torques",
                 "get_foot_contact_forces", "read_state"):  # fmt: skip
        timer.wrap(sim, name, "state")
    lib = env.motion_lib if isinstance(env, TrackingEnv) else env.logs
    for name in ("get_state", "frame_state", "frame_action", "get_state_pair"):
        timer.wrap(lib, name, "reference")
    timer.wrap(env, "_compute_obs", "obs")
    for name in ("_rewards", "_terminations", "rewards"):
        timer.wrap(env, name, "rewards")
    timer.wrap(env, "_reset_envs", "resets")


def _full_state(sim: MujocoSimulator, raw: RawRollout) -> np.ndarray:
    """(N, nstate) full physics state of the simulator's envs (for the raw rollout to start from)."""
    d = mujoco.MjData(sim.model)
    out = np.empty((sim.num_envs, raw.nstate))
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    for i in range(sim.num_envs):
        d.qpos[:] = sim._qpos[i]
        d.qvel[:] = sim._qvel[i]
        d.qacc_warmstart[:] = sim._warm[i]
        d.ctrl[:] = sim._ctrl[i]
        mujoco.mj_getState(sim.model, d, out[i], spec)
    return out


def bench(task: str, num_envs: int, threads: int, seconds: float, profile_s: float, block: int, motion: Path,
          seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Alternating env/raw blocks for ``seconds``, then ``profile_s`` of the env with the per-part timers."""
    env = make_env(task, num_envs, threads, motion)
    sim = env.sim
    assert isinstance(sim, MujocoSimulator)
    raw = RawRollout(sim, threads)
    gen = torch.Generator().manual_seed(seed)
    scale = 0.3 if task == "tracking" else 0.1
    pool = [scale * torch.randn(num_envs, env.num_actions, generator=gen) for _ in range(4 * block)]
    k = 0

    def env_step() -> tuple[float, float]:
        """(wall, thread CPU) seconds of one env step with the next random action."""
        nonlocal k
        a = pool[k % len(pool)]
        k += 1
        t0 = PartTimer.now()
        with torch.inference_mode():  # as the training loop runs it (asap/rl/runner.py)
            env.step(a)
        t1 = PartTimer.now()
        return t1[0] - t0[0], t1[1] - t0[1]

    def lockstep_block() -> tuple[float, float]:
        """``block`` steps, each timed on the env and then on raw rollout (which continues from the env's state at
        the block's start with the joint targets the env sent): (env, raw) seconds."""
        state = _full_state(sim, raw)
        ctrl = np.zeros((num_envs, raw.decimation, sim.model.nu))
        t_e = t_r = 0.0
        for _ in range(block):
            t_e += env_step()[0]
            ctrl[:, :, raw.act] = sim._ctrl[:, sim._act][:, None, :]
            t0 = time.perf_counter()
            state = raw.step(state, ctrl)
            t_r += time.perf_counter() - t0
        return t_e, t_r

    lockstep_block()  # warm-up
    t_env = t_raw = 0.0
    sim_timer = PartTimer()
    sim_timer.wrap(sim, "step", "sim")  # the simulator step inside the env steps (one wrapper: negligible cost)
    blocks = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or blocks < 2:
        e, r = lockstep_block()
        t_env, t_raw = t_env + e, t_raw + r
        blocks += 1
    steps = blocks * block * num_envs
    t_sim = sim_timer.wall["sim"]
    sim_timer.unwrap()

    timer = PartTimer()
    wrap_env(env, timer)
    t_prof = c_prof = 0.0
    pblocks = 0
    start = time.perf_counter()
    while time.perf_counter() - start < profile_s or pblocks < 1:
        for _ in range(block):
            w, c = env_step()
            t_prof, c_prof = t_prof + w, c_prof + c
        pblocks += 1
    psteps = pblocks * block
    parts = {p: 1e3 * timer.wall.get(p, 0.0) / psteps for p in PARTS if p != "other"}
    parts["other"] = max(0.0, 1e3 * t_prof / psteps - sum(parts.values()))
    cpu = {p: 1e3 * timer.cpu.get(p, 0.0) / psteps for p in PARTS if p != "other"}
    cpu["other"] = max(0.0, 1e3 * c_prof / psteps - sum(cpu.values()))
    counter = OpCounter(timer)  # last: counting slows every operation down
    with counter:
        for _ in range(block):
            env_step()
    timer.unwrap()
    sim.close()
    return {
        "task": task,
        "num_envs": num_envs,
        "lockstep_blocks": blocks,
        "env_steps_per_s": steps / t_env,
        "raw_env_steps_per_s": steps / t_raw,
        "ratio": t_raw / t_env,
        "sim_step_ratio": t_raw / t_sim,
        "profiled_ms_per_step": 1e3 * t_prof / psteps,
        "parts_ms_per_step": parts,
        "torch_ops_per_step": {p: counter.ops.get(p, 0) / block for p in PARTS},
        "main_thread_cpu_ms_per_step": 1e3 * c_prof / psteps,
        "parts_cpu_ms_per_step": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, nargs="+", default=[64, 128], help="batch sizes N")
    ap.add_argument("--tasks", nargs="+", default=["tracking", "delta"], choices=["tracking", "delta"])
    ap.add_argument("--threads", type=int, default=2, help="native simulator threads (both paths)")
    ap.add_argument("--seconds", type=float, default=20.0, help="wall time of the alternating blocks per case")
    ap.add_argument("--profile-seconds", type=float, default=5.0, help="wall time of the per-part phase per case")
    ap.add_argument("--block", type=int, default=25, help="control steps per timed block")
    ap.add_argument("--motion", type=Path, default=ROOT / "motions" / "builtin" / "arm_wave.npz",
                    help="clip of the tracking task")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "mujoco": mujoco.__version__,
        "torch": torch.__version__,
        "cases": [],
    }
    for task in args.tasks:
        for n in args.envs:
            r = bench(task, n, args.threads, args.seconds, args.profile_seconds, args.block, args.motion)
            result["cases"].append(r)
            parts = " ".join(f"{p} {v:.2f}" for p, v in r["parts_ms_per_step"].items())
            print(f"{task:8s} N={n:4d} threads={args.threads}: env {r['env_steps_per_s']:7.0f} env steps/s, "
                  f"raw rollout {r['raw_env_steps_per_s']:7.0f}, ratio {r['ratio']:.2f} (sim step alone "
                  f"{r['sim_step_ratio']:.2f}) | ms/step "
                  f"{r['profiled_ms_per_step']:.2f}: {parts}", flush=True)  # fmt: skip
            cpu = " ".join(f"{p} {v:.2f}" for p, v in r["parts_cpu_ms_per_step"].items())
            print(f"{'':8s} main-thread CPU ms/step {r['main_thread_cpu_ms_per_step']:.2f}: {cpu}", flush=True)
            ops = r["torch_ops_per_step"]
            each = " ".join(f"{p} {v:.0f}" for p, v in ops.items())
            print(f"{'':8s} torch ops/step {sum(ops.values()):.0f}: {each}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
