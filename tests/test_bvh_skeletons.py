"""BVH skeleton families (LAFAN1, CMU, Mixamo, generic names), up axis from the rest skeleton, units along it,
one-line refusals, and folder retargeting that tries every file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_bvh_synth import CMU_TO_MIXAMO, clip_text, stand_z_up, write_bvh

from asap.cli import main
from asap.motion.motion import load_motion
from asap.retarget import load_source, load_table, retarget
from asap.retarget.bvh import load_bvh, parse_bvh
from asap.retarget.skeletons import SkeletonError, UpAxisWarning, match_skeleton
from asap.retarget.solver import get_solver
from asap.utils.rotations import axis_rotation_matrix, projected_gravity

SIDE = ("Left", "Right")


def _names(template: list[str]) -> list[str]:
    """Expand '{S}' (Left/Right), '{s}' (l/r) and '{s_}' (_l/_r suffix) into both sides."""
    out = []
    for t in template:
        if "{" not in t:
            out.append(t)
            continue
        for side in SIDE:
            out.append(t.format(S=side, s=side[0].lower(), s_="_" + side[0].lower()))
    return out


LAFAN1 = _names(["Hips", "{S}UpLeg", "{S}Leg", "{S}Foot", "{S}Toe", "Spine", "Spine1", "Spine2", "Neck", "Head",
                 "{S}Shoulder", "{S}Arm", "{S}ForeArm", "{S}Hand"])  # fmt: skip
MIXAMO = _names(["Hips", "{S}UpLeg", "{S}Leg", "{S}Foot", "{S}ToeBase", "{S}Toe_End", "Spine", "Spine1", "Spine2",
                 "Neck", "Head", "HeadTop_End", "{S}Shoulder", "{S}Arm", "{S}ForeArm", "{S}Hand",
                 "{S}HandIndex1"])  # fmt: skip
CMU_MB = _names(["Hips", "{s}HipJoint", "{S}UpLeg", "{S}Leg", "{S}Foot", "{S}ToeBase", "LowerBack", "Spine",
                 "Spine1", "Neck", "Neck1", "Head", "{S}Shoulder", "{S}Arm", "{S}ForeArm", "{S}Hand",
                 "{S}FingerBase"])  # fmt: skip
CMU_MB = [n.replace("lHip", "LHip").replace("rHip", "RHip") for n in CMU_MB]
CMU_3DSMAX = _names(["Hips", "{s}HipJoint", "{S}Hip", "{S}Knee", "{S}Ankle", "{S}Toe", "lowerback", "Chest",
                     "Chest2", "lowerneck", "Neck", "Head", "{S}Collar", "{S}Shoulder", "{S}Elbow", "{S}Wrist",
                     "{s}hand"])  # fmt: skip
CMU_ASF = _names(["root", "{s}hipjoint", "{s}femur", "{s}tibia", "{s}foot", "{s}toes", "lowerback", "upperback",
                  "thorax", "lowerneck", "upperneck", "head", "{s}clavicle", "{s}humerus", "{s}radius", "{s}wrist",
                  "{s}hand"])  # fmt: skip
UNREAL = _names(["root", "pelvis", "spine_01", "spine_02", "neck_01", "head", "thigh{s_}", "calf{s_}", "foot{s_}",
                 "ball{s_}", "clavicle{s_}", "upperarm{s_}", "lowerarm{s_}", "hand{s_}"])  # fmt: skip
BIPED = _names(["Bip01", "Bip01 Pelvis", "Bip01 Spine", "Bip01 Neck", "Bip01 Head", "Bip01 {s} Thigh",
                "Bip01 {s} Calf", "Bip01 {s} Foot", "Bip01 {s} Toe0", "Bip01 {s} Clavicle", "Bip01 {s} UpperArm",
                "Bip01 {s} Forearm", "Bip01 {s} Hand"])  # fmt: skip
BIPED = [n.replace(" l ", " L ").replace(" r ", " R ") for n in BIPED]


@pytest.mark.parametrize(
    ("names", "family", "table", "checks"),
    [
        (LAFAN1, "lafan1", "bvh_lafan", {"LeftToe": "LeftToe", "LeftArm": "LeftArm"}),
        (CMU_MB, "cmu_motionbuilder", "bvh_lafan", {"LeftToe": "LeftToeBase", "Neck": "Neck"}),
        (MIXAMO, "mixamo", "bvh_lafan", {"LeftToe": "LeftToeBase", "LeftHand": "LeftHand"}),
        (["mixamorig:" + n for n in MIXAMO], "mixamo", "bvh_lafan", {"RightToe": "mixamorig:RightToeBase"}),
        (CMU_3DSMAX, "cmu_3dsmax", "bvh_cmu", {"LeftShoulder": "LeftShoulder", "LeftWrist": "LeftWrist"}),
        (CMU_ASF, "cmu_original", "bvh_cmu", {"Hips": "root", "LeftHip": "lfemur", "Neck": "upperneck"}),
        (UNREAL, "generic", "bvh_lafan", {"Hips": "pelvis", "LeftUpLeg": "thigh_l", "LeftArm": "upperarm_l",
                                          "LeftToe": "ball_l", "RightHand": "hand_r", "Neck": "neck_01"}),
        (BIPED, "generic", "bvh_lafan", {"LeftLeg": "Bip01 L Calf", "RightToe": "Bip01 R Toe0",
                                         "LeftArm": "Bip01 L UpperArm", "Hips": "Bip01 Pelvis"}),
    ],
)  # fmt: skip
def test_skeleton_families_by_name(names, family, table, checks):
    m = match_skeleton(names, where="x.bvh")
    assert (m.family, m.table) == (family, table)
    for key, joint in checks.items():
        assert m.keypoints[key] == joint, key
    assert len(set(m.keypoints.values())) == len(m.keypoints)  # never one joint for two keypoints


def test_missing_keypoint_is_one_line_naming_it_and_the_tables():
    names = [n for n in MIXAMO if "ToeBase" not in n and "Toe_End" not in n]
    with pytest.raises(SkeletonError) as e:
        match_skeleton(names, where="clip.bvh")
    msg = str(e.value)
    assert msg.startswith("clip.bvh: no BVH table fits") and "keypoint 'LeftToe'" in msg and "\n" not in msg
    assert "bvh_cmu, bvh_lafan" in msg and "--table" in msg
    with pytest.raises(SkeletonError, match=r"table bvh_cmu\), which lacks keypoint 'LeftHip'"):
        match_skeleton(LAFAN1, table="bvh_cmu", where="clip.bvh")
    assert match_skeleton(MIXAMO, table="bvh_lafan").family == "mixamo"


def _mixamo_z_up(tmp_path, name="mixamo.bvh", prefix="mixamorig:", n=60):
    """The synthetic squat (y-up, cm, CMU names) as a Mixamo-named, z-up file in inches."""
    src = load_bvh(write_bvh(tmp_path / "src.bvh", n=n))
    path = tmp_path / name
    path.write_text(clip_text(stand_z_up(src, scale=1 / 2.54), CMU_TO_MIXAMO, prefix))
    return src, path


def test_z_up_inches_detected_and_read_like_the_y_up_original(tmp_path):
    src, path = _mixamo_z_up(tmp_path)
    ref = load_source(tmp_path / "src.bvh")
    assert (ref.meta["up"], ref.meta["units"], ref.meta["skeleton"]) == ("y", "cm", "cmu_3dsmax")
    h = load_source(path)
    assert (h.meta["up"], h.meta["units"], h.meta["skeleton"], h.meta["table"]) == ("z", "inch", "mixamo", "bvh_lafan")
    assert h.meta["up_from"] == "rest skeleton" and h.meta["keypoints"]["LeftToe"] == "mixamorig:LeftToeBase"
    # the same positions: y-up files are turned to face +x, the z-up one keeps its axes (it faces -y)
    turn = axis_rotation_matrix(2, -np.pi / 2)
    np.testing.assert_allclose(h.positions, ref.positions @ turn.T, atol=1e-6)
    # told the wrong axis: a warning naming the axis the skeleton stands along
    with pytest.warns(UpAxisWarning, match=r"--up y, but the rest skeleton stands along \+z"):
        wrong = load_source(path, up="y")
    assert wrong.meta["up"] == "y"
    # the Python API reads the same axes without being told (BvhClip.to_human / forward_kinematics default: auto)
    clip = load_bvh(path)
    assert clip.up_axis() == "z" and load_bvh(tmp_path / "src.bvh").up_axis() == "y"
    np.testing.assert_allclose(clip.to_human().positions, h.positions, atol=1e-9)
    np.testing.assert_allclose(clip.forward_kinematics(0.0254)[0], h.positions, atol=1e-9)


def test_z_up_mixamo_retargets_upright(tmp_path):
    _, path = _mixamo_z_up(tmp_path, prefix="")
    h = load_source(path)
    assert h.meta["skeleton"] == "mixamo"
    res = retarget(h, load_table(h.meta["table"]), get_solver("g1_23dof"))
    rep = res.report
    assert rep["keypoint_error_mean_mm"] < 30 and rep["joint_limit_violations"] == 0, rep
    g = projected_gravity(res.motion.root_quat)
    assert g[:, 2].max() < -0.9  # upright, not lying down
    assert 0.6 < res.motion.root_pos[0, 2] < 0.85


def test_up_axis_refused_when_the_rest_skeleton_is_tilted_or_upside_down(tmp_path):
    src = load_bvh(write_bvh(tmp_path / "src.bvh", n=10))
    tilt = axis_rotation_matrix(0, np.deg2rad(45.0))
    for j in src.joints:
        j.offset = tilt @ j.offset
    (tmp_path / "tilted.bvh").write_text(clip_text(src))
    with pytest.raises(SkeletonError, match="cannot tell the up axis.*pass --up y or --up z") as e:
        load_source(tmp_path / "tilted.bvh")
    assert "\n" not in str(e.value)
    assert load_source(tmp_path / "tilted.bvh", up="y").meta["up_from"] == "given"  # told: read as told
    flip = load_bvh(tmp_path / "src.bvh")
    for j in flip.joints:
        j.offset = j.offset * [1.0, -1.0, 1.0]
    (tmp_path / "down.bvh").write_text(clip_text(flip))
    with pytest.raises(SkeletonError, match=r"stands along -y"):
        load_source(tmp_path / "down.bvh")


def test_folder_tries_every_file_and_lists_failures(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_bvh(folder / "a_cmu.bvh", n=40)
    _, good = _mixamo_z_up(tmp_path, name="b_mixamo.bvh")
    (folder / "b_mixamo.bvh").write_text(good.read_text())
    odd = good.read_text().replace("LeftToeBase", "LeftBigToe").replace("RightToeBase", "RightBigToe")
    (folder / "c_odd.bvh").write_text(odd.replace("LeftFoot", "LeftPaw"))
    (folder / "d_broken.bvh").write_text("HIERARCHY\nROOT A\n{\n")
    out = tmp_path / "out"
    assert main(["retarget", str(folder), "-o", str(out), "--json", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    tail = err[err.index("failed (2 of 4):") :].strip().splitlines()
    assert len(tail) == 3 and "c_odd.bvh: no BVH table fits" in tail[1] and "keypoint 'LeftFoot'" in tail[1]
    assert "d_broken.bvh: truncated hierarchy" in tail[2]
    assert sorted(p.name for p in out.iterdir()) == ["a_cmu.npz", "b_mixamo.npz"]
    rep = json.loads((tmp_path / "r.json").read_text())
    assert [f["source"].split("/")[-1] for f in rep["failed"]] == ["c_odd.bvh", "d_broken.bvh"]
    # one file: the same refusal as one error line, no traceback
    assert main(["retarget", str(folder / "c_odd.bvh"), "-o", str(tmp_path / "x.npz")]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and "keypoint 'LeftFoot'" in line and "\n" not in line


def test_bh06_mixamo_case(shared_cases, tmp_path, capsys):
    path = shared_cases / "BH-06_mixamo_zup_inches.bvh"
    want = json.loads((shared_cases / "BH-06_expected.json").read_text())
    h = load_source(path)
    assert (h.meta["up"], h.meta["units"], h.meta["skeleton"]) == ("z", "inch", "mixamo")
    hips = h.names.index("Hips")
    for key in ("frame0", "frame39"):
        f = int(key.removeprefix("frame"))
        assert h.positions[f, hips, 2] == pytest.approx(want[key]["Hips_height_m"], abs=1e-4)
        for joint, xyz in want[key].items():
            if joint != "Hips_height_m":
                got = h.positions[f, h.names.index(joint)] - h.positions[f, hips]
                np.testing.assert_allclose(got, xyz, atol=1e-4, err_msg=f"{key} {joint}")
    out = tmp_path / "bh06.npz"
    assert main(["retarget", str(path), "-o", str(out)]) == 0
    m = load_motion(out)
    assert projected_gravity(m.root_quat)[:, 2].max() < -0.9 and 0.6 < m.root_pos[:, 2].mean() < 0.85


def test_parse_only_needs_no_table():
    """Parsing (no retargeting) still reads any skeleton: families concern keypoints, not the parser."""
    clip = parse_bvh("HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n}\n"
                     "MOTION\nFrames: 2\nFrame Time: 0.1\n0 0 0\n1 1 1\n")  # fmt: skip
    assert clip.names == ("A",)
