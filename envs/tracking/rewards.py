"""Reward terms of ASAP's motion tracking (paper Table I), as pure torch functions of batched state.

Tracking terms return values in (0, 1] of the form ``exp(-err / sigma)`` where ``err`` is a mean of squares over
bodies (or joints) and xyz components; penalty terms return non-negative magnitudes (the env multiplies them by
a negative weight, by dt, and by the penalty curriculum). Shapes: N envs, B bodies, J joints, F = 2 feet.
"""

from __future__ import annotations

import torch

from asap.utils.rotations import projected_gravity, quat_angle, wrap_to_pi, yaw_from_quat


def mse(diff: torch.Tensor) -> torch.Tensor:
    """Mean of squares over the last two axes (N, B, 3) -> (N,)."""
    return diff.square().mean(dim=(-1, -2))


def body_position_extend(
    body_pos: torch.Tensor,
    ref_body_pos: torch.Tensor,
    upper_mask: torch.Tensor,
    sigma_upper: float = 0.03,
    sigma_lower: float = 0.1,
    weight_upper: float = 1.0,
    weight_lower: float = 0.5,
) -> torch.Tensor:
    """w_u exp(-mse_upper/s_u) + w_l exp(-mse_lower/s_l) over the 27 bodies split by ``upper_mask`` (B,) bool."""
    return body_position_extend_diff(ref_body_pos - body_pos, upper_mask, ~upper_mask, sigma_upper, sigma_lower,
                                     weight_upper, weight_lower)  # fmt: skip


def body_position_extend_diff(
    diff: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    sigma_upper: float = 0.03,
    sigma_lower: float = 0.1,
    weight_upper: float = 1.0,
    weight_lower: float = 0.5,
) -> torch.Tensor:
    """:func:`body_position_extend` of ``diff`` = ref - body (N, B, 3), the two body sets given as (B,) bool masks
    or as index tensors (the same values either way)."""
    up = torch.exp(-mse(diff[:, upper]) / sigma_upper)
    low = torch.exp(-mse(diff[:, lower]) / sigma_lower)
    return weight_upper * up + weight_lower * low


def body_position_subset(
    body_pos: torch.Tensor, ref_body_pos: torch.Tensor, idx: torch.Tensor, sigma: float = 0.03
) -> torch.Tensor:
    """exp(-mse/sigma) of the bodies ``idx`` (VR 3-point: hands + head; feet: ankle-roll links)."""
    return torch.exp(-mse(ref_body_pos[:, idx] - body_pos[:, idx]) / sigma)


def body_rotation(body_quat: torch.Tensor, ref_body_quat: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """exp(-mean over bodies of angle(ref, current)^2 / sigma); quaternions (N, B, 4) wxyz."""
    ang = quat_angle(ref_body_quat, body_quat)
    return torch.exp(-ang.square().mean(dim=-1) / sigma)


def body_velocity(vel: torch.Tensor, ref_vel: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """exp(-mse/sigma) of body linear (or angular) velocities (N, B, 3)."""
    return torch.exp(-mse(ref_vel - vel) / sigma)


def joint_tracking(x: torch.Tensor, ref_x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """exp(-mean over joints of (ref - x)^2 / sigma) for joint positions or velocities (N, J)."""
    return torch.exp(-(ref_x - x).square().mean(dim=-1) / sigma)


def torques(tau: torch.Tensor) -> torch.Tensor:
    """Sum of squared joint torques (N, J) -> (N,)."""
    return tau.square().sum(dim=-1)


def action_rate(action: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
    """Sum of squared action changes."""
    return (action - last_action).square().sum(dim=-1)


def feet_orientation(feet_quat: torch.Tensor) -> torch.Tensor:
    """Sum over feet of the norm of the xy part of gravity in each foot frame (0 when the soles are level)."""
    g = projected_gravity(feet_quat)  # (N, F, 3)
    return g[..., :2].norm(dim=-1).sum(dim=-1)


def feet_heading(feet_quat: torch.Tensor, root_quat: torch.Tensor) -> torch.Tensor:
    """Sum over feet of |wrap(foot yaw - root yaw)|."""
    d = wrap_to_pi(yaw_from_quat(feet_quat) - yaw_from_quat(root_quat)[:, None])
    return d.abs().sum(dim=-1)


def slippage(feet_lin_vel: torch.Tensor, feet_force: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """Sum over feet of |foot velocity| while the foot's contact force exceeds ``threshold`` N."""
    contact = feet_force.norm(dim=-1) > threshold
    return (feet_lin_vel.norm(dim=-1) * contact).sum(dim=-1)


def soft_range(lower: torch.Tensor, upper: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A range of ``fraction`` times the width of [lower, upper], about its mid-point."""
    mid = 0.5 * (lower + upper)
    half = 0.5 * (upper - lower) * fraction
    return mid - half, mid + half


def dof_pos_limits(q: torch.Tensor, soft_lower: torch.Tensor, soft_upper: torch.Tensor) -> torch.Tensor:
    """Sum over joints of how far q lies outside [soft_lower, soft_upper] (rad)."""
    below = (soft_lower - q).clamp(min=0.0)
    above = (q - soft_upper).clamp(min=0.0)
    return (below + above).sum(dim=-1)


def magnitude_limits(x: torch.Tensor, limit: torch.Tensor, fraction: float) -> torch.Tensor:
    """Sum over joints of clip(|x| - fraction * limit, 0, 1) (velocity or torque soft limits)."""
    return (x.abs() - fraction * limit).clamp(min=0.0, max=1.0).sum(dim=-1)


# Termination conditions ---------------------------------------------------------------------------------------


def gravity_tilt(root_quat: torch.Tensor, limit: float = 0.8) -> torch.Tensor:
    """True where |g_x| or |g_y| of the projected gravity exceeds ``limit`` (the robot fell or tilts badly)."""
    return gravity_tilt_of(projected_gravity(root_quat), limit)


def gravity_tilt_of(gravity: torch.Tensor, limit: float = 0.8) -> torch.Tensor:
    """:func:`gravity_tilt` of an already projected gravity (N, 3)."""
    return (gravity[:, 0].abs() > limit) | (gravity[:, 1].abs() > limit)


def motion_far(body_pos: torch.Tensor, ref_body_pos: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """True where any tracked body is farther than ``threshold`` (m; scalar or (N,)) from its reference."""
    dist = (ref_body_pos - body_pos).norm(dim=-1)
    thr = threshold if not torch.is_tensor(threshold) or threshold.ndim == 0 else threshold[:, None]
    return (dist > thr).any(dim=-1)
