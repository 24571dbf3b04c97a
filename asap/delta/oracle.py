"""The oracle Δa of a known actuator gap: the exact correction, from the PD law, that makes the training simulator
apply the torques a gapped robot applies (validates replay machinery; the ceiling a learned π^Δ can approach).

The virtual G1 (:mod:`deploy.virtual_g1`) applies, per motor, ``tau_gap = s (k Kp (q* - q) - d Kd qd)`` with the
profile's torque scale s, Kp scale k and Kd scale d (:mod:`deploy.gap`). The training simulator applies
``Kp (q' - q) - Kd qd`` for a target q'. Equal torques need ``q' = q + (tau_gap + Kd qd) / Kp``, so
``Δa = (q' - q*) / delta_scale``. It is exact at the start of each control step; within the step the PD law is
re-evaluated at 200 Hz while Δa is held (the residual this leaves is what the oracle's replay error measures).
Other gap sources (mass, friction, latency, torque saturation) have no such closed form and are not covered.
"""

from __future__ import annotations

import torch

from asap.delta.model import DeltaMeta
from asap.delta.obs import term_slice
from asap.robot.spec import get_spec
from deploy.gap import RealGapConfig, per_joint


class OracleDelta:
    """Closed-form Δa for the actuator part (Kp/Kd/torque scales) of a gap profile; same call as a DeltaModel."""

    def __init__(self, gap: RealGapConfig, variant: str = "g1_23dof", joints: str = "all") -> None:
        spec = get_spec(variant)
        self.meta = DeltaMeta.for_variant(variant, joints)
        self.num_joints = spec.num_joints
        names = spec.joint_names
        f32 = torch.float32
        self.k = torch.as_tensor(per_joint(gap.kp_scale, names), dtype=f32) if gap.kp_scale else torch.ones(len(names))
        self.d = torch.as_tensor(per_joint(gap.kd_scale, names), dtype=f32) if gap.kd_scale else torch.ones(len(names))
        self.s = (
            torch.as_tensor(per_joint(gap.torque_scale, names), dtype=f32)
            if gap.torque_scale
            else torch.ones(len(names))
        )
        self.kp = torch.as_tensor(spec.kp, dtype=f32)
        self.kd = torch.as_tensor(spec.kd, dtype=f32)
        self.action_scale = float(spec.action_scale)
        self.mask = torch.zeros(len(names))
        self.mask[self.meta.joint_index()] = 1.0
        self.gap_name = gap.name

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Δa (N, J) from a delta actor observation (N, 4J+16): uses its dof_pos, dof_vel and applied_action."""
        j = self.num_joints
        dev = obs.device
        e = obs[:, term_slice("applied_action", j)] * self.action_scale - obs[:, term_slice("dof_pos", j)]  # q* - q
        qd = obs[:, term_slice("dof_vel", j)]
        kp, kd = self.kp.to(dev), self.kd.to(dev)
        tau_gap = self.s.to(dev) * (self.k.to(dev) * kp * e - self.d.to(dev) * kd * qd)
        corrected_minus_q = (tau_gap + kd * qd) / kp
        return (corrected_minus_q - e) / self.meta.delta_scale * self.mask.to(dev)

    def to(self, device: torch.device | str) -> OracleDelta:
        """Tensors are moved on use; kept for interface parity with :class:`asap.delta.model.DeltaModel`."""
        return self


ORACLE_PREFIX = "oracle:"
"""A delta spec ``oracle:<gap profile>`` names the closed-form oracle of that profile instead of a trained model."""


def load_delta(spec: str, variant: str = "g1_23dof"):
    """A frozen delta model from ``spec``: a ``delta.pt`` path, or ``oracle:<gap.yaml>`` for the oracle of a known
    gap (fine-tuning or playing against the oracle shows what a perfect π^Δ would give)."""
    from asap.delta.model import DeltaModel

    if str(spec).startswith(ORACLE_PREFIX):
        from asap.paths import repo_path
        from deploy.gap import load_gap

        return OracleDelta(load_gap(repo_path(str(spec)[len(ORACLE_PREFIX) :])), variant)
    return DeltaModel.load(spec)
