"""Every way out of the runtime leaves the robot in damping, as seen from the robot's side of the wire.

The robot is :mod:`deploy.peer`, a separate process that publishes LowState at 500 Hz and records every LowCmd
it receives (real DDS on the loopback interface). Each test checks the peer's record: position commands while
the policy ran, then damping (kp 0, kd 8) as the last command, held for the configured ``exit_damping_s``.
Also: the watchdog measured by the peer (its last LowState to the first damping command it receives), and the
fall check during the blend to the motion's start pose.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from deploy.controller import ControllerConfig, Mode  # noqa: E402
from deploy.logger import read_log  # noqa: E402
from deploy.peer import Peer  # noqa: E402
from deploy.runtime import Runtime, RuntimeConfig  # noqa: E402
from deploy.safety import SafetyConfig  # noqa: E402
from deploy.testing import next_test_domain  # noqa: E402

RT = 20  # SCHED_FIFO for the loops when permitted (root, as in CI); silently normal scheduling otherwise
EXIT_S = 0.3
RAMP_S = 0.3
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def policies(tmp_path_factory) -> dict[str, Path]:
    from deploy.testing import make_policy, test_contract

    d = tmp_path_factory.mktemp("policies")
    long = test_contract(motion_length_s=30.0, motion_name="long_motion")  # still running when the test ends it
    start = long.default_joint_pos.copy()
    start[18] += 0.8  # left elbow bent at the motion's first frame: A blends there first
    return {
        "long": make_policy(d / "long.onnx", long, seed=1),
        "short": make_policy(d / "short.onnx", test_contract(motion_length_s=0.6, motion_name="short_motion"), seed=1),
        "blend": make_policy(d / "blend.onnx", replace(long, start_joint_pos=start, motion_name="blend"), seed=1),
    }


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(dom: int, **kw) -> Peer:  # noqa: ANN003
        p = Peer(dom, rt_priority=RT, **kw)
        made.append(p)
        p.wait("ready", 30)
        return p

    yield make
    for p in made:
        p.close()


def _cfg(dom: int, blend_s: float = 1.5) -> RuntimeConfig:
    ctl = ControllerConfig(ramp_s=RAMP_S, start_blend_s=blend_s, safety=SafetyConfig(state_timeout_s=0.05))
    return RuntimeConfig(domain_id=dom, interface="lo", exit_damping_s=EXIT_S, rt_priority=RT, controller=ctl)


def _wait_mode(rt: Runtime, mode: Mode, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while rt.ctrl.mode != mode:
        if time.monotonic() > end:
            raise TimeoutError(f"runtime in {rt.ctrl.mode.name}, not {mode.name}")
        time.sleep(0.005)


def _operate(rt: Runtime, peer: Peer, then=None, run_s: float = 0.3) -> threading.Thread:  # noqa: ANN001
    """START, A (as the robot's remote, through the peer's LowState), ``run_s`` in RUN, then ``then()``."""
    err: list[BaseException] = []

    def body() -> None:
        try:
            _wait_mode(rt, Mode.ZERO_TORQUE)
            peer.press("START")
            _wait_mode(rt, Mode.HOLD)
            peer.press("A")
            _wait_mode(rt, Mode.RUN)
            time.sleep(run_s)
            if then is not None:
                then()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            err.append(e)

    t = threading.Thread(target=body, daemon=True)
    t.err = err  # type: ignore[attr-defined]
    t.start()
    return t


def _ends_in_damping(rep: dict, exit_s: float = EXIT_S) -> None:
    """The peer's record: the policy's position commands, then damping held ``exit_s`` as the last commands."""
    print(f"[peer] {rep}")
    assert rep["bad_crc"] == 0
    assert rep["counts"]["position"] > 20, rep  # the robot was being position-controlled before the exit
    last = rep["last"]
    assert last["kind"] == "damping" and last["kp_max"] == 0.0 and last["kd_min"] == last["kd_max"] == 8.0, last
    assert last["mode_machine"] == 5 and last["crc_ok"]
    assert rep["tail"]["kind"] == "damping" and rep["tail"]["seconds"] >= exit_s - 0.03, rep["tail"]


def _exit_event(log_dir: Path) -> dict:
    ev = [e for e in read_log(log_dir)["events"] if e["cause"].startswith("exit: ")]
    assert len(ev) == 1, ev
    assert ev[0]["to"] == "DAMPING"
    return ev[0]


# ---------------------------------------------------------------------------------------------- in-process exits
@pytest.mark.parametrize("how", ["until", "quit_key", "exception", "peer_gone"])
def test_exit_ends_in_damping(tmp_path, policies, peers, how: str) -> None:
    dom = next_test_domain()
    robot = peers(dom)
    observer = peers(dom, publish_state=False) if how == "peer_gone" else robot
    rt = Runtime(policies["long"], _cfg(dom), log_dir=tmp_path / "log")
    marks: dict[str, float] = {}

    def until(r: Runtime) -> bool:
        if how == "until":
            return "go" in marks
        if how == "exception" and "go" in marks:
            raise RuntimeError("boom from the stop condition")
        if how == "peer_gone" and r.ctrl.mode == Mode.DAMPING:  # leave 0.5 s after the watchdog's damping
            marks.setdefault("damped", time.monotonic())
            return time.monotonic() - marks["damped"] > 0.5
        return False

    actions = {
        "until": lambda: marks.setdefault("go", 1.0),
        "exception": lambda: marks.setdefault("go", 1.0),
        "quit_key": lambda: rt.press("q"),
        "peer_gone": lambda: robot.proc.kill(),
    }
    op = _operate(rt, robot, actions[how])
    if how == "exception":
        with pytest.raises(RuntimeError, match="boom"):
            rt.run(max_seconds=30, until=until)
    else:
        summary = rt.run(max_seconds=30, until=until)
        assert summary["mode"] == "DAMPING" and summary["exit_cause"] == rt.exit_cause
    op.join(5)
    assert not op.err, op.err
    time.sleep(0.1)  # the last commands in flight
    _ends_in_damping(observer.report())
    cause = _exit_event(tmp_path / "log")["cause"]
    expect = {"until": "until", "quit_key": "quit requested", "exception": "RuntimeError in the loop: boom",
              "peer_gone": "until"}[how]  # fmt: skip
    assert expect in cause and rt.exit_cause in cause, cause
    if how == "peer_gone":
        dmp = [t for t in rt.ctrl.transitions if t.dst == "DAMPING"]
        assert dmp[0].src == "RUN" and dmp[0].cause.startswith("watchdog"), dmp
    log = read_log(tmp_path / "log")["steps"]
    assert log["mode"][-1] == Mode.DAMPING and not log["kp"][-1].any()  # the log also ends in damping rows


def test_time_budget_of_asap_deploy_ends_in_damping(tmp_path, policies, peers) -> None:
    """`asap deploy --seconds N` leaving while the policy runs: the robot's last command is damping."""
    dom = next_test_domain()
    robot = peers(dom)
    cmd = [sys.executable, "-m", "asap.cli", "deploy", "--policy", str(policies["long"]), "--net", "lo",
           "--domain-id", str(dom), "--seconds", "4", "--yes", "--log-dir", str(tmp_path / "log"),
           "--override", f"controller.ramp_s={RAMP_S}", f"exit_damping_s={EXIT_S}", f"rt_priority={RT}"]  # fmt: skip
    proc = _RuntimeProcess(cmd)
    try:
        proc.wait_line("WAIT -> ZERO_TORQUE", 60)
        robot.press("START")
        proc.wait_line("RAMP -> HOLD")
        robot.press("A")
        proc.wait_line("HOLD -> RUN")
        proc.wait_line("RUN -> DAMPING: exit: time budget of 4 s reached")
        assert proc.proc.wait(20) == 0, proc.text()
    finally:
        proc.close()
    time.sleep(0.1)
    _ends_in_damping(robot.report())
    assert "exit: time budget of 4 s reached" in _exit_event(tmp_path / "log")["cause"]


