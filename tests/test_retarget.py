"""Retargeting: built-in clips, BVH (synthetic + CMU), SMPL chaining and body-model errors, CLI, sample files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bvh_synth import write_bvh

from asap.motion.motion import Motion, load_motion
from asap.retarget import builtin_clip, load_source, load_table, retarget, retarget_many, table_for
from asap.retarget.builtin import CLIPS, FPS, KEYPOINTS, PARENTS
from asap.retarget.smpl import (
    NUM_BODY_JOINTS,
    SMPL_PARENTS,
    BodyModelError,
    load_smpl_human,
    load_smpl_npz,
    smpl_forward_kinematics,
    smpl_to_human,
)
from asap.retarget.solver import get_solver
from asap.robot.spec import get_spec
from asap.utils.rotations import quat_rotate_inverse

REPO = Path(__file__).resolve().parents[1]


def _check_report(rep: dict, err_mean_mm: float, skate: float = 0.05) -> None:
    assert rep["keypoint_error_mean_mm"] < err_mean_mm, rep
    assert rep["joint_limit_violations"] == 0, rep
    assert rep["ground_penetration_max_mm"] < 3.0, rep
    assert rep["foot_skate_mean_mps"] < skate, rep
    assert abs(rep["stance_foot_height_mean_mm"]) < 10.0, rep
    assert rep["contact_frames"] > 0


@pytest.fixture(scope="module")
def solver():
    return get_solver("g1_23dof")


# ------------------------------------------------------------------ built-in human clips
@pytest.mark.parametrize("name", list(CLIPS))
def test_builtin_clips_are_plausible(name):
    h = builtin_clip(name)
    assert 3.0 <= h.duration <= 6.0 and h.fps == FPS
    for a, b in [("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_knee", "right_ankle"),
                 ("left_shoulder", "left_elbow"), ("right_elbow", "right_wrist")]:  # fmt: skip
        length = np.linalg.norm(h.get(a) - h.get(b), axis=-1)
        assert length.std() < 1e-6  # rigid bones
    toes = np.stack([h.get("left_toe"), h.get("right_toe")], 1)
    assert toes[..., 2].min() > 0.0  # above the floor
    # a foot that is on the floor does not slide: horizontal speed of a grounded ankle is ~0
    for side in ("left", "right"):
        ank = h.get(f"{side}_ankle")
        grounded = ank[:, 2] < ank[:, 2].min() + 1e-6
        speed = np.linalg.norm(np.diff(ank[:, :2], axis=0), axis=-1) * h.fps
        assert speed[grounded[1:] & grounded[:-1]].max(initial=0) < 1e-6
        assert grounded.mean() > 0.3
    # the pelvis stays near the feet; on one leg it goes past the stance foot by as much as the G1's centre of mass
    # needs (checked on the retargeted G1: test_builtin_kick_and_balance_keep_the_centre_of_mass_over_the_stance_foot)
    pel = h.get("pelvis")[:, 1]
    assert (pel <= h.get("left_ankle")[:, 1] + 0.11).all() and (pel >= h.get("right_ankle")[:, 1] - 0.11).all()


def test_unknown_builtin_clip():
    with pytest.raises(ValueError, match="unknown built-in clip 'dance'.*squat"):
        builtin_clip("dance")


def test_retarget_builtin_squat(solver, tmp_path):
    res = retarget(builtin_clip("squat"), load_table("builtin"), solver)
    m = res.motion
    assert m.fps == 50 and m.joint_names == get_spec("g1_23dof").joint_names
    assert m.body_names == get_spec("g1_23dof").body_names and m.num_frames == 251
    assert m.validate("g1_23dof") == {}
    _check_report(res.report, err_mean_mm=25.0, skate=0.01)
    assert m.meta["source"] == "builtin:squat" and "scales" in m.meta["retarget"]
    np.testing.assert_allclose(np.linalg.norm(m.root_quat, axis=-1), 1.0, atol=1e-6)
    # the squat goes down: pelvis drops by more than 25 cm and knees bend
    assert m.root_pos[:, 2].max() - m.root_pos[:, 2].min() > 0.25
    knee = m.dof_pos[:, list(m.joint_names).index("left_knee_joint")]
    assert knee.max() > 1.2
    p = m.save(tmp_path / "squat.npz")
    assert load_motion(p).num_frames == m.num_frames


def test_batched_solve_equals_single(solver):
    cfg = load_table("builtin", ["solver.iterations=6"])
    single = retarget(builtin_clip("kick"), cfg, solver)
    both = retarget_many([builtin_clip("arm_wave"), builtin_clip("kick")], cfg, solver)
    np.testing.assert_allclose(both[1].motion.dof_pos, single.motion.dof_pos, atol=1e-6)
    assert both[0].motion.num_frames == 201 and both[1].motion.num_frames == 291


def test_jacobian_matches_finite_differences(solver):
    kp = solver.keypoints(["pelvis", "left_ankle_roll_link", "right_hand_link", "head_link"],
                          [[0, 0, 0], [0.12, 0, -0.025], [-0.07, 0, 0], [0, 0, 0]])  # fmt: skip
    torch.manual_seed(0)
    x = torch.randn(2, solver.nv, dtype=torch.float64) * 0.5
    pts, pa, qa = solver.fk(x, kp)
    jac = solver.jacobian(x, pts, pa, qa, kp)
    eps = 1e-6
    for i in range(solver.nv):
        xp = x.clone()
        xp[:, i] += eps
        num = (solver.fk(xp, kp)[0] - pts) / eps
        assert (jac[..., i] - num).abs().max() < 1e-5


# ------------------------------------------------------------------ BVH
def test_retarget_synthetic_bvh(solver, tmp_path):
    path = write_bvh(tmp_path / "squat.bvh", n=90)
    human = load_source(path)
    assert table_for(human) == "bvh_cmu" and human.meta["units"] == "cm"
    res = retarget(human, load_table("bvh_cmu"), solver)
    assert res.motion.num_frames == 149  # 3 s at 50 fps
    assert res.motion.validate() == {}
    _check_report(res.report, err_mean_mm=25.0, skate=0.01)


def test_cli_bvh_and_builtin(tmp_path, capsys):
    from asap.cli import main

    path = write_bvh(tmp_path / "clip.bvh", n=60)
    out = tmp_path / "clip_g1.npz"
    js = tmp_path / "rep.json"
    assert main(["retarget", str(path), "-o", str(out), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "keypoint err mean" in text and "penetration" in text
    m = Motion.load(out)
    assert m.validate() == {} and m.fps == 50
    rep = json.loads(js.read_text())
    assert rep["clips"][0]["keypoint_error_mean_mm"] < 30 and rep["summary"]["joint_limit_violations"] == 0
    # existing output is refused without --overwrite
    assert main(["retarget", str(path), "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["retarget", str(path), "-o", str(out), "--overwrite", "--set", "solver.iterations=5"]) == 0
    # a folder: batch mode, bad files are reported and skipped
    folder = tmp_path / "many"
    folder.mkdir()
    write_bvh(folder / "a.bvh", n=40)
    write_bvh(folder / "b.bvh", n=50)
    (folder / "broken.bvh").write_text("HIERARCHY\nROOT A\n{\n")
    assert main(["retarget", str(folder), "-o", str(tmp_path / "outs")]) == 1
    captured = capsys.readouterr()
    assert "truncated hierarchy" in captured.err
    assert sorted(p.name for p in (tmp_path / "outs").iterdir()) == ["a.npz", "b.npz"]


def test_cli_one_line_errors(tmp_path, capsys):
    from asap.cli import main

    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 2 Xrotation\n}\n")
    assert main(["retarget", str(bad), "-o", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bad channel count" in err and "\n" not in err
    assert main(["retarget", "builtin:nope"]) == 1
    assert "unknown built-in clip" in capsys.readouterr().err


def test_retarget_cmu_clip(shared_data, solver):
    path = shared_data / "cmu" / "131_01.bvh"
    if not path.exists():
        pytest.skip("CMU clip not present")
    human = load_source(path)
    res = retarget(human, load_table(table_for(human)), solver)
    assert res.motion.validate() == {}
    assert abs(res.motion.duration - (994 - 1) / 120) < 0.03
    _check_report(res.report, err_mean_mm=30.0, skate=0.06)
    # the robot walks too: the root travels more than 1 m
    assert np.linalg.norm(res.motion.root_pos[-1, :2] - res.motion.root_pos[0, :2]) > 1.0


# ------------------------------------------------------------------ SMPL
def _smpl_file(path: Path, t: int = 40) -> Path:
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.2, (t, 72))
    np.savez(path, poses=poses, trans=np.tile([0.0, 0.0, 0.9], (t, 1)), betas=np.zeros(16),
             gender="neutral", mocap_framerate=30)  # fmt: skip
    return path


def test_smpl_without_body_model_names_the_download(tmp_path, capsys):
    f = _smpl_file(tmp_path / "clip.npz")
    seq = load_smpl_npz(f)
    assert seq.poses.shape == (40, NUM_BODY_JOINTS, 3) and seq.model_type == "smpl" and seq.fps == 30
    with pytest.raises(BodyModelError, match=r"--body-model DIR.*SMPL v1\.1\.0.*SMPL_NEUTRAL\.pkl"):
        load_smpl_human(f, None)
    with pytest.raises(BodyModelError, match="does not exist"):
        load_smpl_human(f, tmp_path / "nowhere")
    (tmp_path / "models").mkdir()
    with pytest.raises(BodyModelError, match="no SMPL neutral body model found"):
        load_smpl_human(f, tmp_path / "models")
    (tmp_path / "models" / "smpl").mkdir()
    (tmp_path / "models" / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(b"not a model")
    try:
        import smplx  # noqa: F401

        with pytest.raises(BodyModelError, match="cannot load body model"):
            load_smpl_human(f, tmp_path / "models")
    except ImportError:
        with pytest.raises(BodyModelError, match=r"needs the 'smplx' package: pip install 'asap-g1\[smpl\]'"):
            load_smpl_human(f, tmp_path / "models")
    from asap.cli import main

    assert main(["retarget", str(f), "-o", str(tmp_path / "o.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--body-model" in err and "smpl.is.tue.mpg.de" in err and "\n" not in err


def test_smpl_bad_files(tmp_path):
    from asap.retarget.smpl import SmplFormatError

    np.savez(tmp_path / "a.npz", poses=np.zeros((5, 72)))
    with pytest.raises(SmplFormatError, match="missing key 'trans'"):
        load_smpl_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", poses=np.zeros((5, 72)), trans=np.zeros((5, 3)))
    with pytest.raises(SmplFormatError, match="frame rate"):
        load_smpl_npz(tmp_path / "b.npz")
    (tmp_path / "c.npz").write_text("not a zip")
    with pytest.raises(SmplFormatError, match="not an .npz"):
        load_smpl_npz(tmp_path / "c.npz")


def test_smpl_chaining_from_given_rest_joints():
    rng = np.random.default_rng(1)
    rest = rng.normal(0, 0.2, (NUM_BODY_JOINTS, 3))
    trans = rng.normal(0, 1, (3, 3))
    zero = np.zeros((3, NUM_BODY_JOINTS, 3))
    pos, _ = smpl_forward_kinematics(zero, trans, rest)
    np.testing.assert_allclose(pos, rest[None] + trans[:, None], atol=1e-12)
    # a root rotation turns the whole skeleton about the root joint
    poses = zero.copy()
    poses[:, 0] = [0.0, 0.0, np.pi / 2]
    pos, rot = smpl_forward_kinematics(poses, np.zeros((3, 3)), rest)
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    np.testing.assert_allclose(pos[0], (rest - rest[0]) @ rz.T + rest[0], atol=1e-12)
    # a knee rotation moves only the knee's descendants (ankle, foot)
    poses = zero.copy()
    poses[:, 4] = [0.5, 0.0, 0.0]
    moved = np.abs(smpl_forward_kinematics(poses, np.zeros((3, 3)), rest)[0][0] - rest).max(-1) > 1e-12
    assert set(np.flatnonzero(moved)) == {7, 10}


def test_smpl_chaining_reproduces_asap_joints_and_retargets(shared_data, solver):
    import joblib

    npz = shared_data / "asap" / "smpl" / "squat_level1.npz"
    pkl = shared_data / "asap" / "g1_23dof" / "squat_level1.pkl"
    if not (npz.exists() and pkl.exists()):
        pytest.skip("ASAP motions not present")
    seq = load_smpl_npz(npz)
    ref = next(iter(joblib.load(pkl).values()))["smpl_joints"]
    # rest offsets read off the reference's first frame (test only; users supply their body model)
    _, rot = smpl_forward_kinematics(seq.poses[:1], seq.trans[:1], np.zeros((NUM_BODY_JOINTS, 3)))
    rest = np.zeros((NUM_BODY_JOINTS, 3))
    for i in range(1, NUM_BODY_JOINTS):
        p = SMPL_PARENTS[i]
        rest[i] = rest[p] + quat_rotate_inverse(rot[0, p], ref[0, i] - ref[0, p])
    pos, _ = smpl_forward_kinematics(seq.poses, np.zeros_like(seq.trans), rest)
    pos = pos - pos[:, :1] + ref[:, :1]
    assert np.abs(pos - ref[:, :NUM_BODY_JOINTS]).max() < 1e-5
    human = smpl_to_human(seq, rest + seq.trans[0] * 0)
    res = retarget(human, load_table("smpl"), solver)
    assert res.motion.validate() == {}
    _check_report(res.report, err_mean_mm=30.0, skate=0.05)


# ------------------------------------------------------------------ committed sample motions
@pytest.mark.parametrize("name", list(CLIPS))
def test_sample_motion_files(name):
    path = REPO / "motions" / "builtin" / f"{name}.npz"
    m = load_motion(path)
    assert m.fps == 50 and 3.0 <= m.duration <= 6.0
    assert m.meta["source"] == f"builtin:{name}"


def test_retarget_lafan_named_bvh(solver, tmp_path):
    path = write_bvh(tmp_path / "lafan.bvh", n=45)
    text = path.read_text()
    for side in ("Left", "Right"):
        for a, b in (("Hip", "UpLeg"), ("Knee", "Leg"), ("Ankle", "Foot"), ("Shoulder", "Arm"),
                     ("Elbow", "ForeArm"), ("Wrist", "Hand")):  # fmt: skip
            text = text.replace(f"JOINT {side}{a}\n", f"JOINT {side}{b}\n")
    path.write_text(text)
    human = load_source(path)
    assert table_for(human) == "bvh_lafan" and "LeftUpLeg" in human.names
    res = retarget(human, load_table("bvh_lafan"), solver)
    assert res.motion.validate() == {}
    _check_report(res.report, err_mean_mm=25.0, skate=0.01)


def test_builtin_kick_and_balance_keep_the_centre_of_mass_over_the_stance_foot(solver):
    """The shipped one-leg clips are statically balanced on the G1 (the kick used to hold its centre of mass 8 cm
    beside the stance foot for 1.9 s and never converged); the same kick with the old weight shift is reported."""
    from asap.motion.ops import balance_warning, support_check
    from asap.retarget.builtin import kick
    from asap.retarget.human import HumanMotion

    for name in ("kick", "balance"):
        sc = support_check(load_motion(f"motions/builtin/{name}.npz"))
        assert sc.single_stance.sum() > 80 and sc.outside.max() == 0.0, name
        assert np.abs(sc.lateral[sc.single_stance]).max() < 0.02, name  # near the middle of the 7-cm-wide sole
    cfg = load_table("builtin", [])
    old = HumanMotion(names=KEYPOINTS, positions=kick(pelvis_shift=0.085, kick_y=-0.08), fps=FPS, parents=PARENTS,
                      source="old kick", meta={})  # fmt: skip
    msg = balance_warning("old kick", retarget(old, cfg, solver).motion)
    assert msg is not None and "for 1.9 s of single stance" in msg and "outside the stance foot" in msg


def test_builtin_kick_shifts_its_weight_slowly_enough_for_the_feet(solver):
    """The shipped kick's zero-moment point stays within 3 cm of the feet; the same kick with the weight shifted
    in 0.6 s (the clip the policy fell from at the lift-off) puts it 5 cm past the stance foot and is reported."""
    from asap.motion.ops import dynamic_balance_warning, support_check
    from asap.retarget.builtin import kick
    from asap.retarget.human import HumanMotion

    shipped = load_motion("motions/builtin/kick.npz")
    sc = support_check(shipped)
    assert sc.zmp_outside.max() < 0.03 and dynamic_balance_warning("kick", shipped) is None
    fast = HumanMotion(names=KEYPOINTS, positions=kick(shift_s=0.6), fps=FPS, parents=PARENTS, source="fast kick",
                       meta={})  # fmt: skip
    m = retarget(fast, load_table("builtin", []), solver).motion
    sc = support_check(m)
    t = np.arange(m.num_frames) / m.fps
    assert sc.zmp_outside[(t > 0.7) & (t < 1.0)].max() > 0.04  # as the weight shift stops, before the lift-off
    assert sc.zmp_outside[(t > 3.2) & (t < 3.5)].max() > 0.04  # as the shift back starts, after the touchdown
    msg = dynamic_balance_warning("fast kick", m)
    assert msg is not None and "zero-moment point" in msg and "slow that part" in msg
