"""Configuration of the open-loop delta-action task (asap-method.md section 5.2, paper Table II)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def table_ii() -> dict[str, dict[str, Any]]:
    """Table II weights with the reference's sigmas; action norm -0.1 (the README's override, the paper's ablation
    optimum; Table II itself prints -0.2)."""
    return {
        "body_pos": {"weight": 1.0, "sigma_upper": 0.03, "sigma_lower": 0.1, "weight_upper": 1.0, "weight_lower": 0.5},
        "vr_3point": {"weight": 1.0, "sigma": 0.03},
        "feet_pos": {"weight": 1.0, "sigma": 0.03},
        "body_rot": {"weight": 0.5, "sigma": 1.0},
        "body_vel": {"weight": 0.5, "sigma": 1.0},
        "body_ang_vel": {"weight": 0.5, "sigma": 1.0},
        "joint_pos": {"weight": 0.5, "sigma": 1.0},
        "joint_vel": {"weight": 0.5, "sigma": 1.0},
        "action_rate": {"weight": -0.01},
        "action_norm": {"weight": -0.1},
        "limits_dof_pos": {"weight": -10.0, "soft": 1.0},
        "limits_dof_vel": {"weight": -5.0, "soft": 1.0},
        "limits_torque": {"weight": -0.1, "soft": 1.0},
    }


@dataclass
class DeltaEnvConfig:
    """The open-loop replay task π^Δ is trained on."""

    window_s: float = 1.0
    """Episode length: a window of this many seconds of a logged segment (1.0 s = 50 steps, the reference's)."""
    joints: str = "all"
    """Joints Δa acts on: 'all', 'ankles' (the 4-DoF ankle model of the authors' hardware runs) or names."""
    rewards: dict[str, dict[str, Any]] = field(default_factory=table_ii)
    """Reward table ``{term: {weight, params...}}`` over envs.common.reward_terms (Table II by default)."""
    scale_by_dt: bool = True
    """Multiply every weight by the control dt (the reference does)."""
    only_positive: bool = False
    """Clamp the step reward at 0 (off: Table II penalties must act)."""
    seed: int = 0
    """Window sampling seed."""
