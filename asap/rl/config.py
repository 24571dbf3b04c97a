"""Configuration of `asap pretrain`: the motion(s), the simulator, the tracking env, PPO and the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asap.robot.model import ModelOptions
from asap.robot.spec import get_spec, resolve_joints
from envs.tracking.config import TrackingEnvConfig


@dataclass
class PPOConfig:
    """PPO and network settings (defaults: the reference's algo/ppo.yaml)."""

    actor_hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    """Hidden layer sizes of the actor MLP."""
    critic_hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    """Hidden layer sizes of the critic MLP."""
    activation: str = "elu"
    """Activation of both MLPs (rsl-rl's names: elu, relu, tanh, identity, ...)."""
    actor_activation: str | None = None
    """Activation of the actor alone (None: ``activation``); ``identity`` makes the actor an affine map of its
    normalised observation, whatever its hidden sizes (a delta model for a linear actuator gap)."""
    init_std: float = 0.8
    """Initial action standard deviation (state-independent, learnable, not log-parameterised)."""
    num_steps_per_env: int = 24
    """Rollout length per env per iteration."""
    num_learning_epochs: int = 5
    """Passes over each batch."""
    num_mini_batches: int = 4
    """Mini-batches per epoch."""
    clip_param: float = 0.2
    """PPO ratio clip (also the value clip)."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    value_loss_coef: float = 1.0
    """Value loss weight."""
    entropy_coef: float = 0.01
    """Entropy bonus weight."""
    learning_rate: float = 1e-3
    """Actor learning rate (initial value of the adaptive schedule)."""
    critic_learning_rate: float = 1e-3
    """Critic learning rate (fixed; only with separate_optimizers)."""
    separate_optimizers: bool = True
    """Separate Adam for actor and critic, the KL schedule adapting the actor only (reference behaviour)."""
    schedule: str = "adaptive"
    """'adaptive' (KL-driven learning rate) or 'fixed'."""
    desired_kl: float = 0.01
    """Target KL of the adaptive schedule."""
    max_grad_norm: float = 1.0
    """Gradient norm clip, per network."""
    obs_normalization: bool = False
    """Empirical observation normalisation (off in the reference)."""
    smoothness_coef: float = 0.0
    """Weight of the temporal smoothness of the actor's mean action (CAPS' temporal term; 0: off, as the
    reference). Needs ``separate_optimizers``."""
    anchor_coef: float = 0.0
    """Weight of the squared distance of the actor's mean action from a frozen copy of the actor as it was at the
    first update (the loaded checkpoint when fine-tuning), on the rollout's observations (0: off). Needs
    ``separate_optimizers``."""
    anchor_free_joints: str = ""
    """Joints whose actions the anchor leaves free ('': none; a joint set such as 'ankles', joint names, or several
    separated by commas; asap.robot.spec.resolve_joints): fine-tuning for a gap in those joints' actuators lets them
    change while the anchor holds the rest."""


@dataclass
class RunConfig:
    """Where and how long to train, what to log."""

    out_dir: str = "run/pretrain"
    """Directory for checkpoints, logs, the exported policy and the resolved config."""
    max_iterations: int = 1000000
    """PPO iterations (the reference runs until stopped)."""
    max_time_s: float = 0.0
    """Stop after this many seconds of training (0: no limit)."""
    save_interval: int = 100
    """Iterations between checkpoints."""
    logger: str = "tensorboard"
    """'tensorboard', 'wandb' (WANDB_MODE=offline works without network) or 'none'."""
    wandb_project: str = "asap"
    """W&B project name."""
    resume: str | None = None
    """Checkpoint (.pt) to resume from (model, optimisers, iteration and curricula)."""
    eval_interval: int = 0
    """Iterations between closed-loop evaluations from several start phases (0: only at the end)."""
    eval_start_phases: int = 4
    """Evaluation start phases, evenly spaced in [0, 1) per clip."""
    stop_on_success: int = 0
    """Stop once this many consecutive evaluations succeed from every start phase (0: never)."""
    export_onnx: bool = True
    """Export policy.onnx with the deploy contract at the end."""
    average_last: int = 0
    """Tail averaging: at the end, the networks become the mean of the last N checkpoints of this run (the final one
    included; ``save_interval`` apart), which is what is evaluated, exported and saved as the final checkpoint
    (0 or 1: the last iterate). PPO's iterates swing between checkpoints; their average is steadier (docs/delta.md,
    "Averaging the last checkpoints")."""
    progress_every: int = 1
    """Print the progress line every this many iterations."""


@dataclass
class PretrainConfig:
    """`asap pretrain`: train a tracking policy with PPO."""

    motion: str = ""
    """Motion file(s): a path, a folder, or comma-separated paths (any format asap.motion.formats reads)."""
    sim: str = "mujoco"
    """Simulator backend ('mujoco' or 'genesis')."""
    num_envs: int = 128
    """Parallel envs."""
    threads: int = 2
    """Native simulator threads (0: all cores)."""
    device: str = "cpu"
    """Torch device for the env tensors and PPO."""
    variant: str = "g1_23dof"
    """Robot variant."""
    seed: int = 0
    """Seed of torch, the env and the simulator."""
    torch_threads: int = 1
    """torch threads for the PPO update (0: torch's default; more than 1 thread collapses on a busy CPU)."""
    env_torch_threads: int = 1
    """torch threads while stepping the env (small tensors: 1 avoids thread-pool overhead; 0: leave default)."""
    physics: ModelOptions = field(default_factory=ModelOptions)
    """Physics options of the training simulator."""
    env: TrackingEnvConfig = field(default_factory=TrackingEnvConfig)
    """The tracking task."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO and networks."""
    run: RunConfig = field(default_factory=RunConfig)
    """Run directory, duration, logging, evaluation."""


def rsl_train_cfg(cfg: PretrainConfig) -> dict[str, Any]:
    """The rsl-rl-lib 5.5.1 ``train_cfg`` dict for a pretraining config."""
    p = cfg.ppo
    dist = {"class_name": "GaussianDistribution", "init_std": p.init_std, "std_type": "scalar"}
    alg: dict[str, Any] = {
        "class_name": "asap.rl.ppo:SplitPPO" if p.separate_optimizers else "PPO",
        "num_learning_epochs": p.num_learning_epochs,
        "num_mini_batches": p.num_mini_batches,
        "clip_param": p.clip_param,
        "gamma": p.gamma,
        "lam": p.lam,
        "value_loss_coef": p.value_loss_coef,
        "entropy_coef": p.entropy_coef,
        "learning_rate": p.learning_rate,
        "max_grad_norm": p.max_grad_norm,
        "use_clipped_value_loss": True,
        "schedule": p.schedule,
        "desired_kl": p.desired_kl,
    }
    if p.separate_optimizers:
        alg["critic_learning_rate"] = p.critic_learning_rate
        alg["smoothness_coef"] = p.smoothness_coef
        alg["anchor_coef"] = p.anchor_coef
        if p.anchor_free_joints:
            free = set(resolve_joints(cfg.variant, p.anchor_free_joints))
            alg["anchor_weights"] = [0.0 if n in free else 1.0 for n in get_spec(cfg.variant).joint_names]
    elif p.smoothness_coef > 0 or p.anchor_coef > 0:
        raise ValueError("ppo.smoothness_coef and ppo.anchor_coef need ppo.separate_optimizers=true")
    logger: Any = "tensorboard"
    if cfg.run.logger == "wandb":
        logger = {"class_name": "WandbLogWriter", "project_name": cfg.run.wandb_project}
    return {
        "num_steps_per_env": p.num_steps_per_env,
        "save_interval": cfg.run.save_interval,
        "obs_groups": {"actor": ["actor"], "critic": ["critic"]},
        "actor": {"class_name": "MLPModel", "hidden_dims": list(p.actor_hidden_dims),
                  "activation": p.actor_activation or p.activation, "obs_normalization": p.obs_normalization,
                  "distribution_cfg": dist},
        "critic": {"class_name": "MLPModel", "hidden_dims": list(p.critic_hidden_dims), "activation": p.activation,
                   "obs_normalization": p.obs_normalization},
        "algorithm": alg,
        "logger": logger,
        "check_for_nan": True,
    }  # fmt: skip
