"""`asap motion render` writes a playable mp4 headless (EGL on CPU); `view` without a display names `render`."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from asap.cli import main
from asap.motion.render import render_motion
from asap.motion.synthetic import synthetic_motion


def test_render_cli_writes_mp4_with_the_right_frame_count(tmp_path, capsys):
    src = synthetic_motion(num_frames=10, fps=50.0).save(tmp_path / "m.npz")  # 0.18 s
    out = tmp_path / "m.mp4"
    args = ["motion", "render", str(src), "--out", str(out), "--fps", "25", "--width", "64", "--height", "48"]
    assert main(args) == 0
    assert "5 frames at 25 fps" in capsys.readouterr().out
    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 5 and secs == pytest.approx(0.2, abs=0.05)
    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    video = np.frombuffer(raw, dtype=np.uint8).reshape(5, 48, 64, 3)
    assert video[0].std() > 5  # not a blank frame
    assert main(args) == 1  # exists: not overwritten without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_render_collision_geoms_and_size_checks(tmp_path):
    m = synthetic_motion(num_frames=3, fps=30.0)
    r = render_motion(m, tmp_path / "c.mp4", width=64, height=48, geoms="collision", progress=False)
    assert r["frames"] == 3 and imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "c.mp4"))[0] == 3
    with pytest.raises(ValueError, match="even"):
        render_motion(m, tmp_path / "odd.mp4", width=63, height=48)
    with pytest.raises(ValueError, match="geoms"):
        render_motion(m, tmp_path / "g.mp4", width=64, height=48, geoms="wire")


def test_view_without_display_points_to_render(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    src = synthetic_motion(num_frames=3).save(tmp_path / "m.npz")
    assert main(["motion", "view", str(src)]) == 1
    err = capsys.readouterr().err
    assert "no display" in err and "asap motion render" in err and np.char.count(err.strip(), "\n") == 0
