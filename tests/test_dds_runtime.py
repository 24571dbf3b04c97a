"""Runtime and virtual G1 as two processes over real DDS on the loopback interface.

Each test gets its own DDS domain id (deploy.testing.next_test_domain, shared by every DDS test module), and every child
process is terminated at the end of its test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from deploy import virtual_g1  # noqa: E402
from deploy.collect import OperatorScript, VirtualOperator  # noqa: E402
from deploy.controller import ControllerConfig, Mode  # noqa: E402
from deploy.logger import log_to_motions, read_log  # noqa: E402
from deploy.runtime import Runtime, RuntimeConfig  # noqa: E402
from deploy.safety import SafetyConfig  # noqa: E402
from deploy.testing import next_test_domain  # noqa: E402

MOTION_S = 1.2
RT = 20  # SCHED_FIFO for both loops when permitted (root, as in CI): keeps a loaded 2-core machine from
# stalling them past the 50 ms watchdog; silently normal scheduling otherwise


@pytest.fixture(scope="module")
def policies(tmp_path_factory) -> dict[str, Path]:
    from deploy.testing import make_policy, test_contract

    d = tmp_path_factory.mktemp("policies")
    c = test_contract(motion_length_s=MOTION_S, motion_name="unit_motion")
    return {
        "ok": make_policy(d / "ok.onnx", c, seed=1),
        "nan": make_policy(d / "nan.onnx", c, seed=1, fault="nan", fault_phase=0.3),
        "huge": make_policy(d / "huge.onnx", c, seed=1, fault="huge", fault_phase=0.3),
    }


class Rig:
    """A virtual G1 child process + a runtime in this process + a sim client."""

    def __init__(self, tmp: Path, policy: Path, gap: str | None = None, watchdog_s: float = 0.05) -> None:
        self.dom = next_test_domain()
        self.proc = virtual_g1.spawn(gap, self.dom, "lo", log=tmp / "sim.log", rt_priority=RT)
        try:
            ctl = ControllerConfig(ramp_s=0.5, safety=SafetyConfig(state_timeout_s=watchdog_s))
            cfg = RuntimeConfig(domain_id=self.dom, interface="lo", cmd_hz=100, exit_damping_s=0.2, rt_priority=RT,
                                controller=ctl)  # fmt: skip
            self.log_dir = tmp / "log"
            self.rt = Runtime(policy, cfg, log_dir=self.log_dir)
            self.cli = virtual_g1.SimClient(self.dom, "lo")
            assert self.cli.wait(30.0), "virtual G1 did not start"
        except BaseException:  # the fixture never gets this rig to close: stop its virtual G1 here
            self.close()
            raise

    def operate(self, episodes: int = 1, keep_support: bool = True) -> VirtualOperator:
        op = VirtualOperator(self.rt, self.cli, episodes, OperatorScript(settle_s=0.3, keep_support=keep_support))
        op.start()
        return op

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def rig_factory(tmp_path):
    rigs = []

    def make(policy: Path, gap: str | None = None, watchdog_s: float = 0.05) -> Rig:
        r = Rig(tmp_path, policy, gap, watchdog_s)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.close()


def _when_running(rt: Runtime, after_s: float, action) -> threading.Thread:  # noqa: ANN001
    """Call ``action()`` once the runtime has been in RUN for ``after_s`` seconds."""

    def body() -> None:
        end = time.monotonic() + 60
        while rt.ctrl.mode != Mode.RUN and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(after_s)
        action()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t


def _until_damped(hold_s: float = 0.3):
    since: dict[str, float] = {}

    def until(rt: Runtime) -> bool:
        if rt.ctrl.mode == Mode.DAMPING:
            since.setdefault("t", time.monotonic())
            return time.monotonic() - since["t"] > hold_s
        return False

    return until


def _damping_event(log: dict) -> dict:
    ev = [e for e in log["events"] if e["to"] == "DAMPING"]
    assert ev, f"no damping transition in {log['events']}"
    print(f"[damping] {ev[0]['cause']} (state age {ev[0]['state_age'] * 1e3:.1f} ms)")
    return ev[0]


def _check_damped_log(log_dir: Path) -> dict:
    log = read_log(log_dir)
    assert not log["skipped"]
    s = log["steps"]
    ev = _damping_event(log)
    after = s["time"] > ev["time"] + 1e-9
    assert after.any()
    assert (s["mode"][after] == Mode.DAMPING).all()
    assert not s["kp"][after].any() and (s["kd"][after] == 8.0).all()  # damping commands were sent
    return log


def test_full_state_machine_log_motion_and_obs(rig_factory, policies) -> None:
    torch = pytest.importorskip("torch")
    from asap.obs import ObsBuilder, proprio_terms

    rig = rig_factory(policies["ok"], watchdog_s=0.25)
    op = rig.operate(episodes=1, keep_support=True)
    summary = rig.rt.run(max_seconds=40, until=lambda r: not op.is_alive() and r.ctrl.mode == Mode.HOLD)
    assert op.error is None, op.error
    assert summary["bad_crc"] == 0 and summary["fault"] is None, summary
    log = read_log(rig.log_dir)
    seq = [e["to"] for e in log["events"]]
    assert seq == ["ZERO_TORQUE", "RAMP", "HOLD", "RUN", "RAMP", "HOLD", "DAMPING"], seq  # every exit damps
    assert log["events"][-1]["cause"] == "exit: stop condition (until) met"
    s = log["steps"]
    run = s["mode"] == Mode.RUN
    assert run.sum() == round(MOTION_S / 0.02)
    assert (s["tick"][run][1:] > s["tick"][run][:-1]).all()  # a running tick
    assert s["root_valid"].all() and abs(s["root_pos"][run][:, 2].mean() - 0.78) < 0.1
    # the motion file
    motions = log_to_motions(rig.log_dir)
    assert len(motions) == 1
    m = motions[0]
    m.check()
    assert m.action.shape == (run.sum() + 1, 23) and m.fps == 50 and m.meta["completed"]
    path = m.save(rig.log_dir.parent / "ep.npz")
    from asap.motion.motion import Motion

    assert Motion.load(path).action.shape == m.action.shape
    # observations: the runtime's vectors equal asap.obs' torch builder fed the logged states
    meta = log["meta"]
    jm = np.asarray(meta["joint_motor_index"])
    default = np.array([float(x) for x in meta["default_joint_pos"].split(",")])
    ref = ObsBuilder(meta["obs_layout"], num_envs=1, num_joints=23, backend="torch", groups=("actor",))
    last = np.zeros(23, np.float32)
    f = lambda x: torch.tensor(np.asarray(x, dtype=np.float32)[None])  # noqa: E731
    worst = 0.0
    for i in np.nonzero(run)[0]:
        raw = proprio_terms(f(s["imu_quat"][i]), f(s["imu_gyro"][i]), f(s["q"][i][jm]), f(s["dq"][i][jm]),
                            torch.tensor(default, dtype=torch.float32), f(last), f([s["phase"][i]])[0])  # fmt: skip
        expect = ref.build(raw)["actor"][0].numpy()
        worst = max(worst, float(np.abs(expect - s["obs"][i]).max()))
        last = np.clip(s["action"][i], -100, 100)
    assert worst <= 1e-6, worst


def test_virtual_g1_killed(rig_factory, policies) -> None:
    rig = rig_factory(policies["ok"])
    rig.operate(keep_support=True)
    _when_running(rig.rt, 0.3, lambda: rig.proc.kill())
    rig.rt.run(max_seconds=40, until=_until_damped())
    log = _check_damped_log(rig.log_dir)
    ev = _damping_event(log)
    assert "watchdog" in ev["cause"] and ev["from"] == "RUN"
    assert ev["state_age"] <= 0.05 + 0.05, ev  # damping within 50 ms of the 50 ms watchdog limit
    assert len(log_to_motions(rig.log_dir)) == 1  # the interrupted episode is still readable


def test_state_publishing_paused(rig_factory, policies) -> None:
    rig = rig_factory(policies["ok"])
    rig.operate(keep_support=True)
    _when_running(rig.rt, 0.3, lambda: rig.cli.send("pause_state"))
    rig.rt.run(max_seconds=40, until=_until_damped())
    ev = _damping_event(_check_damped_log(rig.log_dir))
    assert "watchdog" in ev["cause"] and ev["state_age"] <= 0.1, ev


@pytest.mark.parametrize("kind,cause", [("nan", "nonfinite_action"), ("huge", "target_limit")])
def test_bad_policy_output(rig_factory, policies, kind: str, cause: str) -> None:
    rig = rig_factory(policies[kind], watchdog_s=0.25)
    rig.operate(keep_support=True)
    rig.rt.run(max_seconds=40, until=_until_damped())
    log = _check_damped_log(rig.log_dir)
    ev = _damping_event(log)
    assert ev["cause"].startswith(cause) and ev["from"] == "RUN", ev
    s = log["steps"]
    bad_row = np.nonzero(~np.isfinite(s["action"]).all(1) | (np.abs(s["action"]) > 50).any(1))[0][0]
    print(f"[damping] {(ev['time'] - s['time'][bad_row]) * 1e3:.2f} ms after the bad output")
    assert ev["time"] - s["time"][bad_row] <= 0.05  # same control step in practice
    assert s["phase"][bad_row] > 0.3
    assert np.isfinite(s["q_target"]).all()  # nothing bad was ever sent


def test_robot_tipped_over(rig_factory, policies) -> None:
    rig = rig_factory(policies["ok"], watchdog_s=0.25)
    rig.operate(keep_support=True)

    def tip() -> None:
        rig.cli.send("support_off")
        rig.cli.send("tip", (6.0, 0.0, 0.0))

    _when_running(rig.rt, 0.1, tip)
    rig.rt.run(max_seconds=40, until=_until_damped())
    log = _check_damped_log(rig.log_dir)
    ev = _damping_event(log)
    assert ev["cause"].startswith("fall") and ev["from"] == "RUN", ev


RUNNER = textwrap.dedent("""
    import sys
    from deploy.controller import ControllerConfig
    from deploy.runtime import Runtime, RuntimeConfig
    cfg = RuntimeConfig(domain_id=int(sys.argv[2]), interface="lo", exit_damping_s=0.2, rt_priority=20,
                        controller=ControllerConfig(ramp_s=0.5))
    rt = Runtime(sys.argv[1], cfg, log_dir=sys.argv[3])
    print("READY", flush=True)
    print(rt.run(max_seconds=60), flush=True)
