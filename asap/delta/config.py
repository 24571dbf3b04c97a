"""Configuration of `asap train-delta` (defaults: the demo scale on 2 CPU cores; the reference's in comments)."""

from __future__ import annotations

from dataclasses import dataclass, field

from asap.control import TargetShaping
from asap.rl.config import PPOConfig, RunConfig
from asap.robot.model import ModelOptions
from envs.delta.config import DeltaEnvConfig


def _delta_ppo() -> PPOConfig:
    return PPOConfig(actor_hidden_dims=[256, 128, 64], critic_hidden_dims=[256, 128, 64], init_std=0.1,
                     entropy_coef=0.0, gamma=0.9, lam=0.9, num_learning_epochs=3, obs_normalization=True,
                     desired_kl=0.05)  # fmt: skip


@dataclass
class DeltaTrainConfig:
    """`asap train-delta`: PPO for π^Δ on the open-loop replay of logged episodes."""

    motions: list[str] = field(default_factory=list)
    """Logged episodes: Motion files with ``action`` or folders of them (`asap collect` output)."""
    held_out: float = 0.25
    """Share of episodes (whole files, never windows of a training file) kept out of training for the report."""
    gap: str | None = None
    """Reality-gap profile the logs came from, when it is known (virtual G1): adds the Oracle row to the report."""
    shaping: TargetShaping = field(default_factory=TargetShaping)
    """How the runtime shaped the logged actions into targets; logs that record their own shaping
    (``meta["target_clamp"]``, ``meta["target_max_step"]``) must agree with it."""
    sim: str = "mujoco"
    """Simulator backend of the replay (the training simulator of the policy)."""
    num_envs: int = 128
    """Parallel replay windows (the reference: 5000 on a GPU)."""
    threads: int = 2
    """Native simulator threads."""
    device: str = "cpu"
    """Torch device."""
    variant: str = "g1_23dof"
    """Robot variant."""
    seed: int = 0
    """Seed of torch and the window sampler."""
    torch_threads: int = 1
    """torch threads (1 is fastest for these small networks on a busy CPU)."""
    physics: ModelOptions = field(default_factory=ModelOptions)
    """Physics options of the replay simulator (must be the policy's training physics)."""
    env: DeltaEnvConfig = field(default_factory=DeltaEnvConfig)
    """The open-loop replay task."""
    model: str = "mlp"
    """π^Δ's network: 'mlp' (one MLP over the observation, the paper's) or 'motor_local' (one small MLP shared by
    the driven motors, each motor's Δa from its own action, position, velocity and last Δa only; needs
    env.obs_scope=driven; asap.delta.motor_model). ``ppo.actor_hidden_dims`` sizes either."""
    ppo: PPOConfig = field(default_factory=_delta_ppo)
    """PPO and networks (the reference: [512, 256, 128], init std 0.8, entropy 0.01, gamma 0.99, lambda 0.95).
    Exploration noise costs replay accuracy directly (a random Δa each step shakes every velocity term), so it
    starts small (0.1) with no entropy bonus; a Δa shows its effect within a few steps, so gamma = lambda = 0.9
    (measured: 2-minute runs on ankle_weak logs reach -36% open-loop error with 0.9, -12% with 0.99). With a small
    std the adaptive learning rate's KL target limits how far the mean moves per update (KL ~ (Δμ/σ)²/2), so it is
    0.05 rather than 0.01 (3-minute runs: -54% against -39%; docs/delta.md, "Tuning the delta task")."""
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="run/delta", max_time_s=600.0, save_interval=50))
    """Run directory, duration (default 10 min), checkpoints, resume."""
    horizons_s: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    """Open-loop report horizons (the paper's Table III)."""
    report_stride_s: float = 0.25
    """Report windows start every this many seconds of each held-out episode."""
    gain_grid: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    """Gains on the trained model's Δa tried by the calibration on the training episodes (asap.delta.calibrate;
    the best is stored in delta.pt); empty: no calibration (gain 1)."""
    joint_gain_factors: list[float] = field(default_factory=list)
    """After the scalar gain, factors tried per joint group (a joint and its mirror) on the training episodes, one
    group at a time (asap.delta.calibrate.calibrate_joint_gains), e.g. [0.5, 2.0, 4.0]; empty: off. For models whose
    joints fall short by different amounts; costs one replay per group and factor."""
    joint_gain_sweeps: int = 1
    """Passes of the joint-group calibration over the groups (stops early when a pass keeps nothing)."""
    joint_gain_groups: str = "mirror"
    """Groups of the joint calibration: ``mirror`` (a joint and its mirror share a multiplier) or ``joint`` (each
    joint its own: for gaps or models that differ between the sides; about 1.5x the replays)."""
