"""Other tools' motion layouts: nameless joint orders found by forward kinematics, layouts read by their keys
(IsaacLab/AMASS-for-G1 npz, GMR pkl, PBHC-style pkl, 23-column csv), one-line refusals, `asap motion convert --to`."""

from __future__ import annotations

import pickle
from collections import deque

import joblib
import numpy as np
import pytest

from asap.cli import main
from asap.motion.formats import LAYOUTS, detect_format, read_motion, write_motion
from asap.motion.formats._common import kinematic_model
from asap.motion.motion import Motion, MotionFormatError
from asap.motion.synthetic import synthetic_motion
from asap.robot.spec import ISAACLAB_JOINT_ORDER, JOINT_ORDERS, MOTOR_NAMES, get_spec

MJLAB_KEYS = ("fps", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w", "body_ang_vel_w")


def _clip29(seed: int = 0, frames: int = 20) -> Motion:
    """A 29-DoF clip whose left knee moves 0.9 -> 1.1 rad while the right knee stays at 0.3 (the case's motion)."""
    m = synthetic_motion(num_frames=frames, fps=50.0, spec="g1_29dof", seed=seed)
    m.dof_pos[:, m.joint_names.index("left_knee_joint")] = np.linspace(0.9, 1.1, frames)
    m.dof_pos[:, m.joint_names.index("right_knee_joint")] = 0.3
    return m


def _nameless(src, dst, **changes):
    """Copy an npz keeping only mjlab's own keys (as mjlab/BeyondMimic write it: no names)."""
    with np.load(src) as z:
        d = {k: z[k] for k in MJLAB_KEYS}
    d.update(changes)
    np.savez(dst, **d)
    return dst


def _col(m: Motion, name: str) -> np.ndarray:
    return m.dof_pos[:, m.joint_names.index(name)]


def test_isaaclab_order_is_the_breadth_first_walk_of_the_mjcf():
    model = kinematic_model("g1_29dof")
    children: dict[int, list[int]] = {}
    for b in range(2, model.nbody):
        children.setdefault(int(model.body_parentid[b]), []).append(b)
    hinge = {int(model.jnt_bodyid[j]): model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] == 3}
    root = model.body("pelvis").id
    bfs, queue = [], deque(children.get(root, []))
    while queue:
        b = queue.popleft()
        bfs += [hinge[b]] if b in hinge else []
        queue.extend(children.get(b, []))
    dfs = [hinge[b] for b in sorted(hinge)]  # MuJoCo numbers bodies depth-first
    assert tuple(bfs) == ISAACLAB_JOINT_ORDER and tuple(dfs) == MOTOR_NAMES
    assert JOINT_ORDERS["unitree_23"] == get_spec("g1_23dof").joint_names
    assert set(JOINT_ORDERS["isaaclab_23"]) == set(get_spec("g1_23dof").joint_names)


@pytest.mark.parametrize("order", ["unitree", "isaaclab"])
def test_nameless_mjlab_npz_order_found_by_forward_kinematics(tmp_path, order):
    m = _clip29()
    full = write_motion(m, tmp_path / "full.npz", fmt="mjlab", joint_order=order)
    p = _nameless(full, tmp_path / "plain.npz")
    r = read_motion(p)
    assert r.meta["joint_order"] == order and r.meta["joint_order_check"]["body_order"] == order
    other = "isaaclab" if order == "unitree" else "unitree"
    assert r.meta["joint_order_check"]["error_m"][order] < 1e-5 < 0.03 < r.meta["joint_order_check"]["error_m"][other]
    np.testing.assert_allclose(r.for_robot("g1_29dof").dof_pos, m.dof_pos, atol=1e-6)
    # --joint-order overrides the check (and so reads the other order's knee as something else)
    forced = read_motion(p, joint_order=other)
    assert forced.meta["joint_order"] == other
    assert not np.allclose(_col(forced, "left_knee_joint"), _col(r, "left_knee_joint"))
    # the 23 joints of ASAP's G1 (bodies of the full robot kept, as a 29-body description would write them)
    m.dof_pos[:, [m.joint_names.index(n) for n in MOTOR_NAMES if "wrist" in n]] = 0.0  # held wrists
    full = write_motion(m, tmp_path / "held.npz", fmt="mjlab", joint_order=order)
    with np.load(full) as z:
        q23 = z["joint_pos"][:, [JOINT_ORDERS[order].index(n) for n in JOINT_ORDERS[order + "_23"]]]
    r23 = read_motion(_nameless(full, tmp_path / "p23.npz", joint_pos=q23, joint_vel=q23 * 0))
    assert r23.meta["joint_order"] == order + "_23"
    np.testing.assert_allclose(r23.for_robot("g1_23dof").dof_pos, m.for_robot("g1_23dof").dof_pos, atol=1e-6)


