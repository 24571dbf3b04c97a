"""The robot-side state machine: zero torque -> ramp to default (2 s) -> hold -> run policy -> damping.

Pure logic over NumPy arrays (no DDS, no clocks of its own): the runtime feeds it LowStates and operator events
and asks it for a command every tick; unit tests drive it directly.

Operator events (wireless remote / keyboard): ``start`` (START; ``s``) ramps to the default pose and holds it,
also re-arming after a fault once the robot is upright and its state fresh; ``run`` (A; ``a``) starts the policy
from HOLD; ``stop`` (SELECT; ``d`` or space) damps. When the motion ends the robot ramps back to the default
pose and holds (``after_motion: hold``) or damps (``damping``). :meth:`Controller.shutdown` is the way out: damping
that no operator event can leave (the runtime calls it on every exit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asap.control import policy_phase, shape_targets
from asap.obs import ObsBuilder, get_layout, proprio_terms
from asap.robot.spec import MOTOR_NAMES, NUM_MOTORS, get_spec
from asap.utils.rotations import projected_gravity_z
from deploy.contract import ContractError, PolicyContract
from deploy.messages import LOWSTATE_C
from deploy.modes import Mode
from deploy.safety import SafetyConfig, SafetyEvent, SafetyLayer

BUTTON_EVENTS = {"START": "start", "A": "run", "SELECT": "stop"}
"""Wireless-remote button -> controller event."""
KEY_EVENTS = {"s": "start", "a": "run", "d": "stop", " ": "stop", "q": "quit"}
"""Keyboard key -> controller event."""


@dataclass
class ControllerConfig:
    """Behaviour of the state machine."""

    ramp_s: float = 2.0
    """Duration of the linear ramp from the measured pose to the default pose."""
    start_blend_s: float = 1.5
    """When the policy carries the motion's start pose: blend from the held pose to it (s) before running."""
    after_motion: str = "hold"
    """What follows the end of the motion: 'hold' (ramp back to default and hold) or 'damping'."""
    mode_pr: int = 0
    """Ankle/waist parallel-mechanism mode sent in LowCmd (0 = PR, pitch/roll)."""
    motor_mode: int = 1
    """Motor mode byte for the 29 used slots (1 = enabled)."""
    check_fall_in: tuple[str, ...] = ("BLEND", "HOLD", "RUN", "RETURN")
    """Stages (:attr:`Controller.stage`) in which fall detection is active. Not in ZERO_TORQUE and the first RAMP
    to the default pose: a robot hanging limp in its gantry may tilt. BLEND (to the motion's start pose) and
    RETURN (back to the default pose after the motion) are RAMPs of a robot that already stood."""
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    """Safety thresholds."""
    excitation_std: float = 0.0
    """Standard deviation of Gaussian noise added to every policy action in RUN (action units, i.e. x action_scale
    rad of target; 0 = off), for collecting delta-training data: a deterministic policy on a repeatable robot logs
    nearly the same trajectory in every episode, and π^Δ then learns one trajectory; small noise spreads the logged
    states. The noise goes through the safety checks and target shaping like any action, and the log records the
    applied (noisy) action."""
    excitation_seed: int = 0
    """Seed of the excitation noise."""


@dataclass
class RobotState:
    """One LowState in motor order (29 motors) plus its reception time."""

    tick: int
    q: np.ndarray
    dq: np.ndarray
    tau_est: np.ndarray
    quat: np.ndarray
    gyro: np.ndarray
    acc: np.ndarray
    remote: np.ndarray
    mode_machine: int
    recv_time: float

    @classmethod
    def from_raw(cls, raw: np.ndarray, recv_time: float) -> RobotState:
        """From a C-layout LowState record (:data:`deploy.messages.LOWSTATE_C`)."""
        if raw.dtype != LOWSTATE_C:
            raise TypeError("expected a LowState record")
        ms = raw["motor_state"]
        imu = raw["imu_state"]
        return cls(
            tick=int(raw["tick"]), q=ms["q"][:NUM_MOTORS].astype(np.float64),
            dq=ms["dq"][:NUM_MOTORS].astype(np.float64),
            tau_est=ms["tau_est"][:NUM_MOTORS].astype(np.float64), quat=imu["quaternion"].astype(np.float64),
            gyro=imu["gyroscope"].astype(np.float64), acc=imu["accelerometer"].astype(np.float64),
            remote=np.array(raw["wireless_remote"], dtype=np.uint8), mode_machine=int(raw["mode_machine"]),
            recv_time=recv_time,
        )  # fmt: skip


@dataclass
class Command:
    """A LowCmd's content for the 29 motors."""

    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray
    mode_pr: int
    mode_machine: int
    motor_mode: int


