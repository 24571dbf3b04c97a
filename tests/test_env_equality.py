"""Recorded rollouts of the tracking and delta tasks: speed work on the env step must not change a single bit.

``tests/data/env_rollout_tracking.npz`` and ``env_rollout_delta.npz`` were written by this module (``python
tests/test_env_equality.py --write``) from the implementation before the env step was optimised: seeded random
actions, observation noise, residual actions, pushes, initial-state noise, early terminations and resets. The test
replays the same rollouts and requires bit-for-bit equal observations (SHA-256 of each step's float32 bytes),
rewards, per-term rewards and episode ends. The MuJoCo batch steps every env on one thread from its own state and
the torch reductions involved are single-threaded at these sizes, so nothing depends on thread scheduling: exact
equality is expected, not equality within an ulp. Full observations of a few steps are stored too, so that a
failure reports how large the difference is. The delta rollout was re-recorded when the delta observation gained
``last_action`` (layout ``delta_v2``), after checking that its rewards, ends and every column of the older layout
were bit-for-bit those of the earlier recording.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from asap.control import ACTION_ALIGNMENT, TargetShaping, shape_targets
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.motion.synthetic import synthetic_motion
from asap.sim.base import SimConfig, make_simulator
from envs.delta.config import DeltaEnvConfig
from envs.delta.env import DeltaEnv
from envs.tracking.config import DomainRandConfig, InitNoiseConfig, TerminationConfig, TrackingEnvConfig
from envs.tracking.env import TrackingEnv

DATA = Path(__file__).resolve().parent / "data"
KEPT_STEPS = (0, 1, 17, 33, 59)
"""Steps whose full observations are stored (for diagnostics; equality is checked on every step's digest)."""


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().contiguous().numpy().astype(np.float32, copy=False).tobytes()).hexdigest()


def _actions(steps: int, n: int, a: int, seed: int, scale: float) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(n, a, generator=gen) for _ in range(steps)]


