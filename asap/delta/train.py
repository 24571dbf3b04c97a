"""`asap train-delta`: PPO (rsl-rl, asymmetric actor-critic) for π^Δ on the open-loop replay of logged episodes,
then the open-loop report (OpenLoop / ASAP / Oracle at the configured horizons) on held-out episodes.

Artifacts in ``run.out_dir``: ``model_<it>.pt`` (rsl-rl checkpoints, resumable), ``delta.pt`` (+ ``delta.json``,
the frozen model with its :class:`asap.delta.model.DeltaMeta`), ``config.yaml``, ``openloop.json``,
``openloop.md``, ``openloop.png``, ``split.json`` (which episodes trained, which were held out).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.config import save_config
from asap.delta.config import DeltaTrainConfig
from asap.delta.logs import gather_logs, load_logs, replay_shaping, write_split
from asap.delta.model import DeltaModel, save_delta
from asap.delta.motor_model import MOTOR_LOCAL_CLASS
from asap.eval.openloop import openloop_eval, window_counts
from asap.motion.motionlib import MotionLib
from asap.rl import distributed as dist
from asap.rl.checkpoints import check_fresh_run
from asap.rl.config import rsl_train_cfg
from asap.root_source import trusted
from asap.sim.base import SimConfig, make_simulator
from envs.delta.env import DeltaEnv


def split_episodes(n: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and held-out episodes (whole episodes; at least one of each when n >= 2)."""
    if n < 2:
        return list(range(n)), []
    k = min(n - 1, max(1, int(round(held_out * n)))) if held_out > 0 else 0
    perm = np.random.default_rng(seed).permutation(n).tolist()
    return sorted(perm[k:]), sorted(perm[:k])


DELTA_MODELS = {"mlp": "MLPModel", "motor_local": MOTOR_LOCAL_CLASS}
"""``DeltaTrainConfig.model`` -> the rsl-rl class of π^Δ's actor."""


def actor_class(cfg: DeltaTrainConfig) -> str:
    """rsl-rl ``class_name`` of the actor for ``cfg.model``; one-line ``ValueError`` for an unknown model or a
    motor-local model without the ``driven`` observation scope."""
    if cfg.model not in DELTA_MODELS:
        raise ValueError(f"unknown delta model {cfg.model!r}: use one of {sorted(DELTA_MODELS)}")
    if cfg.model == "motor_local" and cfg.env.obs_scope != "driven":
        raise ValueError("model=motor_local reads each driven motor's own signals: add env.obs_scope=driven")
    return DELTA_MODELS[cfg.model]