def test_nameless_order_extra_and_missing_bodies_and_refusal(tmp_path):
    m = _clip29(seed=1)
    full = write_motion(m, tmp_path / "full.npz", fmt="mjlab", joint_order="isaaclab")
    with np.load(full) as z:
        bp, bq, q = z["body_pos_w"], z["body_quat_w"], z["joint_pos"]
    # two extra fixed links (e.g. imu, logo) after the 30 bodies: matched body by body
    extra = np.concatenate([bp, bp[:, 15:16] + [0.0, 0.0, 0.1], bp[:, 0:1] + [0.05, 0.0, 0.0]], axis=1)
    qx = np.concatenate([bq, bq[:, 15:16], bq[:, 0:1]], axis=1)
    r = read_motion(_nameless(full, tmp_path / "x.npz", body_pos_w=extra, body_quat_w=qx))
    assert r.meta["joint_order"] == "isaaclab" and r.meta["joint_order_check"]["body_order"] == "nearest"
    np.testing.assert_allclose(_col(r, "left_knee_joint"), _col(m, "left_knee_joint"), atol=1e-6)
    with pytest.raises(MotionFormatError, match=r"12 stored bodies, fewer than the 30.*--joint-order"):
        read_motion(_nameless(full, tmp_path / "few.npz", body_pos_w=bp[:, :12], body_quat_w=bq[:, :12]))
    # columns in an order no simulator writes: refused in one line, never read silently
    shuffled = q[:, np.random.default_rng(0).permutation(29)]
    with pytest.raises(MotionFormatError) as e:
        read_motion(_nameless(full, tmp_path / "bad.npz", joint_pos=shuffled))
    msg = str(e.value)
    assert "fit no known joint order" in msg and "unitree" in msg and "isaaclab" in msg and "\n" not in msg
    assert "--joint-order" in msg
    # body quaternions stored xyzw (against the layout's wxyz): found too, and read converted
    r = read_motion(_nameless(full, tmp_path / "xyzw.npz", body_quat_w=bq[..., [1, 2, 3, 0]]))
    assert r.meta["joint_order"] == "isaaclab" and r.meta["joint_order_check"]["quat_order"] == "xyzw"
    np.testing.assert_allclose(r.root_quat, m.root_quat, atol=1e-6)
    # the same file with the order given is read without a check
    assert read_motion(tmp_path / "bad.npz", joint_order="unitree").meta["joint_order_check"] == "given"


def test_shared_beyondmimic_and_mjlab_cases(shared_cases):
    for name, order in (("BH-01_beyondmimic_isaaclab_order", "isaaclab"), ("BH-01_mjlab_mujoco_order", "unitree")):
        r = read_motion(shared_cases / f"{name}.npz")
        assert r.meta["joint_order"] == order, name
        lk, rk = _col(r, "left_knee_joint"), _col(r, "right_knee_joint")
        assert lk.min() == pytest.approx(0.9, abs=1e-6) and lk.max() == pytest.approx(1.1, abs=1e-6), name
        np.testing.assert_allclose(rk, 0.3, atol=1e-6, err_msg=name)


def test_shared_amass_for_g1_case(shared_cases):
    p = shared_cases / "BH-04_amass_retargeted_for_g1_layout.npz"
    assert detect_format(p) == "isaaclab"
    r = read_motion(p)
    lk, rk = _col(r, "left_knee_joint"), _col(r, "right_knee_joint")
    assert lk.min() == pytest.approx(0.9, abs=1e-6) and lk.max() == pytest.approx(1.1, abs=1e-6)
    np.testing.assert_allclose(rk, 0.3, atol=1e-6)
    with np.load(p) as z:
        pelvis = list(z["body_names"]).index("pelvis")
        np.testing.assert_allclose(r.root_pos, z["body_positions"][:, pelvis], atol=1e-7)


