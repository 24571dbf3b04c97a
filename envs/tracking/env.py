"""ASAP's phase-based motion-tracking task over the :class:`asap.sim.base.Simulator` protocol and a MotionLib.

Timing (asap-method.md section 4). After ``k`` control steps of an episode that started at motion time ``t0``,
the robot is at motion time ``t0 + k dt``: rewards and terminations compare it with the reference at that time.
The observation built then carries the phase of the *next* target, ``t = t0 + (k+1) dt`` (phase = t / length),
and (with ``residual_actions``) the action is a correction around the reference joint angles at that time.
An episode times out when the robot reaches the end of its clip (after :func:`asap.control.motion_steps` steps, the
count the robot runtime also runs) or after ``max_episode_length_s``; phases come from
:func:`asap.control.policy_phase` (clipped to [0, 1]).

One control step: actions -> joint targets by :func:`asap.control.shape_targets` (clip, ``default + 0.25 a``,
rate limit and clamp to the joint limits as ``cfg.target_shaping`` says, as the robot runtime does; the first
previous target of an episode is its initial joint pose) -> simulator step (PD at 200 Hz,
decimation 4) -> rewards -> terminations -> resets (reference-state init) -> observations (``asap.obs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from asap.control import motion_steps, policy_phase, shape_targets, target_limit_excess
from asap.eval.metrics import body_position_errors
from asap.motion.motionlib import MotionLib, MotionState
from asap.obs import ObsBuilder, privileged_terms, proprio_terms, world_to_base
from asap.robot.spec import FEET, VR_3POINT
from asap.sim.base import DYNAMICS_BODIES, DynamicsParams, Simulator
from asap.sim.state import SimState
from asap.utils.rotations import axis_angle_to_quat, projected_gravity, quat_mul, quat_normalize, yaw_quat
from envs.common.curricula import TrackingCurricula
from envs.common.reward_terms import EpisodeSums, RewardTable, TermContext
from envs.common.state import has_fused_read, read_sim_state
from envs.common.terminations import tracking_terminations
from envs.tracking.config import TrackingEnvConfig
from envs.tracking.logged_starts import LoggedStarts
from envs.tracking.sampling import StartSampler


@dataclass
class TrackingStepResult:
    """What one :meth:`TrackingEnv.step` returns besides observations (rewards and episode ends of N envs)."""

    reward: torch.Tensor
    """(N,) total reward."""
    done: torch.Tensor
    """(N,) episode ended (terminated or timed out); those envs are already reset."""
    terminated: torch.Tensor
    """(N,) ended by a failure (tilt or motion-far)."""
    time_out: torch.Tensor
    """(N,) ended by the clip end or the episode timeout (value is bootstrapped)."""
    terms: dict[str, torch.Tensor]
    """Per-term rewards (after weights, dt and curriculum), each (N,)."""


def _numpy_views(*xs: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Zero-copy NumPy views of CPU tensors."""
    return tuple(x.numpy() for x in xs)


