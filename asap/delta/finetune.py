"""`asap finetune`: the tracking task on the aligned simulator (the training simulator plus the frozen π^Δ inside
every step), starting from a pretraining checkpoint (actor, critic, both optimisers, curricula); exports
``policy.onnx`` with the deploy contract — the deployed policy never needs π^Δ (asap-method.md section 5.3).

Options of the reference's fine-tuning (section 0 and 5.3): initial-state noise level (``noise_to_initial_level``
1), the penalty curriculum, a fraction of envs stepping without Δa (``without_delta_a_ratio``) and a per-env,
per-joint Δa scale range (``delta_a_scale_range``). Δa enters through :class:`asap.delta.aligned.
AlignedSimulator` with the model's own ``delta_scale`` (the reference's fine-tuning skipped the 0.25).

Baselines without a delta model: ``dynamics`` (a ``dynamics.yaml`` of `asap sysid`, set on every env of the
training and evaluation simulators; refused when the config's domain randomisation would rewrite one of its fields
at every reset) and domain randomisation alone (``pretrain.env.domain_rand.*``, configs/finetune/dr.yaml: a plain
continuation of PPO with those overrides). With none of delta, dynamics or domain randomisation there is nothing
to fine-tune against, and `asap finetune` says so in one line.

The DeltaDynamics baseline (``dynamics_model``, `asap train-dynamics`) wraps both simulators in
:class:`asap.delta.delta_dynamics.DeltaDynamicsSimulator`, which corrects the state after every step.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from asap.config import from_dict, merge_dicts, save_config, to_dict
from asap.delta.aligned import AlignedSimulator
from asap.delta.delta_dynamics import DeltaDynamicsSimulator, load_dynamics_model
from asap.delta.inverse import InverseConfig, InverseDeltaTeacher, InverseDistillation
from asap.delta.oracle import load_delta
from asap.rl import distributed as dist
from asap.rl.checkpoints import load_training_checkpoint, resolve_checkpoint
from asap.rl.config import PretrainConfig
from asap.rl.ppo import set_action_std
from asap.sim.base import Simulator
from asap.sim.dynamics import apply_dynamics, load_dynamics, overwritten


@dataclass
class FinetuneConfig:
    """`asap finetune`: fine-tune a pretrained tracking policy against the frozen delta model."""

    checkpoint: str = ""
    """Pretraining checkpoint (``model_*.pt`` of `asap pretrain`)."""
    delta: str = ""
    """Delta model (``delta.pt`` of `asap train-delta`), or ``oracle:<gap.yaml>`` for the closed-form oracle."""
    dynamics: str = ""
    """Simulator dynamics to train in (``dynamics.yaml`` of `asap sysid`), set on every env of the training and
    evaluation simulators (the SysID baseline: no delta model needed)."""
    dynamics_model: str = ""
    """Learned next-state residual (``dynamics_model.pt`` of `asap train-dynamics`) added to the state after every
    step of the training and evaluation simulators (the DeltaDynamics baseline: no delta model needed)."""
    out_dir: str = "run/finetune"
    """Run directory (checkpoints, policy.onnx, metrics.json, config.yaml)."""
    resume: str | None = None
    """A fine-tuning checkpoint of this run to continue from (instead of starting from ``checkpoint``)."""
    max_time_s: float = 600.0
    """Fine-tuning time budget in seconds (0: no limit)."""
    max_iterations: int = 1000000
    """PPO iteration budget (the reference: 1000)."""
    action_std: float = 0.0
    """Exploration std (policy units) the fine-tuning starts from (0: the pretrained policy's own, which PPO's
    entropy bonus has grown during pretraining)."""
    init_noise_level: float = 1.0
    """Initial-state noise multiplier (the reference's ``noise_to_initial_level`` = 1 when fine-tuning)."""
    penalty_curriculum: bool = True
    """Penalty curriculum on (the reference's fine-tuning command turns it on)."""
    without_delta_ratio: float = 0.0
    """Share of envs that step the plain simulator (no Δa), drawn once per env."""
    delta_scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    """Per-env, per-joint multiplier on Δa drawn uniformly from this range once per env."""
    eval_interval: int = 20
    """Iterations between closed-loop evaluations on the aligned simulator (0: only at the end)."""
    stop_on_success: int = 0
    """Stop after this many consecutive fully successful evaluations (0: never)."""
    seed: int = 0
    """Seed of the Δa mask and scale draws."""
    method: str = "ppo"
    """'ppo': PPO on the tracking reward in the aligned simulator (the paper's); 'inverse': imitate the pretrained
    policy seen through the inverse of π^Δ (asap.delta.inverse; needs a delta model)."""
    inverse: InverseConfig = field(default_factory=InverseConfig)
    """Settings of ``method: inverse``."""
    pretrain: dict[str, Any] = field(default_factory=dict)
    """Overrides of the checkpoint's pretraining config (e.g. ``{num_envs: 64}``)."""


def checkpoint_config(checkpoint: str) -> PretrainConfig:
    """The pretraining config saved in an `asap pretrain` checkpoint (:func:`asap.rl.checkpoints.
    load_training_checkpoint`: ``FileNotFoundError`` for a missing file, ``ValueError`` for another kind of file)."""
    return load_training_checkpoint(checkpoint)[1]


def pretrain_config_for(cfg: FinetuneConfig, pretrained: PretrainConfig) -> PretrainConfig:
    """``pretrained`` (the checkpoint's pretraining config, :func:`checkpoint_config`) with the fine-tuning
    settings applied."""
    base = merge_dicts(to_dict(pretrained), cfg.pretrain)
    p = from_dict(PretrainConfig, base)
    p.run.out_dir = cfg.out_dir
    p.run.resume = cfg.resume or cfg.checkpoint
    p.run.max_time_s = cfg.max_time_s
    p.run.max_iterations = cfg.max_iterations
    p.run.eval_interval = cfg.eval_interval
    p.run.stop_on_success = cfg.stop_on_success
    p.env.init_noise.level = cfg.init_noise_level
    p.env.curriculum.penalty = cfg.penalty_curriculum
    return p


def pretrained_actor(tr: Any, checkpoint: str) -> Any:
    """A copy of the trainer's actor with the weights and normaliser of ``checkpoint`` (the pretraining checkpoint a
    fine-tuning started from; a resumed run's own actor is the one being fine-tuned)."""
    actor = copy.deepcopy(tr.runner.alg.actor)
    actor.load_state_dict(load_training_checkpoint(checkpoint)[0]["actor_state_dict"])
    return actor


def draw_delta_options(sim: AlignedSimulator, cfg: FinetuneConfig) -> None:
    """Per-env Δa on/off mask and per-joint scale (the reference's co-training options), drawn once."""
    g = torch.Generator().manual_seed(cfg.seed)
    n, j = sim.num_envs, sim.num_joints
    on = (torch.rand(n, generator=g) >= cfg.without_delta_ratio).float()
    lo, hi = (float(x) for x in cfg.delta_scale_range)
    if not 0 <= lo <= hi:
        raise ValueError(f"delta_scale_range must be [lo, hi] with 0 <= lo <= hi, got {cfg.delta_scale_range}")
    sim.env_mask = on.to(sim.device)
    sim.env_scale = (lo + (hi - lo) * torch.rand(n, j, generator=g)).to(sim.device)


def simulator_differs(pcfg: PretrainConfig, pretrained: PretrainConfig) -> bool:
    """Whether fine-tuning steps another simulator than pretraining did: another engine (``sim``, e.g. the
    target engine itself: the benchmark's Oracle on an engine gap) or other physics options (``physics``)."""
    return pcfg.sim != pretrained.sim or to_dict(pcfg.physics) != to_dict(pretrained.physics)


def domain_rand_on(pcfg: PretrainConfig) -> bool:
    """Whether the tracking env randomises anything (an option of ``env.domain_rand`` is switched on)."""
    return any(v is True for v in to_dict(pcfg.env.domain_rand).values())


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune (see module docstring); returns the summary written to ``out_dir/metrics.json``."""
    from asap.rl.runner import Trainer, motion_sources

    os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.checkpoint:
        cfg = replace(cfg, checkpoint=str(resolve_checkpoint(cfg.checkpoint)))  # a run folder: its final checkpoint
    pretrained = checkpoint_config(cfg.checkpoint)
    pcfg = pretrain_config_for(cfg, pretrained)
    try:
        motion_sources(pcfg.motion)
    except FileNotFoundError as e:  # a checkpoint saved before its clip paths were stored absolute, or moved
        raise FileNotFoundError(f"{e} (the checkpoint's training clip): give pretrain.motion=PATH") from None
    model = load_delta(cfg.delta, pcfg.variant) if cfg.delta else None
    if model is not None and model.meta.variant != pcfg.variant:
        raise ValueError(f"delta model is for {model.meta.variant}, the policy for {pcfg.variant}")
    if cfg.method not in ("ppo", "inverse"):
        raise ValueError(f"unknown fine-tuning method {cfg.method!r}: use 'ppo' or 'inverse'")
    if cfg.method == "inverse" and model is None:
        raise ValueError("method=inverse imitates the pretrained policy through the inverse of π^Δ: give --delta "
                         "(delta.pt of `asap train-delta`, or oracle:<gap.yaml>)")  # fmt: skip
    dyn = load_dynamics(cfg.dynamics) if cfg.dynamics else None
    residual = load_dynamics_model(cfg.dynamics_model, pcfg.variant) if cfg.dynamics_model else None
    corrected: list[DeltaDynamicsSimulator] = []  # the training simulator's residual wrapper comes first
    if (
        model is None
        and dyn is None
        and residual is None
        and not domain_rand_on(pcfg)
        and not simulator_differs(pcfg, pretrained)
    ):
        raise ValueError("nothing to fine-tune against: give --delta (delta.pt), --dynamics-model "
                         "(dynamics_model.pt of `asap train-dynamics`), --dynamics (dynamics.yaml of "
                         "`asap sysid`), a config with domain randomisation (configs/finetune/dr.yaml) or "
                         "another simulator than the pretraining's (e.g. pretrain.sim=genesis)")  # fmt: skip

    def wrap(sim: Simulator) -> Simulator:
        if dyn is not None:
            apply_dynamics(sim, dyn)
        if residual is not None:
            corrected.append(DeltaDynamicsSimulator(sim, residual))
            sim = corrected[-1]  # type: ignore[assignment]
        return sim if model is None else AlignedSimulator(sim, model)  # type: ignore[return-value]

    tr = Trainer(pcfg, wrap_sim=wrap)
    try:
        if not cfg.resume:  # a fresh fine-tuning run: its own clock and history
            tr.train_time, tr.history, tr.evals = 0.0, [], []
            if cfg.action_std > 0:
                set_action_std(tr.runner.alg.actor, cfg.action_std)
        if dyn is not None and (lost := overwritten(tr.sim, dyn)):
            raise ValueError(f"the tracking env's domain randomisation rewrites {lost} of {cfg.dynamics} at every "
                             "reset: turn those pretrain.env.domain_rand options off")  # fmt: skip
        if model is not None:  # each rank of a data-parallel run draws its own envs' options
            draw_delta_options(tr.sim, replace(cfg, seed=cfg.seed + tr.dist.rank))  # type: ignore[arg-type]
        if cfg.method == "inverse":  # the pretrained actor, frozen, is the teacher's policy
            teacher = InverseDeltaTeacher(tr.env, tr.sim, pretrained_actor(tr, cfg.checkpoint), cfg.inverse.iterations)
            alg = InverseDistillation(tr.runner.alg, teacher, cfg.inverse, seed=cfg.seed + tr.dist.rank)
            if cfg.resume:  # the DAgger share goes on from where the run left it
                alg.iteration = tr.runner.current_learning_iteration - tr.first_iteration()
            tr.runner.alg = alg
        out = Path(cfg.out_dir)
        if tr.dist.is_main:
            save_config(cfg, out / "finetune.yaml")
        result = tr.train()
        main = tr.dist.is_main
        if main and model is not None:
            result["delta_mean_abs"] = tr.sim.mean_abs_delta  # type: ignore[attr-defined]
        if main and corrected:
            result["dynamics_mean_abs"] = corrected[0].mean_abs_residual()
    finally:
        tr.close()
    if main:  # rank 0 writes the run's files (--nproc / torchrun, asap.rl.distributed)
        result.update({"delta": cfg.delta, "dynamics": cfg.dynamics, "pretrain_checkpoint": cfg.checkpoint})
        result["dynamics_model"] = cfg.dynamics_model
        (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
    dist.barrier()  # no rank returns before rank 0's checkpoint and metrics are on disk
    return result