def test_collect_on_a_robot_ends_in_damping(tmp_path, policies, peers) -> None:
    """`asap collect` on a robot (not virtual) leaves after its episodes, mid-ramp back to default: damping."""
    from deploy.collect import collect

    dom = next_test_domain()
    robot = peers(dom)

    def operator() -> None:  # a person with the remote, who sees the robot: here the peer's record
        end = time.monotonic() + 30
        while robot.report()["counts"]["zero"] == 0 and time.monotonic() < end:
            time.sleep(0.05)
        robot.press("START")
        time.sleep(RAMP_S + 0.4)
        robot.press("A")

    threading.Thread(target=operator, daemon=True).start()
    summary = collect(policies["short"], tmp_path / "col", episodes=1, cfg=_cfg(dom), virtual=False, timeout_s=30)
    assert summary["episodes_converted"] == 1 and summary["completed"] == [True], summary
    assert summary["exit_cause"] == "stop condition (until) met"
    time.sleep(0.1)
    _ends_in_damping(robot.report())


RUNNER = textwrap.dedent("""
    import sys
    from deploy.controller import ControllerConfig
    from deploy.runtime import Runtime, RuntimeConfig
    cfg = RuntimeConfig(domain_id=int(sys.argv[2]), interface="lo", exit_damping_s=float(sys.argv[4]),
                        rt_priority=int(sys.argv[5]), controller=ControllerConfig(ramp_s=float(sys.argv[6])))
    rt = Runtime(sys.argv[1], cfg, log_dir=sys.argv[3])
    print(rt.run(max_seconds=60), flush=True)
""")


