"""Malformed motion files of every kind give one-line errors naming the problem; nothing is overwritten."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asap.cli import main
from asap.motion.formats import read_motion, write_motion
from asap.motion.motion import JointLimitWarning, Motion, MotionFormatError, load_motion
from asap.motion.synthetic import synthetic_motion


def _arrays(m: Motion) -> dict:
    return {
        "fps": np.array(m.fps), "joint_names": np.array(m.joint_names), "root_pos": m.root_pos,
        "root_quat": m.root_quat, "dof_pos": m.dof_pos,
    }  # fmt: skip


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good():
    return synthetic_motion(num_frames=10, seed=5)


def _bad_files(tmp_path):
    """(file, expected message fragment) for each malformed kind."""
    g = _arrays(_good())
    out = []
    a = dict(g)
    del a["root_quat"]
    out.append((_write(tmp_path / "missing.npz", **a), "missing key"))
    a = dict(g, dof_pos=g["dof_pos"].copy())
    a["dof_pos"][3, 2] = np.nan
    out.append((_write(tmp_path / "nan.npz", **a), "NaN/inf"))
    a = dict(g, root_pos=g["root_pos"].copy())
    a["root_pos"][7, 0] = np.inf
    out.append((_write(tmp_path / "inf.npz", **a), "NaN/inf"))
    a = dict(g, root_quat=g["root_quat"] * 1.5)
    out.append((_write(tmp_path / "quat.npz", **a), "not unit norm"))
    out.append((_write(tmp_path / "fps0.npz", **dict(g, fps=np.array(0.0))), "fps must be > 0"))
    out.append((_write(tmp_path / "fpsneg.npz", **dict(g, fps=np.array(-30.0))), "fps must be > 0"))
    a = {k: (v[:1] if k in ("root_pos", "root_quat", "dof_pos") else v) for k, v in g.items()}
    out.append((_write(tmp_path / "oneframe.npz", **a), "at least 2 frames"))
    a = dict(g, dof_pos=g["dof_pos"][:, :20])
    out.append((_write(tmp_path / "shape.npz", **a), "dof_pos must have shape"))
    (tmp_path / "text.npz").write_text("this is not a motion\n")
    out.append((tmp_path / "text.npz", "not an .npz"))
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "nan.npz").read_bytes()[:200])
    out.append((tmp_path / "trunc.npz", "npz"))
    (tmp_path / "bad.pkl").write_bytes(b"\x00\x01garbage")
    out.append((tmp_path / "bad.pkl", "not a joblib/pickle"))
    (tmp_path / "bad.csv").write_text("1,2,3\n4,5,6\n")
    out.append((tmp_path / "bad.csv", "36 columns"))
    out.append((tmp_path / "absent.npz", "no such file"))
    return out


def test_each_malformed_kind_raises_one_line(tmp_path):
    for path, fragment in _bad_files(tmp_path):
        with pytest.raises(MotionFormatError) as e:
            read_motion(path)
        msg = str(e.value)
        assert fragment in msg, (path.name, msg)
        assert "\n" not in msg and path.name in msg


def test_cli_prints_one_line_errors(tmp_path, capsys):
    for path, fragment in _bad_files(tmp_path)[:4]:
        assert main(["motion", "info", str(path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and fragment in err and len(err.splitlines()) == 1


def test_wrong_joints_for_robot(tmp_path):
    m = _good()
    p = Motion(fps=50, joint_names=m.joint_names[:20] + ("foo_joint", "bar_joint", "baz_joint"),
               root_pos=m.root_pos, root_quat=m.root_quat, dof_pos=m.dof_pos).save(tmp_path / "names.npz")  # fmt: skip
    want = r"names do not match robot g1_23dof: missing \['right_shoulder_roll_joint'.*unknown \['foo_joint'"
    with pytest.raises(MotionFormatError, match=want):
        load_motion(p, "g1_23dof")
    short = Motion(fps=50, joint_names=m.joint_names[:22], root_pos=m.root_pos, root_quat=m.root_quat,
                   dof_pos=m.dof_pos[:, :22]).save(tmp_path / "short.npz")  # fmt: skip
    with pytest.raises(MotionFormatError, match="22 joints but robot g1_23dof needs 23"):
        load_motion(short)
    with pytest.raises(MotionFormatError, match="needs 29"):
        load_motion(tmp_path / "names.npz", "g1_29dof")


def test_joint_limits_warn_and_report_how_far(tmp_path, capsys):
    m = _good()
    m.dof_pos[2:5, 3] = 3.0  # left knee upper limit 2.8798
    p = m.save(tmp_path / "limits.npz")
    with pytest.warns(JointLimitWarning, match=r"left_knee_joint by 0\.120 rad over 3 frames"):
        load_motion(p)
    assert main(["motion", "info", str(p), "--json", str(tmp_path / "i.json")]) == 0
    out = capsys.readouterr().out
    assert "limit violation: left_knee_joint by up to 0.1202 rad over 3 frames" in out
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["limit_violations"]["left_knee_joint"]["max_excess_rad"] == pytest.approx(0.1202, abs=1e-4)


def test_nothing_is_overwritten(tmp_path, capsys):
    m = _good()
    for ext in ("npz", "pkl", "csv"):
        p = tmp_path / f"m.{ext}"
        p.write_text("precious")
        with pytest.raises(FileExistsError, match="overwrite"):
            write_motion(m, p)
        assert p.read_text() == "precious"
        write_motion(m, p, overwrite=True)
        assert read_motion(p).num_frames == 10
    src = m.save(tmp_path / "src.npz")
    (tmp_path / "dst.npz").write_text("precious")
    assert main(["motion", "convert", str(src), str(tmp_path / "dst.npz")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "dst.npz").read_text() == "precious"
    assert main(["motion", "convert", str(src), str(tmp_path / "dst.npz"), "--overwrite"]) == 0
    assert Motion.load(tmp_path / "dst.npz").num_frames == 10
    assert main(["motion", "convert", str(src), str(tmp_path / "x.bvh")]) == 1
    assert "unknown motion file extension" in capsys.readouterr().err
