"""Importers/exporters (ASAP pkl, G1 csv, mjlab npz), resampling, foot clearance, floor fixing, `asap motion`."""

from __future__ import annotations

import dataclasses
import json

import joblib
import mujoco
import numpy as np
import pytest
import torch

from asap.cli import main
from asap.motion.formats import (
    detect_format,
    read_asap_pkl,
    read_asap_pkl_all,
    read_motion,
    write_asap_pkl,
    write_motion,
)
from asap.motion.formats._common import kinematic_model
from asap.motion.motion import Motion, MotionFormatError, frame_count_at
from asap.motion.motionlib import MotionLib
from asap.motion.ops import fix_floor, floor_offset, floor_warning, foot_heights, motion_info, resample
from asap.motion.synthetic import synthetic_motion
from asap.robot.model import lowest_point
from asap.robot.spec import MOTOR_NAMES, get_spec
from asap.utils.rotations import axis_angle_to_quat, quat_to_axis_angle

F32 = 2e-7  # float32 resolution at the magnitudes of these arrays


def _clip(**kw) -> Motion:
    m = synthetic_motion(num_frames=kw.pop("num_frames", 30), fps=kw.pop("fps", 30.0), **kw)
    m.extras["smpl_joints"] = np.random.default_rng(0).normal(size=(m.num_frames, 24, 3)).astype(np.float32)
    return m


