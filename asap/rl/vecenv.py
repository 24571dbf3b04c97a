"""Adapter from :class:`envs.tracking.env.TrackingEnv` to rsl-rl's ``VecEnv`` interface."""

from __future__ import annotations

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from envs.tracking.env import TrackingEnv


class RslTrackingEnv(VecEnv):
    """rsl-rl view of a tracking env: TensorDict observations {actor, critic}, time-outs and log scalars."""

    def __init__(self, env: TrackingEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = env.num_actions
        self.max_episode_length = env.max_episode_length
        self.device = env.device
        self.cfg = env.cfg  # a dataclass: rsl-rl's W&B writer calls dataclasses.asdict on it

    @property
    def episode_length_buf(self) -> torch.Tensor:  # type: ignore[override]
        """Steps into the current episode per env."""
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        # rsl-rl may randomise it (init_at_random_ep_len); the tracking env's time comes from its own counter,
        # so this is accepted but kept consistent with the motion clock by ignoring it.
        pass

    def _td(self, obs: dict[str, torch.Tensor]) -> TensorDict:
        return TensorDict(dict(obs), batch_size=[self.num_envs], device=self.device)

    def get_observations(self) -> TensorDict:
        """Current observations."""
        return self._td(self.env.get_observations())

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """One control step in rsl-rl's format."""
        obs, info = self.env.step(actions)
        log: dict[str, float | torch.Tensor] = {}
        for k, v in getattr(self.env, "_ended_stats", {}).items():
            log[f"Episode_Reward/{k[4:]}" if k.startswith("rew_") else f"Episode/{k}"] = v
        if info.done.any():
            log["Episode/terminated_frac"] = info.terminated[info.done].float().mean()
        extras = {"time_outs": info.time_out, "log": log}
        return self._td(obs), info.reward, info.done.to(torch.long), extras
