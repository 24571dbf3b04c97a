"""Recorded mocap merged into a rollout log (`asap log attach-mocap`, deploy/mocap_csv.py).

The log is made by the project's own means: the virtual G1's MuJoCo engine (deploy/engine.py) in its support band,
PD-driven towards moving joint targets and kicked now and then, logged at 50 Hz through deploy.logger's
RolloutLogger/control_row as on a real robot without mocap (root columns invalid). The pelvis ground truth is
written as a mocap export at 120 Hz of a marker rigid body offset from the pelvis, on a clock 0.37 s ahead of the
log's, with noise and occlusions, in the vendor layouts the reader knows.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deploy.mocap_csv import (
    MocapConfig,
    attach_mocap,
    read_mocap,
)

pytest.importorskip("mujoco")

OFFSET = 0.37
"""Mocap clock minus log clock (s) of the synthetic recording."""
RB_OFFSET_POS = np.array([-0.08, 0.02, 0.12])
"""Pelvis origin in the marker rigid body's frame (m)."""
RB_OFFSET_QUAT = np.array([math.cos(0.4), 0.0, 0.0, math.sin(0.4)])
"""Pelvis frame in the rigid body's frame (wxyz, 0.8 rad about z)."""


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between orientations a and b (..., 4) in degrees."""
    from asap.utils.rotations import quat_angle, quat_normalize

    return np.degrees(quat_angle(quat_normalize(a), quat_normalize(b)))


def make_sim_log(
    log_dir: Path, seed: int = 0, episodes: int = 2, fault_at: float | None = None
) -> dict[str, np.ndarray]:
    """Simulate and log (see module docstring); ``fault_at``: the last episode damps (a fall) that many seconds into
    its run, as the runtime would, and stays in damping. Returns the ground truth on the simulation clock: ``t`` (s; log
    time 0 is simulation time 0.37 s), ``pos`` (T, 3), ``quat`` (T, 4) at every 5 ms physics step."""
    from asap.robot.spec import get_spec
    from deploy.engine import MujocoEngine
    from deploy.logger import RolloutLogger, control_row
    from deploy.testing import test_contract
    from deploy.virtual_g1 import SupportParams, support_wrench

    rng = np.random.default_rng(seed)
    c = test_contract(motion_length_s=4.0, motion_name="sway")
    mt = get_spec(c.robot_variant).motor_table()
    default, kp, kd = mt["default"], mt["kp"], mt["kd"]
    eng = MujocoEngine()
    anchor = np.array([0.3, -0.2, eng.stand_z])
    eng.reset(anchor.copy(), np.array([1.0, 0.0, 0.0, 0.0]), default.copy())
    sp = SupportParams()
    dec = round(c.control_dt / eng.dt)
    mi = c.motor_index
    meta = {"joint_names": list(c.joint_names), "joint_motor_index": mi.tolist(), "control_dt": c.control_dt,
            "steps_per_motion": 200, "motion_name": c.motion_name, "robot": c.robot_variant, "policy": "sim.onnx",
            "virtual": False}  # fmt: skip
    logger = RolloutLogger(log_dir, meta, chunk_steps=120)
    # schedule (log clock): HOLD 1 s, then per episode RUN 4 s + ramp 0.6 s + hold 0.6 s
    sched = [(1.0, 2, -1)]
    for e in range(episodes):
        sched += [(4.0, 3, e), (0.6, 1, e), (0.6, 2, e)]
    t_log_end = sum(d for d, _, _ in sched)
    freq = rng.uniform(0.4, 1.5, len(mi))
    phase0 = rng.uniform(0, 2 * np.pi, len(mi))
    kicks = np.sort(rng.uniform(0.0, t_log_end + 0.6, int(1.6 * t_log_end)))
    gt_t, gt_p, gt_q = [], [], []
    n_steps = int(round((t_log_end + OFFSET + 0.6) / eng.dt))
    target = default.copy()
    k_kick, pulse, pulse_end = 0, np.zeros(3), -1.0
    pending, faulted = None, False
    for k in range(n_steps):
        ts = k * eng.dt
        tl = ts - OFFSET
        s = eng.state()
        if k % dec == 0 and 0.0 <= tl < t_log_end - 1e-9:
            acc, mode, ep = 0.0, 2, -1
            for d, m, e in sched:
                if tl < acc + d:
                    mode, ep, run_t = m, e, tl - acc
                    break
                acc += d
            if fault_at is not None and mode == 3 and ep == episodes - 1 and run_t >= fault_at and not faulted:
                faulted = True
                logger.event({"time": tl, "from": "RUN", "to": "DAMPING", "cause": "fall: tilt 61 deg > 55 deg"})
            if faulted:
                mode = 4
            action = np.zeros(len(mi))
            if mode == 3:
                action = 1.2 * np.sin(2 * np.pi * freq * run_t + phase0) * np.minimum(1.0, run_t / 0.3)
            target = default.copy()
            target[mi] += c.action_scale * action
            state = SimpleNamespace(tick=int(ts * 1000), q=s.q, dq=s.dq, tau_est=np.zeros(29), quat=s.quat,
                                    gyro=s.gyro, acc=s.acc)  # fmt: skip
            info = SimpleNamespace(mode=mode, episode=ep, run_step=int(run_t / c.control_dt) if mode == 3 else -1,
                                   phase=0.0, action=action, obs=np.zeros(0, np.float32))  # fmt: skip
            gains = (np.zeros(29), np.full(29, 8.0)) if faulted else (kp, kd)
            pending = (state, info, SimpleNamespace(q=target, kp=gains[0], kd=gains[1]),
                       mode == 3 and run_t >= 4.0 - 0.03)  # fmt: skip
        while k_kick < len(kicks) and kicks[k_kick] <= ts:  # a shove: a torque pulse of 0.1 s on the pelvis
            pulse, pulse_end = rng.normal(0.0, 60.0, 3), ts + 0.1
            k_kick += 1
        tau = -8.0 * s.dq if faulted else kp * (target - s.q) - kd * s.dq
        eng.set_torque(np.clip(tau, -mt["effort"], mt["effort"]))
        wrench = support_wrench(s, anchor, sp)
        if ts < pulse_end:
            wrench[3:] += pulse * math.sin(math.pi * (pulse_end - ts) / 0.1)
        eng.apply_external(wrench)
        eng.step()
        if pending is not None:
            # MuJoCo integrates the pose with the velocity after the step (semi-implicit Euler), so the rate of
            # the logged pose at ts is the mean of the velocities before and after: that is the true gyro at ts
            state, info, cmd, last = pending
            state.gyro = 0.5 * (s.gyro + eng.state().gyro) + rng.normal(0, 0.005, 3)
            logger.log(control_row(tl, state, info, cmd, None, len(mi), c.obs_dim))
            if last:
                logger.event({"time": tl, "from": "RUN", "to": "RAMP", "cause": "motion finished"})
            pending = None
        gt_t.append(ts)
        gt_p.append(s.pos)
        gt_q.append(s.quat)
    logger.close()
    return {"t": np.asarray(gt_t), "pos": np.asarray(gt_p), "quat": np.asarray(gt_q)}


def mocap_samples(gt: dict[str, np.ndarray], rate: float = 120.0, seed: int = 1) -> dict[str, np.ndarray]:
    """The marker rigid body's pose at ``rate`` on the mocap clock (= simulation clock), with 0.3 mm / 0.1 deg
    noise, a 25 ms occlusion (bridged) and a 0.4 s one (steps left without mocap)."""
    from asap.utils.rotations import axis_angle_to_quat, quat_conj, quat_mul, quat_normalize, quat_rotate, slerp

    rng = np.random.default_rng(seed)
    t = np.arange(0.0, gt["t"][-1], 1.0 / rate)
    j = np.clip(np.searchsorted(gt["t"], t, side="right") - 1, 0, len(gt["t"]) - 2)
    f = (t - gt["t"][j]) / (gt["t"][j + 1] - gt["t"][j])
    pel_p = gt["pos"][j] + f[:, None] * (gt["pos"][j + 1] - gt["pos"][j])
    pel_q = slerp(gt["quat"][j], gt["quat"][j + 1], f)
    rb_q = quat_mul(pel_q, quat_conj(np.broadcast_to(RB_OFFSET_QUAT, pel_q.shape)))
    rb_p = pel_p - quat_rotate(rb_q, np.broadcast_to(RB_OFFSET_POS, pel_p.shape))
    rb_p = rb_p + rng.normal(0, 3e-4, rb_p.shape)
    rb_q = quat_normalize(quat_mul(rb_q, axis_angle_to_quat(rng.normal(0, np.radians(0.1), (len(t), 3)))))
    gap = ((t > 4.0) & (t < 4.025)) | ((t > 9.0) & (t < 9.4))
    return {"t": t, "pos": rb_p, "quat": rb_q, "gap": gap}


def write_export(path: Path, fmt: str, m: dict[str, np.ndarray]) -> Path:
    """Write ``m`` (z-up, m, wxyz) as a ``fmt`` export: plain (m), optitrack (Motive: y-up, mm, xyzw), vicon
    (helical deg, mm, frame numbers) or qualisys (QTM TSV: mm, column-major Rot[0..8])."""
    from asap.utils.rotations import matrix_to_quat, quat_mul, quat_to_axis_angle, quat_to_matrix
    from deploy.mocap_csv import Y_UP_TO_Z_UP

    t, p, q, gap = m["t"], m["pos"], m["quat"], m["gap"]
    rate = 1.0 / float(np.median(np.diff(t)))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t" if fmt == "qualisys" else ",")
        if fmt == "plain":
            w.writerow(["time", "x", "y", "z", "qw", "qx", "qy", "qz"])
            for i in range(len(t)):
                w.writerow([f"{t[i]:.6f}"] + ([""] * 7 if gap[i] else [f"{v:.6f}" for v in (*p[i], *q[i])]))
        elif fmt == "optitrack":
            r_inv = matrix_to_quat(Y_UP_TO_Z_UP.T)
            py = p @ Y_UP_TO_Z_UP * 1000.0  # (R^T p) row-wise, in mm
            qy = quat_mul(np.broadcast_to(r_inv, q.shape), q)
            w.writerow(["Format Version", "1.23", "Take Name", "g1_take", "Capture Frame Rate", f"{rate:.6f}",
                        "Export Frame Rate", f"{rate:.6f}", "Rotation Type", "Quaternion", "Length Units",
                        "Millimeters", "Coordinate Space", "Global"])  # fmt: skip
            w.writerow([])
            w.writerow(["", "Type"] + ["Rigid Body"] * 8 + ["Rigid Body"] * 8 + ["Marker"] * 3)
            w.writerow(["", "Name"] + ["g1_pelvis"] * 8 + ["table"] * 8 + ["Unlabeled:1"] * 3)
            w.writerow(["", "ID"] + ["1"] * 8 + ["2"] * 8 + ["3"] * 3)
            kinds = ["Rotation"] * 4 + ["Position"] * 3 + ["Mean Marker Error"]
            w.writerow(["", ""] + kinds * 2 + ["Position"] * 3)
            w.writerow(["Frame", "Time (Seconds)"] + ["X", "Y", "Z", "W", "X", "Y", "Z", ""] * 2 + ["X", "Y", "Z"])
            for i in range(len(t)):
                body = [""] * 8 if gap[i] else [f"{v:.6f}" for v in (*qy[i, 1:], qy[i, 0], *py[i])] + ["0.0002"]
                w.writerow([str(i), f"{t[i]:.6f}"] + body + ["0", "0", "0", "1", "10", "20", "700", ""] + [""] * 3)
        elif fmt == "vicon":
            rv = np.degrees(quat_to_axis_angle(q))
            w.writerow(["Segments"])
            w.writerow([f"{rate:g}"])
            w.writerow(["", "", "G1:pelvis", "", "", "", "", ""])
            w.writerow(["Frame", "Sub Frame", "RX", "RY", "RZ", "TX", "TY", "TZ"])
            w.writerow(["", "", "deg", "deg", "deg", "mm", "mm", "mm"])
            for i in range(len(t)):
                body = [""] * 6 if gap[i] else [f"{v:.5f}" for v in (*rv[i], *(1000.0 * p[i]))]
                w.writerow([str(i + 1), "0"] + body)
        elif fmt == "qualisys":
            rm = quat_to_matrix(q)
            w.writerow(["NO_OF_FRAMES", str(len(t))])
            w.writerow(["FREQUENCY", f"{rate:g}"])
            w.writerow(["NO_OF_BODIES", "1"])
            w.writerow(["BODY_NAMES", "g1"])
            w.writerow(["DATA_INCLUDED", "6D"])
            head = ["Frame", "Time", "g1 X", "g1 Y", "g1 Z", "Roll", "Pitch", "Yaw", "Residual"]
            w.writerow(head + [f"Rot[{k}]" for k in range(9)])
            for i in range(len(t)):
                cols = rm[i].T.reshape(-1)  # column by column
                lost = ["0"] * 16 if t[i] < 6.0 else ["NaN"] * 16  # QTM variants write zeros or NaN
                body = (
                    lost
                    if gap[i]
                    else [f"{v:.5f}" for v in 1000.0 * p[i]] + ["0", "0", "0", "0.5"] + [f"{v:.7f}" for v in cols]
                )
                w.writerow([str(i + 1), f"{t[i]:.5f}"] + body)
    return path


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("mocap")
    gt = make_sim_log(d / "log")
    return {"dir": d, "gt": gt, "mocap": mocap_samples(gt)}


def _copy_log(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _cfg(fmt: str) -> MocapConfig:
    return MocapConfig(format=fmt, rigid_body="g1_pelvis" if fmt == "optitrack" else None,
                       body_offset_pos=RB_OFFSET_POS.tolist(), body_offset_quat=RB_OFFSET_QUAT.tolist())  # fmt: skip


@pytest.mark.parametrize("fmt", ["plain", "optitrack", "vicon", "qualisys"])
def test_readers_recover_the_pelvis(sim: dict, fmt: str) -> None:
    """Each layout gives back the pelvis pose (after units, up axis and markers-to-body offset) on its clock."""
    from asap.utils.rotations import slerp

    path = write_export(sim["dir"] / f"m_{fmt}.csv", fmt, sim["mocap"])
    tr = read_mocap(path, _cfg(fmt))
    gt, m = sim["gt"], sim["mocap"]
    assert len(tr.t) == len(m["t"]) and np.array_equal(tr.valid, ~m["gap"])
    assert np.allclose(tr.t, m["t"] - m["t"][0], atol=1e-4)
    ok = tr.valid
    ts = m["t"][ok]
    j = np.clip(np.searchsorted(gt["t"], ts, side="right") - 1, 0, len(gt["t"]) - 2)
    f = (ts - gt["t"][j]) / (gt["t"][j + 1] - gt["t"][j])
    p = gt["pos"][j] + f[:, None] * (gt["pos"][j + 1] - gt["pos"][j])
    q = slerp(gt["quat"][j], gt["quat"][j + 1], f)
    assert np.abs(tr.pos[ok] - p).max() < 3e-3
    assert _angle_deg(tr.quat[ok], q).max() < 0.6


@pytest.mark.parametrize("fmt", ["optitrack", "plain"])
def test_attach_mocap_finds_a_037_s_offset_at_120_hz(sim: dict, tmp_path: Path, fmt: str) -> None:
    """Done-when: a 120 Hz recording on a clock 0.37 s off is aligned within 5 ms; the merged root matches the
    ground truth at the control steps; steps in a long occlusion are left invalid; the log's meta says mocap."""
    from asap.utils.rotations import slerp
    from deploy.logger import read_log

    log = _copy_log(sim["dir"] / "log", tmp_path / "log")
    path = write_export(tmp_path / f"m.{fmt}.csv", fmt, sim["mocap"])
    rep = attach_mocap(log, path, _cfg(fmt))
    assert abs(rep["offset_s"] - OFFSET) <= 0.005, rep
    # residuals: the pelvis vibrates above the 60 Hz the 120 Hz recording can see, hence ~0.15 rad/s
    assert rep["correlation"] > 0.95 and rep["gyro_vector_rms"] < 0.3 and rep["tilt_deg_median"] < 0.5, rep
    out = read_log(log)
    assert out["meta"]["root_source"] == "mocap" and abs(out["meta"]["mocap"]["offset_s"] - rep["offset_s"]) < 1e-12
    s, gt = out["steps"], sim["gt"]
    ts = s["time"] + OFFSET
    j = np.clip(np.searchsorted(gt["t"], ts, side="right") - 1, 0, len(gt["t"]) - 2)
    f = (ts - gt["t"][j]) / (gt["t"][j + 1] - gt["t"][j])
    p = gt["pos"][j] + f[:, None] * (gt["pos"][j + 1] - gt["pos"][j])
    q = slerp(gt["quat"][j], gt["quat"][j + 1], f)
    v = s["root_valid"].astype(bool)
    in_gap = (ts > 9.0 - 0.02) & (ts < 9.4 + 0.02)
    near_gap = (ts > 9.0 - 0.07) & (ts < 9.4 + 0.07)  # the velocity filter's half window around the gap
    assert not v[in_gap].any() and v[~near_gap & (ts > 0.1) & (ts < gt["t"][-1] - 0.1)].all()
    assert np.abs(s["root_pos"][v] - p[v]).max() < 4e-3
    assert _angle_deg(s["root_quat"][v], q[v]).max() < 1.0
    assert np.isfinite(rep["offset_first_half_s"]) and abs(rep["offset_first_half_s"] - OFFSET) < 0.01
    assert json.loads((log / "mocap_report.json").read_text())["offset_s"] == rep["offset_s"]


