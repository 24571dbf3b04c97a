"""Reward terms as data: a task declares ``{name: {"weight": w, <params>}}`` in its config and
:class:`RewardTable` evaluates the named functions of :data:`REWARD_TERMS` with those parameters.

Adding a term is one function here plus one config entry; no env code changes. Each function takes a
:class:`TermContext` and keyword parameters (sigmas, inner weights) and returns an (N,) tensor: tracking terms in
(0, 1], penalties as non-negative magnitudes (their weights are negative). Weights are multiplied by dt when the
task asks (the reference scales every reward by dt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from asap.motion.motionlib import MotionState
from asap.sim.state import SimState
from envs.tracking import rewards as R


@dataclass
class TermContext:
    """Everything a reward term may read at one control step (N envs, J joints, 27 bodies)."""

    state: SimState
    """The simulator's state after the step."""
    ref: MotionState
    """The state to track at this instant (the reference clip, or the logged trajectory for the delta task)."""
    actions: torch.Tensor
    """(N, A) the task's own action this step (policy action, or Δa for the delta task)."""
    last_actions: torch.Tensor
    """(N, A) the task's action of the previous step."""
    upper_mask: torch.Tensor
    """(27,) bool, upper-body tracked points."""
    vr_idx: torch.Tensor
    """(3,) hands + head indices."""
    feet_idx: torch.Tensor
    """(2,) ankle-roll link indices."""
    pos_lower: torch.Tensor
    """(J,) joint position lower limits, rad."""
    pos_upper: torch.Tensor
    """(J,) joint position upper limits, rad."""
    vel_limit: torch.Tensor
    """(J,) joint velocity limits, rad/s."""
    effort_limit: torch.Tensor
    """(J,) torque limits, N m."""
    root_trust: dict[str, torch.Tensor] | None = None
    """Per env (N,) bool, whether the reference's root can be trusted for a quantity of
    :data:`asap.root_source.QUANTITIES` (None: for everything, e.g. a retargeted clip). Terms on an untrusted
    quantity fall back to a root-relative form (:data:`ROOT_RELATIVE`) or are switched off (:data:`TERM_QUANTITY`)."""
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    """Intermediate results several terms share within this step (filled on first use; see :func:`shared`)."""


def shared(c: TermContext, key: str, make: Callable[[], Any]) -> Any:
    """``make()`` computed once per context under ``key`` (e.g. the body position errors three terms use)."""
    if key not in c.cache:
        c.cache[key] = make()
    return c.cache[key]


_SPLITS: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _mask_split(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices where ``mask``, indices where not) of a (B,) bool mask, computed once per mask tensor."""
    hit = _SPLITS.get(id(mask))
    if hit is None or hit[0] is not mask:
        if len(_SPLITS) > 32:
            _SPLITS.clear()
        hit = _SPLITS[id(mask)] = (mask, mask.nonzero().flatten(), (~mask).nonzero().flatten())
    return hit[1], hit[2]


_SOFT: dict[tuple[int, int, float], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _soft_range(lower: torch.Tensor, upper: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`envs.tracking.rewards.soft_range`, computed once per (limits, fraction)."""
    key = (id(lower), id(upper), float(fraction))
    hit = _SOFT.get(key)
    if hit is None or hit[0] is not lower or hit[1] is not upper:
        if len(_SOFT) > 64:
            _SOFT.clear()
        hit = _SOFT[key] = (lower, upper, *R.soft_range(lower, upper, fraction))
    return hit[2], hit[3]


TERM_QUANTITY: dict[str, str] = {
    "body_pos": "global_position", "vr_3point": "global_position", "feet_pos": "global_position",
    "body_vel": "linear_velocity", "body_rot": "orientation", "body_ang_vel": "orientation",
    "joint_pos": "joints", "joint_vel": "joints",
}  # fmt: skip
"""Tracking term -> what of the reference's root it relies on (:data:`asap.root_source.QUANTITIES`)."""
ROOT_RELATIVE = frozenset({"body_pos", "vr_3point", "feet_pos", "body_vel"})
"""Terms that compare root-relative quantities (body position minus root position, body velocity minus root velocity,
world-aligned axes) for the envs whose reference root is not trusted for their quantity; the others are zeroed."""


def _trusted(c: TermContext, quantity: str) -> torch.Tensor | None:
    return None if c.root_trust is None else c.root_trust.get(quantity)