class DeltaTrainer:
    """Builds the replay simulator, the delta env and PPO; trains; writes the model and the report."""

    def __init__(self, cfg: DeltaTrainConfig) -> None:
        from asap.rl.vecenv import RslTrackingEnv

        model_class = actor_class(cfg)  # an unknown or inconsistent model fails before any set-up
        from asap.delta.calibrate import joint_groups

        joint_groups([], cfg.joint_gain_groups)  # so does an unknown calibration grouping
        self.dist = dist.setup(cfg.device)
        """This process' rank layout (data-parallel PPO: :mod:`asap.rl.distributed`; world_size 1 otherwise)."""
        saved_cfg = cfg
        cfg = dist.per_rank(cfg, self.dist)  # seed + rank, cuda:<local_rank>, its share of the cores
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(max(1, cfg.torch_threads))
        self.out = Path(cfg.run.out_dir)
        check_fresh_run(self.out, cfg.run.resume)
        self.out.mkdir(parents=True, exist_ok=True)
        self.files = gather_logs(cfg.motions)
        motions, logged_shaping = load_logs(self.files)
        replay_shaping(logged_shaping, cfg.shaping)  # the logs must agree with the configured shaping
        self.train_idx, self.held_idx = split_episodes(len(motions), cfg.held_out, cfg.seed)
        self.motions = motions
        if self.dist.is_main:
            write_split(self.out, self.files, self.train_idx, self.held_idx)
        self.train_lib = MotionLib([motions[i] for i in self.train_idx], spec=cfg.variant, device=cfg.device)
        self.sim = make_simulator(self._sim_cfg(cfg.num_envs))
        self.root_sources = [motions[i].meta.get("root_source") for i in self.train_idx]
        """Each training episode's root source: what its reward terms may trust (:mod:`asap.root_source`)."""
        self.env = DeltaEnv(replace(cfg.env, seed=cfg.seed), self.sim, self.train_lib, cfg.shaping,
                            self.root_sources)  # fmt: skip
        self.vec = RslTrackingEnv(self.env)  # type: ignore[arg-type]  # same step/obs interface as the tracking env
        if self.dist.is_main:
            save_config(saved_cfg, self.out / "config.yaml")
        self.train_cfg = rsl_train_cfg(cfg)  # type: ignore[arg-type]  # reads only .ppo and .run
        self.train_cfg["actor"]["class_name"] = model_class
        log_dir = None if cfg.run.logger == "none" else str(self.out)
        with contextlib.redirect_stdout(io.StringIO()):
            self.runner = dist.make_runner(self.vec, self.train_cfg, log_dir, cfg.device)
        self.train_time = 0.0
        self.history: list[dict[str, float]] = []
        if cfg.run.resume:
            infos = self.runner.load(str(cfg.run.resume), map_location=cfg.device) or {}
            self.train_time = float(infos.get("train_time_s", 0.0))
            self.history = list(infos.get("history", []))
            self.runner.current_learning_iteration += 1
            if self.dist.is_main:
                it = self.runner.current_learning_iteration
                print(f"resumed from {cfg.run.resume} at iteration {it}", flush=True)

    def _sim_cfg(self, n: int) -> SimConfig:
        c = self.cfg
        return SimConfig(backend=c.sim, variant=c.variant, num_envs=n, threads=c.threads, device=c.device,
                         model=c.physics)  # fmt: skip

    def save(self, path: Path) -> Path:
        """rsl-rl checkpoint plus the run's history and time (resumable); written by rank 0 only."""
        if self.dist.is_main:
            self.runner.save(str(path), infos={"train_time_s": self.train_time, "history": self.history})
        return path

    def train(self) -> Path:
        """PPO until ``run.max_iterations`` or ``run.max_time_s`` (rank 0's clock); returns the last checkpoint."""
        cfg, rn, alg = self.cfg, self.runner, self.runner.alg
        logger = rn.logger
        obs = self.vec.get_observations().to(cfg.device)
        alg.train_mode()
        dist.sync_parameters(alg)  # rank 0's networks on every rank
        main = self.dist.is_main
        logger.init_logging_writer()
        if logger.writer is None:  # logging off: still keep the reward statistics of the progress line
            from asap.rl.runner import _NullWriter

            logger.writer = _NullWriter()  # type: ignore[assignment]
        start_it = rn.current_learning_iteration
        t_begin = time.time() - self.train_time
        it = start_it
        for it in range(start_it, start_it + cfg.run.max_iterations):
            t0 = time.time()
            with torch.inference_mode():
                for _ in range(cfg.ppo.num_steps_per_env):
                    actions = alg.act(obs)
                    obs, rewards, dones, extras = self.vec.step(actions)
                    alg.process_env_step(obs, rewards, dones, extras)
                    logger.process_env_step(rewards, dones, extras, None)
                alg.compute_returns(obs)
            loss = alg.update()
            rn.current_learning_iteration = it
            self.train_time = time.time() - t_begin
            rew = statistics.mean(logger.rewbuffer) if logger.rewbuffer else float("nan")
            std = float(alg.get_policy().output_std.mean().detach())
            self.history.append({"iteration": it, "time_s": self.train_time, "mean_reward": rew, "action_std": std,
                                 "value_loss": float(loss["value"])})  # fmt: skip
            if main and cfg.run.progress_every > 0 and it % cfg.run.progress_every == 0:
                print(f"it {it:5d} | {1 / max(time.time() - t0, 1e-9):5.2f} it/s | reward {rew:8.3f} | "
                      f"std {std:.3f} | {self.train_time / 60:5.1f} min", flush=True)  # fmt: skip
            if it > start_it and cfg.run.save_interval > 0 and it % cfg.run.save_interval == 0:
                self.save(self.out / f"model_{it}.pt")
            stop = int(cfg.run.max_time_s > 0 and self.train_time >= cfg.run.max_time_s)
            if dist.agree(stop, cfg.device) if self.dist.distributed else stop:
                break
        return self.save(self.out / f"model_{it}.pt")

    def export(self, checkpoint: Path) -> Path:
        """Write ``delta.pt`` (frozen actor + DeltaMeta) from an rsl-rl checkpoint."""
        ck = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
        return save_delta(self.out / "delta.pt", self.env.meta, dict(self.train_cfg["actor"]), ck["actor_state_dict"],
                          extra={"checkpoint": str(checkpoint), "train_time_s": self.train_time})  # fmt: skip

    def calibrate(self, delta_path: Path) -> dict[str, Any]:
        """Fit the model's gain on the training episodes (:func:`asap.delta.calibrate.calibrate_gain`), store it in
        ``delta_path`` and write ``gain.json`` (the error of every gain tried)."""
        from asap.delta.calibrate import calibrate_gain, calibrate_joint_gains, joint_groups

        c = self.cfg
        model = DeltaModel.load(delta_path)
        if not c.gain_grid and not c.joint_gain_factors:
            return {"gain": model.meta.gain, "errors_mm": {}}
        horizon = max(c.horizons_s)
        stride = max(c.report_stride_s, 0.5 * horizon)
        # episodes whose root has no trustworthy global position are scored on root-relative positions
        metric = "E_g_mpjpe" if all(trusted(s, "global_position") for s in self.root_sources) else "E_mpjpe"
        make = lambda n: make_simulator(self._sim_cfg(n))  # noqa: E731
        meta, errors = model.meta, {}
        if c.gain_grid:
            gain, errors = calibrate_gain(model, self.train_lib, make, c.shaping, c.gain_grid, horizon, stride,
                                          metric=metric)  # fmt: skip
            meta = replace(meta, gain=gain)
            tried = ", ".join(f"{g:g}: {e:.1f}" for g, e in errors.items())
            print(f"gain calibration on the training episodes ({horizon:g} s, {metric.replace('_', '-')} mm): "
                  f"{tried} -> gain {gain:g}", flush=True)  # fmt: skip
        out: dict[str, Any] = {"gain": meta.gain, "horizon_s": horizon, "metric": metric,
                               "errors_mm": {f"{g:g}": e for g, e in errors.items()}}  # fmt: skip
        if c.joint_gain_factors:
            joint_gain, tries = calibrate_joint_gains(DeltaModel(model.net, meta), self.train_lib, make, c.shaping,
                                                      c.joint_gain_factors, horizon, stride, metric=metric,
                                                      sweeps=c.joint_gain_sweeps,
                                                      grouping=c.joint_gain_groups)  # fmt: skip
            meta = replace(meta, joint_gain=joint_gain)
            out["joint_gain"] = dict(zip(meta.joints, joint_gain, strict=True))
            out["joint_gain_tries"] = tries
            groups = joint_groups(meta.joints, c.joint_gain_groups)
            fitted = ", ".join(f"{g} x{joint_gain[i[0]]:g}" for g, i in groups.items() if joint_gain[i[0]] != 1.0)
            print(f"joint-group calibration: {tries[0]['error_mm']:.1f} -> {min(t['error_mm'] for t in tries):.1f} mm; "
                  f"{fitted or 'no change'}", flush=True)  # fmt: skip
        ck = torch.load(str(delta_path), map_location="cpu", weights_only=False)
        extra = {k: v for k, v in ck.items() if k not in ("delta_meta", "actor_cfg", "actor_state_dict", "obs_dim")}
        save_delta(delta_path, meta, ck["actor_cfg"], ck["actor_state_dict"], extra=extra)
        (self.out / "gain.json").write_text(json.dumps(out, indent=1))
        return out

    def report(self, delta_path: Path) -> dict[str, Any]:
        """Open-loop table (:func:`asap.eval.openloop.openloop_eval`) on the held-out episodes (the training ones
        when there is a single episode); the Oracle row for ``cfg.gap`` or the gap the logs record."""
        c = self.cfg
        idx = self.held_idx or self.train_idx
        which = "held-out" if self.held_idx else "training (only one episode was given)"
        return openloop_eval(
            [str(self.files[i]) for i in idx], self.out, delta=str(delta_path), gap=c.gap, horizons=c.horizons_s,
            sim=c.sim, variant=c.variant, shaping=c.shaping, stride_s=c.report_stride_s, physics=c.physics,
            threads=c.threads, device=c.device, title=f"Open-loop replay error on {len(idx)} {which} episode(s)",
            files=("openloop.json", "openloop.md", "openloop.png"),
        )  # fmt: skip

    def close(self) -> None:
        """Release the simulator."""
        self.sim.close()


def train_delta(cfg: DeltaTrainConfig) -> dict[str, Any]:
    """Train π^Δ, export ``delta.pt`` and write the open-loop report; returns a summary dict."""
    tr = DeltaTrainer(cfg)
    try:
        ck = tr.train()
        if not tr.dist.is_main:  # rank 0 exports, calibrates and reports
            out: dict[str, Any] = {"rank": tr.dist.rank, "network_sha256": dist.network_digest(tr.runner.alg)}
        else:
            delta = tr.export(ck)
            cal = tr.calibrate(delta)
            rep = tr.report(delta)
            episodes = {"train": len(tr.train_idx), "held_out": len(tr.held_idx)}
            out = {"delta": str(delta), "checkpoint": str(ck), "train_time_s": tr.train_time,
                   "openloop": rep["metrics"], "openloop_windows": window_counts(rep["report"]),
                   "episodes": episodes, "gain": cal["gain"]}  # fmt: skip
            (tr.out / "summary.json").write_text(json.dumps(out, indent=1))
    finally:
        tr.close()
    dist.barrier()  # no rank returns before rank 0's delta.pt and report are on disk
    return out