def test_reattach_restores_and_unrelated_recording_is_refused(sim: dict, tmp_path: Path) -> None:
    """A recording of another run does not match the IMU: one error line, log untouched; a re-attach starts from
    the pre-mocap columns (rows outside the new recording get them back)."""
    from deploy.logger import read_log

    log = _copy_log(sim["dir"] / "log", tmp_path / "log")
    before = read_log(log)["steps"]
    other = mocap_samples(make_sim_log(tmp_path / "other", seed=7, episodes=2), seed=3)
    with pytest.raises(ValueError, match="correlate"):
        attach_mocap(log, write_export(tmp_path / "other.csv", "plain", other), _cfg("plain"))
    assert read_log(log)["meta"].get("root_source") is None
    m = sim["mocap"]
    good = attach_mocap(log, write_export(tmp_path / "m.csv", "plain", m), _cfg("plain"))
    # a forgotten markers-to-body rotation does not move the offset but shows in the body-frame gyro residual
    wrong = attach_mocap(log, tmp_path / "m.csv", MocapConfig(format="plain", body_offset_pos=RB_OFFSET_POS.tolist()))
    assert abs(wrong["offset_s"] - good["offset_s"]) < 2e-3 and wrong["gyro_vector_rms"] > 2 * good["gyro_vector_rms"]
    short = {k: v[m["t"] < 8.0] for k, v in m.items()}
    rep = attach_mocap(log, write_export(tmp_path / "short.csv", "plain", short), _cfg("plain"))
    after = read_log(log)["steps"]
    late = after["time"] + OFFSET > 8.1
    assert rep["steps_with_mocap"] < rep["steps"] and not after["root_valid"][late].any()
    assert np.array_equal(after["root_pos"][late], before["root_pos"][late])