def _positions(c: TermContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(sim, ref) body positions (N, B, 3): global, or relative to each one's root where global is not trusted."""
    ok = _trusted(c, "global_position")
    sim, ref = c.state.body_pos, c.ref.body_pos
    if ok is None or bool(ok.all()):
        return sim, ref
    keep = ok[:, None, None]
    sim = torch.where(keep, sim, sim - c.state.root_pos[:, None])
    return sim, torch.where(keep, ref, ref - c.ref.root_pos[:, None])


def _body_vel(c: TermContext, sigma: float = 1.0) -> torch.Tensor:
    ok = _trusted(c, "linear_velocity")
    sim, ref = c.state.body_lin_vel, c.ref.body_lin_vel
    if ok is not None and not bool(ok.all()):
        keep = ok[:, None, None]
        sim = torch.where(keep, sim, sim - c.state.root_lin_vel[:, None])
        ref = torch.where(keep, ref, ref - c.ref.root_lin_vel[:, None])
    return R.body_velocity(sim, ref, sigma)


def _position_errors(c: TermContext) -> torch.Tensor:
    """(N, B, 3) ref - sim body positions of :func:`_positions`, once per step (body_pos, vr_3point, feet_pos)."""

    def make() -> torch.Tensor:
        sim, ref = _positions(c)
        return ref - sim

    return shared(c, "position_errors", make)


def _body_pos(c: TermContext, sigma_upper: float = 0.03, sigma_lower: float = 0.1, weight_upper: float = 1.0,
              weight_lower: float = 0.5) -> torch.Tensor:  # fmt: skip
    up, low = _mask_split(c.upper_mask)
    return R.body_position_extend_diff(_position_errors(c), up, low, sigma_upper, sigma_lower, weight_upper,
                                       weight_lower)  # fmt: skip


def _subset(c: TermContext, idx: torch.Tensor, sigma: float) -> torch.Tensor:
    # ref[:, idx] - sim[:, idx] of body_position_subset is (ref - sim)[:, idx], elementwise the same values
    return torch.exp(-R.mse(_position_errors(c)[:, idx]) / sigma)


def _feet_orientations(c: TermContext) -> torch.Tensor:
    return shared(c, "feet_quat", lambda: c.state.body_quat[:, c.feet_idx])


def _action_norm(c: TermContext) -> torch.Tensor:
    """exp(||a||_2) - 1 (asap-method.md section 5.2 ``penalty_minimal_action_norm``), clamped against overflow."""
    return torch.expm1(c.actions.norm(dim=-1).clamp(max=20.0))


REWARD_TERMS: dict[str, Callable[..., torch.Tensor]] = {
    "body_pos": _body_pos,
    "vr_3point": lambda c, sigma=0.03: _subset(c, c.vr_idx, sigma),
    "feet_pos": lambda c, sigma=0.03: _subset(c, c.feet_idx, sigma),
    "body_rot": lambda c, sigma=1.0: R.body_rotation(c.state.body_quat, c.ref.body_quat, sigma),
    "body_vel": _body_vel,
    "body_ang_vel": lambda c, sigma=1.0: R.body_velocity(c.state.body_ang_vel, c.ref.body_ang_vel, sigma),
    "joint_pos": lambda c, sigma=1.0: R.joint_tracking(c.state.q, c.ref.dof_pos, sigma),
    "joint_vel": lambda c, sigma=1.0: R.joint_tracking(c.state.qd, c.ref.dof_vel, sigma),
    "torques": lambda c: R.torques(c.state.tau),
    "action_rate": lambda c: R.action_rate(c.actions, c.last_actions),
    "action_norm": _action_norm,
    "feet_ori": lambda c: R.feet_orientation(_feet_orientations(c)),
    "feet_heading": lambda c: R.feet_heading(_feet_orientations(c), c.state.root_quat),
    "slippage": lambda c, threshold=1.0: R.slippage(c.state.body_lin_vel[:, c.feet_idx], c.state.feet_force, threshold),
    "limits_dof_pos": lambda c, soft=1.0: R.dof_pos_limits(c.state.q, *_soft_range(c.pos_lower, c.pos_upper, soft)),
    "limits_dof_vel": lambda c, soft=1.0: R.magnitude_limits(c.state.qd, c.vel_limit, soft),
    "limits_torque": lambda c, soft=1.0: R.magnitude_limits(c.state.tau, c.effort_limit, soft),
}
"""Term name -> function(context, **params) -> (N,)."""


class RewardTable:
    """A task's reward: ``{name: {"weight": w, **params}}`` over :data:`REWARD_TERMS` (zero weights skipped)."""

    def __init__(self, table: dict[str, dict[str, Any]], dt: float, scale_by_dt: bool = True) -> None:
        unknown = sorted(set(table) - set(REWARD_TERMS))
        if unknown:
            raise ValueError(f"unknown reward terms {unknown}; known: {sorted(REWARD_TERMS)}")
        self.terms: dict[str, tuple[float, dict[str, Any]]] = {}
        for name, entry in table.items():
            if "weight" not in entry:
                raise ValueError(f"reward term {name!r} has no weight")
            w = float(entry["weight"]) * (dt if scale_by_dt else 1.0)
            if w != 0.0:
                self.terms[name] = (w, {k: v for k, v in entry.items() if k != "weight"})

    def __call__(
        self, ctx: TermContext, params: dict[str, dict[str, Any]] | None = None, scales: dict[str, float] | None = None
    ) -> dict[str, torch.Tensor]:
        """Weighted (N,) value of every term.

        ``params`` overrides a term's parameters for this call (curricula: the soft-limit fractions); ``scales``
        multiplies a term's weight for this call (curricula: the penalty factor).
        """
        params, scales = params or {}, scales or {}
        out = {}
        for name, (w, p) in self.terms.items():
            kw = {**p, **params[name]} if name in params else p
            v = (w * scales.get(name, 1.0)) * REWARD_TERMS[name](ctx, **kw)
            ok = _trusted(ctx, TERM_QUANTITY.get(name, ""))
            if ok is not None and name not in ROOT_RELATIVE:
                v = v * ok.to(v.dtype)  # a term on a quantity the reference's root cannot be trusted for
            out[name] = v
        return out


def episode_reward_means(
    sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], done: torch.Tensor, lengths: torch.Tensor, dt: float
) -> dict[str, torch.Tensor]:
    """Add this step's (N,) term values to the running per-episode ``sums`` (updated in place) and return, for the
    envs that ended (``done``), each term's mean reward per second over their episodes (``rew_<term>``; empty when
    none ended). ``lengths`` (N,) are the episodes' step counts. The envs zero ``sums`` of the envs they reset."""
    for k, v in terms.items():
        sums.setdefault(k, torch.zeros_like(v))
        sums[k] += v
    ended = done.nonzero().flatten()
    if ended.numel() == 0:
        return {}
    steps = lengths[ended].float().clamp(min=1)
    return {f"rew_{k}": (v[ended] / steps).mean() / dt for k, v in sums.items()}


