"""The virtual G1: a simulated G1 (MuJoCo or Genesis) served over the robot's own DDS topics, with a hidden reality gap.

It steps the 29-motor G1 at 200 Hz in real time. Each step it takes the newest ``rt/lowcmd`` (CRC checked; bad
ones are counted and ignored; the command takes effect ``latency_s`` after arrival), applies the gap's motor law
(:class:`deploy.gap.ActuatorLaw`: ``tau = s * (kp (q* - q) + kd (dq* - dq)) + tau_ff`` with the profile's
Kp/Kd/strength factors, clipped to the saturated effort limits), steps the physics and publishes ``rt/lowstate``
(running ``tick`` in ms, IMU wxyz quaternion, body-frame gyro, accelerometer, motor states, remote bytes, CRC) and
its ground-truth root as ROS 2 ``nav_msgs/Odometry`` on ``rt/odom`` (rate, latency and noise configurable:
:class:`deploy.odometry.OdometryPublishConfig`, as a mocap bridge would). ``asap/sim/ctrl`` lets tests and
``asap collect`` press remote buttons, pause the state stream, hold the robot in a support (a spring-damper on the
pelvis, for start-up), push or tip it, and reset it.
The physics is an engine of :mod:`deploy.engine` (``mujoco``, the reference, or ``genesis``,
:mod:`deploy.genesis_engine`); everything above is shared by both.

Run with ``asap robot-sim`` or ``python -m deploy.virtual_g1``.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asap.robot.spec import MOTOR_NAMES, NUM_MOTORS, get_spec
from asap.utils.rotations import quat_rotate, quat_to_rpy
from deploy import crc
from deploy.dds import RELIABLE, Node, take_latest, wait_matched
from deploy.engine import GRAVITY, Engine, EngineState, make_engine
from deploy.gap import ActuatorLaw, RealGapConfig, load_gap
from deploy.messages import (
    SIM_COMMANDS,
    TOPIC_LOWCMD,
    TOPIC_LOWSTATE,
    TOPIC_SIMCTRL,
    LowCmd_,
    LowState_,
    SimCtrl_,
    new_lowstate,
)
from deploy.odometry import OdometryPublishConfig, OdometryPublisher
from deploy.remote import encode

__all__ = ["GRAVITY", "SimClient", "SupportParams", "VirtualG1", "main", "main_from_args", "spawn", "support_wrench"]


@dataclass
class SupportParams:
    """Spring-damper holding the pelvis at its standing pose (yaw free)."""

    k_pos: tuple[float, float, float] = (1000.0, 1000.0, 3000.0)
    c_pos: tuple[float, float, float] = (200.0, 200.0, 400.0)
    k_rot: float = 400.0
    c_rot: float = 40.0


def support_wrench(s: EngineState, anchor: np.ndarray, sp: SupportParams) -> np.ndarray:
    """World-frame force and torque (6,) of the support band on the pelvis, holding it at ``anchor`` (yaw free)."""
    f = np.asarray(sp.k_pos) * (anchor - s.pos) - np.asarray(sp.c_pos) * s.lin_vel
    up = quat_rotate(s.quat, np.array([0.0, 0.0, 1.0]))
    w_world = s.ang_vel
    torque = sp.k_rot * np.cross(up, [0.0, 0.0, 1.0]) - sp.c_rot * np.array([w_world[0], w_world[1], 0.0])
    return np.concatenate([f, torque])


class VirtualG1:
    """One simulated G1 behind DDS (see module docstring)."""

    def __init__(
        self, gap: RealGapConfig | None = None, domain_id: int = 1, interface: str | None = "lo",
        support: bool = True, mode_machine: int = 5, seed: int = 0, engine: str = "mujoco",
        odometry: OdometryPublishConfig | None = None,
    ) -> None:  # fmt: skip
        self.gap = gap or RealGapConfig()
        rs = get_spec("g1_29dof")
        self.engine: Engine = make_engine(engine, self.gap)
        self.dt = self.engine.dt
        self.default_q = rs.default_pos
        self.stand_z = self.engine.stand_z
        self.law = ActuatorLaw.of(self.gap, MOTOR_NAMES, rs.effort_limit)
        """The gap's motor law over the 29 motors (wire order)."""
        self.support = support
        self.support_params = SupportParams()
        self.mode_machine = mode_machine
        self.rng = np.random.default_rng(seed)
        self.node = Node(domain_id, interface)
        self.state_writer, _ = self.node.writer(TOPIC_LOWSTATE, LowState_)
        odom_rng = np.random.default_rng(seed + 1)
        self.odometry = OdometryPublisher(self.node, odometry or OdometryPublishConfig(), odom_rng)
        """The ground-truth root as nav_msgs/Odometry (a mocap stand-in)."""
        self.cmd_reader, _ = self.node.reader(TOPIC_LOWCMD, LowCmd_)
        self.ctrl_reader, _ = self.node.reader(TOPIC_SIMCTRL, SimCtrl_, qos=RELIABLE)
        self.state = new_lowstate()
        self.remote = np.zeros(40, dtype=np.uint8)
        self.publish_state = True
        self.pending: collections.deque = collections.deque()
        self.active: np.ndarray | None = None  # C-layout LowCmd record in effect
        self.step_count = 0
        self.bad_crc = 0
        self.cmds = 0
        self.overruns = 0
        self.quit = False
        self.tau = np.zeros(NUM_MOTORS)
        self.s: EngineState
        self.reset()

    # ------------------------------------------------------------------------------------------ physics
    def reset(self) -> None:
        """Default standing pose, at rest."""
        self.engine.reset(np.array([0.0, 0.0, self.stand_z]), np.array([1.0, 0.0, 0.0, 0.0]), self.default_q)
        self.s = self.engine.state()
        self.anchor = self.s.pos.copy()

    def _support_wrench(self) -> np.ndarray:
        return support_wrench(self.s, self.anchor, self.support_params)

    def _motor_torque(self) -> np.ndarray:
        a = self.active
        if a is None:
            return np.zeros(NUM_MOTORS)
        mc = a["motor_cmd"][:NUM_MOTORS]
        f64 = np.float64
        tau = self.law.torque(mc["q"].astype(f64), self.s.q, self.s.dq, mc["kp"].astype(f64), mc["kd"].astype(f64),
                              mc["dq"].astype(f64), mc["tau"].astype(f64))  # fmt: skip
        return np.where(mc["mode"] > 0, tau, 0.0)

    def step(self, now: float) -> None:
        """One 5 ms step: commands in, physics, state out."""
        self._read_commands(now)
        self.tau = self._motor_torque()
        self.engine.set_torque(self.tau)
        self.engine.apply_external(self._support_wrench() if self.support else None)
        self.engine.step()
        self.s = self.engine.state()
        self.step_count += 1
        self._publish()

    # ------------------------------------------------------------------------------------------ DDS
    def _read_commands(self, now: float) -> None:
        for s in self.ctrl_reader.take(N=64):
            if getattr(s, "sample_info", None) is not None and s.sample_info.valid_data:
                self._handle_ctrl(s)
        c = take_latest(self.cmd_reader)
        if c is not None:
            if crc.check(c):
                self.cmds += 1
                self.pending.append((now, c.raw))
            else:
                self.bad_crc += 1
        lat = self.gap.latency_s
        while self.pending and self.pending[0][0] <= now - lat:
            self.active = self.pending.popleft()[1]

    def _handle_ctrl(self, s: SimCtrl_) -> None:
        cmd = int(s.command)
        a = np.asarray(s.args, dtype=np.float64)
        if cmd == SIM_COMMANDS["remote"]:
            r = s.remote
            self.remote = (
                np.frombuffer(bytes(r), np.uint8).copy()
                if isinstance(r, bytes | bytearray)
                else (np.asarray(r, dtype=np.uint8))
            )
        elif cmd == SIM_COMMANDS["pause_state"]:
            self.publish_state = False
        elif cmd == SIM_COMMANDS["resume_state"]:
            self.publish_state = True
        elif cmd == SIM_COMMANDS["support_on"]:
            self.anchor = np.array([self.s.pos[0], self.s.pos[1], self.stand_z])
            self.support = True
        elif cmd == SIM_COMMANDS["support_off"]:
            self.support = False
        elif cmd == SIM_COMMANDS["push"]:
            self.engine.add_velocity(a[:3], np.zeros(3))
            self.s = self.engine.state()
        elif cmd == SIM_COMMANDS["tip"]:
            self.engine.add_velocity(np.zeros(3), a[:3])
            self.s = self.engine.state()
        elif cmd == SIM_COMMANDS["reset"]:
            self.reset()
        elif cmd == SIM_COMMANDS["quit"]:
            self.quit = True

    def _publish(self) -> None:
        s = self.s
        quat = s.quat
        gyro = s.gyro.copy()
        if self.gap.imu_gyro_noise > 0:
            gyro = gyro + self.rng.normal(0.0, self.gap.imu_gyro_noise, 3)
        tick = (self.step_count * 5) & 0xFFFFFFFF
        if self.publish_state:
            r = self.state.raw
            r["tick"] = tick
            r["mode_machine"] = self.mode_machine
            r["mode_pr"] = 0 if self.active is None else int(self.active["mode_pr"])
            r["version"] = [1, 0]
            imu = r["imu_state"]
            imu["quaternion"] = quat
            imu["gyroscope"] = gyro
            imu["accelerometer"] = s.acc
            imu["rpy"] = quat_to_rpy(np.asarray(quat, dtype=np.float64))
            imu["temperature"] = 30
            ms = r["motor_state"]
            ms["mode"][:NUM_MOTORS] = 1
            ms["q"][:NUM_MOTORS] = s.q
            dq = s.dq
            if self.gap.joint_vel_noise > 0:
                dq = dq + self.rng.normal(0.0, self.gap.joint_vel_noise, NUM_MOTORS)
            ms["dq"][:NUM_MOTORS] = dq
            ms["ddq"][:NUM_MOTORS] = s.ddq
            ms["tau_est"][:NUM_MOTORS] = self.tau
            ms["temperature"][:NUM_MOTORS] = 35
            ms["vol"][:NUM_MOTORS] = 48.0
            r["wireless_remote"] = self.remote
            crc.seal(self.state)
            self.state_writer.write(self.state)
        self.odometry.update(time.time(), s.pos, quat, s.lin_vel, s.ang_vel)

    # ------------------------------------------------------------------------------------------ loop
    def run(self, duration: float | None = None, rt_priority: int = 0, parent_pid: int = 0) -> dict[str, float]:
        """Step in real time until ``duration`` s pass, a quit command, SIGINT/SIGTERM, or (``parent_pid`` > 0) the
        process that started this one ends: a spawned virtual G1 never outlives a crashed or killed parent."""
        if rt_priority > 0:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(rt_priority))
            except (PermissionError, OSError) as e:
                print(f"[virtual_g1] real-time priority not available ({e})", flush=True)
        stop = {"flag": False}

        def handler(signum: int, frame: object) -> None:  # noqa: ARG001
            stop["flag"] = True

        if sys.platform != "win32":
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, handler)
        t0 = time.monotonic()
        t_next = t0
        while not stop["flag"] and not self.quit:
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            self.step(now)
            t_next += self.dt
            if now - t_next > 0.05:  # far behind real time: drop the backlog instead of racing
                self.overruns += 1
                t_next = now
            if duration is not None and now - t0 >= duration:
                break
            if parent_pid > 0 and self.step_count % 200 == 0 and os.getppid() != parent_pid:
                print(f"[virtual_g1] parent process {parent_pid} is gone: stopping", flush=True)
                break
        return {"steps": self.step_count, "bad_crc": self.bad_crc, "commands": self.cmds, "overruns": self.overruns}