def _same(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return xs


class TrackingEnv:
    """N envs tracking reference motions; see module docstring. Observations: ``{"actor", "critic"}``."""

    def __init__(self, cfg: TrackingEnvConfig, sim: Simulator, motion_lib: MotionLib) -> None:
        self.cfg = cfg
        self.sim = sim
        self._cpu = torch.device(sim.device).type == "cpu"
        self._fused_read = has_fused_read(sim)
        self.motion_lib = motion_lib
        self.spec = sim.spec
        self.device = sim.device
        self.num_envs = sim.num_envs
        self.num_actions = sim.num_joints
        self.dt = float(sim.control_dt)
        if motion_lib.num_joints != self.num_actions:
            raise ValueError(f"motion lib has {motion_lib.num_joints} joints, simulator {self.num_actions}")
        self.max_episode_length = int(math.ceil(cfg.termination.max_episode_length_s / self.dt))
        dev, n, j = self.device, self.num_envs, self.num_actions
        f32 = {"device": dev, "dtype": torch.float32}
        self.default_pos = torch.as_tensor(self.spec.default_pos, **f32)
        self.action_scale = float(self.spec.action_scale)
        self.action_clip = float(self.spec.action_clip)
        self.kp = torch.as_tensor(self.spec.kp, **f32)
        self.pos_lower = torch.as_tensor(self.spec.pos_lower, **f32)
        self.pos_upper = torch.as_tensor(self.spec.pos_upper, **f32)
        self.vel_limit = torch.as_tensor(self.spec.velocity_limit, **f32)
        self.effort_limit = torch.as_tensor(self.spec.effort_limit, **f32)
        self.upper_mask = torch.as_tensor(self.spec.upper_body_mask, device=dev)
        self.vr_idx = torch.as_tensor(self.spec.body_index(VR_3POINT), device=dev)
        self.feet_idx = torch.as_tensor(self.spec.body_index(FEET), device=dev)
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(cfg.seed)

        self.obs_builder = ObsBuilder(cfg.obs_layout, num_envs=n, num_joints=j, backend="torch", device=dev,
                                      noise_level=cfg.obs_noise_level, seed=cfg.seed)  # fmt: skip
        self.num_obs = self.obs_builder.dim("actor")
        self.num_privileged_obs = self.obs_builder.dim("critic")

        self.sampler = StartSampler(motion_lib.motion_lengths, cfg.sampling, self.gen)
        ls = cfg.logged_starts
        if not 0.0 <= ls.ratio <= 1.0:
            raise ValueError(f"logged_starts.ratio must be in [0, 1], got {ls.ratio}")
        if ls.ratio > 0 and not ls.logs:
            raise ValueError("logged_starts.ratio > 0 needs logged_starts.logs (`asap collect`'s motions folder)")
        self.logged_starts = (LoggedStarts(ls.logs, motion_lib.motion_names, self.spec.joint_names, dev)
                              if ls.ratio > 0 else None)  # fmt: skip
        """Start states logged on the robot (:mod:`envs.tracking.logged_starts`), or None."""
        self.motion_ids = torch.zeros(n, dtype=torch.long, device=dev)
        self.motion_start = torch.zeros(n, **f32)
        self.motion_len = torch.ones(n, **f32)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self.actions = torch.zeros(n, j, **f32)
        self.last_actions = torch.zeros(n, j, **f32)
        self.targets = self.default_pos.repeat(n, 1)
        self.target_excess = torch.full((n, j), -1.0, **f32)
        """(N, J) joint targets sent in the last step (after a reset: the initial joint pose)."""
        self.episode_steps = torch.ones(n, dtype=torch.long, device=dev)
        """(N,) steps from the episode's start to its clip's end (:func:`asap.control.motion_steps`)."""
        self.ref_action = torch.zeros(n, j, **f32)
        self.push_countdown = torch.zeros(n, dtype=torch.long, device=dev)

        self.rewards = RewardTable(cfg.rewards.table(), self.dt, cfg.rewards.scale_by_dt)
        """The task's reward terms (Table I), declared as data by ``cfg.rewards``."""
        self.termination_weight = cfg.rewards.termination * (self.dt if cfg.rewards.scale_by_dt else 1.0)
        """Reward added on a failure (not a term of the table: it depends on the termination, not the state)."""
        self.curricula = TrackingCurricula.initial(cfg.curriculum, cfg.termination, cfg.rewards)
        """Penalty factor, soft-limit fractions and motion-far threshold (saved in checkpoints)."""
        self.eval_mode = False
        """Evaluation: no noise, no curricula updates, no random resets (see :meth:`set_eval`)."""
        self._step_count = 0
        self._ep_sums = EpisodeSums()
        self.ref_now: MotionState | None = None
        self.ref_next: MotionState | None = None
        self.obs: dict[str, torch.Tensor] = {}
        self.last_info: TrackingStepResult | None = None
        self._gravity: torch.Tensor | None = None
        """(N, 3) projected gravity of the last state read (shared by terminations and observations)."""
        if any((cfg.domain_rand.friction, cfg.domain_rand.kp_kd, cfg.domain_rand.control_delay,
                cfg.domain_rand.substep_delay, cfg.domain_rand.com_offset, cfg.domain_rand.link_mass)):  # fmt: skip
            self._nominal = sim.default_dynamics(1)
        self.reset()

    # ---------------------------------------------------------------------------------------- curricula
    @property
    def penalty_scale(self) -> float:
        """Factor on the penalty terms (penalty curriculum)."""
        return self.curricula.penalty_scale

    @penalty_scale.setter
    def penalty_scale(self, value: float) -> None:
        self.curricula.penalty_scale = value

    @property
    def limit_fracs(self) -> list[float]:
        """Soft-limit fractions of position, velocity and torque limits (limit curriculum)."""
        return self.curricula.limit_fracs

    @limit_fracs.setter
    def limit_fracs(self, value: list[float]) -> None:
        self.curricula.limit_fracs = value

    @property
    def far_threshold(self) -> float:
        """Motion-far termination threshold, m (far curriculum)."""
        return self.curricula.far_threshold

    @far_threshold.setter
    def far_threshold(self, value: float) -> None:
        self.curricula.far_threshold = value

    @property
    def average_episode_length(self) -> float:
        """Exponential average of ended episodes' lengths (steps)."""
        return self.curricula.average_episode_length

    @average_episode_length.setter
    def average_episode_length(self, value: float) -> None:
        self.curricula.average_episode_length = value

    @property
    def timeout_rate(self) -> float:
        """Exponential average of the share of episodes that reach their clip end."""
        return self.curricula.timeout_rate

    @timeout_rate.setter
    def timeout_rate(self, value: float) -> None:
        self.curricula.timeout_rate = value

    # ------------------------------------------------------------------------------------------- resets
    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every env (random motion/start per the sampling config) and return the observations."""
        ids = torch.arange(self.num_envs, device=self.device)
        m, t = self.sampler.sample(self.num_envs, self.cfg.sampling.random_start and not self.eval_mode)
        self._reset_envs(ids, m.to(self.device), t.to(self.device))
        self._compute_obs()
        return self.obs

    def reset_to(self, motion_ids: torch.Tensor, start_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reset every env to the given clips and start times (N,) and return the observations."""
        ids = torch.arange(self.num_envs, device=self.device)
        self._reset_envs(ids, motion_ids.to(self.device).long(), start_times.to(self.device).float())
        self._compute_obs()
        return self.obs

    def set_eval(self, on: bool = True) -> None:
        """Evaluation mode: no observation noise, no curricula or sampler updates, episodes end once (no
        automatic reset), failure = tilt or :func:`asap.eval.metrics.tracking_failed` (mean body distance)."""
        self.eval_mode = on
        self.obs_builder.noise_level = 0.0 if on else self.cfg.obs_noise_level

    def _reset_envs(self, env_ids: torch.Tensor, motion_ids: torch.Tensor, start: torch.Tensor) -> None:
        if env_ids.numel() == 0:
            return
        logged = self._logged_picks(env_ids.numel())
        if logged is not None:  # those envs start at time 0 of the logged clip
            pick, idx = logged
            motion_ids, start = motion_ids.clone(), start.clone()
            motion_ids[pick] = self.logged_starts.motion_ids[idx]
            start[pick] = 0.0
        self.motion_ids[env_ids] = motion_ids
        self.motion_start[env_ids] = start
        self.motion_len[env_ids] = self.motion_lib.get_motion_length(motion_ids).to(self.motion_len.dtype)
        self.episode_length_buf[env_ids] = 0
        self.actions[env_ids] = 0
        self.last_actions[env_ids] = 0
        ref = self.motion_lib.get_state(motion_ids, start)
        n = env_ids.numel()
        nz = self.cfg.init_noise
        lvl = 0.0 if self.eval_mode else nz.level
        root_pos, root_quat, lin, ang = ref.root_pos, ref.root_quat, ref.root_lin_vel, ref.root_ang_vel
        q, qd = ref.dof_pos, ref.dof_vel
        if lvl > 0:
            root_pos, root_quat, lin, ang, q, qd = (x.clone() for x in (root_pos, root_quat, lin, ang, q, qd))

            keep = None
            if nz.clean_ratio > 0:  # per reset: perturbed (1) or clean (0)
                keep = (torch.rand(n, 1, generator=self.gen) >= nz.clean_ratio).float().to(self.device)

            def g(*shape: int) -> torch.Tensor:
                x = torch.randn(*shape, generator=self.gen).to(self.device)
                return x if keep is None else x * keep

            root_pos += lvl * nz.root_pos * g(n, 3)
            lin += lvl * nz.root_vel * g(n, 3)
            ang += lvl * nz.root_ang_vel * g(n, 3)
            q += lvl * nz.dof_pos * g(n, self.num_actions)
            qd += lvl * nz.dof_vel * g(n, self.num_actions)
            axis = torch.randn(n, 3, generator=self.gen).to(self.device)
            if nz.root_rot_tilt_only:
                axis[:, 2] = 0.0
            axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-9)
            angle = lvl * math.radians(nz.root_rot_deg) * torch.rand(n, 1, generator=self.gen).to(self.device)
            if keep is not None:
                angle = angle * keep
            root_quat = quat_normalize(quat_mul(axis_angle_to_quat(axis * angle), root_quat))
        q = self._within_limits(q)
        root_state = torch.cat([root_pos, root_quat, lin, ang], dim=-1)
        hold = q
        if logged is not None:  # the logged state; the runtime's last target was the clip's first pose
            pick, idx = logged
            ls = self.logged_starts
            root_state, q, qd = root_state.clone(), q.clone(), qd.clone()
            root_state[pick], q[pick], qd[pick] = ls.root_state[idx], ls.dof_pos[idx], ls.dof_vel[idx]
            hold = q.clone()
            hold[pick] = self._within_limits(ref.dof_pos[pick])
        self.sim.reset(env_ids, root_state=root_state, q=q, qd=qd)
        self.sim.set_previous_targets(env_ids, hold)  # what a command latency applies before the first new target
        self.targets[env_ids] = hold
        self.episode_steps[env_ids] = motion_steps(self.motion_len[env_ids], self.dt, start)
        self._randomize(env_ids)
        self.obs_builder.reset(env_ids)
        dr = self.cfg.domain_rand
        if dr.push:
            lo, hi = (int(round(s / self.dt)) for s in dr.push_interval_s)
            self.push_countdown[env_ids] = torch.randint(lo, max(hi, lo + 1), (n,), generator=self.gen).to(self.device)
        self._ep_sums.reset(env_ids)

    def _within_limits(self, q: torch.Tensor) -> torch.Tensor:
        """(n, J) joint angles clamped to the joint limits (rad): the start poses and the held targets of a reset."""
        return torch.maximum(torch.minimum(q, self.pos_upper), self.pos_lower)

    def _logged_picks(self, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For ``n`` resetting envs: the (n,) mask of those that start from a logged state and, for each of them, the
        index of its state in :attr:`logged_starts`; None when none does (evaluation, off, or none drawn)."""
        if self.logged_starts is None or self.eval_mode:
            return None
        pick = (torch.rand(n, generator=self.gen) < self.cfg.logged_starts.ratio).to(self.device)
        if not bool(pick.any()):
            return None
        return pick, self.logged_starts.draw(int(pick.sum()), self.gen)

    def _randomize(self, env_ids: torch.Tensor) -> None:
        dr = self.cfg.domain_rand
        if self.eval_mode:
            return
        n, j = env_ids.numel(), self.num_actions

        def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
            return (lo + (hi - lo) * torch.rand(*shape, generator=self.gen)).to(self.device)

        p = DynamicsParams()
        if dr.friction:
            p.friction = u(*dr.friction_range, n)
        if dr.kp_kd:
            p.kp_scale = u(*dr.kp_range, n, j)
            p.kd_scale = u(*dr.kd_range, n, j)
        if dr.control_delay:
            lo, hi = dr.control_delay_range
            p.action_delay = torch.randint(lo, hi + 1, (n,), generator=self.gen).to(self.device)
        if dr.substep_delay:
            lo, hi = dr.substep_delay_range
            p.substep_delay = torch.randint(lo, hi + 1, (n,), generator=self.gen).to(self.device)
        if dr.com_offset:
            off = torch.zeros(n, len(DYNAMICS_BODIES), 3)
            b = DYNAMICS_BODIES.index(dr.com_offset_body)
            off[:, b] = u(*dr.com_offset_range, n, 3).cpu()
            p.com_offset = off.to(self.device)
        if dr.link_mass:
            sc = torch.ones(n, len(DYNAMICS_BODIES))
            for name in dr.link_mass_bodies:
                sc[:, DYNAMICS_BODIES.index(name)] = u(*dr.link_mass_range, n).cpu()
            p.mass_scale = sc.to(self.device)
        if p.names():
            self.sim.set_dynamics(env_ids, p)

    # --------------------------------------------------------------------------------------------- step
    def motion_time(self) -> torch.Tensor:
        """(N,) the robot's current motion time t0 + k dt."""
        return self.motion_start + self.episode_length_buf.to(torch.float32) * self.dt

    def shaped_targets(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :meth:`step` would make of (N, J) policy actions now, without stepping: ``(a, unshaped, targets)`` of
        :func:`asap.control.shape_targets` (the residual reference added first with ``residual_actions``)."""
        a = actions.to(self.device, torch.float32)
        if self.cfg.residual_actions:
            a = a.clamp(-self.action_clip, self.action_clip) + self.ref_action
        return shape_targets(a, self.targets, self.default_pos, self.action_scale, self.pos_lower, self.pos_upper,
                             self.cfg.target_shaping, self.action_clip)  # fmt: skip

    def actions_for_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """(N, J) policy actions whose unshaped targets are ``targets`` (N, J) rad: the inverse of
        ``default + action_scale * a`` (minus the residual reference with ``residual_actions``); the clip, rate limit
        and clamp of :meth:`shaped_targets` are not inverted."""
        a = (targets - self.default_pos) / self.action_scale
        return a - self.ref_action if self.cfg.residual_actions else a

    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], TrackingStepResult]:
        """Apply (N, J) policy actions for one control step; return observations and :class:`TrackingStepResult`."""
        a, unshaped, self.targets = self.shaped_targets(actions)
        self.target_excess = target_limit_excess(unshaped, self.pos_lower, self.pos_upper)
        """(N, J) how far the unshaped targets lie past the joint limits (the robot runtime's fault check)."""
        self.last_actions = self.actions
        self.actions = a
        self.sim.step(targets=self.targets)
        self.episode_length_buf += 1
        self._step_count += 1
        self._push()

        st = self._read_state()
        # the reference at the robot's time t0 + k dt is the one the last observation targeted
        ref = (
            self.ref_next
            if self.ref_next is not None
            else self.motion_lib.get_state(self.motion_ids, self.motion_time())
        )
        self.ref_now = ref
        terms = self._rewards(st, ref)
        t = self.motion_time()
        k = self.episode_length_buf
        time_out = (k >= self.episode_steps) | (k >= self.max_episode_length)
        self._gravity = self._base_gravity(st)
        terminated = self._terminations(st, ref) & ~time_out
        if self.termination_weight != 0.0:
            terms["termination"] = self.termination_weight * terminated.float()
        reward = torch.zeros(self.num_envs, device=self.device)
        for k, v in terms.items():
            if k != "termination":
                reward += v
        if self.cfg.rewards.only_positive:
            reward = reward.clamp(min=0.0)
        if "termination" in terms:
            reward += terms["termination"]
        done = terminated | time_out
        info = TrackingStepResult(reward=reward, done=done, terminated=terminated, time_out=time_out, terms=terms)
        self._episode_stats(terms, done)
        self.last_info = info
        if not self.eval_mode:
            self._after_episodes(done, terminated, t)
            ids = done.nonzero().flatten()
            if ids.numel():
                m, s = self.sampler.sample(ids.numel(), self.cfg.sampling.random_start)
                self._reset_envs(ids, m.to(self.device), s.to(self.device))
                st = None  # reset envs moved: read the state again
        self._compute_obs(st)
        return self.obs, info

    def _base_gravity(self, st: SimState) -> torch.Tensor:
        """(N, 3) gravity in the pelvis frame (plain arithmetic: in NumPy on CPU, the same values)."""
        if self._cpu:
            return torch.from_numpy(projected_gravity(st.root_quat.numpy()))
        return projected_gravity(st.root_quat)

    def _read_state(self) -> SimState:
        return read_sim_state(self.sim, self._fused_read)

    def _push(self) -> None:
        dr = self.cfg.domain_rand
        if not dr.push or self.eval_mode:
            return
        self.push_countdown -= 1
        ids = (self.push_countdown <= 0).nonzero().flatten()
        if ids.numel():
            n = ids.numel()
            v = (2 * torch.rand(n, 2, generator=self.gen) - 1).to(self.device) * dr.push_max_vel
            self.sim.push(ids, v)
            lo, hi = (int(round(s / self.dt)) for s in dr.push_interval_s)
            self.push_countdown[ids] = torch.randint(lo, max(hi, lo + 1), (n,), generator=self.gen).to(self.device)

    def _rewards(self, st: SimState, ref: MotionState) -> dict[str, torch.Tensor]:
        """The reward table on this step, with the curricula's soft-limit fractions and penalty factor."""
        ctx = TermContext(state=st, ref=ref, actions=self.actions, last_actions=self.last_actions,
                          upper_mask=self.upper_mask, vr_idx=self.vr_idx, feet_idx=self.feet_idx,
                          pos_lower=self.pos_lower, pos_upper=self.pos_upper, vel_limit=self.vel_limit,
                          effort_limit=self.effort_limit)  # fmt: skip
        fp, fv, ft = self.curricula.limit_fracs
        params = {"limits_dof_pos": {"soft": fp}, "limits_dof_vel": {"soft": fv}, "limits_torque": {"soft": ft}}
        pen = self.curricula.penalty_scale
        return self.rewards(ctx, params, {k: pen for k in self.cfg.curriculum.penalty_terms})

    def _terminations(self, st: SimState, ref: MotionState) -> torch.Tensor:
        return tracking_terminations(st, ref, self.cfg.termination, self.far_threshold, self.eval_mode,
                                     self.target_excess, self._gravity)  # fmt: skip

    def _episode_stats(self, terms: dict[str, torch.Tensor], done: torch.Tensor) -> None:
        self._ended_stats = self._ep_sums.add(terms, done, self.episode_length_buf, self.dt)

    def _after_episodes(self, done: torch.Tensor, terminated: torch.Tensor, t: torch.Tensor) -> None:
        """Failure statistics, curricula (at every reset event, as the reference)."""
        fail = terminated.nonzero().flatten()
        if fail.numel():
            self.sampler.record_failures(self.motion_ids[fail], t[fail])
        if self._step_count % max(1, self.cfg.sampling.commit_steps) == 0:
            self.sampler.commit()
        ended = done.nonzero().flatten()
        if ended.numel() == 0:
            return
        ok = float((done & ~terminated)[ended].float().mean())
        self.curricula.update(float(self.episode_length_buf[ended].float().mean()), ok, int(ended.numel()))

    # ---------------------------------------------------------------------------------------- observations
    def _compute_obs(self, st: SimState | None = None) -> None:
        """Observations of state ``st`` (None: read it; a given ``st`` is the one :attr:`_gravity` belongs to)."""
        if st is None:
            st = self._read_state()
            self._gravity = self._base_gravity(st)
        t_next = self.motion_time() + self.dt
        ref = self.motion_lib.get_state(self.motion_ids, t_next)
        self.ref_next = ref
        phase = policy_phase(self.episode_length_buf, self.dt, self.motion_len, self.motion_start)
        if self.cfg.residual_actions:
            self.ref_action = (ref.dof_pos - self.default_pos) / self.action_scale
        # Plain float32 arithmetic (rotations of vectors, projected gravity, differences) runs in NumPy on CPU, on
        # zero-copy views: the same IEEE operations as torch's, at a fraction of the per-call cost. Functions with
        # transcendental operations (atan2 of the heading) stay in torch.
        xp = _numpy_views if self._cpu else _same
        q, w_ang, w_lin = xp(st.root_quat, st.root_ang_vel, st.root_lin_vel)
        # base-frame angular and linear velocity in one rotation (elementwise: the same values as two)
        if self._cpu:
            vel = world_to_base(np.broadcast_to(q[:, None, :], (q.shape[0], 2, 4)), np.stack([w_ang, w_lin], axis=1))
        else:
            vel = world_to_base(q[:, None, :].expand(-1, 2, 4), torch.stack([w_ang, w_lin], dim=1))
        raw = proprio_terms(
            root_quat=q,
            base_ang_vel=vel[:, 0],
            dof_pos=st.q,
            dof_vel=st.qd,
            default_dof_pos=self.default_pos,
            last_action=self.actions,
            phase=phase,
            base_lin_vel=vel[:, 1],
            gravity=self._gravity,
        )
        if "critic" in self.obs_builder.groups:
            heading = yaw_quat(st.root_quat)
            raw.update(privileged_terms(*xp(st.root_pos, st.root_quat, st.body_pos, ref.body_pos), *xp(heading)))
        self.obs = self.obs_builder.build(raw)

    def get_observations(self) -> dict[str, torch.Tensor]:
        """The current observation groups."""
        return self.obs

    # ------------------------------------------------------------------------------------------- logging
    def log_scalars(self) -> dict[str, float]:
        """Curriculum and episode statistics for the logger (keys without namespace)."""
        out = {
            "far_threshold": self.far_threshold,
            "penalty_scale": self.penalty_scale,
            "limit_frac_pos": self.limit_fracs[0],
            "average_episode_length": self.average_episode_length,
            "timeout_rate": self.timeout_rate,
        }
        out.update(self.sampler.summary())
        return out

    def tracking_errors(self) -> dict[str, torch.Tensor]:
        """(N,) E_g-mpjpe and E_mpjpe (m) of the current state against the reference at the robot's time."""
        body = self.sim.get_body_state().pos
        ref = self.motion_lib.get_state(self.motion_ids, self.motion_time()).body_pos
        g, rel = body_position_errors(body, ref)
        return {"g_mpjpe": g, "mpjpe": rel}