def test_reader_errors_name_the_fix(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("t,x,y\n0,1,2\n")
    with pytest.raises(ValueError, match="header with time"):
        read_mocap(p, MocapConfig(format="plain"))
    with pytest.raises(ValueError, match="unknown mocap format"):
        read_mocap(p, MocapConfig(format="c3d"))
    with pytest.raises(ValueError, match="Frame,Time"):
        read_mocap(p, MocapConfig(format="optitrack"))


def test_real_g1_doc_quotes_the_defaults() -> None:
    """docs/real_g1.md's figures are MocapConfig's defaults."""
    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "real_g1.md").read_text().split())
    cfg = MocapConfig()
    for phrase in (f"correlation below {cfg.min_correlation:g}", f"`max_gap_s` ({cfg.max_gap_s * 1e3:.0f} ms)",
                   f"on a {cfg.grid_hz:.0f} Hz grid", "at least half of the shorter one"):  # fmt: skip
        assert phrase in doc, phrase
    assert cfg.min_overlap_fraction == 0.5


def test_clock_drift_is_fitted(sim: dict, tmp_path: Path) -> None:
    """A mocap clock running 2000 ppm fast (24 ms over the log): one offset is off by ~±10 ms at the ends, the
    offset + rate model fitted from the two halves stays within 2 ms everywhere."""
    rho = 2e-3
    m = dict(sim["mocap"])
    m["t"] = m["t"] * (1.0 + rho)
    path = write_export(tmp_path / "drift.csv", "plain", m)
    t = np.concatenate([np.load(p)["time"] for p in sorted((sim["dir"] / "log").glob("chunk_*.npz"))])
    truth = (t + OFFSET) * (1.0 + rho)
    errs = {}
    for drift in (True, False):
        log = _copy_log(sim["dir"] / "log", tmp_path / f"log_{drift}")
        cfg = _cfg("plain")
        cfg.fit_drift = drift
        r = attach_mocap(log, path, cfg)
        assert r["drift_used"] is drift and r["drift_ppm"] == pytest.approx(rho * 1e6, abs=300)
        errs[drift] = np.abs(r["offset_at_log_zero_s"] + r["rate"] * t - truth).max()
    assert errs[True] < 0.002 < 0.008 < errs[False], errs


def test_shipped_mocap_config_is_the_defaults() -> None:
    """configs/deploy/mocap.yaml lists every MocapConfig field with its default (a template to copy and edit)."""
    import yaml

    from asap.config import load_config, to_dict
    from asap.paths import repo_path

    raw = yaml.safe_load(repo_path("configs/deploy/mocap.yaml").read_text())
    assert set(raw) == set(to_dict(MocapConfig()))
    assert load_config(MocapConfig, "configs/deploy/mocap.yaml") == MocapConfig()
