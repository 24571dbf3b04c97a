"""`asap pretrain`: PPO (rsl-rl-lib) on the tracking env, with checkpoints, resume, logs, evaluation and export.

The loop is rsl-rl's ``OnPolicyRunner.learn`` (rollout -> returns -> update -> TensorBoard/W&B scalars) with a
time budget, a one-line progress report, periodic closed-loop evaluation from several start phases, and the
env's curricula saved in every checkpoint so that a resumed run continues where it stopped.

Data-parallel (:mod:`asap.rl.distributed`, ``--nproc N`` or torchrun): every rank steps its own envs (seed + rank,
its share of the cores), gradients are averaged in every mini-batch, the curricula and the motion sampler's
failure statistics are averaged over the ranks after every iteration; rank 0 alone evaluates, logs, saves and
exports, and its stop decisions (time budget, success) hold for all ranks.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.config import save_config, to_dict
from asap.motion.motionlib import MotionLib
from asap.paths import repo_path
from asap.rl import distributed as dist
from asap.rl.checkpoints import check_fresh_run, numbered_checkpoints
from asap.rl.config import PretrainConfig, rsl_train_cfg
from asap.sim.base import SimConfig, Simulator, make_simulator
from envs.tracking.env import TrackingEnv


def motion_items(spec: str) -> list[str]:
    """The paths of a ``motion`` setting as written: one path, a folder, or comma-separated paths."""
    return [s.strip() for s in str(spec).split(",") if s.strip()]


def motion_sources(spec: str) -> list[str]:
    """Paths named by a ``motion`` setting: one path, a folder, or comma-separated paths."""
    items = motion_items(spec)
    if not items:
        raise ValueError("no motion given: set motion=PATH (a motion file, a folder, or comma-separated files)")
    items = [str(repo_path(s)) for s in items]  # shipped configs name motions/... relative to the checkout
    for s in items:
        if not Path(s).exists():
            raise FileNotFoundError(f"motion {s} does not exist")
    return items


def portable_motion_spec(spec: str) -> str:
    """``spec`` (a ``motion`` setting) with every local relative path made absolute, so that a config saved with a
    run (``config.yaml``, checkpoints) names the same files from any working directory; names of shipped files
    (``motions/...`` with no local copy) stay as written, since :func:`asap.paths.repo_path` finds them anywhere."""
    items = motion_items(spec)
    return ",".join(str(Path(s).resolve()) if Path(s).exists() and not Path(s).is_absolute() else s for s in items)


def _env_state(env: TrackingEnv) -> dict[str, Any]:
    return {
        "penalty_scale": env.penalty_scale,
        "limit_fracs": list(env.limit_fracs),
        "far_threshold": env.far_threshold,
        "average_episode_length": env.average_episode_length,
        "timeout_rate": env.timeout_rate,
        "sampler_failures": env.sampler.failures.clone(),
    }


def _load_env_state(env: TrackingEnv, st: dict[str, Any]) -> None:
    env.penalty_scale = float(st["penalty_scale"])
    env.limit_fracs = [float(x) for x in st["limit_fracs"]]
    env.far_threshold = float(st["far_threshold"])
    env.average_episode_length = float(st["average_episode_length"])
    env.timeout_rate = float(st.get("timeout_rate", 0.0))
    f = st.get("sampler_failures")
    if f is not None and tuple(f.shape) == tuple(env.sampler.failures.shape):
        env.sampler.failures.copy_(f)


class Trainer:
    """Builds the simulator, env and PPO from a :class:`PretrainConfig` and trains (see module docstring)."""

    def __init__(self, cfg: PretrainConfig, wrap_sim: Callable[[Simulator], Simulator] | None = None) -> None:
        from asap.rl.vecenv import RslTrackingEnv

        self.dist = dist.setup(cfg.device)
        """This process' rank layout (world_size 1 when not distributed)."""
        self.saved_cfg = replace(cfg, motion=portable_motion_spec(cfg.motion))
        """The config as given, local motion paths made absolute (written to config.yaml and every checkpoint:
        `asap finetune` reads the clips from there, from whatever directory it runs in)."""
        cfg = dist.per_rank(cfg, self.dist)
        self.cfg = cfg
        """This rank's config: seed + rank, cuda:<local_rank>, its share of the cores."""
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self._update_threads = cfg.torch_threads if cfg.torch_threads > 0 else torch.get_num_threads()
        self._env_threads = cfg.env_torch_threads if cfg.env_torch_threads > 0 else self._update_threads
        torch.set_num_threads(self._env_threads)
        self.out = Path(cfg.run.out_dir)
        check_fresh_run(self.out, cfg.run.resume)
        self.out.mkdir(parents=True, exist_ok=True)
        self.motion_lib = MotionLib(motion_sources(cfg.motion), spec=cfg.variant, device=cfg.device)
        from asap.rl.export import clip_fingerprints

        self.clips = clip_fingerprints(self.motion_lib)
        """Fingerprints of the training clips (saved in every checkpoint and ONNX export)."""
        if self.dist.is_main:  # clips the robot cannot follow: floating feet, centre of mass beside the stance foot
            from asap.motion.ops import clip_warnings

            for name, m in zip(self.motion_lib.motion_names, self.motion_lib.motions, strict=True):
                for msg in clip_warnings(name, m, self.motion_lib.spec):
                    print(msg, flush=True)
        self.sim_cfg = SimConfig(backend=cfg.sim, variant=cfg.variant, num_envs=cfg.num_envs, threads=cfg.threads,
                                 device=cfg.device, model=cfg.physics)  # fmt: skip
        self.wrap_sim = wrap_sim or (lambda sim: sim)
        """Applied to the training and evaluation simulators (fine-tuning wraps them with the frozen delta model)."""
        self.sim = self.wrap_sim(make_simulator(self.sim_cfg))
        env_cfg = replace(cfg.env, seed=cfg.seed)
        self.env = TrackingEnv(env_cfg, self.sim, self.motion_lib)
        self.vec = RslTrackingEnv(self.env)
        if self.dist.is_main:
            save_config(self.saved_cfg, self.out / "config.yaml")
        self.train_cfg = rsl_train_cfg(cfg)
        log_dir = None if cfg.run.logger == "none" else str(self.out)
        with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints both network summaries
            self.runner = dist.make_runner(self.vec, self.train_cfg, log_dir, cfg.device)
        self.history: list[dict[str, float]] = []
        self.evals: list[dict[str, Any]] = []
        self._eval_env: TrackingEnv | None = None
        self.train_time = 0.0
        if cfg.run.resume:
            self.load(cfg.run.resume)

    # ----------------------------------------------------------------------------------- checkpoints
    def save(self, path: Path) -> Path:
        """Write a checkpoint: networks, both optimisers, iteration, resolved config, env curricula, history."""
        infos = {
            "config": to_dict(self.saved_cfg),
            "env_state": _env_state(self.env),
            "history": self.history,
            "evals": self.evals,
            "train_time_s": self.train_time,
            "motion_names": list(self.motion_lib.motion_names),
            "motion_lengths_s": [float(x) for x in self.motion_lib.motion_lengths],
            "clips": [fp.to_dict() for fp in self.clips],
        }
        anchor = getattr(self.runner.alg, "anchor", None)
        if anchor is not None:  # ppo.anchor_coef: the frozen actor a resumed run must keep pulling towards
            infos["ppo_anchor"] = anchor.state_dict()
        self.runner.save(str(path), infos=infos)
        return path

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint written by :meth:`save`."""
        infos = self.runner.load(str(path), map_location=self.cfg.device) or {}
        if "env_state" in infos:
            _load_env_state(self.env, infos["env_state"])
        self.history = list(infos.get("history", []))
        self.evals = list(infos.get("evals", []))
        self.train_time = float(infos.get("train_time_s", 0.0))
        if "ppo_anchor" in infos and getattr(self.runner.alg, "anchor_coef", 0.0) > 0:
            self.runner.alg.set_anchor(infos["ppo_anchor"])
        self.runner.current_learning_iteration += 1
        if self.dist.is_main:
            print(f"resumed from {path} at iteration {self.runner.current_learning_iteration}", flush=True)

    def sync_env_state(self) -> None:
        """Average the curricula and the sampler's failure statistics over the ranks (no-op on one rank)."""
        if not self.dist.distributed:
            return
        st = _env_state(self.env)
        keys = ["penalty_scale", "far_threshold", "average_episode_length", "timeout_rate"]
        flat = [float(st[k]) for k in keys] + [float(x) for x in st["limit_fracs"]]
        m = dist.mean_over_ranks(torch.tensor(flat, dtype=torch.float64, device=self.cfg.device)).tolist()
        st.update({k: m[i] for i, k in enumerate(keys)})
        st["limit_fracs"] = m[len(keys) :]
        f = st["sampler_failures"]
        st["sampler_failures"] = dist.mean_over_ranks(f.to(self.cfg.device, torch.float64)).to(f.device, f.dtype)
        _load_env_state(self.env, st)

    # ------------------------------------------------------------------------------------ evaluation
    def policy_fn(self):
        """Deterministic actor output (the env adds the residual reference when configured)."""
        import copy

        return copy.deepcopy(self.runner.alg.get_policy().as_onnx(verbose=False)).eval()

    def evaluate(self) -> dict[str, Any]:
        """Closed-loop rollouts from ``eval_start_phases`` start phases of every clip (no noise, no DR)."""
        from asap.rl.play import closed_loop, eval_env_config, start_grid

        phases = max(1, self.cfg.run.eval_start_phases)
        if self._eval_env is None:
            n = self.motion_lib.num_motions * phases
            eval_cfg = replace(self.sim_cfg, num_envs=n, threads=min(self.cfg.threads, n) or 1)
            sim = self.wrap_sim(make_simulator(eval_cfg))
            self._eval_env = TrackingEnv(eval_env_config(self.cfg.env), sim, self.motion_lib)
        ids, starts = start_grid(self.motion_lib.motion_lengths, phases)
        res = closed_loop(self._eval_env, self.policy_fn(), ids, starts)
        s = res.summary()
        s.pop("per_rollout", None)
        return {"success_rate": s["success_rate"], "success": s["success"], "E_mpjpe_mm": s["E_mpjpe_mm"],
                "E_g_mpjpe_mm": s["E_g_mpjpe_mm"], "steps_survived": s["steps_survived"],
                "expected_steps": s["expected_steps"]}  # fmt: skip

    # -------------------------------------------------------------------------------------- training
    def train(self) -> dict[str, Any]:
        """Run PPO until max_iterations, max_time_s or stop_on_success; then evaluate, export and plot."""
        import statistics

        cfg, rn, alg, env = self.cfg, self.runner, self.runner.alg, self.env
        logger = rn.logger
        obs = self.vec.get_observations().to(cfg.device)
        alg.train_mode()
        dist.sync_parameters(alg)  # rank 0's networks on every rank (they already agree after a resume)
        main = self.dist.is_main
        logger.init_logging_writer()
        if logger.writer is None:  # logging off: keep reward/length statistics for the progress line
            logger.writer = _NullWriter()  # type: ignore[assignment]
        start_it = rn.current_learning_iteration
        total_it = start_it + cfg.run.max_iterations
        consecutive = 0
        t_begin = time.time() - self.train_time
        it = start_it
        stop_reason = "max_iterations"
        steps_per_it = cfg.ppo.num_steps_per_env * cfg.num_envs * self.dist.world_size
        for it in range(start_it, total_it):
            t0 = time.time()
            torch.set_num_threads(self._env_threads)
            with torch.inference_mode():
                for _ in range(cfg.ppo.num_steps_per_env):
                    actions = alg.act(obs)
                    obs, rewards, dones, extras = self.vec.step(actions.to(self.vec.device))
                    obs, rewards, dones = obs.to(cfg.device), rewards.to(cfg.device), dones.to(cfg.device)
                    alg.process_env_step(obs, rewards, dones, extras)
                    logger.process_env_step(rewards, dones, extras, None)
                collect = time.time() - t0
                t1 = time.time()
                alg.compute_returns(obs)
            torch.set_num_threads(self._update_threads)
            loss = alg.update()
            torch.set_num_threads(self._env_threads)
            learn = time.time() - t1
            self.sync_env_state()
            rn.current_learning_iteration = it
            for k, v in env.log_scalars().items():
                logger.writer.add_scalar(f"Curriculum/{k}", v, it)  # type: ignore[union-attr]
            with contextlib.redirect_stdout(io.StringIO()):
                logger.log(it=it, start_it=start_it, total_it=total_it, collect_time=collect, learn_time=learn,
                           loss_dict=loss, learning_rate=alg.learning_rate, action_std=alg.get_policy().output_std,
                           rnd_weight=None)  # fmt: skip
            self.train_time = time.time() - t_begin
            rew = statistics.mean(logger.rewbuffer) if logger.rewbuffer else float("nan")
            eplen = statistics.mean(logger.lenbuffer) if logger.lenbuffer else float("nan")
            row = {"iteration": it, "time_s": self.train_time, "env_steps": (it + 1) * steps_per_it,
                   "mean_reward": rew, "mean_episode_length": eplen, "far_threshold": env.far_threshold,
                   "penalty_scale": env.penalty_scale, "learning_rate": alg.learning_rate,
                   "action_std": float(alg.get_policy().output_std.mean().detach()), "value_loss": float(loss["value"]),
                   "collect_s": collect, "learn_s": learn}  # fmt: skip
            if "smoothness" in loss:  # mean squared step-to-step change of the mean action (ppo.smoothness_coef)
                row["action_smoothness"] = float(loss["smoothness"])
            if "distill" in loss:  # fine-tuning through the inverse π^Δ: the imitation's error (asap.delta.inverse)
                row["distill_mse"] = float(loss["distill"])
                row["inverse_residual"] = float(loss["inverse_residual"])
                row["teacher_share"] = float(loss["teacher_share"])
            ev = None
            if main and cfg.run.eval_interval > 0 and (it + 1) % cfg.run.eval_interval == 0:
                ev = self.evaluate()
                ev.update({"iteration": it, "time_s": self.train_time})
                self.evals.append(ev)
                row.update({"eval_success_rate": ev["success_rate"], "eval_E_mpjpe_mm": ev["E_mpjpe_mm"]})
                logger.writer.add_scalar("Eval/success_rate", ev["success_rate"], it)  # type: ignore[union-attr]
                logger.writer.add_scalar("Eval/E_mpjpe_mm", ev["E_mpjpe_mm"], it)  # type: ignore[union-attr]
                consecutive = consecutive + 1 if ev["success"] else 0
            self.history.append(row)
            if main and cfg.run.progress_every > 0 and (it % cfg.run.progress_every == 0 or ev is not None):
                print(self._progress(row, ev, collect + learn), flush=True)
            if main and it > start_it and cfg.run.save_interval > 0 and it % cfg.run.save_interval == 0:
                self.save(self.out / f"model_{it}.pt")
            stop = 0
            if cfg.run.stop_on_success > 0 and consecutive >= cfg.run.stop_on_success:
                stop = 1
            elif cfg.run.max_time_s > 0 and self.train_time >= cfg.run.max_time_s:
                stop = 2
            stop = dist.agree(stop, cfg.device) if self.dist.distributed else stop  # rank 0's clock and evaluations
            if stop:
                stop_reason = "success" if stop == 1 else "max_time_s"
                break
        return self.finish(it, stop_reason)

    def _progress(self, row: dict[str, float], ev: dict[str, Any] | None, it_time: float) -> str:
        s = (f"it {row['iteration']:5d} | {1.0 / max(it_time, 1e-9):5.2f} it/s | "
             f"{self.cfg.ppo.num_steps_per_env * self.cfg.num_envs * self.dist.world_size / max(it_time, 1e-9):6.0f} "
             "steps/s | "
             f"reward {row['mean_reward']:8.3f} | ep len {row['mean_episode_length']:6.1f} | "
             f"far {row['far_threshold']:.3f} | std {row['action_std']:.3f} | "
             f"sim+env {row['collect_s']:.2f}s ppo {row['learn_s']:.2f}s | {_hms(row['time_s'])}")  # fmt: skip
        if ev is not None:
            s += (f" | eval success {ev['success_rate'] * 100:.0f}% E_mpjpe {ev['E_mpjpe_mm']:.1f} mm "
                  f"E_g-mpjpe {ev['E_g_mpjpe_mm']:.1f} mm")  # fmt: skip
        return s

    def first_iteration(self) -> int:
        """This run's first iteration: 0, or where the checkpoint it started from left off (a fine-tuning keeps the
        pretraining's count; a resumed run keeps its own history, so its first iteration stays 0)."""
        return int(self.history[0]["iteration"]) if self.history else 0

    def finish(self, it: int, stop_reason: str) -> dict[str, Any]:
        """Final checkpoint, evaluation, ONNX export, learning curve and metrics.json (rank 0; the other ranks
        return ``{"rank", "iterations", "network_sha256"}``)."""
        digest = dist.network_digest(self.runner.alg)
        digests = dist.gather_strings(digest)  # every rank's networks, to report that they agree
        if not self.dist.is_main:
            return {"rank": self.dist.rank, "iterations": it + 1, "network_sha256": digest}
        averaged: list[str] = []
        if self.cfg.run.average_last > 1:  # the last iterate is kept beside the averaged final checkpoint
            last = self.save(self.out / f"model_{it}_iterate.pt")
            averaged = [str(p) for p in self.average_checkpoints(self.cfg.run.average_last, last, it)]
        ck = self.save(self.out / f"model_{it}.pt")  # with averaging: the averaged networks, last optimiser state
        ev = self.evaluate()
        ev.update({"iteration": it, "time_s": self.train_time})
        if not self.evals or self.evals[-1].get("iteration") != it:
            self.evals.append(ev)
        result: dict[str, Any] = {
            "checkpoint": str(ck), "iterations": it + 1, "train_time_s": self.train_time, "stop_reason": stop_reason,
            "final_eval": ev, "motion_names": list(self.motion_lib.motion_names),
            "time_to_success_s": next((e["time_s"] for e in self.evals if e["success"]), None),
            "rank": 0, "world_size": self.dist.world_size, "network_sha256": digest,
            "ranks_in_sync": len(set(digests)) == 1, "averaged_checkpoints": averaged,
        }  # fmt: skip
        if not result["ranks_in_sync"]:
            print(f"warning: the ranks' networks differ at the end ({digests})", flush=True)
        if self.cfg.run.export_onnx:
            from asap.rl.export import export_every_clip

            files = export_every_clip(self.policy_fn(), self.cfg, self.motion_lib, self.out / "policy.onnx")
            result["onnx"] = str(self.out / "policy.onnx")
            if len(files) > 1:
                result["onnx_per_clip"] = {n: str(f) for n, f in zip(self.motion_lib.motion_names, files, strict=True)}
        self._write_history()
        png = self.plot(self.out / "learning_curve.png")
        if png:
            result["learning_curve"] = str(png)
        (self.out / "metrics.json").write_text(json.dumps(result, indent=2))
        with contextlib.suppress(Exception):
            self.runner.logger.stop_logging_writer()
        first = self.first_iteration()  # a fine-tuning counts on from its checkpoint
        count = f"{it + 1 - first} iterations" + (f" ({it + 1} with its checkpoint's {first})" if first else "")
        print(f"done: {stop_reason} after {count}, {_hms(self.train_time)}; final eval success "
              f"{ev['success_rate'] * 100:.0f}%, E_mpjpe {ev['E_mpjpe_mm']:.1f} mm, E_g-mpjpe "
              f"{ev['E_g_mpjpe_mm']:.1f} mm -> {self.out}", flush=True)  # fmt: skip
        return result

    def average_checkpoints(self, n: int, last: Path, it: int) -> list[Path]:
        """Load the mean of the actor and critic of ``last`` (the final iterate, iteration ``it``) and this run's
        ``n - 1`` newest earlier checkpoints (``model_<i>.pt`` in the run folder with this run's first iteration
        <= i < it) into the networks; returns the files averaged. Normalizer counts are ``last``'s; the optimiser
        state is untouched."""
        start = self.first_iteration()
        earlier = [p for p, i in numbered_checkpoints(self.out).items() if start <= i < it]
        cks = [*earlier[max(0, len(earlier) - (n - 1)) :], last]
        dicts = [torch.load(p, map_location=self.cfg.device, weights_only=False) for p in cks]
        mean: dict[str, dict[str, torch.Tensor]] = {}
        for part in ("actor_state_dict", "critic_state_dict"):
            newest = dicts[-1][part]
            mean[part] = {k: v if (k.endswith("count") or not v.is_floating_point())
                          else torch.stack([d[part][k] for d in dicts]).mean(0) for k, v in newest.items()}  # fmt: skip
            for k in [k for k in mean[part] if k.endswith("_std") and k[:-4] + "_var" in mean[part]]:
                mean[part][k] = mean[part][k[:-4] + "_var"].sqrt()  # the normalizer's std of the averaged variance
        self.runner.alg.load(mean, {"actor": True, "critic": True}, strict=True)
        print(f"averaged the networks of the last {len(cks)} checkpoints ({cks[0].name} .. {cks[-1].name})", flush=True)
        return cks

    def export(self, path: Path, motion_id: int = 0) -> Path:
        """ONNX of the current actor with the deploy contract for clip ``motion_id`` (:mod:`asap.rl.export`)."""
        from asap.rl.export import export_tracking_policy

        return export_tracking_policy(self.policy_fn(), self.cfg, self.motion_lib, path, motion_id)

    def _write_history(self) -> None:
        if not self.history:
            return
        keys = sorted({k for r in self.history for k in r})
        lines = [",".join(keys)]
        for r in self.history:
            lines.append(",".join("" if k not in r else f"{r[k]:.6g}" for k in keys))
        (self.out / "progress.csv").write_text("\n".join(lines) + "\n")

    def plot(self, path: Path) -> Path | None:
        """Learning curve: mean reward, episode length and evaluation success against wall time."""
        if not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.array([r["time_s"] for r in self.history]) / 60
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
        ax[0].plot(t, [r["mean_reward"] for r in self.history])
        ax[0].set(xlabel="wall time (min)", ylabel="mean episode reward", title="reward")
        ax[1].plot(t, [r["mean_episode_length"] for r in self.history], label="episode length (steps)")
        ax[1].set(xlabel="wall time (min)", title="episode length")
        ax2 = ax[1].twinx()
        ax2.plot(t, [r["far_threshold"] for r in self.history], color="tab:red", alpha=0.6)
        ax2.set_ylabel("motion-far threshold (m)", color="tab:red")
        if self.evals:
            te = np.array([e["time_s"] for e in self.evals]) / 60
            ax[2].plot(te, [100 * e["success_rate"] for e in self.evals], "o-", label="success (%)")
            ax[2].plot(te, [e["E_mpjpe_mm"] for e in self.evals], "s-", label="E_mpjpe (mm)")
            ax[2].legend()
        ax[2].set(xlabel="wall time (min)", title="closed-loop evaluation")
        fig.suptitle(f"asap pretrain: {', '.join(self.motion_lib.motion_names)} ({self.cfg.num_envs} envs)")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def close(self) -> None:
        """Release simulators."""
        self.sim.close()
        if self._eval_env is not None:
            self._eval_env.sim.close()


class _NullWriter:
    """Stands in for a log writer when logging is off ('none')."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        """Ignore a scalar."""

    def stop(self) -> None:
        """Nothing to stop."""


def _hms(s: float) -> str:
    s = 0 if not math.isfinite(s) else int(s)
    return f"{s // 3600:d}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Train a tracking policy (see :class:`Trainer`); returns the run summary (also in metrics.json)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    tr = Trainer(cfg)
    try:
        result = tr.train()
    finally:
        tr.close()
    dist.barrier()  # the other ranks return once rank 0's checkpoint and metrics are on disk
    return result
