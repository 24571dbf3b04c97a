"""See a motion: offscreen MuJoCo rendering to mp4 (headless, CPU) and an interactive viewer.

Rendering uses EGL (``MUJOCO_GL=egl`` unless the user chose another backend); on a machine without a GPU,
Mesa's software EGL does the work. A camera follows the pelvis. :func:`render_ghost_video` draws a rollout with
its reference motion as a translucent ghost in the same scene.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (when this module is the first to)

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from asap.motion.formats._common import check_writable, spec_for_joints  # noqa: E402
from asap.motion.motion import Motion  # noqa: E402
from asap.motion.ops import resample  # noqa: E402
from asap.robot.spec import RobotSpec  # noqa: E402

_MODELS: dict[str, mujoco.MjModel] = {}


def has_display() -> bool:
    """True when a window can be opened (X11/Wayland display on Linux; always on macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _ensure_offscreen_gl() -> None:
    """Use EGL when mujoco was imported before MUJOCO_GL was set and there is no display for GLFW."""
    from mujoco.rendering.classic import gl_context

    want = os.environ.get("MUJOCO_GL", "egl").lower()
    ctx = getattr(gl_context, "GLContext", None)
    if has_display() or want not in ("egl", "osmesa"):
        return
    if ctx is None or getattr(ctx, "__module__", "") not in ("mujoco.egl", "mujoco.osmesa"):
        if want == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.egl import GLContext
        gl_context.GLContext = GLContext


def _model(rs: RobotSpec) -> mujoco.MjModel:
    if rs.name not in _MODELS:
        from asap.robot.model import ModelOptions, build_model

        _MODELS[rs.name] = build_model(rs, options=ModelOptions(actuators="none"))
    return _MODELS[rs.name]


def _qpos(model: mujoco.MjModel, motion: Motion, rs: RobotSpec) -> np.ndarray:
    m = motion.for_robot(rs)
    adr = np.array([model.joint(n).qposadr[0] for n in rs.joint_names])
    q = np.zeros((m.num_frames, model.nq))
    q[:, :3] = m.root_pos
    q[:, 3:7] = m.root_quat / np.linalg.norm(m.root_quat, axis=-1, keepdims=True)
    q[:, adr] = m.dof_pos
    return q


def _camera(model: mujoco.MjModel, distance: float, azimuth: float, elevation: float) -> mujoco.MjvCamera:
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    cam.trackbodyid = model.body("pelvis").id
    cam.distance, cam.azimuth, cam.elevation = distance, azimuth, elevation
    return cam


GEOM_MODES = ("mesh", "collision")
"""What `render` draws: visual meshes or collision geoms."""


def _scene_option(geoms: str) -> mujoco.MjvOption:
    if geoms not in GEOM_MODES:
        raise ValueError(f"geoms must be one of {GEOM_MODES}, got {geoms!r}")
    opt = mujoco.MjvOption()
    opt.geomgroup[:] = 0
    opt.geomgroup[0] = 1  # the floor
    if geoms == "mesh":
        opt.geomgroup[1] = opt.geomgroup[2] = 1
    else:
        opt.geomgroup[3] = 1
    return opt


def _check_size(model: mujoco.MjModel, width: int, height: int) -> None:
    if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
        raise ValueError(
            f"{width}x{height} exceeds the offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight}"
        )
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for H.264 video, got {width}x{height}")


def _write_video(
    model: mujoco.MjModel, qpos: np.ndarray, out: Path, rate: float, width: int, height: int,
    cam: mujoco.MjvCamera, opt: mujoco.MjvOption, pretty: bool, progress: bool,
    ghost: np.ndarray | None = None, ghost_rgba: tuple[float, float, float, float] = (0.3, 0.6, 1.0, 0.3),
) -> dict[str, float]:  # fmt: skip
    """Render ``qpos`` (T, nq) frame by frame to ``out`` (H.264 mp4, written to a temporary name first).

    ``ghost`` (T, nq): a second pose of the same model per frame, drawn into the same scene (its bodies only, no
    second floor) in ``ghost_rgba``. Returns ``{frames, fps, seconds, render_fps}``."""
    import imageio.v2 as imageio

    from asap.utils.progress import progress_bar

    data = mujoco.MjData(model)
    gdata = mujoco.MjData(model) if ghost is not None else None
    gopt = mujoco.MjvOption()
    gopt.geomgroup[:] = opt.geomgroup
    gopt.geomgroup[0] = 0  # the floor is drawn once, by the robot's scene
    pert = mujoco.MjvPerturb()
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    t0 = time.perf_counter()
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        writer = imageio.get_writer(
            tmp, fps=rate, codec="libx264", macro_block_size=1, quality=7, pixelformat="yuv420p",
            ffmpeg_log_level="error",
        )  # fmt: skip
        try:
            for f, q in enumerate(
                progress_bar(qpos, desc=f"render {out.name}", unit="frame", disable=not progress, leave=False)
            ):
                data.qpos[:] = q
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera=cam, scene_option=opt)
                if gdata is not None:
                    scene = renderer.scene
                    n0 = scene.ngeom
                    gdata.qpos[:] = ghost[f]
                    mujoco.mj_kinematics(model, gdata)
                    mujoco.mjv_addGeoms(model, gdata, gopt, pert, mujoco.mjtCatBit.mjCAT_DYNAMIC, scene)
                    for i in range(n0, scene.ngeom):
                        scene.geoms[i].rgba[:] = ghost_rgba
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = pretty
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = pretty
                writer.append_data(renderer.render())
        finally:
            writer.close()
    tmp.replace(out)
    secs = time.perf_counter() - t0
    return {"frames": len(qpos), "fps": rate, "seconds": secs, "render_fps": len(qpos) / max(secs, 1e-9)}