def test_isaaclab_npz_by_names(tmp_path):
    m = _clip29(seed=2)
    p = write_motion(m, tmp_path / "amass.npz", fmt="isaaclab")
    with np.load(p) as z:
        assert tuple(z["dof_names"]) == ISAACLAB_JOINT_ORDER and z["body_positions"].shape == (20, 30, 3)
        assert z["body_rotations"].shape == (20, 30, 4) and str(z["body_names"][0]) == "pelvis"
        d = {k: z[k] for k in z.files}
    r = read_motion(p)
    np.testing.assert_allclose(r.for_robot("g1_29dof").dof_pos, m.dof_pos, atol=1e-6)
    np.testing.assert_allclose(r.root_quat, m.root_quat, atol=1e-6)
    # any column order, pelvis anywhere: read by name
    perm = np.random.default_rng(1).permutation(29)
    bperm = np.r_[5, [i for i in range(30) if i != 5]][::-1]
    d2 = dict(d, dof_names=d["dof_names"][perm], dof_positions=d["dof_positions"][:, perm],
              dof_velocities=d["dof_velocities"][:, perm], body_names=d["body_names"][bperm],
              body_positions=d["body_positions"][:, bperm], body_rotations=d["body_rotations"][:, bperm],
              body_linear_velocities=d["body_linear_velocities"][:, bperm],
              body_angular_velocities=d["body_angular_velocities"][:, bperm])  # fmt: skip
    np.savez(tmp_path / "perm.npz", **d2)
    r2 = read_motion(tmp_path / "perm.npz").for_robot("g1_29dof")
    np.testing.assert_allclose(r2.dof_pos, m.dof_pos, atol=1e-6)
    np.testing.assert_allclose(r2.root_pos, m.root_pos, atol=1e-6)
    del d2["body_rotations"]
    np.savez(tmp_path / "part.npz", **d2)
    with pytest.raises(MotionFormatError, match=r"missing key\(s\) \['body_rotations'\]"):
        read_motion(tmp_path / "part.npz")


def test_gmr_pickle(tmp_path):
    m = _clip29(seed=4)
    xyzw = m.root_quat[:, [1, 2, 3, 0]]
    gmr = {"fps": 30, "root_pos": m.root_pos, "root_rot": xyzw, "dof_pos": m.dof_pos,
           "local_body_pos": None, "link_body_list": None}  # fmt: skip
    with open(tmp_path / "walk.pkl", "wb") as f:
        pickle.dump(gmr, f)
    assert detect_format(tmp_path / "walk.pkl") == "gmr"
    r = read_motion(tmp_path / "walk.pkl")
    assert r.fps == 30 and r.joint_names == MOTOR_NAMES and r.meta["joint_order"] == "unitree"
    np.testing.assert_allclose(r.root_quat, m.root_quat, atol=1e-12)  # xyzw -> wxyz
    np.testing.assert_allclose(r.dof_pos, m.dof_pos)
    # written back: the same keys, xyzw, 29 columns in Unitree order
    p = write_motion(r, tmp_path / "back.pkl", fmt="gmr")
    with open(p, "rb") as f:
        back = pickle.load(f)
    assert {"fps", "root_pos", "root_rot", "dof_pos"} <= set(back) and back["fps"] == 30
    np.testing.assert_allclose(back["root_rot"], xyzw, atol=1e-12)
    np.testing.assert_allclose(back["dof_pos"], m.dof_pos, atol=1e-12)
    # several GMR motions under keys; a 23-DoF robot write fills the wrists with their default
    joblib.dump({"a": gmr, "b": dict(gmr, fps=60)}, tmp_path / "two.pkl")
    with pytest.raises(MotionFormatError, match="holds 2 motions"):
        read_motion(tmp_path / "two.pkl")
    assert read_motion(tmp_path / "two.pkl", key="b").fps == 60
    # another robot's joint count (an H1's 19) is refused by count
    with open(tmp_path / "h1.pkl", "wb") as f:
        pickle.dump(dict(gmr, dof_pos=np.zeros((20, 19))), f)
    with pytest.raises(MotionFormatError, match="19 joint columns; a G1 motion has 23 or 29"):
        read_motion(tmp_path / "h1.pkl")


def test_pbhc_style_pkl_with_missing_and_extra_keys(tmp_path):
    m = synthetic_motion(num_frames=25, fps=30.0, seed=5)
    t = m.num_frames
    entry = {
        "root_trans_offset": m.root_pos.astype(np.float32),
        "dof": m.dof_pos.astype(np.float32),
        "root_rot": m.root_quat[:, [1, 2, 3, 0]],
        "contact_mask": np.ones((t, 2), dtype=np.float32),
        "beta": np.zeros(10),
        "gender": "neutral",
        "motion_name": "dance",
    }  # fmt: skip   (no fps, no pose_aa, no smpl_joints)
    joblib.dump({"dance": entry}, tmp_path / "pbhc.pkl")
    r = read_motion(tmp_path / "pbhc.pkl")
    assert r.fps == 30 and r.meta["fps_assumed"] and set(r.meta["dropped_keys"]) == {"beta", "gender", "motion_name"}
    assert r.extras["contact_mask"].shape == (t, 2)
    np.testing.assert_allclose(r.dof_pos, m.dof_pos, atol=1e-6)
    p = write_motion(r, tmp_path / "again.pkl")
    e = joblib.load(p)["dance"]
    assert e["contact_mask"].shape == (t, 2) and e["pose_aa"].shape == (t, 27, 3)


