"""The aligned simulator: any :class:`asap.sim.base.Simulator` plus a frozen delta model, applying Δa inside every
control step. Open-loop evaluation, fine-tuning and ``asap play --delta`` all step through this one wrapper.

Per :meth:`AlignedSimulator.step` with targets q* (N, J): read the state s_k, form the applied action
``a_k = (q* - default) / action_scale``, build the delta observation of (s_k, a_k, a_{k-1}) (:mod:`asap.delta.obs`;
a_{k-1} is the previous step's applied action, a_k itself on the first step after a reset unless the caller gives the
previous targets with :meth:`AlignedSimulator.set_previous_targets`), evaluate
Δa = π^Δ(obs) (times a per-env on/off mask and per-env, per-joint scale, both 1 by default: the fine-tuning
options), and step the wrapped simulator with ``apply_delta(q*, Δa, delta_scale)`` (:mod:`asap.delta.model`).
Torque commands and "hold" steps pass through unchanged (Δa is defined on joint targets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from asap.delta import obs as dobs
from asap.delta.model import DeltaMeta, apply_delta
from asap.sim.base import Simulator, as_env_ids

DeltaFn = Callable[[torch.Tensor], torch.Tensor]
"""A frozen delta model: (N, 5J+16) delta actor observation -> (N, J) Δa in action units; has ``.meta``."""


class AlignedSimulator:
    """``sim`` with ``model``'s Δa added to every joint-target step; every other call goes to ``sim``."""

    def __init__(self, sim: Simulator, model: Any) -> None:
        meta: DeltaMeta = model.meta
        if meta.variant != sim.cfg.variant:
            raise ValueError(f"delta model is for {meta.variant}, the simulator runs {sim.cfg.variant}")
        self.sim = sim
        self.model = model.to(sim.device) if hasattr(model, "to") else model
        self.meta = meta
        n, j = sim.num_envs, sim.num_joints
        self.default_pos = torch.as_tensor(sim.spec.default_pos, dtype=torch.float32, device=sim.device)
        self.action_scale = float(sim.spec.action_scale)
        self.last_delta = torch.zeros(n, j, device=sim.device)
        """(N, J) the Δa applied in the last step (action units, after mask and scale)."""
        self.last_targets = torch.zeros(n, j, device=sim.device)
        """(N, J) the joint targets (before Δa) of the last step, rad."""
        self.has_last = torch.zeros(n, dtype=torch.bool, device=sim.device)
        """(N,) whether :attr:`last_targets` holds a previous step (False after a reset)."""
        self.last_obs: torch.Tensor | None = None
        """(N, 5J+16) the delta observation of the last step."""
        self.env_mask = torch.ones(n, device=sim.device)
        """(N,) 1 where Δa is applied, 0 where the env runs the plain simulator."""
        self.env_scale = torch.ones(n, j, device=sim.device)
        """(N, J) per-env, per-joint multiplier on Δa."""
        self.delta_abs_sum = 0.0
        """Sum over steps of the mean |Δa| over envs and joints (for :attr:`mean_abs_delta`)."""
        self.delta_steps = 0
        """Steps taken with joint targets."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def delta_observation(self, targets: torch.Tensor) -> torch.Tensor:
        """(N, 5J+16) delta actor observation of the current state and the action ``targets`` (N, J) represent."""
        root = self.sim.get_root_state()
        q, qd = self.sim.get_joint_state()
        applied = (targets - self.default_pos) / self.action_scale
        previous = torch.where(self.has_last[:, None], self.last_targets, targets)
        return dobs.actor_obs(
            root[:, 0:3], root[:, 3:7], root[:, 7:10], root[:, 10:13], q, qd, self.sim.get_foot_contact_forces(),
            self.default_pos, applied, (previous - self.default_pos) / self.action_scale, self.last_delta,
        )  # fmt: skip

    def delta_for(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The delta observation (N, 5J+16) and the Δa (N, J, action units, after the per-env mask and scale) that a
        step with joint targets ``targets`` (N, J) rad would apply now (:meth:`step` applies exactly this)."""
        obs = self.delta_observation(targets)
        return obs, self.model(obs) * self.env_mask[:, None] * self.env_scale

    def set_previous_targets(self, env_ids: torch.Tensor | Sequence[int] | None, targets: torch.Tensor) -> None:
        """Give envs ``env_ids`` the joint targets (n, J) rad of the step before their next one (a replay that starts
        inside a log knows them; otherwise the first step after a reset sees no change)."""
        ids = as_env_ids(env_ids, self.sim.num_envs).to(self.sim.device)
        self.last_targets[ids] = targets.to(self.sim.device, torch.float32)
        self.has_last[ids] = True
        self.sim.set_previous_targets(env_ids, targets)  # in flight in the wrapped simulator (without that step's Δa)

    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """One control step of the wrapped simulator with Δa added to ``targets`` (see module docstring)."""
        if targets is None:
            self.sim.step(targets=None, torques=torques)
            return
        targets = targets.to(self.sim.device, torch.float32)
        delta = self.record_step(targets)
        self.sim.step(targets=apply_delta(targets, delta, self.meta.delta_scale))

    def record_step(self, targets: torch.Tensor) -> torch.Tensor:
        """The Δa (N, J) of a step with joint targets ``targets`` (N, J) rad (:meth:`delta_for`), remembered as this
        step's (its observation, Δa and targets become the next step's last ones; the |Δa| statistics count it)."""
        obs, delta = self.delta_for(targets)
        self.last_obs = obs
        self.last_delta = delta
        self.last_targets = targets.clone()
        self.has_last[:] = True
        self.delta_abs_sum += float(delta.abs().mean())
        self.delta_steps += 1
        return delta

    @property
    def mean_abs_delta(self) -> float:
        """Mean |Δa| (action units) over every step, env and joint so far (0 before the first step)."""
        return self.delta_abs_sum / max(1, self.delta_steps)

    def reset(
        self,
        env_ids: torch.Tensor | Sequence[int] | None = None,
        root_state: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
        qd: torch.Tensor | None = None,
    ) -> None:
        """Reset the wrapped envs and forget their last Δa and targets."""
        self.sim.reset(env_ids, root_state=root_state, q=q, qd=qd)
        ids = as_env_ids(env_ids, self.sim.num_envs).to(self.sim.device)
        self.last_delta[ids] = 0.0
        self.has_last[ids] = False