def render_motion(
    motion: Motion,
    out: str | Path,
    fps: float | None = None,
    width: int = 640,
    height: int = 480,
    overwrite: bool = False,
    spec: RobotSpec | None = None,
    distance: float = 2.8,
    azimuth: float = 135.0,
    elevation: float = -15.0,
    geoms: str = "mesh",
    pretty: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Render a motion to an mp4 (H.264) with a camera tracking the pelvis.

    ``fps``: video frame rate (the clip is resampled to it; default: the clip's own). ``geoms``: ``mesh``
    (Unitree's visual meshes) or ``collision`` (capsules; several times faster in software GL). ``pretty``:
    shadows and floor reflection (slow without a GPU). Returns ``{frames, fps, seconds, render_fps}``."""
    _ensure_offscreen_gl()
    rs = spec or spec_for_joints(motion.joint_names)
    model = _model(rs)
    _check_size(model, width, height)
    clip = motion if fps is None else resample(motion, fps)
    qpos = _qpos(model, clip, rs)
    p = check_writable(out, overwrite)
    cam = _camera(model, distance, azimuth, elevation)
    return _write_video(model, qpos, p, float(clip.fps), width, height, cam, _scene_option(geoms), pretty, progress)


def render_ghost_video(
    rollout: Motion,
    reference: Motion,
    out: str | Path,
    start_time: float = 0.0,
    fps: float | None = None,
    width: int = 640,
    height: int = 480,
    overwrite: bool = False,
    spec: RobotSpec | None = None,
    distance: float = 2.8,
    azimuth: float = 135.0,
    elevation: float = -15.0,
    geoms: str = "mesh",
    ghost_rgba: tuple[float, float, float, float] = (0.3, 0.6, 1.0, 0.3),
    pretty: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Render a rollout with its reference as a translucent ghost (mp4, H.264), the camera tracking the robot.

    Video frame f shows the rollout at ``f / fps`` and the reference at ``start_time + f / fps`` (s; held at
    its last frame past its end), both in world coordinates as given (re-anchor the reference first when the
    robot started elsewhere). ``fps``: video rate (both are resampled to it; default: the rollout's rate).
    ``ghost_rgba``: the reference's colour and opacity. The other options as :func:`render_motion`. Returns
    ``{frames, fps, seconds, render_fps}``."""
    _ensure_offscreen_gl()
    rs = spec or spec_for_joints(rollout.joint_names)
    model = _model(rs)
    _check_size(model, width, height)
    if start_time < 0:
        raise ValueError(f"start_time must be >= 0, got {start_time}")
    clip = rollout if fps is None else resample(rollout, fps)
    rate = float(clip.fps)
    qpos = _qpos(model, clip, rs)
    ghost = _qpos(model, resample(reference, rate), rs)
    frames = np.minimum(int(round(start_time * rate)) + np.arange(len(qpos)), len(ghost) - 1)
    p = check_writable(out, overwrite)
    cam = _camera(model, distance, azimuth, elevation)
    opt = _scene_option(geoms)
    return _write_video(model, qpos, p, rate, width, height, cam, opt, pretty, progress, ghost[frames], ghost_rgba)


def view_motion(motion: Motion, spec: RobotSpec | None = None, loop: bool = True, speed: float = 1.0) -> None:
    """Play a motion in MuJoCo's interactive viewer (needs a display)."""
    if not has_display():
        raise RuntimeError(
            "no display found (DISPLAY/WAYLAND_DISPLAY unset); make a video instead: "
            "asap motion render FILE --out clip.mp4"
        )
    import mujoco.viewer

    rs = spec or spec_for_joints(motion.joint_names)
    model = _model(rs)
    qpos = _qpos(model, motion, rs)
    data = mujoco.MjData(model)
    dt = 1.0 / (motion.fps * speed)
    with mujoco.viewer.launch_passive(model, data) as viewer:
        viewer.cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        viewer.cam.trackbodyid = model.body("pelvis").id
        viewer.cam.distance = 3.0
        while viewer.is_running():
            for q in qpos:
                if not viewer.is_running():
                    return
                start = time.perf_counter()
                data.qpos[:] = q
                mujoco.mj_forward(model, data)
                viewer.sync()
                time.sleep(max(0.0, dt - (time.perf_counter() - start)))
            if not loop:
                return
