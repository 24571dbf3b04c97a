"""The robot runtime: a fixed-rate loop around :class:`deploy.controller.Controller` over DDS.

One thread, ticking at ``cmd_hz`` (default 100 Hz) on absolute deadlines: every tick it takes the newest
LowState and every waiting root sample of the odometry topic (``root_source``, :mod:`deploy.odometry`; logged
with their own stamps), applies remote/keyboard events, runs the safety checks and publishes a LowCmd (CRC set,
``mode_machine`` echoed); every ``cmd_hz * control_dt``-th tick it is a policy step (50 Hz), which measures its
own period and logs one row. Between ticks it also wakes at the watchdog's deadline (the arrival time of the
newest LowState, stamped by DDS's own thread, plus the watchdog time), so a robot that goes silent gets damping
without waiting for the next tick.

Every way out of :meth:`Runtime.run` -- time budget, ``until``, the quit key, SIGINT/SIGTERM, an exception in the
loop -- goes through :meth:`Runtime._damp_out`: damping (kp 0, kd ``damping_kd``) published every tick for
``exit_damping_s``, the cause printed and logged (a transition to DAMPING ``exit: <cause>``), then the log is
closed. A robot that stops talking (peer gone) trips the watchdog and gets damping until one of those exits;
the runtime does not leave by itself then, so a robot whose link comes back still hears damping.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asap.robot.spec import MOTOR_NAMES, NUM_MOTORS
from deploy import crc
from deploy.contract import OnnxPolicy
from deploy.controller import BUTTON_EVENTS, KEY_EVENTS, Command, Controller, ControllerConfig, Mode, RobotState
from deploy.dds import ArrivalClock, Node, take_latest
from deploy.logger import RolloutLogger, control_row
from deploy.messages import TOPIC_LOWCMD, TOPIC_LOWSTATE, LowCmd_, LowState_, new_lowcmd
from deploy.odometry import OdometryRecorder, parse_root_source
from deploy.remote import ButtonEdges


@dataclass
class RuntimeConfig:
    """Runtime settings (configs/deploy/*.yaml)."""

    domain_id: int = 0
    """DDS domain (0 for the real G1, 1 for the virtual G1)."""
    interface: str | None = None
    """Network interface to bind (e.g. enp3s0 on the robot's network, lo for the virtual G1)."""
    cmd_hz: float = 100.0
    """Tick rate: safety checks and LowCmd publication (a multiple of the policy rate)."""
    exit_damping_s: float = 0.3
    """Every exit from ``Runtime.run`` (time budget, until, quit, signal, exception) publishes damping this long."""
    chunk_steps: int = 250
    """Control steps per log chunk (5 s at 50 Hz)."""
    rt_priority: int = 0
    """SCHED_FIFO priority for the loop thread (0: normal scheduling)."""
    check_crc: bool = True
    """Drop LowStates whose CRC is wrong."""
    root_source: str = "odometry"
    """Where the logged root comes from: ``odometry[:TOPIC]`` (a ROS 2 nav_msgs/Odometry topic, default rt/odom:
    mocap, or the virtual G1's ground truth; every sample is logged with its stamps) or ``estimate`` (IMU and leg
    kinematics, computed when the log is converted). Episodes without odometry fall back to the estimate."""
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    """State machine and safety settings."""


class Runtime:
    """Runs one policy on one G1 (real or virtual) until told to stop."""

    def __init__(
        self, policy: str | Path | OnnxPolicy, cfg: RuntimeConfig | None = None, log_dir: str | Path | None = None,
        dry_run: bool = False, keyboard: bool = False, extra_meta: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.cfg = cfg or RuntimeConfig()
        self.policy = policy if isinstance(policy, OnnxPolicy) else OnnxPolicy(policy)
        self.contract = self.policy.contract
        self.ctrl = Controller(self.contract, self.policy, self.cfg.controller)
        for _ in range(3):  # the first onnxruntime calls are slow: warm up before the loop
            self.policy(np.zeros(self.contract.obs_dim, np.float32))
        self.dry_run = dry_run
        ratio = self.cfg.cmd_hz * self.contract.control_dt
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f"cmd_hz {self.cfg.cmd_hz} must be a multiple of the policy rate "
                             f"{1 / self.contract.control_dt:g} Hz")  # fmt: skip
        self.ticks_per_step = int(round(ratio))
        self.node = Node(self.cfg.domain_id, self.cfg.interface)
        self.state_clock = ArrivalClock()
        self.state_reader, self.state_match = self.node.reader(TOPIC_LOWSTATE, LowState_, listener=self.state_clock)
        self._arrivals_seen = 0
        root_kind, root_topic = parse_root_source(self.cfg.root_source)
        self.odometry = OdometryRecorder(self.node, root_topic) if root_topic else None
        """The odometry stream's recorder (None with ``root_source: estimate``)."""
        self._wall_offset = time.time() - time.monotonic()
        self.cmd_writer = None if dry_run else self.node.writer(TOPIC_LOWCMD, LowCmd_)[0]
        self.cmd = new_lowcmd()
        self.edges = ButtonEdges()
        self.keys: queue.Queue[str] = queue.Queue()
        self.keyboard = keyboard
        self.stop_flag = False
        self.signal_name: str | None = None
        self.bad_crc = 0
        self.periods: list[float] = []
        self.compute_times: list[float] = []
        self.logger = None
        self._n_transitions = 0
        self.exit_cause: str | None = None
        """Why :meth:`run` returned (None while it runs)."""
        self.commands_sent = 0
        self.watchdog_wakes = 0
        if log_dir is not None:
            meta = {
                "policy": str(self.policy.path), **self.contract.to_metadata(),
                "joint_names": list(self.contract.joint_names), "motor_names": list(MOTOR_NAMES),
                "joint_motor_index": self.contract.motor_index.tolist(), "control_dt": self.contract.control_dt,
                "steps_per_motion": self.ctrl.steps_per_motion, "robot": self.contract.robot_variant,
                "domain_id": self.cfg.domain_id, "interface": self.cfg.interface, "cmd_hz": self.cfg.cmd_hz,
                "dry_run": dry_run, "pid": os.getpid(), "start_wall": time.time(), "root_source": root_kind,
                "root_topic": root_topic, "excitation_std": self.ctrl.cfg.excitation_std, **(extra_meta or {}),
            }  # fmt: skip
            self.logger = RolloutLogger(log_dir, meta, self.cfg.chunk_steps)

    # ------------------------------------------------------------------------------------------ inputs
    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.signal_name = signal.Signals(signum).name

    def _keyboard_thread(self) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self.stop_flag:
                ch = os.read(fd, 1).decode(errors="ignore").lower()
                if ch:
                    self.keys.put(ch)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    def _poll_inputs(self, now: float) -> None:
        n, arrival = self.state_clock.arrivals, self.state_clock.last_arrival  # read before taking (see below)
        s = take_latest(self.state_reader)
        if s is not None:
            # The newest sample arrived at the last stamp, unless the stamp lags it (DDS's thread waiting for the
            # GIL): then at the latest now. An early stamp only makes the watchdog stricter.
            recv = arrival if n > self._arrivals_seen and arrival is not None and arrival <= now else now
            self._arrivals_seen = n
            if self.cfg.check_crc and not crc.check(s):
                self.bad_crc += 1
            else:
                st = RobotState.from_raw(s.raw, recv)
                self.ctrl.on_state(st)
                for b in sorted(self.edges.update(st.remote)):
                    if b in BUTTON_EVENTS:
                        self.ctrl.request(BUTTON_EVENTS[b], now, f"remote {b}")
        if self.odometry is not None:
            samples = self.odometry.poll()
            if samples and self.logger is not None:
                self.logger.log_samples(samples)
        while not self.keys.empty():
            k = self.keys.get_nowait()
            if k in KEY_EVENTS:
                self.ctrl.request(KEY_EVENTS[k], now, f"key {k!r}")

    def press(self, key: str) -> None:
        """Inject a keyboard key (thread-safe)."""
        self.keys.put(key)

    # ------------------------------------------------------------------------------------------ outputs
    def _publish(self, now: float) -> None:
        c = self.ctrl.command(now)
        if c is not None:
            self._write(c)

    def _write(self, c: Command) -> None:
        if self.cmd_writer is None:
            return
        r = self.cmd.raw
        r["mode_pr"] = c.mode_pr
        r["mode_machine"] = c.mode_machine
        mc = r["motor_cmd"]
        mc["mode"][:NUM_MOTORS] = c.motor_mode
        mc["q"][:NUM_MOTORS] = c.q
        mc["dq"][:NUM_MOTORS] = c.dq
        mc["kp"][:NUM_MOTORS] = c.kp
        mc["kd"][:NUM_MOTORS] = c.kd
        mc["tau"][:NUM_MOTORS] = c.tau
        crc.seal(self.cmd)
        self.cmd_writer.write(self.cmd)
        self.commands_sent += 1

    def _log_step(self, now: float, t0: float, info: Any, period: float, compute: float) -> None:
        st = self.ctrl.state
        if self.logger is None or st is None:
            return
        root = None if self.odometry is None else self.odometry.latest
        wall = st.recv_time + self._wall_offset  # when the state arrived, on the clock odometry stamps use
        self.logger.log(control_row(now - t0, st, info, self.ctrl.command(now), root, self.contract.num_joints,
                                    self.contract.obs_dim, period, compute, wall))  # fmt: skip

    def _drain_transitions(self, t0: float) -> None:
        tr = self.ctrl.transitions
        while self._n_transitions < len(tr):
            t = tr[self._n_transitions]
            self._n_transitions += 1
            rec = {"time": t.time - t0, "wall": time.time() - (time.monotonic() - t.time), "from": t.src,
                   "to": t.dst, "cause": t.cause, "state_age": t.state_age}  # fmt: skip
            print(f"[runtime] {t.src} -> {t.dst}: {t.cause}", flush=True)
            if self.logger is not None:
                self.logger.event(rec)
                if t.dst == "DAMPING" or t.src == "RUN":
                    self.logger.flush()  # finished episodes and faults reach the disk at once

    # ------------------------------------------------------------------------------------------ loop
    def run(self, max_seconds: float | None = None, until: Any = None) -> dict[str, Any]:
        """Run the loop; returns a summary. ``until(runtime)`` may end it early (True = stop).

        Whatever ends it (``max_seconds``, ``until``, the quit key, SIGINT/SIGTERM, an exception, which is raised
        again afterwards), the robot gets damping for ``exit_damping_s`` first (see the module docstring).
        """
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for s in old:
                signal.signal(s, self._on_signal)
        if self.keyboard and sys.stdin.isatty():
            threading.Thread(target=self._keyboard_thread, daemon=True).start()
        old_sched = None
        if self.cfg.rt_priority > 0:
            try:
                old_sched = (os.sched_getscheduler(0), os.sched_getparam(0))
                os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(self.cfg.rt_priority))
            except (PermissionError, OSError) as e:
                print(f"[runtime] real-time priority not available ({e})", file=sys.stderr)
        t0 = time.monotonic()
        self.exit_cause = None
        try:
            try:
                cause = self._loop(t0, max_seconds, until)
            except BaseException as e:  # KeyboardInterrupt outside the main thread's handler too
                self._damp_out(f"{type(e).__name__} in the loop: {e}", t0)
                raise
            self._damp_out(cause, t0)
        finally:
            if old_sched is not None:  # the caller's thread gets its scheduling back
                try:
                    os.sched_setscheduler(0, old_sched[0], old_sched[1])
                except (PermissionError, OSError):
                    pass
            self.stop_flag = True
            if self.logger is not None:
                self._drain_transitions(t0)
                self.logger.close()
            if in_main:
                for s, h in old.items():
                    signal.signal(s, h)
        return self.summary()

    def _loop(self, t0: float, max_seconds: float | None, until: Any) -> str:
        """Tick until an exit condition holds; returns its cause."""
        period = 1.0 / self.cfg.cmd_hz
        t_next = t0
        tick = 0
        last_step: float | None = None
        while True:
            wake = t_next
            deadline = self.ctrl.watchdog_deadline()
            if deadline is not None and deadline + 1e-4 < wake:
                wake = deadline + 1e-4  # just past it: the check is "older than", not "as old as"
            delay = wake - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            if wake < t_next:  # the watchdog's wake-up between two ticks
                self.watchdog_wakes += 1
                self._poll_inputs(now)
                if self.ctrl.check(now) is not None:
                    self._publish(now)  # the damping command now, not at the next tick
                self._drain_transitions(t0)
                continue  # the tick itself stays on its schedule
            self._poll_inputs(now)
            if self.signal_name and not self.ctrl.quit_requested:
                self.ctrl.trip("signal", f"{self.signal_name} received", now)
            self.ctrl.check(now)
            if tick % self.ticks_per_step == 0:
                p = float("nan") if last_step is None else now - last_step
                last_step = now
                c0 = time.perf_counter()
                info = self.ctrl.policy_step(now)
                comp = time.perf_counter() - c0
                if p == p:
                    self.periods.append(p)
                if info.mode == Mode.RUN:
                    self.compute_times.append(comp)
                self._publish(now)
                self._log_step(now, t0, info, p, comp)
            else:
                self._publish(now)
            self._drain_transitions(t0)
            if self.signal_name:
                return f"{self.signal_name} received"
            if self.ctrl.quit_requested:
                return "quit requested"
            if max_seconds is not None and now - t0 >= max_seconds:
                return f"time budget of {max_seconds:g} s reached"
            if until is not None and until(self):
                return "stop condition (until) met"
            tick += 1
            t_next += period
            behind = time.monotonic() - t_next
            if behind > period:  # overrun: skip the missed ticks, keep the phase
                t_next += np.ceil(behind / period) * period

    def _damp_out(self, cause: str, t0: float) -> None:
        """The one way out: damping for ``exit_damping_s`` (every tick), the cause printed and logged.

        Built to work after an exception anywhere else: the command comes from
        :meth:`Controller.damping_command` alone, and the state polling and logging around it may fail.
        """
        self.exit_cause = cause
        now = time.monotonic()
        self.ctrl.shutdown(now, cause)
        if self.cmd_writer is None or self.ctrl.state is None:  # dry run, or nothing was ever addressed
            print(f"[runtime] exit: {cause} (no command was sent)", flush=True)
            self._safe(self._drain_transitions, t0)
            return
        print(f"[runtime] exit: {cause}; damping for {self.cfg.exit_damping_s:g} s", flush=True)
        period = 1.0 / self.cfg.cmd_hz
        end = now + self.cfg.exit_damping_s
        t_next = now
        tick = 0
        while True:
            now = time.monotonic()
            self._safe(self._poll_inputs, now)  # keeps mode_machine echoed; start/run are ignored when exiting
            self._write(self.ctrl.damping_command())
            if tick % self.ticks_per_step == 0:
                self._safe(self._log_damping_step, now, t0)
            self._safe(self._drain_transitions, t0)
            if now >= end:
                return
            tick += 1
            t_next += period
            delay = min(t_next, end) - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _log_damping_step(self, now: float, t0: float) -> None:
        info = self.ctrl.policy_step(now)
        self._log_step(now, t0, info, float("nan"), 0.0)

    @staticmethod
    def _safe(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - the damping must go on
            print(f"[runtime] while damping out: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

    def summary(self) -> dict[str, Any]:
        """Timing and state summary of the run so far."""
        per = np.asarray(self.periods) if self.periods else np.zeros(1)
        dt = self.contract.control_dt
        jit = np.abs(per - dt)
        return {
            "mode": self.ctrl.mode.name, "exit_cause": self.exit_cause, "episodes": self.ctrl.episode + 1,
            "commands_sent": self.commands_sent, "watchdog_wakes": self.watchdog_wakes,
            "fault": None if self.ctrl.safety.fault is None else self.ctrl.safety.fault.__dict__,
            "steps": len(self.periods), "bad_crc": self.bad_crc,
            "period_ms_mean": float(per.mean() * 1e3), "jitter_ms_p50": float(np.percentile(jit, 50) * 1e3),
            "jitter_ms_p99": float(np.percentile(jit, 99) * 1e3), "jitter_ms_max": float(jit.max() * 1e3),
        }  # fmt: skip
