"""A URDF robot description works where the docs say it does (`ASAP_G1_MJCF`, `asap robot check --mjcf`).

The URDF is written here from the cached G1 MJCF, the way Unitree ships its own G1 URDF: the pelvis is the root
link (no floating joint), collisions are primitives (MuJoCo's URDF ``capsule`` extension) plus one STL mesh found
through a ``<mujoco><compiler meshdir>`` element. Built from it, every variant must equal the one built from the
MJCF: joints, bodies, mass and the standing height of the default pose.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from asap.cli import main
from asap.robot.assets import g1_mjcf_path
from asap.robot.model import build_model
from asap.robot.spec import VARIANTS, get_spec

MESH = "torso_link_rev_1_0.STL"
"""The one collision mesh the URDF carries (torso: never the lowest point, so heights stay comparable)."""


def _origin(parent: ET.Element, pos: np.ndarray, quat: np.ndarray) -> None:
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: any of the equivalent angle triples will do
        rpy = Rotation.from_matrix(mat.reshape(3, 3)).as_euler("xyz")  # URDF rpy: fixed axes x, y, z
    assert np.allclose(Rotation.from_euler("xyz", rpy).as_matrix().ravel(), mat, atol=1e-12)
    ET.SubElement(parent, "origin", xyz=" ".join(map(repr, map(float, pos))), rpy=" ".join(map(repr, map(float, rpy))))


def write_g1_urdf(out_dir: Path) -> Path:
    """Write the cached G1 MJCF as a URDF in ``out_dir`` (plus ``meshes/`` with one STL); return its path."""
    mjcf = g1_mjcf_path()
    m = mujoco.MjModel.from_xml_path(str(mjcf))
    robot = ET.Element("robot", name="g1_from_mjcf")
    (out_dir / "meshes").mkdir(parents=True, exist_ok=True)
    (out_dir / "meshes" / MESH).write_bytes((mjcf.parent / "assets" / MESH).read_bytes())
    mj = ET.SubElement(robot, "mujoco")
    ET.SubElement(mj, "compiler", discardvisual="true")
    for b in range(1, m.nbody):
        link = ET.SubElement(robot, "link", name=m.body(b).name)
        inertial = ET.SubElement(link, "inertial")
        _origin(inertial, m.body_ipos[b], m.body_iquat[b])
        ET.SubElement(inertial, "mass", value=repr(float(m.body_mass[b])))
        ixx, iyy, izz = map(float, m.body_inertia[b])
        ET.SubElement(inertial, "inertia", ixx=repr(ixx), iyy=repr(iyy), izz=repr(izz), ixy="0", ixz="0", iyz="0")
        for g in np.flatnonzero(m.geom_bodyid == b):
            t, size = m.geom_type[g], m.geom_size[g]
            if m.geom_contype[g] == 0 and m.geom_conaffinity[g] == 0:
                continue  # visual meshes
            col = ET.SubElement(link, "collision")
            _origin(col, m.geom_pos[g], m.geom_quat[g])
            geo = ET.SubElement(col, "geometry")
            if t == mujoco.mjtGeom.mjGEOM_CAPSULE:
                ET.SubElement(geo, "capsule", radius=repr(float(size[0])), length=repr(float(2 * size[1])))
            elif t == mujoco.mjtGeom.mjGEOM_SPHERE:
                ET.SubElement(geo, "sphere", radius=repr(float(size[0])))
            else:
                raise AssertionError(f"unexpected collision geom type {t} in {mjcf}")
        if m.body(b).name == "torso_link":
            col = ET.SubElement(link, "collision")
            ET.SubElement(ET.SubElement(col, "geometry"), "mesh", filename=f"meshes/{MESH}")
    for j in range(m.njnt):
        if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
            continue  # the pelvis' free joint: Unitree's URDF has none either
        b = m.jnt_bodyid[j]
        joint = ET.SubElement(robot, "joint", name=m.joint(j).name, type="revolute")
        ET.SubElement(joint, "parent", link=m.body(m.body_parentid[b]).name)
        ET.SubElement(joint, "child", link=m.body(b).name)
        _origin(joint, m.body_pos[b], m.body_quat[b])
        ET.SubElement(joint, "axis", xyz=" ".join(map(repr, map(float, m.jnt_axis[j]))))
        lo, hi = map(float, m.jnt_range[j])
        ET.SubElement(joint, "limit", lower=repr(lo), upper=repr(hi), effort="100", velocity="30")
    path = out_dir / "g1.urdf"
    ET.ElementTree(robot).write(path)
    return path


@pytest.mark.parametrize("variant", VARIANTS)
def test_urdf_builds_the_same_robot_as_the_mjcf(tmp_path, variant):
    urdf = write_g1_urdf(tmp_path)
    ref, got = build_model(variant), build_model(variant, mjcf=urdf)
    rs = get_spec(variant)
    assert got.nu == ref.nu == rs.num_joints
    assert got.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE and got.nq == ref.nq == 7 + rs.num_joints
    assert [got.body(i).name for i in range(got.nbody)] == [ref.body(i).name for i in range(ref.nbody)]
    assert got.body_subtreemass[1] == pytest.approx(ref.body_subtreemass[1], rel=1e-9)
    assert got.key("default").qpos == pytest.approx(ref.key("default").qpos, abs=1e-9)  # same standing height
    assert got.nmesh == 1  # the collision mesh was found through <compiler meshdir>


def test_robot_check_reports_both_variants_of_a_urdf(tmp_path, capsys):
    urdf = write_g1_urdf(tmp_path)
    assert main(["robot", "check", "--mjcf", str(urdf)]) == 0
    out = capsys.readouterr().out
    for variant in VARIANTS:
        assert f"variant {variant} builds: {get_spec(variant).num_joints} actuated joints" in out


def test_a_robot_welded_to_the_world_is_refused(tmp_path, capsys):
    urdf = write_g1_urdf(tmp_path)
    tree = ET.parse(urdf)
    ET.SubElement(tree.getroot(), "link", name="world")
    joint = ET.SubElement(tree.getroot(), "joint", name="weld", type="fixed")
    ET.SubElement(joint, "parent", link="world")
    ET.SubElement(joint, "child", link="pelvis")
    tree.write(urdf)
    assert main(["robot", "check", "--mjcf", str(urdf), "--variant", "g1_23dof"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "floating base" in err and len(err.splitlines()) == 1
