"""Curricula of the tracking task, updated at every reset event (the reference's rule), as one object the env
owns and checkpoints save: the penalty factor, the soft-limit fractions and the motion-far threshold, driven by an
exponential average of the episode length (and, for the far threshold, optionally by the share of episodes that
reach their clip's end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.tracking.config import CurriculumConfig, RewardConfig, TerminationConfig


@dataclass
class TrackingCurricula:
    """State of the curricula; :meth:`update` applies one reset event."""

    cc: CurriculumConfig
    """Penalty and limit curriculum settings."""
    tc: TerminationConfig
    """Termination settings (the far-threshold curriculum)."""
    penalty_scale: float = 1.0
    """Factor on the penalty terms (``cc.penalty_terms``)."""
    limit_fracs: list[float] = field(default_factory=list)
    """Soft-limit fractions of the joint position, velocity and torque limits."""
    far_threshold: float = 0.0
    """Motion-far termination threshold (m)."""
    average_episode_length: float = 0.0
    """Exponential average of ended episodes' lengths (steps)."""
    timeout_rate: float = 0.0
    """Exponential average of the share of episodes that end by reaching their clip end (not failing)."""

    @staticmethod
    def initial(cc: CurriculumConfig, tc: TerminationConfig, rc: RewardConfig) -> TrackingCurricula:
        """The starting values of the configured curricula."""
        fracs = [cc.limits_initial] * 3 if cc.limits else [rc.soft_dof_pos_limit, rc.soft_dof_vel_limit,
                                                            rc.soft_torque_limit]  # fmt: skip
        return TrackingCurricula(cc=cc, tc=tc, penalty_scale=cc.penalty_initial if cc.penalty else 1.0,
                                 limit_fracs=fracs, far_threshold=tc.far_threshold)  # fmt: skip

    def update(self, mean_length: float, ok_share: float, ended: int) -> None:
        """One reset event: ``ended`` episodes ended with mean length ``mean_length`` (steps), a share
        ``ok_share`` of them at their clip's end."""
        cc, tc = self.cc, self.tc
        a = min(1.0, ended / max(cc.average_window, 1.0))
        if self.average_episode_length == 0.0:
            self.average_episode_length = mean_length
        else:
            self.average_episode_length = (1 - a) * self.average_episode_length + a * mean_length
        self.timeout_rate = (1 - a) * self.timeout_rate + a * ok_share
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
