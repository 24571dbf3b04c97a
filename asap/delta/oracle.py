"""The oracle Δa of a known gap: the correction, from the PD law, that makes the training simulator apply the
torques a gapped robot applies (validates the replay machinery; the ceiling a learned π^Δ can approach).

The gapped robot (the virtual G1, :mod:`deploy.virtual_g1`, and the protocol targets, :mod:`asap.eval.targets`)
applies, per motor, the gap's actuator law (:class:`deploy.gap.ActuatorLaw`)
``tau_gap = clip(s (k Kp (q*_late - q) - d Kd qd), -e, e) - b qd - f sign(qd)`` with the profile's torque scale s,
Kp scale k, Kd scale d, saturated effort limits e, passive joint damping b and dry friction f, to the target
``q*_late`` that arrived ``latency_s`` earlier: the previous step's target for a latency of one control step (20 ms
at 50 Hz; the observation's ``last_action``), the current one without latency. The training simulator (no damping,
friction or latency; effort limits at least e) applies ``Kp (q' - q) - Kd qd`` for a target q'. Equal torques need
``q' = q + (tau_gap + Kd qd) / Kp``, so ``Δa = (q' - q*) / delta_scale`` for the applied target q*. It is exact at
the start of each control step; within the step the PD law is re-evaluated at 200 Hz while Δa is held, and MuJoCo's
dry friction is a constraint that holds a joint still below f (modelled here as ``f tanh(qd / v_f)``): the residual
this leaves is what the oracle's replay error measures. Mass changes (``added_mass``), floor friction and sensor
noise have no such per-motor form and are not covered; a latency other than 0 or 1 control step is refused.
"""

from __future__ import annotations

import torch

from asap.delta.model import DeltaMeta
from asap.delta.obs import term_slice
from asap.eval.targets import latency_split
from asap.robot.spec import get_spec
from deploy.gap import ActuatorLaw, RealGapConfig

FRICTION_VEL = 0.05
"""v_f (rad/s): the joint speed over which the oracle's model of dry friction, ``f tanh(qd / v_f)``, reaches f."""


class OracleDelta:
    """Closed-form Δa of a gap profile's per-motor part (actuator law, latency, joint damping and friction); same call
    as a :class:`asap.delta.model.DeltaModel`. Raises ``ValueError`` for a latency of more than one control step."""

    def __init__(self, gap: RealGapConfig, variant: str = "g1_23dof", joints: str = "all") -> None:
        spec = get_spec(variant)
        self.meta = DeltaMeta.for_variant(variant, joints)
        self.num_joints = spec.num_joints
        law = ActuatorLaw.of(gap, spec.joint_names, spec.effort_limit)
        f32 = torch.float32
        self.k, self.d, self.s, self.effort = (torch.as_tensor(x, dtype=f32) for x in
                                               (law.kp_scale, law.kd_scale, law.torque_scale, law.effort))  # fmt: skip
        self.delay, substeps = latency_split(gap.latency_s, spec.sim_dt, spec.decimation)
        if self.delay > 1 or substeps:
            raise ValueError(f"the oracle of {gap.name!r} covers a latency of 0 or 1 control step "
                             f"({spec.control_dt * 1e3:g} ms), not {gap.latency_s * 1e3:g} ms")  # fmt: skip
        self.damping = float(gap.joint_damping)
        self.friction = float(gap.joint_friction)
        self.kp = torch.as_tensor(spec.kp, dtype=f32)
        self.kd = torch.as_tensor(spec.kd, dtype=f32)
        self.action_scale = float(spec.action_scale)
        self.mask = torch.zeros(spec.num_joints)
        self.mask[self.meta.joint_index()] = 1.0
        self.gap_name = gap.name

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Δa (N, J) from a delta actor observation (N, 5J+16): uses its dof_pos, dof_vel, applied_action and (with
        latency) last_action."""
        j = self.num_joints
        dev = obs.device
        q = obs[:, term_slice("dof_pos", j)]
        qd = obs[:, term_slice("dof_vel", j)]
        e = obs[:, term_slice("applied_action", j)] * self.action_scale - q  # q* - q
        arrived = obs[:, term_slice("last_action" if self.delay else "applied_action", j)] * self.action_scale - q
        kp, kd = self.kp.to(dev), self.kd.to(dev)
        effort = self.effort.to(dev)
        tau_gap = self.s.to(dev) * (self.k.to(dev) * kp * arrived - self.d.to(dev) * kd * qd)
        tau_gap = torch.minimum(torch.maximum(tau_gap, -effort), effort)
        tau_gap = tau_gap - self.damping * qd - self.friction * torch.tanh(qd / FRICTION_VEL)
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