def test_asap_pkl_structure_and_round_trip(tmp_path):
    m = _clip()
    p = write_asap_pkl(m, tmp_path / "a.pkl")
    d = joblib.load(p)
    (key, e), = d.items()  # fmt: skip
    assert key == "a"
    assert e["pose_aa"].shape == (30, 27, 3) and e["dof"].shape == (30, 23) and e["fps"] == 30
    assert e["root_rot"].dtype == np.float64 and e["pose_aa"].dtype == np.float32
    np.testing.assert_allclose(e["pose_aa"][:, 1:24].sum(-1), e["dof"], atol=F32)  # unit, positive axes
    assert np.abs(e["pose_aa"][:, 24:]).max() == 0
    np.testing.assert_allclose(axis_angle_to_quat(e["pose_aa"][:, 0].astype(np.float64)),
                               m.root_quat, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(e["root_rot"][:, [3, 0, 1, 2]], m.root_quat, atol=F32)
    # import -> our npz -> pkl -> import: identical up to float32
    a = read_motion(p)
    assert a.meta["asap_pkl_key"] == "a" and a.fps == 30
    b = read_motion(write_motion(a, tmp_path / "a.npz"))
    write_motion(b, tmp_path / "b.pkl")
    e2 = joblib.load(tmp_path / "b.pkl")["a"]
    for k in ("root_trans_offset", "root_rot", "pose_aa", "dof", "smpl_joints"):
        np.testing.assert_allclose(e2[k], e[k], atol=F32, rtol=0, err_msg=k)
    assert e2["fps"] == 30


def test_asap_pkl_keys_and_pose_aa_only(tmp_path):
    a, b = _clip(seed=1), _clip(seed=2)
    p = write_asap_pkl({"one": a, "two": b}, tmp_path / "multi.pkl")
    with pytest.raises(MotionFormatError, match="holds 2 motions.*'one', 'two'"):
        read_motion(p)
    np.testing.assert_allclose(read_motion(p, key="two").dof_pos, b.dof_pos, atol=1e-6)
    assert list(read_asap_pkl_all(p)) == ["one", "two"]
    # a file with pose_aa but no dof/root_rot (older dumps)
    e = joblib.load(p)["one"]
    joblib.dump({"x": {"root_trans_offset": e["root_trans_offset"], "pose_aa": e["pose_aa"], "fps": 30}},
                tmp_path / "aa.pkl")  # fmt: skip
    m = read_asap_pkl(tmp_path / "aa.pkl")
    np.testing.assert_allclose(m.dof_pos, a.dof_pos, atol=1e-6)
    np.testing.assert_allclose(np.abs((m.root_quat * a.root_quat).sum(-1)), 1.0, atol=1e-6)
    joblib.dump({"x": {"pose_aa": e["pose_aa"]}}, tmp_path / "nokey.pkl")
    with pytest.raises(MotionFormatError, match=r"missing key\(s\) \['root_trans_offset'\]"):
        read_motion(tmp_path / "nokey.pkl")
    joblib.dump([1, 2], tmp_path / "list.pkl")
    with pytest.raises(MotionFormatError, match="expected a dict"):
        read_motion(tmp_path / "list.pkl")


def test_csv_round_trip(tmp_path):
    m = synthetic_motion(num_frames=12, spec="g1_29dof", seed=3)
    p = write_motion(m, tmp_path / "m.csv")
    rows = p.read_text().splitlines()
    assert len(rows) == 12 and len(rows[0].split(",")) == 36
    first = np.array(rows[0].split(","), dtype=float)
    np.testing.assert_allclose(first[3:7], m.root_quat[0, [1, 2, 3, 0]], atol=1e-7)  # xyzw
    r = read_motion(p)
    assert r.fps == 30 and r.joint_names == MOTOR_NAMES and r.meta["fps_assumed"]
    np.testing.assert_allclose(r.dof_pos, m.dof_pos, atol=1e-6)
    np.testing.assert_allclose(r.root_pos, m.root_pos, atol=1e-6)
    assert read_motion(p, fps=50).fps == 50
    # a 23-DoF motion: wrists written at their default (0), read back by name
    m23 = synthetic_motion(num_frames=8, seed=4)
    r23 = read_motion(write_motion(m23, tmp_path / "m23.csv")).for_robot("g1_23dof")
    np.testing.assert_allclose(r23.dof_pos, m23.dof_pos, atol=1e-6)
    # one header line is tolerated; a far-from-unit quaternion is not
    (tmp_path / "h.csv").write_text("x,y,z\n" + p.read_text())
    assert read_motion(tmp_path / "h.csv").num_frames == 12
    bad = np.loadtxt(p, delimiter=",")
    bad[4, 3:7] *= 2
    np.savetxt(tmp_path / "q.csv", bad, delimiter=",")
    with pytest.raises(MotionFormatError, match="not a unit quaternion.*frame 4"):
        read_motion(tmp_path / "q.csv")


def test_mjlab_npz_export_import(tmp_path):
    m = synthetic_motion(num_frames=20, fps=50.0, seed=6)
    p = write_motion(m, tmp_path / "t.npz", fmt="mjlab")
    assert detect_format(p) == "mjlab"
    with np.load(p) as z:
        assert z["joint_pos"].shape == (20, 29) and z["body_pos_w"].shape == (20, 30, 3)
        assert z["body_quat_w"].shape == (20, 30, 4) and float(z["fps"][0]) == 50
        body_names = [str(n) for n in z["body_names"]]
        ankle = z["body_pos_w"][:, body_names.index("left_ankle_roll_link")]
        raw = {k: z[k] for k in ("fps", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w",
                                 "body_ang_vel_w")}  # fmt: skip
    r = read_motion(p).for_robot("g1_23dof")
    np.testing.assert_allclose(r.dof_pos, m.dof_pos, atol=1e-6)
    np.testing.assert_allclose(r.root_pos, m.root_pos, atol=1e-6)
    np.testing.assert_allclose(r.root_quat, m.root_quat, atol=1e-6)
    assert r.dof_vel is not None and r.root_lin_vel is not None
    lib = MotionLib(m, dtype=torch.float64)
    i = lib.body_names.index("left_ankle_roll_link")
    np.testing.assert_allclose(lib.frame_data("body_pos", 0)[:, i].numpy(), ankle, atol=1e-5)
    # a file as mjlab writes it (no names): Unitree joint order, root = body 0
    np.savez(tmp_path / "plain.npz", **raw)
    q = read_motion(tmp_path / "plain.npz")
    assert q.joint_names == MOTOR_NAMES
    np.testing.assert_allclose(q.root_pos, m.root_pos, atol=1e-6)
    np.savez(tmp_path / "part.npz", joint_pos=raw["joint_pos"], body_pos_w=raw["body_pos_w"])
    with pytest.raises(MotionFormatError, match=r"missing key\(s\) \['fps', 'body_quat_w'\]"):
        read_motion(tmp_path / "part.npz")


def test_resample(tmp_path):
    m = synthetic_motion(num_frames=31, fps=30.0, seed=7, action=True)
    m.extras["smpl_joints"] = np.zeros((31, 24, 3), dtype=np.float32)
    r = resample(m, 50)
    assert r.fps == 50 and r.num_frames == frame_count_at(1.0, 50) == 51 and r.duration == pytest.approx(1.0)
    np.testing.assert_allclose(r.dof_pos[::5], m.dof_pos[::3], atol=1e-12)  # common instants 0.1 s apart
    np.testing.assert_allclose(np.linalg.norm(r.root_quat, axis=-1), 1.0, atol=1e-9)
    yaw = quat_to_axis_angle(r.root_quat)[:, 2]
    np.testing.assert_allclose(yaw, 0.5 * np.arange(51) / 50, atol=1e-9)  # slerp of a constant turn is exact
    assert r.action.shape == (51, 23) and r.extras["smpl_joints"].shape == (51, 24, 3)
    np.testing.assert_allclose(r.action[1], m.action[0])  # held, not interpolated
    back = resample(r, 30)
    assert back.num_frames == 31
    np.testing.assert_allclose(back.dof_pos[::3], m.dof_pos[::3], atol=1e-12)


def test_foot_heights_match_mujoco_lowest_point():
    m = synthetic_motion(num_frames=15, seed=8, amplitude=0.15)
    fh = foot_heights(m)
    model = kinematic_model("g1_23dof")
    data = mujoco.MjData(model)
    for f in (0, 7, 14):
        data.qpos[:3], data.qpos[3:7] = m.root_pos[f], m.root_quat[f]
        for j, n in enumerate(m.joint_names):
            data.qpos[model.joint(n).qposadr[0]] = m.dof_pos[f, j]
        mujoco.mj_kinematics(model, data)
        assert fh.lowest[f] == pytest.approx(lowest_point(model, data), abs=1e-9)


def test_fix_floor_moves_only_root_z():
    m = synthetic_motion(num_frames=40, seed=9, speed=(0.0, 0.0, 0.0), yaw_rate=0.0, amplitude=0.3)
    m.dof_pos[:, :15] = get_spec("g1_23dof").default_pos[:15]  # legs and waist still, arms waving
    m.root_pos[:, 2] += 0.1 + 0.02 * np.sin(np.arange(40) / 6)  # floats 8-12 cm, varying
    assert foot_heights(m).lowest.min() > 0.05
    fixed, shift = fix_floor(m, mode="clip")
    assert foot_heights(fixed).lowest.min() == pytest.approx(0.0, abs=1e-9)
    assert np.ptp(shift) == 0 and shift[0] < -0.05
    np.testing.assert_array_equal(fixed.root_pos[:, :2], m.root_pos[:, :2])
    np.testing.assert_array_equal(fixed.root_quat, m.root_quat)
    np.testing.assert_array_equal(fixed.dof_pos, m.dof_pos)
    np.testing.assert_allclose(fixed.root_pos[:, 2] - m.root_pos[:, 2], shift)
    per, _ = fix_floor(m, mode="frame")
    fh = foot_heights(per)
    assert fh.stance().all() and fh.lowest.min() >= -1e-9 and fh.lowest.max() < 5e-3  # smoothed: mm-level
    np.testing.assert_array_equal(per.dof_pos, m.dof_pos)


def test_floating_clip_is_reported_with_its_fix_and_the_fixed_clip_is_not():
    m = synthetic_motion(num_frames=40, seed=9, speed=(0.0, 0.0, 0.0), yaw_rate=0.0, amplitude=0.3)
    m.dof_pos[:, :15] = get_spec("g1_23dof").default_pos[:15]
    base = floor_offset(m)
    m.root_pos[:, 2] += 0.07 - base  # stance feet 7 cm up, as ASAP's squat_level1.pkl
    assert floor_offset(m) == pytest.approx(0.07, abs=1e-6)
    msg = floor_warning("squat", m)
    assert msg is not None and "7.0 cm above" in msg and "--fix-floor" in msg and "\n" not in msg
    sunk = dataclasses.replace(m, root_pos=m.root_pos - np.array([0.0, 0.0, 0.10]))  # 3 cm into the floor
    assert "below the floor" in (floor_warning("sunk", sunk) or "")
    assert floor_warning("fixed", fix_floor(m)[0]) is None
    for f in ("arm_wave", "kick", "squat"):  # the shipped clips stand on the floor
        assert floor_warning(f, read_motion(f"motions/builtin/{f}.npz")) is None


def test_cli_convert_and_info(tmp_path, capsys):
    src = _clip(num_frames=31).save(tmp_path / "src.npz")
    out = tmp_path / "out.pkl"
    assert main(["motion", "convert", str(src), str(out), "--fps", "50", "--fix-floor"]) == 0
    m = read_motion(out)
    assert m.fps == 50 and m.num_frames == 51 and m.extras["smpl_joints"].shape == (51, 24, 3)
    assert foot_heights(m).lowest.min() == pytest.approx(0.0, abs=1e-6)
    assert main(["motion", "convert", str(out), str(tmp_path / "o.csv"), "--variant", "g1_29dof"]) == 0
    js = tmp_path / "i.json"
    assert main(["motion", "info", str(tmp_path / "o.csv"), "--input-fps", "50", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "51 frames at 50 fps, 1.000 s" in text and "foot clearance" in text and "stance-foot" in text
    assert "balance: " in text and "single-stance frames" in text and "zero-moment point" in text
    info = json.loads(js.read_text())
    assert info["robot"] == "g1_29dof" and info["frames"] == 51 and info["length_s"] == pytest.approx(1.0)
    assert set(info["foot_clearance"]) >= {"lowest_sole", "stance_sole", "stance_frames", "penetration_frames"}
    assert set(info["support"]) == {"single_stance_frames", "com_outside_max_m", "longest_unsupported_s",
                                    "zmp_outside_max_m", "longest_zmp_outside_s"}  # fmt: skip
    assert info["foot_clearance"]["lowest_sole"]["min"] == pytest.approx(0.0, abs=1e-5)


def test_shared_asap_pkls_round_trip_and_clearance(shared_data, tmp_path):
    files = sorted((shared_data / "asap" / "g1_23dof").glob("*.pkl"))
    assert len(files) == 8
    medians = []
    for f in files:
        (key, orig), = joblib.load(f).items()  # fmt: skip
        m = read_motion(f)
        assert m.fps == 30 and m.joint_names == get_spec("g1_23dof").joint_names
        n = write_motion(m, tmp_path / f"{f.stem}.npz")
        p = write_motion(read_motion(n), tmp_path / f"{f.stem}.pkl")
        back = joblib.load(p)
        assert list(back) == [key] and back[key]["fps"] == orig["fps"]
        for k in ("root_trans_offset", "root_rot", "pose_aa", "dof", "smpl_joints"):
            a, b = np.asarray(back[key][k], np.float64), np.asarray(orig[k], np.float64)
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=F32, rtol=0, err_msg=f"{f.stem} {k}")
        info = motion_info(read_motion(p))
        fc = info["foot_clearance"]
        assert -0.05 < fc["lowest_sole"]["min"] < 0.02 and fc["lowest_sole"]["max"] < 0.6
        medians.append(fc["lowest_sole"]["median"])
    assert max(medians) > 0.02  # these clips float above the floor
