"""PPO with separate actor and critic optimisers (as the reference), on top of rsl-rl-lib's PPO.

rsl-rl's PPO drives one Adam over both networks with the adaptive-KL learning rate. The reference keeps two Adams:
the KL schedule adapts the actor's learning rate only, while the critic keeps its own fixed rate (a KL-driven rate
of 1e-5..1e-4 would starve a shared critic). :class:`SplitPPO` swaps in a two-optimiser object that rsl-rl's
update loop drives unchanged: its ``param_groups`` are the actor's, so the schedule touches the actor only.

It can also keep the deterministic policy smooth in time (``smoothness_coef``): after each PPO update, one pass
over the rollout's consecutive observation pairs minimises the squared change of the actor's mean action from one
step to the next (the temporal term of CAPS, Mysore et al. 2021, "Regularizing Action Policies for Smooth Control
with Reinforcement Learning"). Unlike an action-rate reward, which mostly penalises the sampled exploration noise,
it acts on the mean that is deployed and leaves exploration alone.

And it can keep the actor near where it started (``anchor_coef``): a frozen copy of the actor taken at the first
update (when fine-tuning: the loaded pretraining checkpoint, with its observation normaliser) and one pass after each
update that shrinks the squared distance of the mean action from the copy's on the rollout's observations -- a
behaviour-cloning regulariser that lets PPO change the policy where the return asks for it and holds it elsewhere.
The anchor may leave some joints free (``anchor_weights`` 0, from ``ppo.anchor_free_joints``): a fine-tuning for a
gap in the ankles' actuators then changes the ankle actions while the anchor holds every other joint's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from rsl_rl.algorithms import PPO


class SplitOptimizer:
    """Two Adam optimisers behind the small optimizer interface PPO.update uses."""

    def __init__(self, actor_params: Any, critic_params: Any, lr: float, critic_lr: float) -> None:
        self.actor = torch.optim.Adam(actor_params, lr=lr)
        self.critic = torch.optim.Adam(critic_params, lr=critic_lr)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The actor's parameter groups (the adaptive schedule writes their learning rate)."""
        return self.actor.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear both networks' gradients."""
        self.actor.zero_grad(set_to_none=set_to_none)
        self.critic.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """One Adam step on each network."""
        self.actor.step()
        self.critic.step()

    def state_dict(self) -> dict[str, Any]:
        """Both optimisers' states."""
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore both states (a single-optimiser state from plain rsl-rl is rejected with a clear message)."""
        if "actor" not in state or "critic" not in state:
            raise ValueError("checkpoint optimizer state is not a split (actor/critic) state; load without it")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])


def set_action_std(actor: Any, std: float) -> None:
    """Set the exploration standard deviation of an rsl-rl actor with a Gaussian head (scalar or log
    parameterisation) to ``std`` on every action dimension (policy units). Raises ``ValueError`` for std <= 0 or
    an actor without a Gaussian head."""
    if std <= 0:
        raise ValueError(f"action std must be > 0, got {std}")
    d = getattr(actor, "distribution", None)
    with torch.no_grad():
        if hasattr(d, "std_param"):
            d.std_param.fill_(std)
        elif hasattr(d, "log_std_param"):
            d.log_std_param.fill_(math.log(std))
        else:
            raise ValueError("the actor has no Gaussian action distribution whose std could be set")


def temporal_smoothness(means: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
    """Mean squared step-to-step change of the policy's mean action within episodes.

    ``means``: (T, N, A) mean actions of a rollout (policy units); ``dones``: (T, N) or (T, N, 1), nonzero where the
    episode ended at that step (the next observation then belongs to a new episode and the pair is skipped).
    Returns a scalar: the mean over valid pairs of mean_a (μ_{t+1} − μ_t)²; zero when no pair is valid.
    """
    keep = (dones.reshape(dones.shape[0], dones.shape[1])[:-1] == 0).to(means.dtype)
    sq = (means[1:] - means[:-1]).pow(2).mean(dim=-1)
    return (sq * keep).sum() / keep.sum().clamp(min=1.0)


def anchor_weights_tensor(weights: list[float] | None, device: Any) -> torch.Tensor | None:
    """(A,) float tensor of per-action anchor weights, or None for ``None``. Raises ``ValueError`` (one line) when
    every weight is zero (an anchor that holds nothing: leave ``anchor_coef`` at 0 instead) or one is negative."""
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=torch.float32, device=device)
    if bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError("anchor weights must be >= 0 with at least one > 0: an anchor that frees every joint holds "
                         "nothing (set ppo.anchor_coef=0 instead)")  # fmt: skip
    return w


def anchor_distance(mean: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared distance (policy units) of mean actions ``mean`` from the anchor's ``target`` (both (..., A)).

    With ``weights`` (A,), each action dimension counts by its weight and the result is normalised by their sum, so
    dimensions of weight 0 (joints the anchor leaves free) neither pull nor dilute the others; without, the plain
    mean over every dimension (the same value as weights of all ones)."""
    sq = (mean - target).pow(2)
    if weights is None:
        return sq.mean()
    return (sq * weights).sum(dim=-1).mean() / weights.sum()


