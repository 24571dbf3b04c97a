"""Protocol targets: a simulator backend with a reality-gap profile (``configs/real_gap/*.yaml``) applied, stepped
through the :class:`asap.sim.base.Simulator` protocol — where ``asap eval`` judges a policy without DDS.

A :class:`GapSimulator` applies the same gap as the virtual G1 (:mod:`deploy.virtual_g1`), from the same code:

* **actuator law** (:class:`deploy.gap.ActuatorLaw`): its Kp/Kd scales and motor strength become the simulator's
  per-env ``kp_scale``/``kd_scale``/``motor_strength`` (:class:`asap.sim.base.DynamicsParams`), whose PD law the
  backend evaluates at every physics substep (200 Hz; the protocol's ``clip(s (k Kp (q* - q) - d Kd qd), -e, e)``
  is the law with dq* = 0, tau_ff = 0); its saturation ``e`` (``torque_limit_scale``) is the actuators' force
  range in the model;
* **model edits** (:func:`deploy.engine.gap_model_spec`): added masses, joint damping and friction, floor friction,
  built into the MjSpec the simulator is made from (fields the profile leaves at their defaults keep the policy's
  training physics);
* **latency**: joint targets take effect ``round(latency_s / sim_dt)`` physics substeps late, as on the virtual G1
  (5 ms ticks): whole control steps as the protocol's ``action_delay`` and the rest as its ``substep_delay``
  (:func:`latency_split`; 20 ms is exactly one control step, 5 ms one substep);
* **sensor noise**: Gaussian noise of ``joint_vel_noise`` on the joint velocities and ``imu_gyro_noise`` on the root
  angular velocity that :meth:`GapSimulator.get_joint_state` / :meth:`GapSimulator.get_root_state` report (drawn
  once per control step and reset, from the target's seed; isotropic, so the same in the world and the pelvis
  frame). Body poses, joint positions and everything the metrics read stay exact.

With the profile ``none`` nothing is changed: the target steps exactly like the plain simulator. Only the MuJoCo
backend takes a customised model (Genesis builds its scene from the spec alone), so it is the only target backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from asap.paths import repo_path
from asap.sim.base import DynamicsParams, SimConfig, Simulator, as_env_ids, make_simulator
from deploy.gap import ActuatorLaw, RealGapConfig, load_gap

TARGET_BACKENDS = ("mujoco",)
"""Simulator backends a protocol target can be built on."""


def target_backend_error(backend: str) -> str | None:
    """One line saying why ``backend`` cannot be a protocol target (None when it can)."""
    if backend in TARGET_BACKENDS:
        return None
    if backend == "genesis":
        return ("target 'genesis' is not available: the Genesis backend builds its scene from the robot spec alone "
                "(no reality-gap model edits or torque limits) and compiles kernels for minutes on a CPU; use "
                "--target mujoco")  # fmt: skip
    return f"unknown target {backend!r}; targets: {', '.join(TARGET_BACKENDS)}"


def latency_split(latency_s: float, sim_dt: float, decimation: int) -> tuple[int, int]:
    """A command latency of ``latency_s`` seconds as (control steps, physics substeps): the protocol's
    ``action_delay`` and ``substep_delay``. Rounded to whole substeps of ``sim_dt`` (halves up), the resolution of
    the virtual G1's 5 ms ticks."""
    total = int(math.floor(latency_s / sim_dt + 0.5 + 1e-9))
    return total // decimation, total % decimation


def resolve_gap(gap: RealGapConfig | str | Path | None) -> RealGapConfig:
    """A gap profile from a config, a YAML path (``configs/real_gap/...`` resolves to the shipped files) or None."""
    if isinstance(gap, RealGapConfig):
        return gap
    return load_gap(None if gap is None else repo_path(gap))


