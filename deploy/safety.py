"""The safety layer every command passes through (pure NumPy, no I/O).

Checks, each of which latches a fault that sends the controller to damping (kp 0, kd ``damping_kd``):

- **watchdog**: no fresh LowState (new ``tick``) for ``state_timeout_s - watchdog_lead_s``, so that the damping
  command reaches the robot within ``state_timeout_s`` of its last state (the runtime wakes at that deadline
  instead of waiting for its next tick: :meth:`deploy.controller.Controller.watchdog_deadline`);
- **policy output**: non-finite actions, ``|a| > max_abs_action``, or a joint target beyond a position limit by
  more than ``limit_margin``;
- **fall**: the tilt from projected gravity exceeds ``max_tilt_deg``;
- **torque**: ``|tau_est| > torque_limit_scale * effort`` on any motor for ``torque_violation_steps`` checks in a row;
- **signal**: SIGINT/SIGTERM (raised by the runtime);
- **non-finite state**: NaN/inf in q, dq or the IMU.

Targets that pass are shaped by :func:`asap.control.shape_targets` as the policy's contract says (clamp to the
position limits, rate limit per control step: what the policy was trained with); the limit check above looks at
the target before that shaping.
Every transition is reported as a :class:`SafetyEvent` with its cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asap.control import TARGET_FAULT_MARGIN, target_limit_excess
from asap.utils.rotations import projected_gravity_z


@dataclass
class SafetyConfig:
    """Thresholds of the safety layer."""

    state_timeout_s: float = 0.05
    """Watchdog: the robot receives damping within this long of its last new LowState (s)."""
    watchdog_lead_s: float = 0.01
    """The watchdog trips this long before ``state_timeout_s`` (s): the margin for the loop's wake-up lateness,
    the damping command's computation and its DDS transit. Together well under 1 ms on an idle machine, but up
    to ~5 ms on a loaded one without real-time priority (scripts/bench_runtime.py, docs/BENCHMARKS.md)."""
    max_abs_action: float = 100.0
    """Raw policy outputs beyond this magnitude are a fault."""
    limit_margin: float = TARGET_FAULT_MARGIN
    """A target ``default + action_scale * a`` beyond a position limit by more than this (rad) is a fault (a broken
    policy). Smaller excursions are shaped as the policy was trained (its contract's ``target_clamp``): policies
    trained without the clamp push soft joints (ankles, Kp 20) up to ~1 rad past their stop to get torque."""
    max_tilt_deg: float = 55.0
    """Fall detection: tilt of the pelvis from upright (from projected gravity) beyond this is a fault."""
    torque_limit_scale: float = 1.1
    """Torque fault when |tau_est| exceeds this multiple of the motor's effort limit..."""
    torque_violation_steps: int = 3
    """...on this many consecutive checks."""
    damping_kd: float = 8.0
    """Kd of the damping command (kp is 0)."""


@dataclass(frozen=True)
class SafetyEvent:
    """A fault the safety layer raised."""

    kind: str
    """watchdog | nonfinite_action | action_range | target_limit | fall | torque | signal | nonfinite_state."""
    cause: str
    """Human-readable cause with the offending numbers."""
    time: float
    """Monotonic time (s) of detection."""


@dataclass
class SafetyLayer:
    """Stateful checks over a robot's motors (all arrays in motor order, M motors)."""

    lower: np.ndarray
    """Position lower limits (M,)."""
    upper: np.ndarray
    """Position upper limits (M,)."""
    effort: np.ndarray
    """Torque limits (M,)."""
    names: tuple[str, ...]
    """Motor names (M,) for messages."""
    cfg: SafetyConfig = field(default_factory=SafetyConfig)
    """Thresholds."""
    fault: SafetyEvent | None = None
    """The latched fault (None while healthy)."""
    _torque_count: np.ndarray | None = None
    _cos_tilt: float = 0.0

    def __post_init__(self) -> None:
        self.lower = np.asarray(self.lower, dtype=np.float64)
        self.upper = np.asarray(self.upper, dtype=np.float64)
        self.effort = np.asarray(self.effort, dtype=np.float64)
        self._torque_count = np.zeros(len(self.lower), dtype=np.int64)
        self._cos_tilt = float(np.cos(np.deg2rad(self.cfg.max_tilt_deg)))
        if not 0.0 <= self.cfg.watchdog_lead_s < self.cfg.state_timeout_s:
            raise ValueError(f"safety.watchdog_lead_s {self.cfg.watchdog_lead_s} must be in [0, state_timeout_s "
                             f"{self.cfg.state_timeout_s})")  # fmt: skip

    @property
    def watchdog_s(self) -> float:
        """Age of the last fresh LowState (s) at which the watchdog trips: ``state_timeout_s - watchdog_lead_s``."""
        return self.cfg.state_timeout_s - self.cfg.watchdog_lead_s

    # ------------------------------------------------------------------------------------------ latching
    def trip(self, kind: str, cause: str, now: float) -> SafetyEvent:
        """Latch a fault (the first one wins) and return the latched event."""
        if self.fault is None:
            self.fault = SafetyEvent(kind, cause, now)
        return self.fault

    def clear(self) -> None:
        """Re-arm after an operator acknowledged a fault (the runtime only allows it when checks pass)."""
        self.fault = None
        self._torque_count[:] = 0

    # ------------------------------------------------------------------------------------------ checks
    def check_state(
        self, now: float, last_state_time: float | None, q: np.ndarray, dq: np.ndarray, quat: np.ndarray,
        gyro: np.ndarray, tau_est: np.ndarray, check_fall: bool = True,
    ) -> SafetyEvent | None:  # fmt: skip
        """Watchdog, non-finite state, fall and torque checks. Returns the new fault, if any."""
        if self.fault is not None:
            return None
        if last_state_time is None or now - last_state_time > self.watchdog_s:
            age = float("inf") if last_state_time is None else now - last_state_time
            due = self.cfg.state_timeout_s * 1e3
            return self.trip("watchdog", f"no fresh LowState for {age * 1e3:.0f} ms (trips at "
                             f"{self.watchdog_s * 1e3:.0f} ms; damping due within {due:.0f} ms)", now)  # fmt: skip
        for name, arr in (("q", q), ("dq", dq), ("imu quaternion", quat), ("gyroscope", gyro)):
            if not np.all(np.isfinite(arr)):
                return self.trip("nonfinite_state", f"non-finite {name} in LowState", now)
        if check_fall:
            gz = float(projected_gravity_z(quat))
            if gz > -self._cos_tilt:
                tilt = float(np.rad2deg(np.arccos(np.clip(-gz, -1.0, 1.0))))
                return self.trip("fall", f"tilt {tilt:.0f} deg > {self.cfg.max_tilt_deg:.0f} deg (g_z {gz:.2f})", now)
        over = np.abs(tau_est) > self.cfg.torque_limit_scale * self.effort
        self._torque_count = np.where(over, self._torque_count + 1, 0)
        bad = np.nonzero(self._torque_count >= self.cfg.torque_violation_steps)[0]
        if bad.size:
            i = int(bad[0])
            return self.trip("torque", f"{self.names[i]} tau_est {tau_est[i]:.1f} Nm > "
                             f"{self.cfg.torque_limit_scale:.2f} x {self.effort[i]:.0f} Nm", now)  # fmt: skip
        return None

    def check_action(self, now: float, action: np.ndarray, names: tuple[str, ...]) -> SafetyEvent | None:
        """Raw policy output: finite and within ``max_abs_action``."""
        if self.fault is not None:
            return None
        if not np.all(np.isfinite(action)):
            bad = [names[i] for i in np.nonzero(~np.isfinite(action))[0][:3]]
            return self.trip("nonfinite_action", f"policy output is not finite at {bad}", now)
        big = np.abs(action) > self.cfg.max_abs_action
        if big.any():
            i = int(np.argmax(np.abs(action)))
            return self.trip("action_range", f"policy output {names[i]} = {action[i]:.1f} beyond "
                             f"+-{self.cfg.max_abs_action:g}", now)  # fmt: skip
        return None

    def check_targets(self, now: float, target: np.ndarray, motors: np.ndarray | None = None) -> SafetyEvent | None:
        """Fault when a joint target (of ``motors``, default all) lies beyond a limit by more than ``limit_margin``.

        ``target`` is the policy's target before shaping (``unshaped`` of :func:`asap.control.shape_targets`).
        """
        if self.fault is not None:
            return None
        idx = np.arange(len(self.lower)) if motors is None else np.asarray(motors)
        lo, hi = self.lower[idx], self.upper[idx]
        excess = target_limit_excess(target, lo, hi)
        if np.any(excess > self.cfg.limit_margin):
            k = int(np.argmax(excess))
            return self.trip("target_limit", f"target {self.names[idx[k]]} = {target[k]:.2f} rad is "
                             f"{excess[k]:.2f} rad beyond its limits [{lo[k]:.2f}, {hi[k]:.2f}]", now)  # fmt: skip
        return None