def test_csv_23_and_29_columns_and_other_robots(tmp_path):
    m = _clip29(seed=6)
    p = write_motion(m, tmp_path / "bm.csv", joint_order="isaaclab")
    assert read_motion(p).meta["joint_order"] == "unitree"  # a csv has no names: depth-first unless told
    r = read_motion(p, joint_order="isaaclab")
    np.testing.assert_allclose(r.for_robot("g1_29dof").dof_pos, m.dof_pos, atol=1e-6)
    m23 = synthetic_motion(num_frames=12, seed=7)
    p23 = write_motion(m23, tmp_path / "m23.csv", joint_order="unitree_23")
    assert len(p23.read_text().splitlines()[0].split(",")) == 30
    r23 = read_motion(p23)
    assert r23.joint_names == get_spec("g1_23dof").joint_names and r23.meta["joint_order"] == "unitree_23"
    np.testing.assert_allclose(r23.dof_pos, m23.dof_pos, atol=1e-6)
    with pytest.raises(MotionFormatError, match="order 'isaaclab' has 29"):
        read_motion(p23, joint_order="isaaclab")
    h1 = np.concatenate([m.root_pos, m.root_quat[:, [1, 2, 3, 0]], np.zeros((20, 19))], axis=1)
    np.savetxt(tmp_path / "h1.csv", h1, delimiter=",")
    with pytest.raises(MotionFormatError, match=r"36 columns.*or 30 \(23 joints\), got 26 \(19 joints: .*H1"):
        read_motion(tmp_path / "h1.csv")


def test_unknown_layouts_name_keys_and_the_layouts_we_read(tmp_path):
    np.savez(tmp_path / "odd.npz", qpos=np.zeros((5, 36)), frame_rate=30)
    with pytest.raises(MotionFormatError) as e:
        read_motion(tmp_path / "odd.npz")
    msg = str(e.value)
    assert "unknown motion layout" in msg and "'frame_rate', 'qpos'" in msg and "\n" not in msg
    for layout in LAYOUTS:
        assert layout.title in msg
    np.savez(tmp_path / "smpl.npz", poses=np.zeros((5, 72)), trans=np.zeros((5, 3)), betas=np.zeros(16))
    with pytest.raises(MotionFormatError, match="AMASS/SMPL.*asap retarget"):
        read_motion(tmp_path / "smpl.npz")
    joblib.dump({"qpos": np.zeros((5, 36)), "fps": 30}, tmp_path / "odd.pkl")
    with pytest.raises(MotionFormatError, match=r"unknown motion layout \(keys \['fps', 'qpos'\]\).*GMR"):
        read_motion(tmp_path / "odd.pkl")
    with pytest.raises(MotionFormatError, match="a GMR file ends in .pkl"):
        write_motion(_clip29(), tmp_path / "x.npz", fmt="gmr")


def test_cli_convert_to_every_layout_and_back(tmp_path, capsys):
    m = _clip29(seed=8)
    src = m.save(tmp_path / "src.npz")
    outs = {"mj.npz": ["--to", "mjlab", "--out-joint-order", "isaaclab"], "il.npz": ["--to", "isaaclab"],
            "g.pkl": ["--to", "gmr"], "a.pkl": ["--variant", "g1_29dof"], "c.csv": [], "o.npz": []}  # fmt: skip
    for name, extra in outs.items():
        assert main(["motion", "convert", str(src), str(tmp_path / name), *extra]) == 0, name
    capsys.readouterr()
    plain = _nameless(tmp_path / "mj.npz", tmp_path / "mj_plain.npz")
    for name in [*outs, plain.name]:
        r = read_motion(tmp_path / name, fps=50).for_robot("g1_29dof")
        np.testing.assert_allclose(r.dof_pos, m.dof_pos, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(r.root_pos, m.root_pos, atol=1e-5, err_msg=name)
    assert main(["motion", "info", str(plain)]) == 0
    assert "layout       mjlab, joint order isaaclab (checked by forward kinematics" in capsys.readouterr().out
    assert main(["motion", "info", str(plain), "--joint-order", "unitree"]) == 0  # told: no check
    assert "layout       mjlab, joint order unitree (given)" in capsys.readouterr().out
    assert main(["motion", "convert", str(src), str(tmp_path / "x.npz"), "--to", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown motion format 'nope'") and "\n" not in err.strip()