@dataclass
class PolicyStepRecord:
    """What one :meth:`Controller.policy_step` computed on the robot: mode, phase, action, observation (logged)."""

    mode: Mode
    phase: float
    run_step: int
    episode: int
    action: np.ndarray
    obs: np.ndarray


@dataclass(frozen=True)
class Transition:
    """A state change with its cause."""

    time: float
    src: str
    dst: str
    cause: str
    state_age: float = float("nan")
    """Seconds since the last fresh LowState at the transition."""


class Controller:
    """State machine + policy + safety for one G1 (see module docstring)."""

    def __init__(self, contract: PolicyContract, policy, cfg: ControllerConfig | None = None) -> None:  # noqa: ANN001
        self.c = contract
        self.policy = policy
        self.cfg = cfg or ControllerConfig()
        self.excitation = np.random.default_rng(self.cfg.excitation_seed)
        """Generator of the excitation noise (:attr:`ControllerConfig.excitation_std`)."""
        spec = get_spec(contract.robot_variant)
        table = spec.motor_table()
        self.joint_motors = contract.motor_index
        if set(MOTOR_NAMES[i] for i in self.joint_motors) != set(spec.joint_names):
            raise ContractError(
                f"policy joints do not match robot variant {spec.name}: "
                f"{sorted(set(spec.joint_names) ^ set(contract.joint_names))}"
            )
        layout = get_layout(contract.obs_layout)
        if layout.history_length != contract.history_length:
            raise ContractError(f"history_length {contract.history_length} != layout {layout.name}'s "
                                f"{layout.history_length}")  # fmt: skip
        self.builder = ObsBuilder(layout, num_envs=1, num_joints=contract.num_joints, backend="numpy",
                                  noise_level=0.0, groups=("actor",))  # fmt: skip
        if self.builder.dim("actor") != contract.obs_dim:
            raise ContractError(f"obs_dim {contract.obs_dim} != layout {layout.name} actor width "
                                f"{self.builder.dim('actor')} for {contract.num_joints} joints")  # fmt: skip
        # 29-motor default pose and gains: policy joints from the contract, held joints from the spec.
        self.default_q = table["default"].copy()
        self.kp = table["kp"].copy()
        self.kd = table["kd"].copy()
        self.default_q[self.joint_motors] = contract.default_joint_pos
        self.kp[self.joint_motors] = contract.kp
        self.kd[self.joint_motors] = contract.kd
        self.safety = SafetyLayer(table["lower"], table["upper"], table["effort"], MOTOR_NAMES, self.cfg.safety)
        self.steps_per_motion = contract.motion_steps
        """Policy steps of one run (:func:`asap.control.motion_steps`, the count training and evaluation use)."""
        self.mode = Mode.WAIT
        self.state: RobotState | None = None
        self.last_fresh: float | None = None
        self.transitions: list[Transition] = []
        self.episode = -1
        self.run_step = 0
        self.last_action = np.zeros(contract.num_joints)
        self.target = self.default_q.copy()
        self.ramp_from = self.default_q.copy()
        self.ramp_to = self.default_q.copy()
        self.ramp_s = self.cfg.ramp_s
        self.ramp_t0 = 0.0
        self.ramp_kind = "RAMP"
        """What the current RAMP is: RAMP (to the default pose), BLEND (to the start pose) or RETURN (after the
        motion)."""
        self.start_q: np.ndarray | None = None
        if contract.start_joint_pos is not None:
            self.start_q = self.default_q.copy()
            self.start_q[self.joint_motors] = np.clip(contract.start_joint_pos, table["lower"][self.joint_motors],
                                                      table["upper"][self.joint_motors])  # fmt: skip
        self.pending_run: str | None = None
        self.quit_requested = False
        self.exiting = False
        """Set by :meth:`shutdown`: damping for good, operator events are ignored."""

    # ------------------------------------------------------------------------------------------ inputs
    def on_state(self, st: RobotState) -> None:
        """Record a LowState; a changed ``tick`` counts as fresh (feeds the watchdog)."""
        if self.state is None or st.tick != self.state.tick:
            self.last_fresh = st.recv_time
        self.state = st
        if self.mode == Mode.WAIT:
            self._go(Mode.ZERO_TORQUE, st.recv_time, "first LowState received")

    def request(self, event: str, now: float, source: str = "operator") -> None:
        """Apply an operator event: start | run | stop | quit (start and run are ignored after :meth:`shutdown`)."""
        if event not in ("start", "run", "stop", "quit"):
            raise ValueError(f"unknown controller event {event!r}")
        if self.exiting:
            return
        if event == "stop" or event == "quit":
            if event == "quit":
                self.quit_requested = True
            if self.mode != Mode.DAMPING:
                self.safety.trip("operator", f"{event} requested by {source}", now)
                self._go(Mode.DAMPING, now, f"{event} requested by {source}")
        elif event == "start":
            if self.mode == Mode.ZERO_TORQUE:
                self._start_ramp(now, f"start requested by {source}")
            elif self.mode == Mode.DAMPING and self._can_rearm(now):
                self.safety.clear()
                self._start_ramp(now, f"re-armed by {source} after damping")
        elif event == "run":
            if self.mode == Mode.HOLD:
                if self.start_q is not None and np.abs(self.start_q - self.target).max() > 1e-3:
                    self.pending_run = source
                    self._start_ramp(now, f"blend to the start pose of {self.c.motion_name} ({source})",
                                     to=self.start_q, duration=self.cfg.start_blend_s, kind="BLEND")  # fmt: skip
                else:
                    self._start_run(now, source)

    def trip(self, kind: str, cause: str, now: float) -> None:
        """An external fault (e.g. a signal): damping."""
        self.safety.trip(kind, cause, now)
        self.quit_requested = self.quit_requested or kind == "signal"
        if self.mode != Mode.DAMPING:
            self._go(Mode.DAMPING, now, f"{kind}: {cause}")

    def shutdown(self, now: float, cause: str) -> None:
        """The way out (time budget, quit, signal, error...): damping from now on, whatever the operator presses.

        Records a transition to DAMPING with ``exit: <cause>`` (also when already damping, so that every exit is
        logged with its cause). Latches no safety fault: an exit is not a fault.
        """
        self.exiting = True
        self.quit_requested = True
        self._go(Mode.DAMPING, now, f"exit: {cause}")

    @property
    def stage(self) -> str:
        """The mode's name, with the RAMPs told apart: RAMP (to the default pose), BLEND, RETURN (``ramp_kind``)."""
        return self.ramp_kind if self.mode == Mode.RAMP else self.mode.name

    def watchdog_deadline(self) -> float | None:
        """Monotonic time (s) at which the watchdog trips unless a fresh LowState arrives (None: not armed)."""
        if self.mode in (Mode.WAIT, Mode.DAMPING) or self.last_fresh is None or self.safety.fault is not None:
            return None
        return self.last_fresh + self.safety.watchdog_s

    # ------------------------------------------------------------------------------------------ ticks
    def check(self, now: float) -> SafetyEvent | None:
        """State checks (every tick); moves to damping on a new fault."""
        if self.mode in (Mode.WAIT, Mode.DAMPING):
            return None
        st = self.state
        assert st is not None
        ev = self.safety.check_state(now, self.last_fresh, st.q, st.dq, st.quat, st.gyro, st.tau_est,
                                     check_fall=self.stage in self.cfg.check_fall_in)  # fmt: skip
        if ev is not None:
            self._go(Mode.DAMPING, now, f"{ev.kind}: {ev.cause}")
        return ev

    def policy_step(self, now: float) -> PolicyStepRecord:
        """One control step (call at the policy rate): runs the policy in RUN, advances ramps and phases.

        A run is ``steps_per_motion`` policy steps; it ends at the step after the last one, once the last action has
        been applied for a whole control step, as in training (the last transition of a logged episode is a policy
        step too).
        """
        info = PolicyStepRecord(self.mode, 0.0, -1, self.episode, np.zeros(self.c.num_joints), np.zeros(0, np.float32))
        if self.mode == Mode.RUN and self.run_step >= self.steps_per_motion:
            if self.cfg.after_motion == "damping":
                self._go(Mode.DAMPING, now, "motion finished")
            else:
                self._start_ramp(now, "motion finished", kind="RETURN")
        elif self.mode == Mode.RAMP and now - self.ramp_t0 >= self.ramp_s:
            self.target = self.ramp_to.copy()
            if self.pending_run is not None:
                source, self.pending_run = self.pending_run, None
                self._start_run(now, source)
            else:
                self._go(Mode.HOLD, now, "ramp finished")
        if self.mode != Mode.RUN:
            info.mode = self.mode
            return info
        st = self.state
        assert st is not None
        k = self.run_step
        phase = policy_phase(k, self.c.control_dt, self.c.motion_length_s)
        obs = self.observe(st, phase)
        action = np.asarray(self.policy(obs), dtype=np.float64)
        if self.cfg.excitation_std > 0:
            action = action + self.excitation.normal(0.0, self.cfg.excitation_std, action.shape)
        info = PolicyStepRecord(Mode.RUN, phase, k, self.episode, action, obs)
        ev = self.safety.check_action(now, action, self.c.joint_names)
        if ev is None:
            jm = self.joint_motors  # targets shaped exactly as in training (the policy's contract)
            a, unshaped, tgt = shape_targets(action, self.target[jm], self.c.default_joint_pos, self.c.action_scale,
                                             self.safety.lower[jm], self.safety.upper[jm], self.c.shaping)  # fmt: skip
            ev = self.safety.check_targets(now, unshaped, jm)
            if ev is None:
                self.target[self.joint_motors] = tgt
                self.last_action = a
        if ev is not None:
            self._go(Mode.DAMPING, now, f"{ev.kind}: {ev.cause}")
            return info
        self.run_step += 1
        return info

    def observe(self, st: RobotState, phase: float) -> np.ndarray:
        """The actor observation (obs_dim,) from a state; pushes the step into the history."""
        jm = self.joint_motors
        raw = proprio_terms(
            root_quat=st.quat[None], base_ang_vel=st.gyro[None], dof_pos=st.q[jm][None], dof_vel=st.dq[jm][None],
            default_dof_pos=self.c.default_joint_pos, last_action=self.last_action[None],
            phase=np.array([phase]),
        )  # fmt: skip
        return self.builder.build(raw)["actor"][0]

    def command(self, now: float) -> Command | None:
        """The LowCmd content for this tick (None before the first LowState)."""
        st = self.state
        if st is None or self.mode == Mode.WAIT:
            return None
        z = np.zeros(NUM_MOTORS)
        if self.mode == Mode.ZERO_TORQUE:
            return Command(st.q.copy(), z, z.copy(), z.copy(), z.copy(), self.cfg.mode_pr, st.mode_machine,
                           self.cfg.motor_mode)  # fmt: skip
        if self.mode == Mode.DAMPING:
            return self.damping_command()
        if self.mode == Mode.RAMP:
            a = min(1.0, (now - self.ramp_t0) / self.ramp_s) if self.ramp_s > 0 else 1.0
            self.target = self.ramp_from + a * (self.ramp_to - self.ramp_from)
        elif self.mode == Mode.HOLD:
            self.target = self.ramp_to.copy()
        return Command(self.target.copy(), z, self.kp.copy(), self.kd.copy(), z.copy(), self.cfg.mode_pr,
                       st.mode_machine, self.cfg.motor_mode)  # fmt: skip

    def damping_command(self) -> Command:
        """Damping for all 29 motors (kp 0, kd ``damping_kd``, echoing the robot's ``mode_machine``), in any mode.

        Raises RuntimeError before the first LowState (the robot's ``mode_machine`` is not known yet).
        """
        if self.state is None:
            raise RuntimeError("no LowState received yet: no command can be addressed to the robot")
        z = np.zeros(NUM_MOTORS)
        kd = np.full(NUM_MOTORS, self.cfg.safety.damping_kd)
        return Command(z, z.copy(), z.copy(), kd, z.copy(), self.cfg.mode_pr, self.state.mode_machine,
                       self.cfg.motor_mode)  # fmt: skip

    # ------------------------------------------------------------------------------------------ internals
    def _go(self, mode: Mode, now: float, cause: str) -> None:
        age = float("nan") if self.last_fresh is None else now - self.last_fresh
        self.transitions.append(Transition(now, self.mode.name, mode.name, cause, age))
        self.mode = mode
        if mode == Mode.DAMPING:
            self.pending_run = None  # a fault or a stop cancels a requested run

    def _start_ramp(
        self, now: float, cause: str, to: np.ndarray | None = None, duration: float | None = None, kind: str = "RAMP"
    ) -> None:
        """Ramp linearly from the measured pose to ``to`` (default pose) over ``duration`` (cfg.ramp_s).

        ``kind`` names the ramp for :attr:`stage` (RAMP, BLEND or RETURN).
        """
        assert self.state is not None
        self.ramp_from = np.clip(self.state.q, self.safety.lower, self.safety.upper)
        self.ramp_to = (self.default_q if to is None else to).copy()
        self.ramp_s = self.cfg.ramp_s if duration is None else duration
        self.ramp_t0 = now
        self.ramp_kind = kind
        self.target = self.ramp_from.copy()
        self._go(Mode.RAMP, now, cause)

    def _start_run(self, now: float, source: str) -> None:
        self.episode += 1
        self.run_step = 0
        self.last_action = np.zeros(self.c.num_joints)
        self.builder.reset()
        self._go(Mode.RUN, now, f"run requested by {source} (episode {self.episode}, motion {self.c.motion_name})")

    def _can_rearm(self, now: float) -> bool:
        f = self.safety.fault
        if f is not None and f.kind == "signal" or self.state is None or self.last_fresh is None:
            return False
        fresh = now - self.last_fresh <= self.cfg.safety.state_timeout_s
        upright = projected_gravity_z(self.state.quat) < -np.cos(np.deg2rad(self.cfg.safety.max_tilt_deg))
        return fresh and upright
