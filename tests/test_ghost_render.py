"""`render_ghost_video`: a rollout with its reference as a translucent ghost, one video frame per rollout frame."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import imageio_ffmpeg
import numpy as np
import pytest

from asap.motion.render import render_ghost_video, render_motion
from asap.motion.synthetic import synthetic_motion


def _frames(path, n: int, h: int, w: int) -> np.ndarray:
    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(n, h, w, 3).astype(float)


@pytest.fixture(scope="module")
def offscreen_gl():
    """Skip when no offscreen OpenGL context can be made (the renderer needs EGL or OSMesa)."""
    import mujoco

    from asap.motion.render import _ensure_offscreen_gl

    _ensure_offscreen_gl()
    try:
        ctx = mujoco.GLContext(8, 8)
        ctx.make_current()
        ctx.free()
    except Exception as e:  # noqa: BLE001 - any GL failure means: no offscreen rendering here
        pytest.skip(f"offscreen rendering unavailable: {e}")


def test_ghost_video_has_a_frame_per_rollout_frame_and_shows_the_reference(tmp_path, offscreen_gl):
    ref = synthetic_motion(num_frames=30, seed=1)
    rollout = replace(ref, root_pos=ref.root_pos + [0.0, 0.6, 0.0]).slice(0, 10)  # 60 cm beside its reference
    kw = dict(width=64, height=48, geoms="collision", progress=False)
    r = render_ghost_video(rollout, ref, tmp_path / "ghost.mp4", start_time=0.1, **kw)
    assert r["frames"] == 10 and r["fps"] == 50.0
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "ghost.mp4"))[0] == 10
    render_motion(rollout, tmp_path / "plain.mp4", **kw)
    ghost, plain = _frames(tmp_path / "ghost.mp4", 10, 48, 64), _frames(tmp_path / "plain.mp4", 10, 48, 64)
    assert np.abs(ghost - plain).mean() > 1.0  # the ghost is in the picture
    # past its end the reference holds its last frame; the robot alone is what render_motion draws
    late = render_ghost_video(rollout, ref, tmp_path / "late.mp4", start_time=10.0, **kw)
    assert late["frames"] == 10
    with pytest.raises(FileExistsError):
        render_ghost_video(rollout, ref, tmp_path / "ghost.mp4", **kw)
    with pytest.raises(ValueError, match="start_time"):
        render_ghost_video(rollout, ref, tmp_path / "neg.mp4", start_time=-1.0, **kw)
