"""A set of simulator dynamics as a YAML file (``dynamics.yaml``): what `asap sysid` identifies from logs and what
`asap finetune --dynamics` trains in.

:class:`SimDynamics` is the file; :meth:`SimDynamics.params` turns it into the per-env
:class:`asap.sim.base.DynamicsParams` of a simulator, and :func:`apply_dynamics` sets it on every env. Per-joint
values are ``{pattern: value}`` tables over joint names (a joint whose name contains ``pattern`` gets the value,
later patterns win: :func:`deploy.gap.per_joint`, the rule of the reality-gap profiles). Only what the file lists
is set; everything else keeps the simulator's own (nominal) value. Unlike a reality-gap profile
(``configs/real_gap``, which only *targets* apply), this is a training-side simulator setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asap.config import load_config, save_config
from asap.sim.base import DYNAMICS_BODIES, DynamicsParams, Simulator
from deploy.gap import per_joint

JOINT_FACTORS = ("kp_scale", "kd_scale", "motor_strength")
"""Per-joint fields that multiply the model's value (default 1)."""
JOINT_VALUES = ("joint_damping", "joint_frictionloss", "joint_armature")
"""Per-joint fields that replace the model's value (absolute, SI)."""


@dataclass
class SimDynamics:
    """Simulator dynamics (see the module docstring); empty tables and None leave the nominal values."""

    name: str = "nominal"
    """Name of this set (e.g. 'sysid')."""
    description: str = ""
    """One line on where the values come from."""
    kp_scale: dict[str, float] = field(default_factory=dict)
    """Multiplier on the spec's Kp by joint-name pattern."""
    kd_scale: dict[str, float] = field(default_factory=dict)
    """Multiplier on the spec's Kd by joint-name pattern."""
    motor_strength: dict[str, float] = field(default_factory=dict)
    """Multiplier on the PD torque by joint-name pattern."""
    joint_damping: dict[str, float] = field(default_factory=dict)
    """Passive joint damping (N m s/rad) by joint-name pattern."""
    joint_frictionloss: dict[str, float] = field(default_factory=dict)
    """Dry joint friction (N m) by joint-name pattern."""
    joint_armature: dict[str, float] = field(default_factory=dict)
    """Reflected rotor inertia (kg m^2) by joint-name pattern."""
    mass_add: dict[str, float] = field(default_factory=dict)
    """kg added to a link, by link name (:data:`asap.sim.base.DYNAMICS_BODIES`)."""
    com_offset: dict[str, list[float]] = field(default_factory=dict)
    """m added to a link's centre of mass in the link frame ([x, y, z]), by link name."""
    friction: float | None = None
    """Sliding friction of every contact (None: the model's)."""
    action_delay: int = 0
    """Delay of joint targets in control steps (0.02 s each)."""
    substep_delay: int = 0
    """Further delay of joint targets in physics substeps (0.005 s each, 0-3): a latency below one control step."""

    def params(self, sim: Simulator) -> DynamicsParams:
        """The fields this set lists as one-row :class:`DynamicsParams` for ``sim`` (broadcast over any env ids).

        Raises ``ValueError`` for a pattern that matches no joint or an unknown link name."""
        names, dev = sim.spec.joint_names, sim.device
        p = DynamicsParams()

        def row(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values)[None], dtype=torch.float32, device=dev)

        for f in JOINT_FACTORS:
            table = getattr(self, f)
            if table:
                setattr(p, f, row(per_joint(table, names)))
        nominal = sim.default_dynamics(1)
        for f in JOINT_VALUES:
            table = getattr(self, f)
            if table:
                values = getattr(nominal, f)[0].cpu().numpy().astype(np.float64)
                for pattern, v in table.items():
                    values[per_joint({pattern: 0.0}, names) == 0.0] = float(v)
                setattr(p, f, row(values))
        if self.mass_add:
            add = np.zeros(len(DYNAMICS_BODIES))
            for body, kg in self.mass_add.items():
                add[link_index(body)] = float(kg)
            p.mass_add = row(add)
        if self.com_offset:
            off = np.zeros((len(DYNAMICS_BODIES), 3))
            for body, xyz in self.com_offset.items():
                if len(xyz) != 3:
                    raise ValueError(f"com_offset of {body!r} must be [x, y, z] (m), got {xyz}")
                off[link_index(body)] = [float(x) for x in xyz]
            p.com_offset = row(off)
        if self.friction is not None:
            p.friction = torch.tensor([float(self.friction)], device=dev)
        if self.action_delay:
            p.action_delay = torch.tensor([int(self.action_delay)], dtype=torch.long, device=dev)
        if self.substep_delay:
            p.substep_delay = torch.tensor([int(self.substep_delay)], dtype=torch.long, device=dev)
        return p


def link_index(body: str) -> int:
    """Index of ``body`` in :data:`asap.sim.base.DYNAMICS_BODIES` (``ValueError`` naming the valid ones)."""
    if body not in DYNAMICS_BODIES:
        raise ValueError(f"unknown link {body!r}; links: {', '.join(DYNAMICS_BODIES)}")
    return DYNAMICS_BODIES.index(body)


def load_dynamics(path: str | Path, overrides: list[str] | None = None) -> SimDynamics:
    """Read a ``dynamics.yaml`` (``FileNotFoundError`` naming `asap sysid` when it is missing)."""
    from asap.paths import repo_path

    p = repo_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dynamics file {str(path)!r} not found: `asap sysid` writes OUT/dynamics.yaml")
    return load_config(SimDynamics, p, overrides)


def save_dynamics(dyn: SimDynamics, path: str | Path) -> Path:
    """Write ``dyn`` as YAML (the format :func:`load_dynamics` reads)."""
    save_config(dyn, Path(path))
    return Path(path)


def apply_dynamics(sim: Simulator, dyn: SimDynamics, env_ids: torch.Tensor | None = None) -> Simulator:
    """Set ``dyn`` on the given envs of ``sim`` (None: all) and return ``sim`` (kept across resets)."""
    p = dyn.params(sim)
    if p.names():
        sim.set_dynamics(env_ids, p)
    return sim


def overwritten(sim: Simulator, dyn: SimDynamics) -> list[str]:
    """Fields of ``dyn`` that some env of ``sim`` no longer has (e.g. domain randomisation rewrote them at a reset)."""
    want, now = dyn.params(sim), sim.get_dynamics()
    lost = []
    for name in want.names():
        a, b = getattr(now, name), getattr(want, name).to(getattr(now, name).dtype).expand_as(getattr(now, name))
        if not torch.allclose(a, b, atol=1e-6):
            lost.append(name)
    return lost
