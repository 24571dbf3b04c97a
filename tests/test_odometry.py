"""Streamed root pose as ROS 2 nav_msgs/Odometry: message types, interpolation, and the whole path over real DDS on lo.

The end-to-end test runs the virtual G1 in a thread of this process (so the test knows its true root at every
physics tick) publishing its ground truth at 120 Hz with 10 ms latency and 2 mm noise, the runtime logging it beside
LowState, and the log conversion interpolating it to the control steps.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from asap.utils.rotations import quat_angle, quat_from_axis_angle, quat_mul  # noqa: E402
from deploy.messages import (  # noqa: E402
    Odometry_,
    Quaternion_,
    odometry_arrays,
    odometry_msg,
    ros_topic,
)
from deploy.odometry import interpolate_root, parse_root_source, sample_times  # noqa: E402


def test_ros2_names_and_wire_layout() -> None:
    """Type names follow ROS 2's DDS mangling; the quaternion is xyzw on the wire and wxyz on our side."""
    assert Odometry_.__idl_typename__ == "nav_msgs::msg::dds_::Odometry_"
    assert list(Quaternion_.__annotations__) == ["x", "y", "z", "w"]
    assert ros_topic("/odom") == "rt/odom" == ros_topic("odom") == ros_topic("rt/odom")
    assert parse_root_source("odometry") == ("odometry", "rt/odom")
    assert parse_root_source("odometry:/vrpn/g1/pose") == ("odometry", "rt/vrpn/g1/pose")
    assert parse_root_source("estimate") == ("estimate", None)
    with pytest.raises(ValueError, match="odometry:TOPIC"):
        parse_root_source("mocap")
    q = np.array([0.9, 0.1, -0.3, 0.2])
    q /= np.linalg.norm(q)
    msg = odometry_msg(1234.567891, np.array([1.0, 2.0, 3.0]), q, np.array([0.1, 0, 0]), np.array([0, 0, 0.5]))
    assert (msg.pose.pose.orientation.w, msg.pose.pose.orientation.x) == pytest.approx((q[0], q[1]))
    back = Odometry_.deserialize(msg.serialize())
    stamp, pos, quat, lin, ang = odometry_arrays(back)
    assert stamp == pytest.approx(1234.567891, abs=1e-8)
    np.testing.assert_allclose(pos, [1, 2, 3])
    np.testing.assert_allclose(quat, q, atol=1e-12)
    np.testing.assert_allclose(ang, [0, 0, 0.5])
    zero = odometry_msg(0.0, np.zeros(3), np.zeros(4), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="zero orientation"):
        odometry_arrays(zero)


def _trajectory(t: np.ndarray) -> dict[str, np.ndarray]:
    """A root circling at 0.5 m/s while turning about z at 1 rad/s and rocking about x."""
    pos = np.stack([0.2 * np.cos(2.5 * t), 0.2 * np.sin(2.5 * t), 0.75 + 0.02 * np.sin(3 * t)], -1)
    yaw = quat_from_axis_angle(np.array([0.0, 0.0, 1.0]), t)
    roll = quat_from_axis_angle(np.array([1.0, 0.0, 0.0]), 0.2 * np.sin(2 * t))
    quat = quat_mul(yaw, roll)
    lin = np.stack([-0.5 * np.sin(2.5 * t), 0.5 * np.cos(2.5 * t), 0.06 * np.cos(3 * t)], -1)
    return {"pos": pos, "quat": quat, "lin_vel": lin, "ang_vel": np.tile([0.0, 0.0, 1.0], (len(t), 1))}


