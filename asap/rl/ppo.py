"""PPO with separate actor and critic optimisers (as the reference), on top of rsl-rl-lib's PPO.

rsl-rl's PPO drives one Adam over both networks with the adaptive-KL learning rate. The reference keeps two Adams:
the KL schedule adapts the actor's learning rate only, while the critic keeps its own fixed rate (a KL-driven rate
of 1e-5..1e-4 would starve a shared critic). :class:`SplitPPO` swaps in a two-optimiser object that rsl-rl's
update loop drives unchanged: its ``param_groups`` are the actor's, so the schedule touches the actor only.
"""

from __future__ import annotations

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


class SplitPPO(PPO):
    """rsl-rl PPO with separate actor/critic Adam optimisers; ``critic_learning_rate`` stays fixed."""

    def __init__(self, *args: Any, critic_learning_rate: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.critic_learning_rate = critic_learning_rate
        self.optimizer = SplitOptimizer(  # type: ignore[assignment]
            self.actor.parameters(), self.critic.parameters(), self.learning_rate, critic_learning_rate
        )