""")


def test_sigterm_damps_before_exit(tmp_path, policies) -> None:
    dom = next_test_domain()
    sim = virtual_g1.spawn(None, dom, "lo", log=tmp_path / "sim.log", rt_priority=RT)
    log_dir = tmp_path / "log"
    rt = subprocess.Popen([sys.executable, "-c", RUNNER, str(policies["ok"]), str(dom), str(log_dir)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lines = []
        while not lines or lines[-1].strip() != "READY":
            line = rt.stdout.readline()
            assert line, f"runtime exited: {lines}"
            lines.append(line)
        cli = virtual_g1.SimClient(dom, "lo")
        assert cli.wait(30)
        time.sleep(0.5)
        cli.press("START")
        time.sleep(1.0)
        cli.press("A")
        time.sleep(0.4)
        t_kill = time.time()
        rt.send_signal(signal.SIGTERM)
        out, _ = rt.communicate(timeout=20)
        assert rt.returncode == 0, out
    finally:
        for p in (rt, sim):
            if p.poll() is None:
                p.kill()
                p.wait(5)
    log = _check_damped_log(log_dir)
    ev = _damping_event(log)
    assert "SIGTERM" in ev["cause"] and ev["from"] == "RUN", ev
    print(f"[damping] {(ev['wall'] - t_kill) * 1e3:.1f} ms after SIGTERM")
    assert ev["wall"] - t_kill <= 0.05, ev["wall"] - t_kill
    assert json.loads((log_dir / "meta.json").read_text())["motion_name"] == "unit_motion"
    assert len(log_to_motions(log_dir)) == 1


def test_an_unknown_interface_is_refused_in_one_line(tmp_path, policies) -> None:
    """A mistyped --net names this machine's interfaces instead of Cyclone's "Non specific error" traceback."""
    from deploy.dds import check_interface, participant

    check_interface("lo")
    check_interface("127.0.0.1")
    with pytest.raises(ValueError, match=r"'enp99s9' not found; this machine has: .*\blo\b"):
        participant(next_test_domain(), "enp99s9")
    r = subprocess.run([sys.executable, "-m", "asap.cli", "deploy", "--policy", str(policies["ok"]), "--net", "enp99s9",
                        "--dry-run"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: network interface 'enp99s9' not found")


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an orphan's zombie may wait for a reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_spawned_virtual_g1_stops_when_its_parent_dies(tmp_path) -> None:
    """A virtual G1 started by a process that is then killed (a crashed test, `asap collect` killed with SIGKILL)
    stops by itself instead of simulating at 200 Hz forever."""
    code = ("import sys, time; from deploy import virtual_g1; "
            "p = virtual_g1.spawn(None, int(sys.argv[1]), 'lo', log=sys.argv[2]); print(p.pid, flush=True); "
            "time.sleep(120)")  # fmt: skip
    log = tmp_path / "sim.log"
    parent = subprocess.Popen([sys.executable, "-c", code, str(next_test_domain()), str(log)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    child = int(parent.stdout.readline())
    try:
        end = time.monotonic() + 60
        while "200 Hz" not in (log.read_text() if log.exists() else "") and time.monotonic() < end:
            time.sleep(0.1)  # until its loop runs
        assert _running(child), log.read_text()
        parent.kill()
        parent.wait(10)
        end = time.monotonic() + 15
        while _running(child) and time.monotonic() < end:
            time.sleep(0.1)
        assert not _running(child) and "is gone: stopping" in log.read_text()
    finally:
        parent.kill()
        if _running(child):
            os.kill(child, signal.SIGKILL)
