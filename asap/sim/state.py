"""One read-out of a simulator batch: every physical quantity the task machinery (rewards, observations,
terminations, the delta model) consumes, read once per control step through the :class:`Simulator` protocol.

Frames: positions, orientations (wxyz) and velocities are in the world frame, as the protocol returns them; the
body frame helpers of :mod:`asap.obs` turn them into what a robot measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asap.sim.base import Simulator


@dataclass
class SimState:
    """State of N envs after a control step (all float32, on the simulator's device)."""

    root_pos: torch.Tensor
    """(N, 3) pelvis position, m."""
    root_quat: torch.Tensor
    """(N, 4) pelvis orientation, wxyz."""
    root_lin_vel: torch.Tensor
    """(N, 3) pelvis linear velocity, world frame, m/s."""
    root_ang_vel: torch.Tensor
    """(N, 3) pelvis angular velocity, world frame, rad/s."""
    q: torch.Tensor
    """(N, J) joint positions, rad, policy order."""
    qd: torch.Tensor
    """(N, J) joint velocities, rad/s."""
    body_pos: torch.Tensor
    """(N, 27, 3) tracked body positions, m."""
    body_quat: torch.Tensor
    """(N, 27, 4) tracked body orientations, wxyz."""
    body_lin_vel: torch.Tensor
    """(N, 27, 3) tracked body linear velocities, m/s."""
    body_ang_vel: torch.Tensor
    """(N, 27, 3) tracked body angular velocities, rad/s."""
    tau: torch.Tensor
    """(N, J) joint torques of the last physics substep, N m."""
    feet_force: torch.Tensor
    """(N, 2, 3) net contact force on the left/right ankle-roll links, world frame, N."""

    def __getitem__(self, key: str) -> torch.Tensor:
        """Field by name (``state["q"]``), for code written against a mapping."""
        return getattr(self, key)


def read_state(sim: Simulator) -> SimState:
    """Read every quantity of :class:`SimState` from ``sim`` (one call per control step)."""
    root = sim.get_root_state()
    q, qd = sim.get_joint_state()
    body = sim.get_body_state()
    return SimState(
        root_pos=root[:, 0:3], root_quat=root[:, 3:7], root_lin_vel=root[:, 7:10], root_ang_vel=root[:, 10:13],
        q=q, qd=qd, body_pos=body.pos, body_quat=body.quat, body_lin_vel=body.lin_vel, body_ang_vel=body.ang_vel,
        tau=sim.get_applied_torques(), feet_force=sim.get_foot_contact_forces(),
    )  # fmt: skip