# ---------------------------------------------------------------------------------------------- clients
class SimClient:
    """Drives a running virtual G1 through ``asap/sim/ctrl`` (tests, ``asap collect``)."""

    def __init__(self, domain_id: int = 1, interface: str | None = "lo") -> None:
        self.node = Node(domain_id, interface)
        self.writer, self.match = self.node.writer(TOPIC_SIMCTRL, SimCtrl_, qos=RELIABLE)
        self.seq = 0

    def wait(self, timeout: float = 20.0) -> bool:
        """Wait until the virtual G1's control reader is matched."""
        return wait_matched(self.match, 1, timeout)

    def send(self, command: str, args: tuple[float, ...] = (), remote: np.ndarray | None = None) -> None:
        """Send one command (see :data:`deploy.messages.SIM_COMMANDS`)."""
        self.seq += 1
        a = list(args) + [0.0] * (4 - len(args))
        r = np.zeros(40, np.uint8) if remote is None else remote
        self.writer.write(SimCtrl_(seq=self.seq, command=SIM_COMMANDS[command], remote=[int(x) for x in r], args=a))

    def press(self, *buttons: str, hold_s: float = 0.12) -> None:
        """Press and release remote buttons."""
        self.send("remote", remote=encode(set(buttons)))
        time.sleep(hold_s)
        self.send("remote", remote=encode(()))


