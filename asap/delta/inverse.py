"""Fine-tuning through the inverse of π^Δ (``asap finetune method=inverse``): ours, not the paper's recipe.

The aligned simulator steps the training simulator with ``q* + s Δa(x, q*)`` for the joint targets q* a policy sends
(s = the model's ``delta_scale``, x the state; :mod:`asap.delta.aligned`). A policy that sends the q' with

    q' + s Δa(x, q') = q*_pre(x),

the target the *pretrained* policy sends in state x, makes the aligned simulator apply exactly what the pretrained
policy applies in its own simulator: in the aligned simulator it tracks as the pretrained policy tracks there. q' is
the fixed point of ``q <- q*_pre - s Δa(x, q)``, reached by a few iterations from q*_pre (:func:`inverse_targets`;
the iteration converges while Δa changes by less than the action does, which holds for a weaker actuator: the exact
Δa of ankle Kp x0.65 changes by 0.35 per unit of action). It changes only the joints π^Δ drives.

That teacher (the pretrained policy composed with the inverse π^Δ) needs π^Δ at run time; the fine-tuned policy
does not: it is the pretrained actor trained to imitate the teacher on the states it visits itself in the aligned
simulator (DAgger, Ross et al. 2011: the executed action is the teacher's in a share of the envs that falls from 1
to 0 over the first iterations, the student's after), so the policy that is deployed, as with PPO fine-tuning, is
one network without π^Δ. Where PPO fine-tuning re-optimises the tracking reward from the pretrained policy (and
drifts from its precision, docs/delta.md), this one keeps the pretrained policy's behaviour and changes only what
π^Δ says the target robot needs.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

from asap.delta.aligned import AlignedSimulator
from envs.tracking.env import TrackingEnv


@dataclass
class InverseConfig:
    """``asap finetune method=inverse``: the teacher's fixed-point iterations and the DAgger regression."""

    iterations: int = 2
    """Fixed-point iterations of ``q <- q*_pre - s Δa(x, q)`` from q*_pre (1: the first-order correction; the demo's
    π^Δ: 1-3 track the ankle_weak target at 31-33 mm, 10 diverge)."""
    teacher_share_iterations: int = 20
    """DAgger: the share of envs executing the teacher's action falls linearly from 1 to 0 over these iterations."""
    epochs: int = 4
    """Passes over the dataset per iteration."""
    num_mini_batches: int = 4
    """Minibatches per pass."""
    buffer_rollouts: int = 8
    """Rollouts kept in the dataset (the newest; each is num_steps_per_env x num_envs labelled observations)."""
    learning_rate: float = 3e-4
    """Adam learning rate of the imitation (fixed)."""


RESIDUAL_WARN = 0.1
"""rad: an inverse residual above this after the first rollout is reported (π^Δ has no usable inverse there)."""


def residual_warning(residual: float, iterations: int) -> str | None:
    """The one-line warning for a mean inverse residual (rad, :meth:`InverseDeltaTeacher.take_residual`) above
    :data:`RESIDUAL_WARN`, else None."""
    if residual <= RESIDUAL_WARN:
        return None
    return (f"warning: the inverse of π^Δ leaves {residual:.2f} rad after {iterations} iteration(s): its Δa changes "
            "with the action about as fast as the action does, so the aligned simulator cannot be steered to the "
            "pretrained targets; check `sens` in scripts/bench_delta_transfer.py (docs/delta.md, \"Fine-tuning "
            "through the inverse of π^Δ\")")  # fmt: skip


def inverse_targets(sim: AlignedSimulator, wanted: torch.Tensor, iterations: int) -> torch.Tensor:
    """(N, J) joint targets q' (rad) that the aligned simulator turns into ``wanted`` (N, J) rad in its current state:
    ``iterations`` (>= 1) steps of ``q <- wanted - s Δa(x, q)`` from ``wanted`` (s = the model's ``delta_scale``; Δa
    with the per-env mask and scale, as :meth:`AlignedSimulator.step` applies it). Raises ``ValueError`` for
    ``iterations`` < 1."""
    if iterations < 1:
        raise ValueError(f"inverse iterations must be >= 1, got {iterations}")
    q = wanted
    for _ in range(iterations):
        q = wanted - sim.meta.delta_scale * sim.delta_for(q)[1]
    return q


