"""The open-loop delta-action task (ASAP stage 3, asap-method.md section 5.2).

Data: logged Motions with ``action`` at the control rate (one frame per control step; frame f holds the state s_f
and the action a_f applied from s_f, :mod:`asap.motion.alignment`). An episode is a window of ``window_s`` seconds
starting at a random frame f0 of a logged segment: the simulator is put in the logged state s_f0, and each step k
(frame f = f0 + k) applies the *logged* action a_f, shaped into joint targets exactly as the robot runtime shaped
it, plus ``delta_scale * Δa`` (:func:`asap.delta.model.apply_delta`); the reward compares the simulated state with
the logged s_{f+1} (Table II terms). π^Δ observes s_f and the applied action a_f (:mod:`asap.delta.obs`).

Each logged clip's root source (``Motion.meta["root_source"]``) decides which terms it is scored on
(:data:`asap.root_source.ROOT_TRUST`): a clip whose root is not trusted for global position (the proprioceptive
estimate) is scored on root-relative body positions instead of global ones
(:data:`envs.common.reward_terms.ROOT_RELATIVE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from asap.control import TargetShaping, shape_targets
from asap.delta import obs as dobs
from asap.delta.model import DeltaMeta, apply_delta, expand_delta
from asap.motion.motionlib import MotionLib, MotionState
from asap.robot.spec import FEET, VR_3POINT
from asap.root_source import QUANTITIES, trusted
from asap.sim.base import Simulator
from asap.sim.state import SimState
from envs.common.reward_terms import EpisodeSums, RewardTable, TermContext
from envs.common.state import has_fused_read, read_sim_state
from envs.delta.config import DeltaEnvConfig
from envs.tracking.env import TrackingStepResult


class DeltaEnv:
    """N envs replaying logged windows through ``sim`` with Δa from the policy being trained (see module doc)."""

    def __init__(
        self, cfg: DeltaEnvConfig, sim: Simulator, logs: MotionLib, shaping: TargetShaping,
        root_sources: Sequence[str | None] | None = None,
    ) -> None:  # fmt: skip
        """``root_sources``: each clip's ``meta["root_source"]`` in ``logs``' order (None: all trusted)."""
        if not logs.has_action:
            raise ValueError("every delta-training motion must carry 'action' (a log from `asap collect`)")
        self.cfg, self.sim, self.logs = cfg, sim, logs
        self._fused_read = has_fused_read(sim)
        self.spec = sim.spec
        self.device = sim.device
        self.num_envs = sim.num_envs
        self.dt = float(sim.control_dt)
        fps = logs.motion_fps
        if not torch.allclose(fps, torch.full_like(fps, 1.0 / self.dt), rtol=1e-4):
            raise ValueError(f"delta-training logs must be at the control rate {1 / self.dt:g} fps, got "
                             f"{sorted(set(fps.tolist()))}: re-export them with `asap collect`")  # fmt: skip
        self.meta = DeltaMeta.for_variant(sim.cfg.variant, cfg.joints, cfg.obs_scope)
        self._columns = None if self.meta.obs_scope == "full" else self.meta.input_columns().to(self.device)
        self.num_actions = len(self.meta.joints)
        self.num_joints = sim.num_joints
        self.window = max(1, int(round(cfg.window_s / self.dt)))
        self.max_episode_length = self.window
        self.shaping = shaping
        """How the runtime turned the logged actions into targets (read from the logs' metadata)."""
        dev, n, j = self.device, self.num_envs, self.num_joints
        f32 = {"device": dev, "dtype": torch.float32}
        self.default_pos = torch.as_tensor(self.spec.default_pos, **f32)
        self.action_scale = float(self.spec.action_scale)
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(cfg.seed)
        self.rewards = RewardTable(cfg.rewards, self.dt, cfg.scale_by_dt)
        self.upper_mask = torch.as_tensor(self.spec.upper_body_mask, device=dev)
        self.vr_idx = torch.as_tensor(self.spec.body_index(VR_3POINT), device=dev)
        self.feet_idx = torch.as_tensor(self.spec.body_index(FEET), device=dev)
        self.limits = {
            "pos_lower": torch.as_tensor(self.spec.pos_lower, **f32),
            "pos_upper": torch.as_tensor(self.spec.pos_upper, **f32),
            "vel_limit": torch.as_tensor(self.spec.velocity_limit, **f32),
            "effort_limit": torch.as_tensor(self.spec.effort_limit, **f32),
        }
        self.clip_trust: dict[str, torch.Tensor] | None = None
        """(M,) bool per quantity: what each clip's root can be trusted for (None: everything)."""
        if root_sources is not None:
            if len(root_sources) != logs.num_motions:
                raise ValueError(f"{len(root_sources)} root sources for {logs.num_motions} logged clips")
            self.clip_trust = {q: torch.tensor([trusted(s, q) for s in root_sources], device=dev) for q in QUANTITIES}
        self.motion_ids = torch.zeros(n, dtype=torch.long, device=dev)
        self.frame0 = torch.zeros(n, dtype=torch.long, device=dev)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self.episode_steps = torch.ones(n, dtype=torch.long, device=dev)
        self.targets = torch.zeros(n, j, **f32)
        """(N, J) the joint targets the logged action of the current frame shapes into."""
        self.prev_targets = torch.zeros(n, j, **f32)
        """(N, J) the joint targets of the frame before (the logged previous action at a window's start)."""
        self.delta = torch.zeros(n, self.num_actions, **f32)
        self.last_delta = torch.zeros(n, self.num_actions, **f32)
        self.delta_full = torch.zeros(n, j, **f32)
        self.obs: dict[str, torch.Tensor] = {}
        self.eval_mode = False
        self._ended_stats: dict[str, torch.Tensor] = {}
        self._ep_sums = EpisodeSums()
        self.reset()

    # ------------------------------------------------------------------------------------------ windows
    def sample_windows(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(motion ids, start frames) of k random windows: clip uniform, start uniform over full windows."""
        m = torch.randint(0, self.logs.num_motions, (k,), generator=self.gen)
        frames = self.logs.motion_num_frames.cpu()[m]
        last_start = (frames - 1 - self.window).clamp(min=0)
        f0 = (torch.rand(k, generator=self.gen) * (last_start + 1).float()).long().clamp(max=last_start)
        return m.to(self.device), f0.to(self.device)

    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every env to a random window."""
        m, f0 = self.sample_windows(self.num_envs)
        return self.reset_to(m, f0)

    def reset_to(self, motion_ids: torch.Tensor, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reset every env to the window of clip ``motion_ids`` starting at ``frames`` (N,) and return obs."""
        ids = torch.arange(self.num_envs, device=self.device)
        self._reset_envs(ids, motion_ids.to(self.device).long(), frames.to(self.device).long())
        self._compute_obs(self._read_state())
        return self.obs

    def _reset_envs(self, ids: torch.Tensor, m: torch.Tensor, f0: torch.Tensor) -> None:
        if ids.numel() == 0:
            return
        self.motion_ids[ids], self.frame0[ids] = m, f0
        self.episode_length_buf[ids] = 0
        frames = self.logs.motion_num_frames[m]
        self.episode_steps[ids] = torch.minimum(torch.full_like(f0, self.window), frames - 1 - f0).clamp(min=1)
        s = self.logs.frame_state(m, f0)
        root = torch.cat([s.root_pos, s.root_quat, s.root_lin_vel, s.root_ang_vel], dim=-1)
        self.sim.reset(ids, root_state=root, q=s.dof_pos, qd=s.dof_vel)
        prev = self._shape(self.logs.frame_action(m, (f0 - 1).clamp(min=0)), None)
        self.targets[ids] = self._shape(self.logs.frame_action(m, f0), prev)
        self.prev_targets[ids] = prev
        self.sim.set_previous_targets(ids, prev)  # in flight during a latency; π^Δ's previous action (aligned sim)
        self.delta[ids] = 0.0
        self.last_delta[ids] = 0.0
        self.delta_full[ids] = 0.0
        self._ep_sums.reset(ids)

    def _shape(self, action: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """Logged raw actions (n, J) -> the joint targets the runtime sent (:func:`asap.control.shape_targets`)."""
        lim = self.limits
        return shape_targets(action, previous, self.default_pos, self.action_scale, lim["pos_lower"],
                             lim["pos_upper"], self.shaping)[2]  # fmt: skip

    # --------------------------------------------------------------------------------------------- step
    def frame(self) -> torch.Tensor:
        """(N,) the logged frame each env is at."""
        return self.frame0 + self.episode_length_buf

    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], TrackingStepResult]:
        """Apply Δa (N, len(joints)) on top of the logged actions for one control step."""
        self.last_delta = self.delta
        self.delta = actions.to(self.device, torch.float32).clamp(-self.meta.clip, self.meta.clip)
        self.delta_full = expand_delta(self.meta, self.delta, self.num_joints)
        self.sim.step(targets=apply_delta(self.targets, self.delta_full, self.meta.delta_scale))
        self.episode_length_buf += 1
        st = self._read_state()
        ref = self.logs.frame_state(self.motion_ids, self.frame())
        trust = None if self.clip_trust is None else {q: v[self.motion_ids] for q, v in self.clip_trust.items()}
        ctx = TermContext(state=st, ref=ref, actions=self.delta, last_actions=self.last_delta,
                          upper_mask=self.upper_mask, vr_idx=self.vr_idx, feet_idx=self.feet_idx,
                          root_trust=trust, **self.limits)  # fmt: skip
        terms = self.rewards(ctx)
        reward = torch.zeros(self.num_envs, device=self.device)
        for v in terms.values():
            reward += v
        if self.cfg.only_positive:
            reward = reward.clamp(min=0.0)
        time_out = self.episode_length_buf >= self.episode_steps
        terminated = torch.zeros_like(time_out)
        info = TrackingStepResult(
            reward=reward, done=time_out.clone(), terminated=terminated, time_out=time_out, terms=terms
        )
        self._episode_stats(terms, time_out)
        # the next frame's logged action, shaped against this frame's target (the runtime's rate limit)
        nxt = self.logs.frame_action(self.motion_ids, self.frame())
        self.prev_targets = self.targets
        self.targets = self._shape(nxt, self.targets)
        if not self.eval_mode:
            ids = time_out.nonzero().flatten()
            if ids.numel():
                m, f0 = self.sample_windows(ids.numel())
                self._reset_envs(ids, m, f0)
                st = self._read_state()
                ref = None  # reset envs moved to other frames
        self._compute_obs(st, ref)
        return self.obs, info

    def _read_state(self) -> SimState:
        return read_sim_state(self.sim, self._fused_read)

    def _episode_stats(self, terms: dict[str, torch.Tensor], done: torch.Tensor) -> None:
        self._ended_stats = self._ep_sums.add(terms, done, self.episode_length_buf, self.dt)

    # ---------------------------------------------------------------------------------------- observations
    def _compute_obs(self, st: SimState, ref: MotionState | None = None) -> None:
        """Observations of ``st``; ``ref``: the logged state at :meth:`frame` when the caller has it."""
        applied = (self.targets - self.default_pos) / self.action_scale
        previous = (self.prev_targets - self.default_pos) / self.action_scale
        actor = dobs.actor_obs(st.root_pos, st.root_quat, st.root_lin_vel, st.root_ang_vel, st.q, st.qd,
                               st.feet_force, self.default_pos, applied, previous, self.delta_full)  # fmt: skip
        if ref is None:
            ref = self.logs.frame_state(self.motion_ids, self.frame())
        critic = dobs.critic_obs(actor, st.root_pos, st.root_quat, st.body_pos, ref.body_pos)  # sees every term
        self.obs = {"actor": actor if self._columns is None else actor[:, self._columns], "critic": critic}

    def get_observations(self) -> dict[str, torch.Tensor]:
        """Current observation groups ``{"actor", "critic"}``."""
        return self.obs

    @property
    def num_obs(self) -> int:
        """Actor observation width (the columns ``cfg.obs_scope`` keeps)."""
        return int(self.meta.input_columns().numel())

    def windows_per_clip(self) -> list[int]:
        """Number of disjoint full windows in each logged clip (for reports)."""
        return [max(1, math.floor((int(t) - 1) / self.window)) for t in self.logs.motion_num_frames]
