"""BVH reader: forward kinematics, channel orders, units, axes, End Sites, malformed files, the CMU clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_bvh_synth import write_bvh

from asap.retarget.bvh import BvhFormatError, load_bvh, parse_bvh

CHAIN = """HIERARCHY
ROOT Root
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition {order}
  JOINT Child
  {{
    OFFSET 1 2 3
    CHANNELS 3 {order}
    End Site
    {{
      OFFSET 0 1 0
    }}
  }}
}}
MOTION
Frames: 1
Frame Time: 0.02
{values}
"""


def _chain(order: str, root: tuple[float, float, float], child: tuple[float, float, float]) -> str:
    vals = " ".join(str(v) for v in (5, 6, 7, *root, *child))
    return CHAIN.format(order=order, values=vals)


@pytest.mark.parametrize("order", ["Zrotation Yrotation Xrotation", "Yrotation Xrotation Zrotation",
                                   "Xrotation Zrotation Yrotation"])  # fmt: skip
def test_fk_matches_intrinsic_euler_in_channel_order(order):
    root, child = (30.0, -20.0, 45.0), (10.0, 60.0, -35.0)
    clip = parse_bvh(_chain(order, root, child))
    pos, quat = clip.forward_kinematics(scale=1.0, up="z")  # keep file axes
    seq = "".join(c[0] for c in order.split())  # e.g. 'ZYX' (intrinsic, scipy upper case)
    r_root = Rotation.from_euler(seq, root, degrees=True).as_matrix()
    r_child = r_root @ Rotation.from_euler(seq, child, degrees=True).as_matrix()
    want_child = np.array([5, 6, 7]) + r_root @ np.array([1, 2, 3])
    want_end = want_child + r_child @ np.array([0, 1, 0])
    assert clip.names == ("Root", "Child", "Child_end")
    np.testing.assert_allclose(pos[0, 1], want_child, atol=1e-9)
    np.testing.assert_allclose(pos[0, 2], want_end, atol=1e-9)
    got = Rotation.from_quat(quat[0, 1][[1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(got, r_child, atol=1e-9)


def test_y_up_becomes_z_up_facing_x():
    clip = parse_bvh(_chain("Zrotation Yrotation Xrotation", (0, 0, 0), (0, 0, 0)))
    pos, _ = clip.forward_kinematics(scale=1.0, up="y")
    # file (x, y, z) = (1, 2, 3) relative offset -> project (z, x, y): forward 3, left 1, up 2
    np.testing.assert_allclose(pos[0, 1] - pos[0, 0], [3, 1, 2], atol=1e-12)


def test_units_auto_detected_cm_and_m_agree(tmp_path):
    cm = load_bvh(write_bvh(tmp_path / "cm.bvh", n=10, scale=1.0))
    m = load_bvh(write_bvh(tmp_path / "m.bvh", n=10, scale=0.01))
    assert cm.detect_units() == "cm" and m.detect_units() == "m"
    hc, hm = cm.to_human(), m.to_human()
    np.testing.assert_allclose(hc.positions, hm.positions, atol=1e-4)  # 5 decimals in the file
    assert abs(hc.fps - 30) < 1e-3
    # a standing human: head end about 1.7 m, toes on the floor, left is +y
    assert 1.6 < hc.get("Head_end")[0, 2] < 1.8
    assert hc.get("LeftAnkle")[0, 1] > 0 > hc.get("RightAnkle")[0, 1]
    assert abs(cm.to_human(units=0.01).positions - hc.positions).max() < 1e-9


def test_braces_on_declaration_lines_and_blank_lines():
    text = "HIERARCHY\nROOT Hips {\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n End Site {\n" \
           "  OFFSET 0 1 0\n }\n}\n\nMOTION\nFrames: 2\nFrame Time: 0.1\n1 2 3\n\n4 5 6\n"  # fmt: skip
    clip = parse_bvh(text)
    assert clip.num_frames == 2 and clip.names == ("Hips", "Hips_end")


GOOD = "HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n}\nMOTION\n" \
       "Frames: 2\nFrame Time: 0.1\n1 2 3\n4 5 6\n"  # fmt: skip


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            "HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n JOINT B\n {\n",
            "truncated hierarchy",
        ),
        (GOOD.replace("CHANNELS 3 Xposition", "CHANNELS 4 Xposition"), "bad channel count"),
        (GOOD.replace("4 5 6", "4 x 6"), "non-numeric value 'x'"),
        (GOOD.replace("Frames: 2", "Frames: 0").replace("1 2 3\n4 5 6\n", ""), "zero frames"),
        (GOOD.replace("4 5 6", "4 5"), "has 2 values but the hierarchy declares 3"),
        (GOOD.replace("Frames: 2", "Frames: 5"), "truncated motion data"),
        (GOOD.replace("Xposition Y", "Wposition Y"), "unknown channel 'Wposition'"),
        (GOOD.replace("Frame Time: 0.1", "Frame Time: abc"), "Frame Time"),
        (GOOD.replace("HIERARCHY", "HIERARCHI"), "expected 'HIERARCHY'"),
        ("", "empty file"),
        (GOOD.replace(" OFFSET 0 0 0\n", " OFFSET 0 0\n"), "OFFSET needs 3 numbers"),
        (GOOD.split("MOTION")[0], "no MOTION section"),
    ],
)
def test_malformed_bvh_one_line_errors(text, needle, tmp_path):
    p = tmp_path / "bad.bvh"
    p.write_text(text)
    with pytest.raises(BvhFormatError) as e:
        load_bvh(p)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "bad.bvh" in msg


def test_not_a_text_file(tmp_path):
    p = tmp_path / "bin.bvh"
    p.write_bytes(bytes(range(256)))
    with pytest.raises(BvhFormatError, match="not a text file"):
        load_bvh(p)


def test_cmu_clip(shared_data: Path):
    path = shared_data / "cmu" / "131_01.bvh"
    if not path.exists():
        pytest.skip("CMU clip not present")
    clip = load_bvh(path)
    assert clip.num_frames == 994 and abs(clip.fps - 120) < 0.01
    assert len(clip.names) == 38 and clip.meta["bvh_channels"] == 96
    assert clip.detect_units() == "cmu"
    h = clip.to_human()
    head = h.get("Head_end")[:, 2]
    toe = np.minimum(h.get("LeftToe")[:, 2], h.get("RightToe")[:, 2])
    assert 1.3 < np.median(head - toe) < 1.9  # a standing adult, metres
    # bone lengths are constant over time (rigid skeleton)
    thigh = np.linalg.norm(h.get("LeftKnee") - h.get("LeftHip"), axis=-1)
    assert thigh.std() < 1e-6 and 0.3 < thigh.mean() < 0.5
    # the walk goes somewhere: more than 1.5 m of root travel
    hips = h.get("Hips")
    assert np.linalg.norm(hips[-1, :2] - hips[0, :2]) > 1.5
