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

import torch

from asap.control import motion_steps, policy_phase, shape_targets
from asap.eval.metrics import body_position_errors, tracking_failed
from asap.motion.motionlib import MotionLib, MotionState
from asap.obs import ObsBuilder, privileged_terms, proprio_terms, world_to_base
from asap.robot.spec import FEET, VR_3POINT
from asap.sim.base import DYNAMICS_BODIES, DynamicsParams, Simulator
from asap.utils.rotations import axis_angle_to_quat, quat_mul, quat_normalize
from envs.tracking import rewards as R
from envs.tracking.config import TrackingEnvConfig
from envs.tracking.sampling import StartSampler

TRACKING_TERMS = ("body_pos", "vr_3point", "feet_pos", "body_rot", "body_vel", "body_ang_vel", "joint_pos",
                  "joint_vel")  # fmt: skip
"""Positive tracking reward terms."""
PENALTY_TERMS = ("torques", "action_rate", "feet_ori", "feet_heading", "slippage", "limits_dof_pos",
                 "limits_dof_vel", "limits_torque")  # fmt: skip
"""Penalty terms (negative weights)."""


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


class TrackingEnv:
    """N envs tracking reference motions; see module docstring. Observations: ``{"actor", "critic"}``."""

    def __init__(self, cfg: TrackingEnvConfig, sim: Simulator, motion_lib: MotionLib) -> None:
        self.cfg = cfg
        self.sim = sim
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
        self.motion_ids = torch.zeros(n, dtype=torch.long, device=dev)
        self.motion_start = torch.zeros(n, **f32)
        self.motion_len = torch.ones(n, **f32)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self.actions = torch.zeros(n, j, **f32)
        self.last_actions = torch.zeros(n, j, **f32)
        self.targets = self.default_pos.repeat(n, 1)
        """(N, J) joint targets sent in the last step (after a reset: the initial joint pose)."""
        self.episode_steps = torch.ones(n, dtype=torch.long, device=dev)
        """(N,) steps from the episode's start to its clip's end (:func:`asap.control.motion_steps`)."""
        self.ref_action = torch.zeros(n, j, **f32)
        self.push_countdown = torch.zeros(n, dtype=torch.long, device=dev)

        w = {k: getattr(cfg.rewards, k) for k in (*TRACKING_TERMS, *PENALTY_TERMS, "termination")}
        if cfg.rewards.scale_by_dt:
            w = {k: v * self.dt for k, v in w.items()}
        self.reward_weights = {k: v for k, v in w.items() if v != 0.0}
        cc = cfg.curriculum
        self.penalty_scale = cc.penalty_initial if cc.penalty else 1.0
        self.limit_fracs = (
            [cc.limits_initial] * 3
            if cc.limits
            else [cfg.rewards.soft_dof_pos_limit, cfg.rewards.soft_dof_vel_limit, cfg.rewards.soft_torque_limit]
        )
        self.far_threshold = cfg.termination.far_threshold
        self.average_episode_length = 0.0
        self.timeout_rate = 0.0
        """Exponential average of the share of episodes that end by reaching their clip end (not failing)."""
        self.eval_mode = False
        """Evaluation: no noise, no curricula updates, no random resets (see :meth:`set_eval`)."""
        self._step_count = 0
        self._ep_sums: dict[str, torch.Tensor] = {}
        self.ref_now: MotionState | None = None
        self.ref_next: MotionState | None = None
        self.obs: dict[str, torch.Tensor] = {}
        self.last_info: TrackingStepResult | None = None
        if any((cfg.domain_rand.friction, cfg.domain_rand.kp_kd, cfg.domain_rand.control_delay,
                cfg.domain_rand.com_offset, cfg.domain_rand.link_mass)):  # fmt: skip
            self._nominal = sim.default_dynamics(1)
        self.reset()

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
        root_pos, root_quat = ref.root_pos.clone(), ref.root_quat.clone()
        lin, ang = ref.root_lin_vel.clone(), ref.root_ang_vel.clone()
        q, qd = ref.dof_pos.clone(), ref.dof_vel.clone()
        if lvl > 0:

            def g(*shape: int) -> torch.Tensor:
                return torch.randn(*shape, generator=self.gen).to(self.device)

            root_pos += lvl * nz.root_pos * g(n, 3)
            lin += lvl * nz.root_vel * g(n, 3)
            ang += lvl * nz.root_ang_vel * g(n, 3)
            q += lvl * nz.dof_pos * g(n, self.num_actions)
            qd += lvl * nz.dof_vel * g(n, self.num_actions)
            axis = g(n, 3)
            axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-9)
            angle = lvl * math.radians(nz.root_rot_deg) * torch.rand(n, 1, generator=self.gen).to(self.device)
            root_quat = quat_normalize(quat_mul(axis_angle_to_quat(axis * angle), root_quat))
        q = torch.maximum(torch.minimum(q, self.pos_upper), self.pos_lower)
        root_state = torch.cat([root_pos, root_quat, lin, ang], dim=-1)
        self.sim.reset(env_ids, root_state=root_state, q=q, qd=qd)
        self.targets[env_ids] = q
        self.episode_steps[env_ids] = motion_steps(self.motion_len[env_ids], self.dt, start)
        self._randomize(env_ids)
        self.obs_builder.reset(env_ids)
        dr = self.cfg.domain_rand
        if dr.push:
            lo, hi = (int(round(s / self.dt)) for s in dr.push_interval_s)
            self.push_countdown[env_ids] = torch.randint(lo, max(hi, lo + 1), (n,), generator=self.gen).to(self.device)
        for v in self._ep_sums.values():
            v[env_ids] = 0

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

    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], TrackingStepResult]:
        """Apply (N, J) policy actions for one control step; return observations and :class:`TrackingStepResult`."""
        a = actions.to(self.device, torch.float32)
        if self.cfg.residual_actions:
            a = a.clamp(-self.action_clip, self.action_clip) + self.ref_action
        a, _, self.targets = shape_targets(a, self.targets, self.default_pos, self.action_scale, self.pos_lower,
                                           self.pos_upper, self.cfg.target_shaping, self.action_clip)  # fmt: skip
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
        terminated = self._terminations(st, ref) & ~time_out
        if "termination" in self.reward_weights:
            terms["termination"] = self.reward_weights["termination"] * terminated.float()
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

    def _read_state(self) -> dict[str, torch.Tensor]:
        root = self.sim.get_root_state()
        q, qd = self.sim.get_joint_state()
        body = self.sim.get_body_state()
        return {
            "root_pos": root[:, 0:3], "root_quat": root[:, 3:7], "root_lin_vel": root[:, 7:10],
            "root_ang_vel": root[:, 10:13], "q": q, "qd": qd, "body_pos": body.pos, "body_quat": body.quat,
            "body_lin_vel": body.lin_vel, "body_ang_vel": body.ang_vel,
            "tau": self.sim.get_applied_torques(), "feet_force": self.sim.get_foot_contact_forces(),
        }  # fmt: skip

    def _rewards(self, st: dict[str, torch.Tensor], ref: MotionState) -> dict[str, torch.Tensor]:
        c = self.cfg.rewards
        w = self.reward_weights
        raw: dict[str, torch.Tensor] = {}
        if "body_pos" in w:
            raw["body_pos"] = R.body_position_extend(
                st["body_pos"], ref.body_pos, self.upper_mask, c.sigma_body_pos_upper, c.sigma_body_pos_lower,
                c.body_pos_upper_weight, c.body_pos_lower_weight,
            )  # fmt: skip
        if "vr_3point" in w:
            raw["vr_3point"] = R.body_position_subset(st["body_pos"], ref.body_pos, self.vr_idx, c.sigma_vr_3point)
        if "feet_pos" in w:
            raw["feet_pos"] = R.body_position_subset(st["body_pos"], ref.body_pos, self.feet_idx, c.sigma_feet_pos)
        if "body_rot" in w:
            raw["body_rot"] = R.body_rotation(st["body_quat"], ref.body_quat, c.sigma_body_rot)
        if "body_vel" in w:
            raw["body_vel"] = R.body_velocity(st["body_lin_vel"], ref.body_lin_vel, c.sigma_body_vel)
        if "body_ang_vel" in w:
            raw["body_ang_vel"] = R.body_velocity(st["body_ang_vel"], ref.body_ang_vel, c.sigma_body_ang_vel)
        if "joint_pos" in w:
            raw["joint_pos"] = R.joint_tracking(st["q"], ref.dof_pos, c.sigma_joint_pos)
        if "joint_vel" in w:
            raw["joint_vel"] = R.joint_tracking(st["qd"], ref.dof_vel, c.sigma_joint_vel)
        if "torques" in w:
            raw["torques"] = R.torques(st["tau"])
        if "action_rate" in w:
            raw["action_rate"] = R.action_rate(self.actions, self.last_actions)
        feet_quat = st["body_quat"][:, self.feet_idx]
        if "feet_ori" in w:
            raw["feet_ori"] = R.feet_orientation(feet_quat)
        if "feet_heading" in w:
            raw["feet_heading"] = R.feet_heading(feet_quat, st["root_quat"])
        if "slippage" in w:
            raw["slippage"] = R.slippage(st["body_lin_vel"][:, self.feet_idx], st["feet_force"])
        fp, fv, ft = self.limit_fracs
        if "limits_dof_pos" in w:
            lo, hi = R.soft_range(self.pos_lower, self.pos_upper, fp)
            raw["limits_dof_pos"] = R.dof_pos_limits(st["q"], lo, hi)
        if "limits_dof_vel" in w:
            raw["limits_dof_vel"] = R.magnitude_limits(st["qd"], self.vel_limit, fv)
        if "limits_torque" in w:
            raw["limits_torque"] = R.magnitude_limits(st["tau"], self.effort_limit, ft)
        pen = set(self.cfg.curriculum.penalty_terms)
        out = {}
        for k, v in raw.items():
            s = w[k] * (self.penalty_scale if k in pen else 1.0)
            out[k] = s * v
        return out

    def _terminations(self, st: dict[str, torch.Tensor], ref: MotionState) -> torch.Tensor:
        tc = self.cfg.termination
        out = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        if tc.gravity_tilt > 0:
            out |= R.gravity_tilt(st["root_quat"], tc.gravity_tilt)
        if self.eval_mode:
            out |= tracking_failed(body_position_errors(st["body_pos"], ref.body_pos)[0])
        elif tc.motion_far:
            out |= R.motion_far(st["body_pos"], ref.body_pos, self.far_threshold)
        return out

    def _episode_stats(self, terms: dict[str, torch.Tensor], done: torch.Tensor) -> None:
        for k, v in terms.items():
            if k not in self._ep_sums:
                self._ep_sums[k] = torch.zeros(self.num_envs, device=self.device)
            self._ep_sums[k] += v
        ended = done.nonzero().flatten()
        self._ended_stats = {}
        if ended.numel():
            steps = self.episode_length_buf[ended].float().clamp(min=1)
            for k, v in self._ep_sums.items():
                self._ended_stats[f"rew_{k}"] = (v[ended] / steps).mean() / self.dt

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
        cc = self.cfg.curriculum
        lens = self.episode_length_buf[ended].float()
        n = float(ended.numel())
        a = min(1.0, n / max(cc.average_window, 1.0))
        if self.average_episode_length == 0.0:
            self.average_episode_length = float(lens.mean())
        else:
            self.average_episode_length = (1 - a) * self.average_episode_length + a * float(lens.mean())
        ok = float((done & ~terminated)[ended].float().mean())
        self.timeout_rate = (1 - a) * self.timeout_rate + a * ok
        ael = self.average_episode_length
        short, long_ = ael < cc.length_low, ael > cc.length_high
        if cc.penalty:
            if short:
                self.penalty_scale *= 1 - cc.penalty_degree
            elif long_:
                self.penalty_scale *= 1 + cc.penalty_degree
            self.penalty_scale = min(max(self.penalty_scale, cc.penalty_min), cc.penalty_max)
        if cc.limits:
            d = cc.limits_degree
            f = 1 + d if short else (1 - d if long_ else 1.0)
            ranges = (cc.limits_pos_range, cc.limits_vel_range, cc.limits_torque_range)
            self.limit_fracs = [min(max(x * f, r[0]), r[1]) for x, r in zip(self.limit_fracs, ranges, strict=True)]
        tc = self.cfg.termination
        if tc.motion_far and tc.far_curriculum and tc.far_curriculum_mode == "timeout_rate":
            span = tc.far_threshold_max - tc.far_threshold_min
            self.far_threshold = tc.far_threshold_max - span * min(max(self.timeout_rate, 0.0), 1.0)
        elif tc.motion_far and tc.far_curriculum:
            if tc.far_curriculum_mode != "episode_length":
                raise ValueError(f"unknown far_curriculum_mode {tc.far_curriculum_mode!r}")
            d = tc.far_curriculum_degree
            if short:
                self.far_threshold *= 1 + d
            elif long_:
                self.far_threshold *= 1 - d
            self.far_threshold = min(max(self.far_threshold, tc.far_threshold_min), tc.far_threshold_max)

    # ---------------------------------------------------------------------------------------- observations
    def _compute_obs(self, st: dict[str, torch.Tensor] | None = None) -> None:
        st = st if st is not None else self._read_state()
        t_next = self.motion_time() + self.dt
        ref = self.motion_lib.get_state(self.motion_ids, t_next)
        self.ref_next = ref
        phase = policy_phase(self.episode_length_buf, self.dt, self.motion_len, self.motion_start)
        if self.cfg.residual_actions:
            self.ref_action = (ref.dof_pos - self.default_pos) / self.action_scale
        raw = proprio_terms(
            root_quat=st["root_quat"],
            base_ang_vel=world_to_base(st["root_quat"], st["root_ang_vel"]),
            dof_pos=st["q"],
            dof_vel=st["qd"],
            default_dof_pos=self.default_pos,
            last_action=self.actions,
            phase=phase,
            base_lin_vel=world_to_base(st["root_quat"], st["root_lin_vel"]),
        )
        if "critic" in self.obs_builder.groups:
            raw.update(privileged_terms(st["root_pos"], st["root_quat"], st["body_pos"], ref.body_pos))
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