class GapSimulator:
    """A :class:`asap.sim.base.Simulator` (MuJoCo) stepping the G1 with a reality gap (see module docstring).

    Every protocol call not defined here is the wrapped simulator's (:attr:`sim`). Direct torque commands are
    refused (the gap's actuator law acts on joint targets), and so is :meth:`set_dynamics` of a field the gap sets.
    """

    def __init__(self, cfg: SimConfig, gap: RealGapConfig | str | Path | None = None, seed: int = 0) -> None:
        """Build ``cfg.num_envs`` envs of ``cfg`` with the profile ``gap`` (None: no gap); ``seed`` seeds the sensor
        noise."""
        why = target_backend_error(cfg.backend)
        if why:
            raise ValueError(why)
        from deploy.engine import gap_model_spec

        self.gap = resolve_gap(gap)
        """The reality-gap profile this target applies."""
        spec = cfg.spec
        self.delay, self.substep_delay = latency_split(self.gap.latency_s, spec.sim_dt, spec.decimation)
        """Control steps, and physics substeps beyond them, by which joint targets are delayed (the profile's
        latency)."""
        self.cfg = replace(cfg, max_action_delay=max(cfg.max_action_delay, self.delay))
        model = gap_model_spec(self.gap, variant=spec, base=cfg.model, mjcf=cfg.mjcf)
        self.sim: Simulator = make_simulator(self.cfg, spec=model)
        """The wrapped simulator (built from the gap's model)."""
        self.spec = self.sim.spec
        self.num_envs = self.sim.num_envs
        self.num_joints = self.sim.num_joints
        self.device = self.sim.device
        self.law = ActuatorLaw.of(self.gap, spec.joint_names, spec.effort_limit)
        """The gap's motor law over the policy joints."""
        self.owned = self._apply_gap()
        """Dynamics fields the gap sets (callers may not overwrite them)."""
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(int(seed))
        n, j = self.num_envs, self.num_joints
        self._qd_noise = torch.zeros(n, j, device=self.device)
        self._gyro_noise = torch.zeros(n, 3, device=self.device)
        self._draw_noise(None)

    def __getattr__(self, name: str) -> Any:
        if name == "sim":  # not built yet (an error in __init__): no recursion
            raise AttributeError(name)
        return getattr(self.sim, name)

    def _apply_gap(self) -> tuple[str, ...]:
        """Set the gap's actuator factors and delay as per-env dynamics; the fields set (none for a null gap)."""
        n, j = self.num_envs, self.num_joints
        p = DynamicsParams()
        for name, value in (("kp_scale", self.law.kp_scale), ("kd_scale", self.law.kd_scale),
                            ("motor_strength", self.law.torque_scale)):  # fmt: skip
            if (value != 1.0).any():
                setattr(p, name, torch.as_tensor(value, dtype=torch.float32).expand(n, j).to(self.device))
        if self.delay:
            p.action_delay = torch.full((n,), self.delay, dtype=torch.long, device=self.device)
        if self.substep_delay:
            p.substep_delay = torch.full((n,), self.substep_delay, dtype=torch.long, device=self.device)
        if p.names():
            self.sim.set_dynamics(None, p)
        return tuple(p.names())

    def _draw_noise(self, env_ids: torch.Tensor | Sequence[int] | None) -> None:
        """New sensor noise for the given envs (all: None)."""
        ids = as_env_ids(env_ids, self.num_envs)
        g = self.gap
        n, j = len(ids), self.num_joints
        if g.joint_vel_noise > 0:
            self._qd_noise[ids.to(self.device)] = (g.joint_vel_noise * torch.randn(n, j, generator=self.gen)).to(
                self.device
            )
        if g.imu_gyro_noise > 0:
            self._gyro_noise[ids.to(self.device)] = (g.imu_gyro_noise * torch.randn(n, 3, generator=self.gen)).to(
                self.device
            )

    # ------------------------------------------------------------------------------------------ protocol
    @property
    def control_dt(self) -> float:
        """Seconds per control step."""
        return self.sim.control_dt

    @property
    def total_mass(self) -> float:
        """Mass of the robot (kg), the gap's added masses included."""
        return self.sim.total_mass

    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """One control step with joint targets (or hold the previous ones); the gap acts inside it."""
        if torques is not None:
            raise ValueError("a reality-gap target takes joint targets; direct torques would bypass its motor law")
        self.sim.step(targets=targets)
        self._draw_noise(None)

    def reset(
        self,
        env_ids: torch.Tensor | Sequence[int] | None = None,
        root_state: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
        qd: torch.Tensor | None = None,
    ) -> None:
        """See :meth:`asap.sim.base.Simulator.reset` (the gap's dynamics are kept; new sensor noise)."""
        self.sim.reset(env_ids, root_state=root_state, q=q, qd=qd)
        self._draw_noise(env_ids)

    def get_root_state(self) -> torch.Tensor:
        """(N, 13) root state as the robot's sensors report it (angular velocity with the gap's gyro noise)."""
        root = self.sim.get_root_state()
        if self.gap.imu_gyro_noise > 0:
            root = root.clone()
            root[:, 10:13] += self._gyro_noise
        return root

    def get_joint_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(q, qd) (N, J); qd with the gap's joint-velocity noise."""
        q, qd = self.sim.get_joint_state()
        if self.gap.joint_vel_noise > 0:
            qd = qd + self._qd_noise
        return q, qd

    def set_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None, params: DynamicsParams) -> None:
        """Set dynamics of the gapped simulator; a field the gap sets is refused (``ValueError``)."""
        clash = sorted(set(params.names()) & set(self.owned))
        if clash:
            raise ValueError(f"the reality gap {self.gap.name!r} sets {', '.join(clash)}; a target keeps its gap")
        self.sim.set_dynamics(env_ids, params)

    def describe(self) -> dict[str, Any]:
        """What this target applies (JSON-friendly), for reports."""
        g = self.gap
        return {
            "backend": self.cfg.backend, "gap": g.name, "gap_description": g.description,
            "latency_s": g.latency_s, "latency_control_steps": self.delay,
            "latency_substeps": self.substep_delay,
            "dynamics_set": list(self.owned), "torque_limit_scale": g.torque_limit_scale,
            "added_mass_kg": dict(g.added_mass), "joint_damping": g.joint_damping, "joint_friction": g.joint_friction,
            "floor_friction": g.floor_friction, "joint_vel_noise": g.joint_vel_noise,
            "imu_gyro_noise": g.imu_gyro_noise,
        }  # fmt: skip
