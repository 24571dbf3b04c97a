"""Configuration of the phase-based motion-tracking task (ASAP pretraining and fine-tuning).

Defaults are the reference's pretraining settings (asap-method.md section 4): Table I reward weights with the
reference's sigmas, tilt and motion-far terminations, penalty and limit curricula, no domain randomisation. One
departure: joint targets are clamped to the joint limits and rate-limited as on the robot (``target_shaping``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asap.control import TargetShaping


@dataclass
class RewardConfig:
    """Weights (before the dt scaling) and sigmas of the tracking rewards (paper Table I)."""

    body_pos: float = 1.0
    """Weight of teleop_body_position_extend (upper + lower body positions)."""
    body_pos_upper_weight: float = 1.0
    """Inner weight of the upper-body part of body_pos."""
    body_pos_lower_weight: float = 0.5
    """Inner weight of the lower-body part of body_pos."""
    sigma_body_pos_upper: float = 0.03
    """Sigma of the upper-body position mse (m^2)."""
    sigma_body_pos_lower: float = 0.1
    """Sigma of the lower-body position mse (m^2)."""
    vr_3point: float = 1.6
    """Weight of the hands + head position term."""
    sigma_vr_3point: float = 0.03
    """Sigma of the VR 3-point position mse."""
    feet_pos: float = 2.1
    """Weight of the feet (ankle-roll links) position term."""
    sigma_feet_pos: float = 0.03
    """Sigma of the feet position mse."""
    body_rot: float = 0.5
    """Weight of the body rotation term."""
    sigma_body_rot: float = 1.0
    """Sigma of the mean squared rotation angle (rad^2)."""
    body_vel: float = 0.5
    """Weight of the body linear velocity term."""
    sigma_body_vel: float = 1.0
    """Sigma of the body linear velocity mse."""
    body_ang_vel: float = 0.5
    """Weight of the body angular velocity term."""
    sigma_body_ang_vel: float = 1.0
    """Sigma of the body angular velocity mse."""
    joint_pos: float = 0.75
    """Weight of the joint position term."""
    sigma_joint_pos: float = 1.0
    """Sigma of the joint position mse."""
    joint_vel: float = 0.5
    """Weight of the joint velocity term."""
    sigma_joint_vel: float = 1.0
    """Sigma of the joint velocity mse."""
    torques: float = -1e-6
    """Weight of the sum of squared torques."""
    action_rate: float = -0.5
    """Weight of the sum of squared action changes."""
    feet_ori: float = -2.0
    """Weight of the feet orientation (gravity xy in the foot frame) penalty."""
    feet_heading: float = -0.1
    """Weight of the feet heading alignment penalty."""
    slippage: float = -1.0
    """Weight of the feet slippage penalty."""
    limits_dof_pos: float = -10.0
    """Weight of the soft joint-position limit penalty."""
    limits_dof_vel: float = -5.0
    """Weight of the soft joint-velocity limit penalty."""
    limits_torque: float = -5.0
    """Weight of the soft torque limit penalty."""
    termination: float = -200.0
    """Reward on a reset that is not a timeout."""
    soft_dof_pos_limit: float = 0.9
    """Fraction of the joint range used as the soft position limit (when the limit curriculum is off)."""
    soft_dof_vel_limit: float = 0.9
    """Fraction of the velocity limit used as the soft limit (when the limit curriculum is off)."""
    soft_torque_limit: float = 0.825
    """Fraction of the torque limit used as the soft limit (when the limit curriculum is off)."""
    scale_by_dt: bool = True
    """Multiply every weight by the control dt (0.02 s), as the reference does."""
    only_positive: bool = False
    """Clip the total (before the termination term) at 0."""

    def table(self) -> dict[str, dict[str, float]]:
        """These weights and sigmas as the reward table of :class:`envs.common.reward_terms.RewardTable` (the
        termination weight is not a term: the env adds it on failure). Soft-limit fractions are the fixed ones;
        the limit curriculum overrides them per step."""
        return {
            "body_pos": {"weight": self.body_pos, "sigma_upper": self.sigma_body_pos_upper,
                         "sigma_lower": self.sigma_body_pos_lower, "weight_upper": self.body_pos_upper_weight,
                         "weight_lower": self.body_pos_lower_weight},
            "vr_3point": {"weight": self.vr_3point, "sigma": self.sigma_vr_3point},
            "feet_pos": {"weight": self.feet_pos, "sigma": self.sigma_feet_pos},
            "body_rot": {"weight": self.body_rot, "sigma": self.sigma_body_rot},
            "body_vel": {"weight": self.body_vel, "sigma": self.sigma_body_vel},
            "body_ang_vel": {"weight": self.body_ang_vel, "sigma": self.sigma_body_ang_vel},
            "joint_pos": {"weight": self.joint_pos, "sigma": self.sigma_joint_pos},
            "joint_vel": {"weight": self.joint_vel, "sigma": self.sigma_joint_vel},
            "torques": {"weight": self.torques},
            "action_rate": {"weight": self.action_rate},
            "feet_ori": {"weight": self.feet_ori},
            "feet_heading": {"weight": self.feet_heading},
            "slippage": {"weight": self.slippage},
            "limits_dof_pos": {"weight": self.limits_dof_pos, "soft": self.soft_dof_pos_limit},
            "limits_dof_vel": {"weight": self.limits_dof_vel, "soft": self.soft_dof_vel_limit},
            "limits_torque": {"weight": self.limits_torque, "soft": self.soft_torque_limit},
        }  # fmt: skip


@dataclass
class TerminationConfig:
    """When an episode ends early."""

    gravity_tilt: float = 0.8
    """Terminate when |g_x| or |g_y| of the projected gravity exceeds this (<= 0: off)."""
    motion_far: bool = True
    """Terminate when any tracked body is farther than the threshold from its reference."""
    far_threshold: float = 1.5
    """Initial motion-far threshold (m)."""
    far_threshold_min: float = 0.3
    """Lower clip of the threshold curriculum (m)."""
    far_threshold_max: float = 2.0
    """Upper clip of the threshold curriculum (m)."""
    far_curriculum: bool = True
    """Move the threshold with training progress (see far_curriculum_mode)."""
    far_curriculum_mode: str = "episode_length"
    """'episode_length' (reference: x(1 -+ degree) per reset event when the average episode is long/short) or
    'timeout_rate' (threshold = max - (max - min) * share of episodes that reach their end: tightens as success
    grows)."""
    far_curriculum_degree: float = 2.5e-5
    """Relative change of the threshold per reset event."""
    max_episode_length_s: float = 20.0
    """Episode timeout (s); the motion end also ends an episode as a timeout."""
    target_limit_fault: bool = True
    """End the episode as a failure when an unshaped joint target lies more than the robot runtime's fault margin
    (:data:`asap.control.TARGET_FAULT_MARGIN`) past a joint limit: the robot would damp there."""


@dataclass
class CurriculumConfig:
    """Penalty and limit curricula driven by the average episode length."""

    length_low: float = 40.0
    """Average episode length (steps) under which the curricula loosen."""
    length_high: float = 42.0
    """Average episode length (steps) over which the curricula tighten."""
    average_window: float = 10000.0
    """Window (episodes) of the exponential average of the episode length."""
    penalty: bool = True
    """Scale the penalty terms by a factor that grows as episodes get long."""
    penalty_initial: float = 0.1
    """Initial penalty factor."""
    penalty_degree: float = 1e-5
    """Relative change of the penalty factor per reset event."""
    penalty_min: float = 0.0
    """Lower clip of the penalty factor."""
    penalty_max: float = 1.0
    """Upper clip of the penalty factor."""
    penalty_terms: list[str] = field(
        default_factory=lambda: [
            "torques",
            "action_rate",
            "limits_dof_pos",
            "limits_dof_vel",
            "limits_torque",
            "feet_heading",
            "feet_ori",
            "slippage",
        ]  # fmt: skip
    )
    """Reward terms the penalty factor multiplies."""
    limits: bool = True
    """Use the limit curriculum (soft limit fractions start loose at 1.15 and tighten)."""
    limits_initial: float = 1.15
    """Initial soft-limit fraction (position, velocity and torque)."""
    limits_degree: float = 2.5e-7
    """Relative change of the soft-limit fractions per reset event."""
    limits_pos_range: tuple[float, float] = (0.95, 1.15)
    """Clip of the position soft-limit fraction."""
    limits_vel_range: tuple[float, float] = (0.95, 1.25)
    """Clip of the velocity soft-limit fraction."""
    limits_torque_range: tuple[float, float] = (0.85, 1.25)
    """Clip of the torque soft-limit fraction."""


@dataclass
class DomainRandConfig:
    """Domain randomisation (all off by default, like the reference's NO_domain_rand pretraining)."""

    friction: bool = False
    """Randomise the contact friction per env at reset."""
    friction_range: tuple[float, float] = (0.5, 1.25)
    """Friction coefficient range."""
    kp_kd: bool = False
    """Randomise Kp and Kd scales per joint at reset."""
    kp_range: tuple[float, float] = (0.75, 1.25)
    """Kp scale range."""
    kd_range: tuple[float, float] = (0.75, 1.25)
    """Kd scale range."""
    control_delay: bool = False
    """Randomise the action delay (control steps) per env at reset."""
    control_delay_range: tuple[int, int] = (0, 2)
    """Inclusive range of the action delay (control steps)."""
    substep_delay: bool = False
    """Randomise a command latency below one control step (physics substeps of 5 ms) per env at reset: the robot
    runtime's loop applies a LowCmd at the motors' next tick after the LowState it was computed from."""
    substep_delay_range: tuple[int, int] = (0, 2)
    """Inclusive range of that latency (physics substeps, at most decimation - 1 = 3)."""
    push: bool = False
    """Push the robots by setting the base xy velocity."""
    push_interval_s: tuple[float, float] = (5.0, 10.0)
    """Range of the time between pushes (s)."""
    push_max_vel: float = 1.0
    """Push velocity U(-v, v) per xy axis (m/s)."""
    com_offset: bool = False
    """Offset the torso centre of mass per env at reset."""
    com_offset_range: tuple[float, float] = (-0.1, 0.1)
    """CoM offset range per axis (m)."""
    com_offset_body: str = "torso_link"
    """Link whose CoM is offset."""
    link_mass: bool = False
    """Scale the mass of some links per env at reset."""
    link_mass_range: tuple[float, float] = (0.8, 1.2)
    """Mass scale range."""
    link_mass_bodies: list[str] = field(
        default_factory=lambda: [
            "pelvis",
            "left_hip_pitch_link",
            "left_hip_roll_link",
            "left_hip_yaw_link",
            "right_hip_pitch_link",
            "right_hip_roll_link",
            "right_hip_yaw_link",
            "left_knee_link",
            "right_knee_link",
        ]  # fmt: skip
    )
    """Links whose mass is scaled."""


@dataclass
class SamplingConfig:
    """How episodes choose their motion and start time."""

    random_start: bool = True
    """Start at a random time of the clip (reference-state initialisation); False: at 0."""
    adaptive: bool = True
    """Failure-adaptive start times (BeyondMimic-style bins): start more often just before where episodes fail."""
    bin_s: float = 0.5
    """Width of a start-time bin (s)."""
    uniform_ratio: float = 0.1
    """Share of starts drawn uniformly (over motions, then time) instead of by failure rate."""
    kernel_size: int = 3
    """Bins before a failure that share its weight (the failure bin included)."""
    kernel_decay: float = 0.8
    """Weight of each bin further before the failure (geometric)."""
    ema: float = 0.1
    """Weight of the newest failure counts in the per-bin exponential average (applied every commit_steps)."""
    commit_steps: int = 24
    """Env steps between updates of the failure statistics."""


@dataclass
class InitNoiseConfig:
    """Noise on the reference-state initialisation, multiplied by ``level``."""

    level: float = 0.0
    """noise_to_initial_level: 0 in pretraining, 1 in fine-tuning."""
    dof_pos: float = 0.1
    """Gaussian sigma on joint positions (rad)."""
    dof_vel: float = 0.15
    """Gaussian sigma on joint velocities (rad/s)."""
    root_pos: float = 0.05
    """Gaussian sigma on the root position (m)."""
    root_vel: float = 0.01
    """Gaussian sigma on the root linear velocity (m/s)."""
    root_ang_vel: float = 0.01
    """Gaussian sigma on the root angular velocity (rad/s)."""
    root_rot_deg: float = 10.0
    """Root rotation noise: random axis, angle U(0, this) degrees."""
    root_rot_tilt_only: bool = False
    """Draw the root rotation noise's axis in the horizontal plane: roll/pitch tilts about the world x/y axes, no
    rotation about the vertical (the reference draws any axis)."""
    clean_ratio: float = 0.0
    """Share of resets, drawn per reset, that start exactly at the reference state although ``level`` > 0 (keeps
    clean starts in a fine-tuning that also learns to recover from perturbed ones)."""


@dataclass
class LoggedStartsConfig:
    """Starts from states the robot was really in when its policy started (``asap collect``'s logged episodes)."""

    logs: list[str] = field(default_factory=list)
    """Motion files with ``action`` or folders of them (``asap collect``'s ``motions/``): the first frame of each,
    the state the runtime handed to the policy (after the blend and the support release), is a start state at time 0
    of the clip it ran."""
    ratio: float = 0.0
    """Share of training resets that start from one of those states (drawn uniformly) instead of the sampler's
    (motion, time) with reference-state initialisation; 0: off. Never in evaluation."""


@dataclass
class TrackingEnvConfig:
    """The motion-tracking task (observation, action, reward, termination, randomisation, sampling)."""

    obs_layout: str = "asap_v1"
    """Observation layout name (asap.obs registry)."""
    obs_noise_level: float = 1.0
    """Multiplier on the layout's observation noise table (0: no noise)."""
    residual_actions: bool = False
    """Policy output is a correction around the reference joint angles: a = a_policy + (q_ref - default)/scale."""
    target_shaping: TargetShaping = field(default_factory=TargetShaping)
    """Joint-target clamp and rate limit (:mod:`asap.control`); the default is the robot runtime's, and the export
    writes it into the policy contract so the runtime applies what training applied."""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    """Reward weights and sigmas."""
    termination: TerminationConfig = field(default_factory=TerminationConfig)
    """Termination conditions."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """Penalty and limit curricula."""
    domain_rand: DomainRandConfig = field(default_factory=DomainRandConfig)
    """Domain randomisation."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Motion and start-time sampling."""
    init_noise: InitNoiseConfig = field(default_factory=InitNoiseConfig)
    """Reference-state initialisation noise."""
    logged_starts: LoggedStartsConfig = field(default_factory=LoggedStartsConfig)
    """Starts from logged robot states (the support-release start of the runtime; off by default)."""
    seed: int = 0
    """Seed of the env's random generator."""