def spawn(
    gap: str | Path | None = None, domain_id: int = 1, interface: str = "lo", support: bool = True,
    duration: float | None = None, log: str | Path | None = None, rt_priority: int = 0, engine: str = "mujoco",
    odometry: OdometryPublishConfig | None = None,
) -> subprocess.Popen:  # fmt: skip
    """Start a virtual G1 in a child process (``python -m deploy.virtual_g1``); ``odometry``: how it publishes its
    ground-truth root (default :class:`deploy.odometry.OdometryPublishConfig`)."""
    cmd = [
        sys.executable,
        "-m",
        "deploy.virtual_g1",
        "--domain-id",
        str(domain_id),
        "--net",
        interface,
        "--parent-pid",
        str(os.getpid()),
    ]  # it stops when this process ends, however it ends
    if odometry is not None:
        o = odometry
        cmd += ["--odom-topic", o.topic, "--odom-hz", repr(o.rate_hz), "--odom-latency", repr(o.latency_s),
                "--odom-noise", repr(o.pos_noise_m), "--odom-rot-noise", repr(o.rot_noise_rad)]  # fmt: skip
    if engine != "mujoco":
        cmd += ["--engine", engine]
    if gap:
        cmd += ["--gap", str(gap)]
    if not support:
        cmd += ["--no-support"]
    if duration is not None:
        cmd += ["--duration", str(duration)]
    if rt_priority > 0:
        cmd += ["--rt-priority", str(rt_priority)]
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    with open(log, "w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def main_from_args(args: argparse.Namespace) -> int:
    """Run the virtual G1 from parsed arguments."""
    gap = load_gap(args.gap)
    engine = getattr(args, "engine", "mujoco")
    odom = OdometryPublishConfig(
        topic=getattr(args, "odom_topic", OdometryPublishConfig.topic),
        rate_hz=getattr(args, "odom_hz", OdometryPublishConfig.rate_hz),
        latency_s=getattr(args, "odom_latency", OdometryPublishConfig.latency_s),
        pos_noise_m=getattr(args, "odom_noise", OdometryPublishConfig.pos_noise_m),
        rot_noise_rad=getattr(args, "odom_rot_noise", OdometryPublishConfig.rot_noise_rad),
    )
    sim = VirtualG1(gap, args.domain_id, args.net, support=not args.no_support, mode_machine=args.mode_machine,
                    seed=args.seed, engine=engine, odometry=odom)  # fmt: skip
    print(f"[virtual_g1] {engine} engine, domain {args.domain_id} on {args.net}, gap {gap.name!r}, support "
          f"{'on' if sim.support else 'off'}; 200 Hz", flush=True)  # fmt: skip
    stats = sim.run(args.duration, args.rt_priority, getattr(args, "parent_pid", 0))
    print(f"[virtual_g1] stopped: {stats}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.virtual_g1``."""
    from deploy.commands import robot_sim_arguments

    p = argparse.ArgumentParser(prog="virtual_g1", description=__doc__.splitlines()[0])
    robot_sim_arguments(p)
    return main_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