def test_interpolation_slerps_between_samples_and_flags_gaps() -> None:
    ts = np.arange(0.0, 2.0, 1 / 120)
    samples = {**_trajectory(ts), "stamp": ts + 100.0, "arrival": ts + 100.01}
    times, clock = sample_times(samples)
    assert clock == "header"
    t = 100.0 + np.arange(0.1, 1.9, 0.02) + 0.003  # control steps between samples
    r = interpolate_root(times, samples, t)
    truth = _trajectory(t - 100.0)
    assert r["valid"].all()
    assert np.abs(r["pos"] - truth["pos"]).max() < 5e-4
    assert np.degrees(quat_angle(r["quat"], truth["quat"])).max() < 0.05
    np.testing.assert_allclose(np.linalg.norm(r["quat"], axis=-1), 1.0, atol=1e-9)
    # shuffled samples give the same answer; outside the samples and across a gap nothing is valid
    perm = np.random.default_rng(0).permutation(len(ts))
    r2 = interpolate_root(times[perm], {k: v[perm] for k, v in samples.items()}, t)
    np.testing.assert_allclose(r2["pos"], r["pos"])
    gap = (ts < 0.8) | (ts > 1.0)
    r3 = interpolate_root(times[gap], {k: v[gap] for k, v in samples.items()}, np.array([99.0, 100.5, 100.9, 105.0]))
    assert r3["valid"].tolist() == [False, True, False, False]
    # clocks that disagree (another computer, unsynchronised): the arrival times are used
    off = {**samples, "arrival": samples["stamp"] + 37.0}
    assert sample_times(off)[1] == "arrival"


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    from deploy.testing import make_policy, test_contract

    c = test_contract(motion_length_s=1.5, motion_name="unit_motion")
    return make_policy(tmp_path_factory.mktemp("odom") / "p.onnx", c, seed=1)