class InverseDeltaTeacher:
    """Labels for the policy's observations: the actions whose targets are the pretrained policy's targets through
    the inverse π^Δ (module docstring), in the env's current state. ``actor`` is a frozen copy of the pretrained
    actor (rsl-rl model: TensorDict observations -> mean actions).

    The pretrained policy is shown its *own* previous actions: the observation's last-action term and action history
    (the student's, i.e. the compensated actions the env executed) are replaced by the pretrained actions of the
    episode's previous steps, which the teacher keeps. Then, with an exact inverse, the pretrained policy sees in the
    aligned simulator exactly the observations it would see in its own simulator (without the replacement it reacts
    to the compensation as if it were its own action, and falls where it would not)."""

    def __init__(self, env: TrackingEnv, sim: AlignedSimulator, actor: Any, iterations: int) -> None:
        if not isinstance(sim, AlignedSimulator):
            raise ValueError("method=inverse needs a delta model (--delta delta.pt or oracle:<gap.yaml>)")
        self.env, self.sim, self.iterations = env, sim, int(iterations)
        self.actor = actor.eval().requires_grad_(False)
        layout, j = env.obs_builder.layout, env.num_actions
        now = {t: o for t, o, _ in layout.table("actor", j)}
        past = {t: o for t, o, _ in layout.history_table("actor", j)}
        if "actions" not in now:
            raise ValueError(f"observation layout {layout.name!r} has no last-action term for the teacher to replace")
        self.columns = torch.arange(now["actions"], now["actions"] + j)
        """Actor-observation columns of the last action (J), then of its history (H x J, newest first), if any."""
        self.history = layout.history_length if "actions" in past else 0
        if self.history:
            hist = torch.arange(past["actions"], past["actions"] + self.history * j)
            self.columns = torch.cat([self.columns, hist])
        self.own = torch.zeros(env.num_envs, 1 + self.history, j, device=env.device)
        """(N, 1 + H, J) the pretrained actions of the episode's last 1 + H steps (newest first; 0 before its start)."""

        self.residuals: list[float] = []
        """Per call: the largest |q' + s Δa(x, q') - q*_pre| (rad) the inverse left (:meth:`take_residual`)."""

    @torch.no_grad()
    def __call__(self, obs: TensorDict) -> torch.Tensor:
        """(N, J) teacher actions (policy units) for the observations ``obs`` of the env's current state."""
        self.own[self.env.episode_length_buf == 0] = 0.0  # a new episode: no previous actions (as the env's own)
        seen = obs.clone()
        x = seen["actor"]
        x[:, self.columns.to(x.device)] = self.own.reshape(x.shape[0], -1)
        a, _, wanted = self.env.shaped_targets(self.actor(seen))
        self.own = torch.cat([a[:, None], self.own[:, :-1]], dim=1)
        q = inverse_targets(self.sim, wanted, self.iterations)
        applied = q + self.sim.meta.delta_scale * self.sim.delta_for(q)[1]
        self.residuals.append(float((applied - wanted).abs().amax(dim=-1).mean()))
        return self.env.actions_for_targets(q)

    def take_residual(self) -> float:
        """Mean over the calls since the last take of the per-env largest inverse residual (rad), then forget them:
        near 0 when the fixed point converged; one that stays large says π^Δ's Δa changes with the action as fast as
        the action does (no inverse: the aligned simulator ignores the command; docs/delta.md)."""
        r = sum(self.residuals) / max(1, len(self.residuals))
        self.residuals = []
        return r