class EpisodeSums:
    """Running per-episode sums of a task's (N,) reward terms, kept as one (T, N) array: a step adds every term in
    one operation and a reset zeroes every term of the reset envs in one; the same values as
    :func:`episode_reward_means` on a dict of sums."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        """Term names, in the order of the rows of :attr:`sums`."""
        self.sums: torch.Tensor | None = None
        """(T, N) sum of each term over each env's current episode."""

    def add(self, terms: dict[str, torch.Tensor], done: torch.Tensor, lengths: torch.Tensor, dt: float
            ) -> dict[str, torch.Tensor]:  # fmt: skip
        """Add this step's terms; return each term's mean reward per second over the episodes that ended
        (``done`` (N,) bool, ``lengths`` (N,) their step counts), as ``rew_<term>`` (empty when none ended)."""
        names = tuple(terms)
        if names != self.names or self.sums is None:
            old = dict(zip(self.names, self.sums, strict=True)) if self.sums is not None else {}
            first = next(iter(terms.values()))
            self.sums = torch.stack([old.get(k, torch.zeros_like(first)) for k in names])
            self.names = names
        self.sums += torch.stack(list(terms.values()))
        ended = done.nonzero().flatten()
        if ended.numel() == 0:
            return {}
        steps = lengths[ended].float().clamp(min=1)
        means = (self.sums[:, ended] / steps).mean(dim=1) / dt
        return {f"rew_{k}": means[i] for i, k in enumerate(self.names)}

    def reset(self, env_ids: torch.Tensor) -> None:
        """Zero the sums of the given envs (their episodes restart)."""
        if self.sums is not None:
            self.sums[:, env_ids] = 0
