"""The G1 spec and the MuJoCo variants built from Unitree's MJCF."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from asap.robot.model import ModelOptions, build_model, lowest_point
from asap.robot.spec import LINK_NAMES, MOTOR_NAMES, WRIST_MOTORS, get_spec


def test_spec_tables():
    rs = get_spec("g1_23dof")
    assert rs.num_joints == 23 and rs.num_bodies == 27
    assert rs.joint_names[3] == "left_knee_joint" and rs.joint_names[19] == "right_shoulder_pitch_joint"
    assert rs.kp[3] == 200 and rs.kd[4] == 0.2 and rs.effort_limit[3] == 139
    assert rs.default_pos[[0, 3, 4]].tolist() == [-0.1, 0.3, -0.2]
    assert list(rs.motor_index[15:19]) == [15, 16, 17, 18] and list(rs.motor_index[19:]) == [22, 23, 24, 25]
    assert rs.control_dt == pytest.approx(0.02)
    assert rs.body_names[24:] == ("left_hand_link", "right_hand_link", "head_link")
    assert rs.upper_body_mask.sum() == 11
    full = get_spec("g1_29dof")
    assert full.num_joints == 29 and full.joint_names == MOTOR_NAMES
    table = rs.motor_table()
    assert table["kp"][list(WRIST_MOTORS)].tolist() == [4.0] * 6
    with pytest.raises(ValueError, match="g1_23dof"):
        get_spec("h1")


@pytest.mark.parametrize("variant,nu", [("g1_23dof", 23), ("g1_29dof", 29)])
def test_variants_load_with_spec_numbers(variant, nu):
    rs = get_spec(variant)
    m = build_model(variant)
    assert m.nu == nu and m.nq == 7 + nu
    assert m.opt.timestep == pytest.approx(0.005)
    hinge = [m.joint(i).name for i in range(m.njnt) if m.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]
    assert tuple(hinge) == rs.joint_names
    for i, name in enumerate(rs.joint_names):
        j = m.joint(name)
        assert j.range.tolist() == pytest.approx([rs.pos_lower[i], rs.pos_upper[i]])
        a = m.actuator(name.replace("_joint", ""))
        assert a.gainprm[0] == pytest.approx(rs.kp[i]) and a.biasprm[2] == pytest.approx(-rs.kd[i])
        assert a.forcerange.tolist() == pytest.approx([-rs.effort_limit[i], rs.effort_limit[i]])
        assert m.dof_armature[j.dofadr[0]] == pytest.approx(rs.armature[i])
    for name in LINK_NAMES + ("left_hand_link", "right_hand_link", "head_link"):
        assert m.body(name).id > 0


def test_zero_pose_forward_kinematics(g1_model):
    m = g1_model
    d = mujoco.MjData(m)
    d.qpos[:] = 0
    d.qpos[2], d.qpos[3] = 0.793, 1.0
    mujoco.mj_kinematics(m, d)
    # Unitree's pelvis height puts the soles (foot capsules) 1 mm above the floor in the zero pose.
    assert lowest_point(m, d) == pytest.approx(0.0011, abs=5e-4)
    la, ra = d.body("left_ankle_roll_link").xpos, d.body("right_ankle_roll_link").xpos
    assert la[1] == pytest.approx(0.1185, abs=1e-3) and ra[1] == pytest.approx(-0.1185, abs=1e-3)
    assert la[2] == pytest.approx(0.0361, abs=1e-3)
    assert d.body("head_link").xpos[2] == pytest.approx(1.257, abs=2e-3)
    np.testing.assert_allclose(
        d.body("left_hand_link").xpos - d.body("left_elbow_link").xpos,
        d.body("left_elbow_link").xmat.reshape(3, 3) @ [0.25, 0, 0],
        atol=1e-9,
    )


def test_default_keyframe_stands_on_floor(g1_model):
    d = mujoco.MjData(g1_model)
    mujoco.mj_resetDataKeyframe(g1_model, d, g1_model.key("default").id)
    mujoco.mj_kinematics(g1_model, d)
    assert lowest_point(g1_model, d) == pytest.approx(0.0, abs=1e-9)
    assert 0.75 < d.qpos[2] < 0.80


def test_lowest_point_is_where_mujoco_touches_the_floor(g1_model):
    """One lowest-point routine (asap.robot.model.collision_points), checked against MuJoCo's own collision
    detection, and used unchanged by the floor fixing of motion files and by the retargeting solver."""
    import torch

    from asap.motion.ops import foot_heights
    from asap.motion.synthetic import synthetic_motion
    from asap.retarget.solver import G1Solver

    m = g1_model
    d = mujoco.MjData(m)
    floor = m.geom("floor").id
    rs = get_spec("g1_23dof")
    adr = np.array([m.joint(n).qposadr[0] for n in rs.joint_names])
    rng = np.random.default_rng(3)
    for k in range(6):
        d.qpos[:] = 0
        tilt = rng.normal(size=3) * (0.0 if k == 0 else 0.3)
        angle = np.linalg.norm(tilt)
        d.qpos[3:7] = [np.cos(angle / 2), *(np.sin(angle / 2) * tilt / max(angle, 1e-12))]
        d.qpos[adr] = rs.default_pos + (0 if k == 0 else rng.uniform(-0.3, 0.3, rs.num_joints))
        d.qpos[adr] = np.clip(d.qpos[adr], rs.pos_lower, rs.pos_upper)
        mujoco.mj_kinematics(m, d)
        d.qpos[2] = -lowest_point(m, d)
        for dz, touching in ((-2e-4, True), (2e-4, False)):
            d.qpos[2] += dz
            mujoco.mj_forward(m, d)
            dist = [d.contact[i].dist for i in range(d.ncon) if floor in (d.contact[i].geom1, d.contact[i].geom2)]
            assert bool(dist) == touching, (k, dz)
            if touching:
                assert min(dist) == pytest.approx(dz, abs=1e-6)
            d.qpos[2] -= dz

    # the floor fixing of motion files and the retargeting solver see the same soles
    motion = synthetic_motion(num_frames=5, seed=4, amplitude=0.3)
    fh = foot_heights(motion)
    solver = G1Solver("g1_23dof")
    pos, quat = solver.kin.forward_all(
        *(torch.as_tensor(x) for x in (motion.root_pos, motion.root_quat, motion.dof_pos))
    )
    h = solver.point_heights(pos, quat)
    mask = solver.foot_point_mask(["left_ankle_roll_link", "right_ankle_roll_link"])
    soles = torch.stack([h[:, mk].min(dim=-1).values for mk in mask], -1).numpy()
    np.testing.assert_allclose(soles, np.stack([fh.left, fh.right], -1), atol=1e-9)


def test_user_mjcf_and_options(tmp_path):
    from asap.robot.assets import g1_mjcf_path

    m = build_model("g1_23dof", mjcf=g1_mjcf_path(), options=ModelOptions(actuators="motor", joint_damping=0.05))
    assert m.actuator_biastype[0] == 0 and m.dof_damping[6] == pytest.approx(0.05)
    with pytest.raises(Exception, match="does not exist"):
        build_model("g1_23dof", mjcf=tmp_path / "nope.xml")


def test_cli_info_and_check(tmp_path, capsys):
    import json

    from asap.cli import main
    from asap.robot.assets import g1_mjcf_path

    assert main(["robot", "info", "--variant", "g1_29dof", "--json", str(tmp_path / "t.json")]) == 0
    table = json.loads((tmp_path / "t.json").read_text())
    assert len(table["joints"]) == 29 and table["joints"][3]["kp"] == 200
    assert main(["robot", "check", "--mjcf", str(g1_mjcf_path())]) == 0
    assert "23 actuated joints" in capsys.readouterr().out
    assert main(["robot", "check", "--mjcf", str(tmp_path / "missing.xml")]) == 1


def test_genesis_preparation_keeps_the_collision_model():
    """asap.robot.genesis.genesis_mjcf (the one Genesis preparation) drops meshes and visual geoms only."""
    from asap.robot.genesis import genesis_mjcf
    from asap.robot.model import build_spec, collision_points, standing_height

    rs = get_spec("g1_29dof")
    full = build_spec(rs, options=ModelOptions(floor=False)).compile()
    xml, twin = genesis_mjcf(build_spec(rs, options=ModelOptions(floor=False)))
    assert "<mesh" not in xml and twin.nmesh == 0
    assert all(twin.geom_contype[g] or twin.geom_conaffinity[g] for g in range(twin.ngeom))
    a, b = collision_points(full), collision_points(twin)
    np.testing.assert_allclose(a.local, b.local)
    np.testing.assert_allclose(a.radius, b.radius)
    assert twin.opt.timestep == full.opt.timestep == rs.sim_dt and twin.opt.integrator == full.opt.integrator
    pose = (rs.default_pos, rs.joint_names)
    assert standing_height(twin, *pose) == standing_height(full, *pose)