class InverseDistillation:
    """The rsl-rl algorithm the :class:`asap.rl.runner.Trainer` drives, turned into DAgger on a teacher's labels:
    :meth:`act` labels each observation and executes the teacher's or the student's (deterministic) action,
    :meth:`update` regresses the actor on the newest ``buffer_rollouts`` rollouts. Everything else (networks,
    checkpoints, export) is the wrapped algorithm's; the critic and the observation normaliser stay as loaded."""

    def __init__(self, alg: Any, teacher: InverseDeltaTeacher, cfg: InverseConfig, seed: int = 0) -> None:
        self.alg, self.teacher, self.cfg = alg, teacher, cfg
        self.optimizer_actor = torch.optim.Adam(alg.actor.parameters(), lr=cfg.learning_rate)
        self.data: collections.deque[tuple[TensorDict, torch.Tensor]] = collections.deque(maxlen=cfg.buffer_rollouts)
        self._rollout: list[tuple[TensorDict, torch.Tensor]] = []
        self.iteration = 0
        """Updates done (the teacher's share of executed actions follows it)."""
        self.gen = torch.Generator().manual_seed(seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.alg, name)

    @property
    def learning_rate(self) -> float:
        """The imitation's learning rate (for the logger)."""
        return self.cfg.learning_rate

    def teacher_share(self) -> float:
        """Share of envs executing the teacher's action this iteration (1 falling linearly to 0)."""
        n = self.cfg.teacher_share_iterations
        return 0.0 if n <= 0 else max(0.0, 1.0 - self.iteration / n)

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Label ``obs`` with the teacher and return the actions to execute (N, J)."""
        label = self.teacher(obs)
        actor = self.alg.actor
        out = actor.mlp(actor.get_latent(obs))
        student = out
        if actor.distribution is not None:  # keep the distribution current (the logger reads its std), act on the mean
            actor.distribution.update(out)
            student = actor.distribution.deterministic_output(out)
        self._rollout.append((obs.clone(), label.clone()))
        share = self.teacher_share()
        if share <= 0:
            return student
        pick = (torch.rand(label.shape[0], 1, generator=self.gen) < share).to(label.device)
        return torch.where(pick, label, student)

    def process_env_step(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to store beyond what :meth:`act` kept (no rewards or values: imitation)."""

    def compute_returns(self, obs: TensorDict) -> None:
        """No returns (imitation)."""

    def update(self) -> dict[str, float]:
        """Regress the actor's mean action on the labels of the kept rollouts; returns ``distill`` (the mean squared
        error, policy units, before this update's steps), ``teacher_share``, ``inverse_residual`` (rad, from
        :meth:`InverseDeltaTeacher.take_residual`) and ``value`` (NaN: no critic update)."""
        if self._rollout:
            obs = torch.cat([o for o, _ in self._rollout]).clone()  # plain tensors (the rollout ran in inference mode)
            labels = torch.cat([y for _, y in self._rollout]).clone()
            self.data.append((obs, labels))
            self._rollout = []
        obs = torch.cat([o for o, _ in self.data])
        labels = torch.cat([y for _, y in self.data])
        actor = self.alg.actor
        with torch.no_grad():
            before = float((actor(obs) - labels).pow(2).mean())
        n = labels.shape[0]
        for _ in range(max(1, self.cfg.epochs)):
            for idx in torch.randperm(n, generator=self.gen).chunk(max(1, min(self.cfg.num_mini_batches, n))):
                idx = idx.to(labels.device)
                loss = (actor(obs[idx]) - labels[idx]).pow(2).mean()
                self.optimizer_actor.zero_grad()
                loss.backward()
                if getattr(self.alg, "is_multi_gpu", False):
                    self.alg.reduce_parameters()
                torch.nn.utils.clip_grad_norm_(actor.parameters(), self.alg.max_grad_norm)
                self.optimizer_actor.step()
        share = self.teacher_share()
        residual = self.teacher.take_residual()
        if self.iteration == 0 and (msg := residual_warning(residual, self.teacher.iterations)):
            print(msg, flush=True)
        self.iteration += 1
        return {
            "distill": before,
            "teacher_share": share,
            "inverse_residual": residual,
            "value": math.nan,
        }
