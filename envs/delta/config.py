"""Configuration of the open-loop delta-action task (asap-method.md section 5.2, paper Table II)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def table_ii() -> dict[str, dict[str, Any]]:
    """Table II weights (action norm -0.1: the README's override and the paper's ablation optimum; Table II prints
    -0.2), with body sigmas 10x and joint sigmas 1000x (position) / 10x (velocity) tighter than the tracking
    task's (Table I's).

    Why tighter: an open-loop window drifts by millimetres to a few centimetres from the log, where Table I's sigmas
    saturate. Measured on 6 logged ankle_weak episodes (64 windows of 1 s): the episode reward of zero Δa and of the
    exact (oracle) Δa differ by 4.6% with Table I's sigmas and the exploration noise of init std 0.3 costs more than
    that; with these sigmas the oracle earns 20% more than zero Δa and noise of std 0.05 costs 2%. The joint terms
    are the most direct signal for a joint's Δa (scripts and numbers: docs/delta.md, "Tuning the delta task").
    """
    return {
        "body_pos": {"weight": 1.0, "sigma_upper": 0.003, "sigma_lower": 0.01, "weight_upper": 1.0,
                     "weight_lower": 0.5},
        "vr_3point": {"weight": 1.0, "sigma": 0.003},
        "feet_pos": {"weight": 1.0, "sigma": 0.003},
        "body_rot": {"weight": 0.5, "sigma": 0.1},
        "body_vel": {"weight": 0.5, "sigma": 0.1},
        "body_ang_vel": {"weight": 0.5, "sigma": 1.0},
        "joint_pos": {"weight": 0.5, "sigma": 0.001},
        "joint_vel": {"weight": 0.5, "sigma": 0.1},
        "action_rate": {"weight": -0.01},
        "action_norm": {"weight": -0.1},
        "limits_dof_pos": {"weight": -10.0, "soft": 1.0},
        "limits_dof_vel": {"weight": -5.0, "soft": 1.0},
        "limits_torque": {"weight": -0.1, "soft": 1.0},
    }  # fmt: skip


@dataclass
class DeltaEnvConfig:
    """The open-loop replay task π^Δ is trained on."""

    window_s: float = 1.0
    """Episode length: a window of this many seconds of a logged segment (1.0 s = 50 steps, the reference's)."""
    joints: str = "all"
    """Joints Δa acts on: 'all', a set ('ankles' = the 4-DoF ankle model of the authors' hardware runs, 'knees',
    'hips', 'legs'), joint names, or several separated by commas ('knees,ankles'); asap.robot.spec.resolve_joints."""
    obs_scope: str = "full"
    """What π^Δ's network reads: 'full' (the paper's state + action) or 'driven' (the driven joints' action,
    position, velocity and last Δa only; asap.delta.obs.OBS_SCOPES). Stored in the model's metadata."""
    rewards: dict[str, dict[str, Any]] = field(default_factory=table_ii)
    """Reward table ``{term: {weight, params...}}`` over envs.common.reward_terms (Table II by default)."""
    scale_by_dt: bool = True
    """Multiply every weight by the control dt (the reference does)."""
    only_positive: bool = False
    """Clamp the step reward at 0 (off: Table II penalties must act)."""
    seed: int = 0
    """Window sampling seed."""