def test_virtual_g1_ground_truth_over_odometry_is_logged_within_5mm_and_1deg(tmp_path: Path, policy: Path) -> None:
    """The issue's check: odometry at 120 Hz, 10 ms latency, 2 mm noise (per axis) -> the logged root at the control
    steps is within 5 mm (RMS over the steps; single steps reach ~2.5 sigma of the 3-D noise) and 1 degree (every
    step) of the truth, while the robot is pushed around in its support (up to ~1 m/s)."""
    from deploy.collect import OperatorScript, VirtualOperator
    from deploy.controller import ControllerConfig, Mode
    from deploy.logger import log_to_motions, read_log
    from deploy.odometry import OdometryPublishConfig
    from deploy.runtime import Runtime, RuntimeConfig
    from deploy.safety import SafetyConfig
    from deploy.testing import next_test_domain
    from deploy.virtual_g1 import SimClient, VirtualG1

    dom = next_test_domain()
    odom = OdometryPublishConfig(rate_hz=120.0, latency_s=0.010, pos_noise_m=0.002)
    sim = VirtualG1(None, dom, "lo", odometry=odom)
    truth: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    publish = sim.odometry.update

    def record(stamp, pos, quat, lin, ang) -> None:  # noqa: ANN001
        truth[(sim.step_count * 5) & 0xFFFFFFFF] = (np.array(pos), np.array(quat), np.array(lin))
        publish(stamp, pos, quat, lin, ang)

    sim.odometry.update = record
    stop = threading.Event()

    def physics() -> None:
        t_next = time.monotonic()
        while not stop.is_set():
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sim.step(time.monotonic())
            t_next += sim.dt
            if time.monotonic() - t_next > 0.05:
                t_next = time.monotonic()

    th = threading.Thread(target=physics, daemon=True)
    th.start()
    try:
        ctl = ControllerConfig(ramp_s=0.5, start_blend_s=0.3, safety=SafetyConfig(state_timeout_s=0.5))
        cfg = RuntimeConfig(domain_id=dom, interface="lo", exit_damping_s=0.2, controller=ctl,
                            root_source="odometry")  # fmt: skip
        rt = Runtime(policy, cfg, log_dir=tmp_path / "log")
        cli = SimClient(dom, "lo")
        assert cli.wait(20.0)
        op = VirtualOperator(rt, cli, 1, OperatorScript(settle_s=0.3, keep_support=True))
        op.start()

        def pushes() -> None:
            end = time.monotonic() + 30
            while rt.ctrl.mode != Mode.RUN and time.monotonic() < end:
                time.sleep(0.005)
            for v in ((1.0, 0.0, 0.3), (-0.8, 0.8, 0.0), (0.0, -1.0, -0.3)):
                time.sleep(0.35)
                cli.send("push", v)
                cli.send("tip", (0.0, 0.0, 1.5))

        threading.Thread(target=pushes, daemon=True).start()
        rt.run(max_seconds=25.0, until=lambda r: not op.is_alive() and r.ctrl.mode != Mode.RUN)
        assert op.error is None, op.error
    finally:
        stop.set()
        th.join(5.0)
    log = read_log(tmp_path / "log")
    assert rt.odometry is not None and rt.odometry.count > 100
    odo = log["odometry"]
    assert len(odo["stamp"]) == rt.odometry.count
    assert 100 < 1 / np.median(np.diff(np.sort(odo["stamp"]))) < 210  # 5/10 ms spacing of 200 Hz physics steps
    assert 0.009 < np.median(odo["arrival"] - odo["stamp"]) < 0.030  # the 10 ms latency (plus the poll period)
    (m,) = log_to_motions(tmp_path / "log")
    assert m.meta["root_source"] == "odometry" and m.meta["root_clock"] == "header"
    rows = np.nonzero(log["steps"]["mode"] == Mode.RUN)[0]
    rows = np.append(rows, rows[-1] + 1)
    ticks = log["steps"]["tick"][rows]
    want = np.stack([truth[int(k)][0] for k in ticks])
    want_q = np.stack([truth[int(k)][1] for k in ticks])
    speed = np.linalg.norm(np.stack([truth[int(k)][2] for k in ticks]), axis=-1)
    err = np.linalg.norm(m.root_pos - want, axis=-1)
    ang = np.degrees(quat_angle(m.root_quat, want_q))
    rms = float(np.sqrt((err**2).mean()))
    print(f"[odometry] {len(rows)} steps, speed max {speed.max():.2f} m/s: position error RMS {rms * 1e3:.2f} / max "
          f"{err.max() * 1e3:.2f} mm, orientation max {ang.max():.3f} deg")  # fmt: skip
    assert speed.max() > 0.5  # the root did move: a lag of 10 ms alone would cost up to 10 mm
    assert rms <= 0.005 and ang.max() <= 1.0
    # the same samples placed at their arrival times (no latency compensation) are measurably worse
    late = interpolate_root(odo["arrival"], odo, log["steps"]["state_wall"][rows])
    assert np.sqrt((np.linalg.norm(late["pos"] - want, axis=-1) ** 2).mean()) > rms
    # velocities: the body-frame twist turned back into the world frame
    lin = np.stack([truth[int(k)][2] for k in ticks])
    assert m.root_lin_vel is not None and np.abs(m.root_lin_vel - lin).mean() < 0.05


def test_collect_and_deploy_take_the_root_source_flag() -> None:
    """`--root-source` reaches the runtime config; a malformed one is refused before anything starts."""
    import argparse

    from deploy.commands import _runtime_config, register

    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    argv = ["collect", "--policy", "p.onnx", "--out", "o", "--virtual", "--root-source", "odometry:/mocap/g1"]
    args = p.parse_args(argv)
    cfg = _runtime_config(args, 1, "lo")
    assert cfg.root_source == "odometry:/mocap/g1" and parse_root_source(cfg.root_source)[1] == "rt/mocap/g1"
    assert _runtime_config(p.parse_args(["deploy", "--policy", "p.onnx"]), 0, None).root_source == "odometry"
    with pytest.raises(ValueError, match="unknown root source"):
        _runtime_config(p.parse_args(["deploy", "--policy", "p.onnx", "--root-source", "gps"]), 0, None)