class SplitPPO(PPO):
    """rsl-rl PPO with separate actor/critic Adam optimisers; ``critic_learning_rate`` stays fixed; optional
    temporal smoothness of the actor's mean (``smoothness_coef``, see module docstring)."""

    def __init__(
        self, *args: Any, critic_learning_rate: float = 1e-3, smoothness_coef: float = 0.0,
        anchor_coef: float = 0.0, anchor_weights: list[float] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.critic_learning_rate = critic_learning_rate
        self.smoothness_coef = smoothness_coef
        self.anchor_coef = anchor_coef
        self.anchor_weights = anchor_weights_tensor(anchor_weights, self.device)
        """(A,) weight of each action dimension in the anchor distance (0: free), or None for all held alike."""
        self.anchor: Any = None
        """Frozen copy of the actor the anchor pass pulls towards (taken at the first update)."""
        self.optimizer = SplitOptimizer(  # type: ignore[assignment]
            self.actor.parameters(), self.critic.parameters(), self.learning_rate, critic_learning_rate
        )

    def update(self) -> dict[str, float]:
        """rsl-rl's PPO update, then the smoothness pass (``smoothness_coef`` > 0) and the anchor pass
        (``anchor_coef`` > 0; the first update freezes the anchor); adds ``smoothness`` (the mean squared
        step-to-step change of the mean action before the pass) and ``anchor`` (the mean squared distance of the mean
        action from the anchor's before the pass) to the loss dict."""
        if self.anchor_coef > 0 and self.anchor is None:
            self.set_anchor()
        losses = super().update()
        if self.smoothness_coef > 0:
            losses["smoothness"] = self._smoothness_pass()
        if self.anchor_coef > 0:
            losses["anchor"] = self._anchor_pass()
        return losses

    def set_anchor(self, state: dict[str, Any] | None = None) -> None:
        """Freeze a copy of the actor as the anchor (``anchor_coef``), with the weights and normaliser of ``state`` (an
        actor state dict, e.g. from a checkpoint) or, without it, the actor's current ones."""
        anchor = copy.deepcopy(self.actor).eval().requires_grad_(False)
        if state is not None:
            anchor.load_state_dict(state)
        self.anchor = anchor

    def _actor_pass(self, coef: float, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """One epoch over the rollout just used (rsl-rl's ``storage.clear`` only rewinds its cursor), envs split into
        ``num_mini_batches`` groups, one actor Adam step per group on ``coef`` x ``loss_of(env indices)``; returns the
        mean loss before the steps."""
        dones = self.storage.dones
        n = dones.shape[1]
        groups = torch.randperm(n, device=dones.device).chunk(max(1, min(self.num_mini_batches, n)))
        total = 0.0
        for idx in groups:
            loss = loss_of(idx)
            self.optimizer.actor.zero_grad()
            (coef * loss).backward()
            if self.is_multi_gpu:
                self.reduce_parameters()
            torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.max_grad_norm)
            self.optimizer.actor.step()
            total += float(loss.detach())
        return total / len(groups)

    def _smoothness_pass(self) -> float:
        """:meth:`_actor_pass` on :func:`temporal_smoothness` of the actor's mean actions."""
        obs, dones = self.storage.observations, self.storage.dones
        return self._actor_pass(
            self.smoothness_coef, lambda idx: temporal_smoothness(self.actor(obs[:, idx]), dones[:, idx])
        )

    def _anchor_pass(self) -> float:
        """:meth:`_actor_pass` on :func:`anchor_distance` of the actor's mean action from the anchor's (weighted by
        ``anchor_weights``: joints left free do not count)."""
        obs = self.storage.observations

        def distance(idx: torch.Tensor) -> torch.Tensor:
            o = obs[:, idx]
            with torch.no_grad():
                target = self.anchor(o)
            return anchor_distance(self.actor(o), target, self.anchor_weights)

        return self._actor_pass(self.anchor_coef, distance)