class _RuntimeProcess:
    """A runtime in a child process whose stdout lines are collected as they come."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        self.lines: list[str] = []
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self.q.put(line)

    def wait_line(self, text: str, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if text in self.q.get(timeout=0.05):
                    return
            except queue.Empty:
                if self.proc.poll() is not None and self.q.empty():
                    break
        raise AssertionError(f"no line with {text!r} from the runtime:\n{self.text()}")

    def text(self) -> str:
        return "".join(self.lines)[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_in_damping(tmp_path, policies, peers, sig: signal.Signals) -> None:
    dom = next_test_domain()
    robot = peers(dom)
    log_dir = tmp_path / "log"
    proc = _RuntimeProcess([sys.executable, "-c", RUNNER, str(policies["long"]), str(dom), str(log_dir), str(EXIT_S),
                            str(RT), str(RAMP_S)])  # fmt: skip
    try:
        proc.wait_line("WAIT -> ZERO_TORQUE", 60)
        robot.press("START")
        proc.wait_line("RAMP -> HOLD")
        robot.press("A")
        proc.wait_line("HOLD -> RUN")
        time.sleep(0.3)
        proc.proc.send_signal(sig)
        assert proc.proc.wait(20) == 0, proc.text()
    finally:
        proc.close()
    time.sleep(0.1)
    _ends_in_damping(robot.report())
    ev = read_log(log_dir)["events"]
    dmp = [e for e in ev if e["to"] == "DAMPING"]
    assert dmp[0]["from"] == "RUN" and dmp[0]["cause"] == f"signal: {sig.name} received", dmp
    assert _exit_event(log_dir)["cause"] == f"exit: {sig.name} received"


# ---------------------------------------------------------------------------------------------- watchdog
def test_watchdog_damps_within_50ms_of_the_last_state(tmp_path, policies, peers) -> None:
    """The peer stops publishing LowState while the policy runs; it receives damping within 50 ms of its last
    state (measured on its own clock, transit and the runtime's loop included), three times in a row."""
    dom = next_test_domain()
    robot = peers(dom)
    rt = Runtime(policies["long"], _cfg(dom), log_dir=tmp_path / "log")
    latencies: list[float] = []
    done = threading.Event()
    err: list[BaseException] = []

    def stalls() -> None:
        try:
            _wait_mode(rt, Mode.ZERO_TORQUE)
            for i in range(3):
                robot.press("START")  # re-arms after the previous watchdog
                _wait_mode(rt, Mode.HOLD)
                robot.press("A")
                _wait_mode(rt, Mode.RUN)
                time.sleep(0.2 + 0.007 * i)  # stalls at different phases of the 10 ms tick
                robot.send("stall")
                latencies.append(robot.wait("stall_damped", 5)["latency_ms"])
                robot.send("resume")
                time.sleep(0.1)
        except BaseException as e:  # noqa: BLE001
            err.append(e)
        done.set()

    threading.Thread(target=stalls, daemon=True).start()
    summary = rt.run(max_seconds=60, until=lambda r: done.is_set())
    assert not err, err
    print(f"[watchdog] peer-measured latency {np.round(latencies, 1).tolist()} ms; {summary['watchdog_wakes']} wakes")
    causes = [t.cause for t in rt.ctrl.transitions if t.dst == "DAMPING" and t.src == "RUN"]
    assert len(causes) == 3 and all(c.startswith("watchdog") for c in causes), causes
    assert summary["watchdog_wakes"] >= 1  # at least one trip came from the deadline wake-up, not a tick
    assert max(latencies) <= 50.0, latencies


# ---------------------------------------------------------------------------------------------- fall in the blend
def test_fall_during_the_blend_to_the_start_pose(tmp_path, policies, peers) -> None:
    """The robot tips over while the runtime blends it to the motion's first frame: fall -> damping in the blend."""
    dom = next_test_domain()
    robot = peers(dom)
    rt = Runtime(policies["blend"], _cfg(dom, blend_s=2.0), log_dir=tmp_path / "log")

    def body() -> None:
        _wait_mode(rt, Mode.ZERO_TORQUE)
        robot.press("START")
        _wait_mode(rt, Mode.HOLD)
        robot.press("A")
        _wait_mode(rt, Mode.RAMP)
        assert rt.ctrl.stage == "BLEND"
        time.sleep(0.3)
        robot.send("tilt 70")

    op = threading.Thread(target=body, daemon=True)
    op.start()
    since: dict[str, float] = {}

    def until(r: Runtime) -> bool:
        if r.ctrl.mode in (Mode.DAMPING, Mode.RUN):
            since.setdefault("t", time.monotonic())
        return "t" in since and time.monotonic() - since["t"] > 0.2

    rt.run(max_seconds=30, until=until)
    op.join(5)
    dmp = [t for t in rt.ctrl.transitions if t.dst == "DAMPING"]
    assert dmp and dmp[0].src == "RAMP" and dmp[0].cause.startswith("fall: tilt 70 deg"), rt.ctrl.transitions
    assert rt.ctrl.episode == -1  # the policy never ran
    time.sleep(0.1)
    rep = robot.report()
    assert rep["last"]["kind"] == "damping" and rep["tail"]["seconds"] > 0.2, rep


# ---------------------------------------------------------------------------------------------- controller level
def _state(tick: int, now: float, tilt_deg: float = 0.0):  # noqa: ANN202
    from asap.robot.spec import get_spec
    from deploy.controller import RobotState

    a = np.deg2rad(tilt_deg) / 2
    q = get_spec("g1_29dof").motor_table()["default"].copy()
    return RobotState(tick, q, np.zeros(29), np.zeros(29), np.array([np.cos(a), 0.0, np.sin(a), 0.0]), np.zeros(3),
                      np.zeros(3), np.zeros(40, np.uint8), 5, now)  # fmt: skip


def test_fall_check_by_stage_shutdown_and_deadline(policies) -> None:
    """Fall detection is off in the first ramp (a limp robot in its gantry may hang tilted), on in the blend to the
    start pose, in RUN and in the return ramp; shutdown damps for good; the watchdog deadline follows the state."""
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller

    pol = OnnxPolicy(policies["blend"])
    ctl = Controller(pol.contract, pol, ControllerConfig(ramp_s=1.0, start_blend_s=1.0))
    ctl.on_state(_state(1, 0.0, tilt_deg=70))
    ctl.request("start", 0.0)
    ctl.check(0.01)
    assert ctl.stage == "RAMP" and ctl.mode == Mode.RAMP  # tilted, but not checked while standing up
    w = ctl.safety.watchdog_s
    assert w == pytest.approx(0.05 - SafetyConfig().watchdog_lead_s) and 0.03 <= w < 0.05
    assert ctl.watchdog_deadline() == pytest.approx(0.0 + w)
    ctl.on_state(_state(2, 0.02))
    assert ctl.watchdog_deadline() == pytest.approx(0.02 + w)
    ctl.check(0.02 + w - 0.001)
    assert ctl.mode == Mode.RAMP
    ctl.check(0.02 + w + 0.001)  # just past the deadline: the watchdog
    assert ctl.mode == Mode.DAMPING and ctl.safety.fault.kind == "watchdog" and ctl.watchdog_deadline() is None
    ctl.on_state(_state(3, 0.1))
    ctl.request("start", 0.1)  # re-arm
    ctl.policy_step(1.2)
    assert ctl.mode == Mode.HOLD
    ctl.on_state(_state(4, 1.2))
    ctl.request("run", 1.2)
    assert ctl.stage == "BLEND"
    ctl.on_state(_state(5, 1.3, tilt_deg=70))
    assert ctl.check(1.3).kind == "fall" and ctl.mode == Mode.DAMPING  # armed in the blend
    assert ctl.transitions[-1].src == "RAMP" and ctl.episode == -1

    ctl.on_state(_state(6, 1.4))
    ctl.shutdown(1.4, "time budget of 2 s reached")
    assert ctl.transitions[-1].cause == "exit: time budget of 2 s reached" and ctl.mode == Mode.DAMPING
    ctl.request("start", 1.5)  # the operator cannot leave the exit's damping
    ctl.request("run", 1.5)
    assert ctl.mode == Mode.DAMPING
    c = ctl.command(1.5)
    assert not c.kp.any() and (c.kd == 8.0).all() and c.mode_machine == 5
    d = ctl.damping_command()
    np.testing.assert_array_equal(d.kd, c.kd)
    np.testing.assert_array_equal(d.kp, c.kp)


def test_fall_check_in_the_return_ramp(policies) -> None:
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller

    pol = OnnxPolicy(policies["short"])
    ctl = Controller(pol.contract, pol, ControllerConfig(ramp_s=0.0))
    ctl.on_state(_state(1, 0.0))
    ctl.request("start", 0.0)
    ctl.policy_step(0.0)
    ctl.request("run", 0.0)
    t = 0.0
    while ctl.mode == Mode.RUN:
        t += 0.02
        ctl.on_state(_state(int(t * 1000) + 1, t))
        ctl.check(t)
        ctl.policy_step(t)
    assert ctl.mode == Mode.RAMP and ctl.stage == "RETURN"
    ctl.on_state(_state(10_000, t + 0.01, tilt_deg=60))
    assert ctl.check(t + 0.01).kind == "fall"