def _record(env, actions: list[torch.Tensor], obs0: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Step ``env`` through ``actions``; per-step digests, rewards, terms and ends as arrays."""
    groups = sorted(obs0)
    out: dict[str, list] = {"reward": [], "done": [], "terminated": [], "time_out": [], "terms": []}
    for g in groups:
        out[f"digest_{g}"] = [_digest(obs0[g])]
        out[f"obs_{g}"] = [obs0[g].numpy().copy()]
    names: list[str] = []
    for k, act in enumerate(actions):
        obs, info = env.step(act)
        names = sorted(info.terms)
        out["reward"].append(info.reward.numpy().copy())
        out["done"].append(info.done.numpy().copy())
        out["terminated"].append(info.terminated.numpy().copy())
        out["time_out"].append(info.time_out.numpy().copy())
        out["terms"].append(np.stack([info.terms[t].numpy() for t in names], axis=-1))
        for g in groups:
            out[f"digest_{g}"].append(_digest(obs[g]))
            if k in KEPT_STEPS:
                out[f"obs_{g}"].append(obs[g].numpy().copy())
    arrays = {k: np.asarray(v) for k, v in out.items()}
    arrays["term_names"] = np.asarray(names)
    return arrays


def tracking_rollout(steps: int = 60, num_envs: int = 16) -> dict[str, np.ndarray]:
    """Random actions on two short synthetic clips with every stochastic option of the task switched on."""
    clips = [synthetic_motion(num_frames=51, fps=50, seed=0), synthetic_motion(num_frames=76, fps=50, seed=1)]
    lib = MotionLib(clips)
    sim = make_simulator(SimConfig(num_envs=num_envs, threads=2))
    cfg = TrackingEnvConfig(
        residual_actions=True,
        obs_noise_level=1.0,
        termination=TerminationConfig(far_threshold=0.3),
        domain_rand=DomainRandConfig(push=True, push_interval_s=(0.2, 0.6), push_max_vel=0.5),
        init_noise=InitNoiseConfig(level=1.0),
        seed=3,
    )
    env = TrackingEnv(cfg, sim, lib)
    obs0 = env.reset()
    try:
        return _record(env, _actions(steps, num_envs, env.num_actions, seed=11, scale=0.8), obs0)
    finally:
        sim.close()


def delta_log(steps: int = 80, seed: int = 0) -> Motion:
    """A logged segment at the control rate: one simulated G1 driven by smooth sinusoidal actions."""
    sim = make_simulator(SimConfig(num_envs=1, threads=1))
    spec = sim.spec
    sim.reset()
    freq = np.random.default_rng(seed).uniform(0.5, 1.5, spec.num_joints)
    default = torch.as_tensor(spec.default_pos, dtype=torch.float32)
    lo, hi = (torch.as_tensor(x, dtype=torch.float32) for x in (spec.pos_lower, spec.pos_upper))
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("rp", "rq", "rl", "ra", "q", "qd", "a")}
    prev = None
    for f in range(steps):
        a = torch.as_tensor(0.5 * np.sin(2 * math.pi * freq * f * sim.control_dt), dtype=torch.float32)[None]
        root = sim.get_root_state()[0]
        q, qd = (x[0] for x in sim.get_joint_state())
        vals = (root[0:3], root[3:7], root[7:10], root[10:13], q, qd, a[0])
        for key, v in zip(("rp", "rq", "rl", "ra", "q", "qd", "a"), vals, strict=True):
            rows[key].append(v.numpy().copy())
        _, _, prev = shape_targets(a, prev, default, spec.action_scale, lo, hi, TargetShaping())
        sim.step(targets=prev)
    sim.close()
    arr = {k: np.stack(v) for k, v in rows.items()}
    return Motion(fps=1.0 / sim.control_dt, joint_names=spec.joint_names, root_pos=arr["rp"], root_quat=arr["rq"],
                  dof_pos=arr["q"], action=arr["a"], dof_vel=arr["qd"], root_lin_vel=arr["rl"],
                  root_ang_vel=arr["ra"], meta={"action_alignment": ACTION_ALIGNMENT})  # fmt: skip


def delta_rollout(steps: int = 60, num_envs: int = 8) -> dict[str, np.ndarray]:
    """Random Δa over 0.3 s windows of one logged segment (several resets per env)."""
    sim = make_simulator(SimConfig(num_envs=num_envs, threads=2))
    env = DeltaEnv(DeltaEnvConfig(window_s=0.3, seed=5), sim, MotionLib([delta_log()]), TargetShaping())
    obs0 = env.get_observations()
    try:
        return _record(env, _actions(steps, num_envs, env.num_actions, seed=12, scale=0.3), obs0)
    finally:
        sim.close()


ROLLOUTS = {"tracking": tracking_rollout, "delta": delta_rollout}


def _check(name: str) -> None:
    want = np.load(DATA / f"env_rollout_{name}.npz")
    got = ROLLOUTS[name]()
    assert list(got["term_names"]) == list(want["term_names"]), "reward terms changed"
    for key in ("done", "terminated", "time_out"):
        assert np.array_equal(got[key], want[key]), f"{name}: {key} differs"
    for key in ("reward", "terms"):
        diff = np.abs(got[key].astype(np.float64) - want[key]).max()
        assert np.array_equal(got[key], want[key]), f"{name}: {key} differs (max |diff| {diff:.3g})"
    for g in ("actor", "critic"):
        bad = np.flatnonzero(got[f"digest_{g}"] != want[f"digest_{g}"])
        if bad.size:
            diff = np.abs(got[f"obs_{g}"].astype(np.float64) - want[f"obs_{g}"]).max()
            raise AssertionError(f"{name}: {g} observations differ from step {bad[0] - 1} on (-1 = after the "
                                 f"reset; max |diff| at the stored steps {diff:.3g})")  # fmt: skip


def test_tracking_rollout_is_unchanged() -> None:
    _check("tracking")


def test_delta_rollout_is_unchanged() -> None:
    _check("delta")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write the recorded rollouts (only from a known-good implementation).")
    ap.add_argument("--write", action="store_true", help="overwrite tests/data/env_rollout_*.npz")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    for key, fn in ROLLOUTS.items():
        data = fn()
        path = DATA / f"env_rollout_{key}.npz"
        if args.write:
            np.savez_compressed(path, **data)
            print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")
        else:
            print(key, {k: v.shape for k, v in data.items()}, "ends:", int(data["done"].sum()))
