"""Operations on whole clips: resampling, foot clearance (lowest sole point) and floor fixing, statistics."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import mujoco
import numpy as np

from asap.motion.formats._common import kinematic_model, spec_for_joints
from asap.motion.motion import Motion, frame_count_at
from asap.robot.model import collision_points
from asap.robot.spec import FEET, RobotSpec
from asap.utils.rotations import quat_rotate, slerp

STANCE_SPEED = 0.25
"""A foot moving slower than this (m/s, horizontal speed of its ankle roll link) counts as in stance."""


def to_variant(motion: Motion, spec: RobotSpec | str) -> Motion:
    """The motion in a robot variant's joint order; joints the motion lacks that the variant holds elsewhere
    (the wrists, when going from 23 to 29 DoF) are filled with their default angle."""
    from asap.robot.spec import get_spec

    rs = get_spec(spec) if isinstance(spec, str) else spec
    missing = [n for n in rs.joint_names if n not in motion.joint_names]
    if missing and all("wrist" in n for n in missing):
        default = dict(zip(rs.joint_names, rs.default_pos, strict=True))
        t = motion.num_frames
        fill = np.tile([default[n] for n in missing], (t, 1))
        zeros = np.zeros((t, len(missing)))

        def add(a: np.ndarray | None, extra: np.ndarray) -> np.ndarray | None:
            return None if a is None else np.concatenate([a, extra], axis=1)

        motion = replace(
            motion, joint_names=tuple(motion.joint_names) + tuple(missing), dof_pos=add(motion.dof_pos, fill),
            dof_vel=add(motion.dof_vel, zeros), action=add(motion.action, zeros),
        )  # fmt: skip
    return motion.for_robot(rs)


# ---------------------------------------------------------------------- resampling
def resample(motion: Motion, fps: float) -> Motion:
    """The clip at a new frame rate over the same duration: lerp positions/joints/velocities, slerp the root
    rotation, hold actions (frame at or before each new time)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    motion.check()
    if float(fps) == float(motion.fps):
        return replace(motion, meta=dict(motion.meta))
    n = frame_count_at(motion.duration, fps)
    x = np.arange(n) / fps * motion.fps
    f0 = np.clip(np.floor(x + 1e-9).astype(int), 0, motion.num_frames - 1)
    f1 = np.minimum(f0 + 1, motion.num_frames - 1)
    w = np.clip(x - f0, 0.0, 1.0)

    def lerp(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        ww = w.reshape((n,) + (1,) * (a.ndim - 1))
        return a[f0] * (1 - ww) + a[f1] * ww

    meta = dict(motion.meta)
    meta["resampled_from_fps"] = float(motion.fps)
    return replace(
        motion, fps=float(fps), root_pos=lerp(motion.root_pos), root_quat=slerp(motion.root_quat[f0],
        motion.root_quat[f1], w), dof_pos=lerp(motion.dof_pos), dof_vel=lerp(motion.dof_vel),
        root_lin_vel=lerp(motion.root_lin_vel), root_ang_vel=lerp(motion.root_ang_vel),
        action=None if motion.action is None else motion.action[f0],
        extras={k: lerp(np.asarray(v, dtype=np.float64)).astype(v.dtype) for k, v in motion.extras.items()},
        meta=meta,
    )  # fmt: skip


# ---------------------------------------------------------------------- feet
@dataclass
class FootHeights:
    """Per-frame heights of the lowest sole point of each foot (min over its collision geoms)."""

    left: np.ndarray
    """(T,) m, lowest point of the left foot's collision geoms."""
    right: np.ndarray
    """(T,) m, same for the right foot."""
    left_xy: np.ndarray
    """(T, 2) m, horizontal position of the left foot (ankle roll link origin)."""
    right_xy: np.ndarray
    """(T, 2) m, same for the right foot."""
    fps: float
    """Frame rate of the clip."""

    @property
    def lowest(self) -> np.ndarray:
        """(T,) lowest sole point of either foot."""
        return np.minimum(self.left, self.right)

    def stance(self, speed: float = STANCE_SPEED) -> np.ndarray:
        """(T,) True where the lower foot is nearly still horizontally (it bears the weight)."""
        out = np.zeros(len(self.left), dtype=bool)
        low_left = self.left <= self.right
        for xy, mask in ((self.left_xy, low_left), (self.right_xy, ~low_left)):
            v = np.linalg.norm(np.gradient(xy, 1.0 / self.fps, axis=0), axis=-1) if len(xy) > 1 else np.zeros(1)
            out |= mask & (v < speed)
        return out

    def stance_heights(self, speed: float = STANCE_SPEED) -> np.ndarray:
        """Heights of the lowest sole point on stance frames (all frames when none is in stance)."""
        s = self.stance(speed)
        return self.lowest[s] if s.any() else self.lowest


def _sole_geoms(model: mujoco.MjModel, body: str) -> np.ndarray:
    b = model.body(body).id
    ids = [g for g in range(model.ngeom) if model.geom_bodyid[g] == b and (model.geom_contype[g] or
           model.geom_conaffinity[g])]  # fmt: skip
    if not ids:
        raise ValueError(f"the model has no collision geoms on {body}")
    return np.array(ids)


@dataclass
class _ClipKinematics:
    """Forward kinematics of every frame of a clip on the robot's kinematic model."""

    model: mujoco.MjModel
    xpos: np.ndarray
    """(T, nbody, 3) m, world positions of the bodies."""
    xquat: np.ndarray
    """(T, nbody, 4) wxyz, world orientations of the bodies."""
    com: np.ndarray
    """(T, 3) m, the whole robot's centre of mass."""


def _clip_kinematics(m: Motion, rs: RobotSpec) -> _ClipKinematics:
    model = kinematic_model(rs.name)
    data = mujoco.MjData(model)
    adr = np.array([model.joint(n).qposadr[0] for n in rs.joint_names])
    t = m.num_frames
    xpos = np.zeros((t, model.nbody, 3))
    xquat = np.zeros((t, model.nbody, 4))
    com = np.zeros((t, 3))
    quat = m.root_quat / np.linalg.norm(m.root_quat, axis=-1, keepdims=True)
    for f in range(t):
        data.qpos[:3] = m.root_pos[f]
        data.qpos[3:7] = quat[f]
        data.qpos[adr] = m.dof_pos[f]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        xpos[f] = data.xpos
        xquat[f] = data.xquat
        com[f] = data.subtree_com[0]
    return _ClipKinematics(model, xpos, xquat, com)


def _foot_heights(kin: _ClipKinematics, fps: float) -> FootHeights:
    points = {f: collision_points(kin.model, _sole_geoms(kin.model, f)) for f in FEET}
    left, right = (points[f].heights(kin.xpos, kin.xquat).min(axis=-1) for f in FEET)
    feet = [kin.model.body(f).id for f in FEET]
    return FootHeights(left=left, right=right, left_xy=kin.xpos[:, feet[0], :2], right_xy=kin.xpos[:, feet[1], :2],
                       fps=fps)  # fmt: skip


def foot_heights(motion: Motion, spec: RobotSpec | None = None) -> FootHeights:
    """Lowest sole point of each foot per frame (:func:`asap.robot.model.collision_points` of its collision geoms)."""
    rs = spec or spec_for_joints(motion.joint_names)
    m = motion.for_robot(rs)
    return _foot_heights(_clip_kinematics(m, rs), float(m.fps))


FLOOR_MODES = ("clip", "frame")
"""``clip``: one constant shift; ``frame``: a per-frame shift that puts the stance foot down on every stance frame."""


def fix_floor(motion: Motion, spec: RobotSpec | None = None, mode: str = "frame") -> tuple[Motion, np.ndarray]:
    """Shift root z only (joints, xy and rotations stay) so that stance feet touch z = 0.

    ``clip``: one constant shift putting the lowest sole point of the whole clip at z = 0 (on real clips a
    stance foot; no frame ends up below the floor).
    ``frame``: a per-frame shift putting the lower foot's sole at z = 0 on every stance frame, interpolated
    across flight phases, never letting a sole below the floor, and smoothed (Gaussian, 0.04 s).
    Returns the new motion and the shift per frame (T,) in m (constant for ``clip``)."""
    if mode not in FLOOR_MODES:
        raise ValueError(f"fix-floor mode must be one of {FLOOR_MODES}, got {mode!r}")
    fh = foot_heights(motion, spec)
    t = motion.num_frames
    if mode == "clip":
        shift = np.full(t, -float(fh.lowest.min()))
    else:
        from scipy.ndimage import gaussian_filter1d

        stance = fh.stance()
        idx = np.flatnonzero(stance) if stance.any() else np.arange(t)
        shift = np.interp(np.arange(t), idx, -fh.lowest[idx])
        shift = np.maximum(shift, -fh.lowest)
        shift = gaussian_filter1d(shift, 0.04 * motion.fps, mode="nearest")
        shift = np.maximum(shift, -fh.lowest)  # smoothing must not push a sole below the floor
    root = motion.root_pos.copy()
    root[:, 2] += shift
    meta = dict(motion.meta)
    meta["fix_floor"] = {"mode": mode, "shift_min_m": float(shift.min()), "shift_max_m": float(shift.max())}
    return replace(motion, root_pos=root, meta=meta), shift


SWING_CLEARANCE_M = 0.03
"""A foot whose lowest sole point is this much higher (m) than the other foot's is in the air (single stance)."""
SUPPORT_TOLERANCE_M = 0.02
"""The centre of mass may pass the stance foot's sole by this much (m) before a frame counts as unsupported."""
UNSUPPORTED_MAX_S = 0.3
"""Single stance with the centre of mass outside the stance foot for longer than this (s) is reported."""
ZMP_TOLERANCE_M = 0.03
"""The zero-moment point may pass the support polygon by this much (m) before a frame counts as unrealisable."""
ZMP_OUTSIDE_MAX_S = 0.1
"""A zero-moment point outside the support polygon for longer than this (s) in a row is reported."""
ZMP_SMOOTH_S = 0.04
"""Gaussian smoothing (s, standard deviation) of the centre of mass before it is differentiated twice."""
GRAVITY = 9.81
"""m/s²."""


@dataclass
class SupportCheck:
    """Where the clip's centre of mass lies against the stance foot during single stance (static balance)."""

    single_stance: np.ndarray
    """(T,) True where one foot is in the air (:data:`SWING_CLEARANCE_M`) and the other on the floor."""
    outside: np.ndarray
    """(T,) m, horizontal distance of the centre of mass outside the stance foot's sole rectangle (0 when over it,
    and on frames that are not single stance)."""
    lateral: np.ndarray
    """(T,) m, the centre of mass's sideways offset from the stance ankle, in the foot's frame (0 off single stance)."""
    fps: float
    """Frame rate of the clip."""
    feet: FootHeights
    """The sole heights of the same forward-kinematics pass (for the floor check and the clearance figures)."""
    zmp: np.ndarray
    """(T, 2) m, the zero-moment point of the clip's centre-of-mass motion (point-mass model: the centre of mass
    minus its height over the floor times its horizontal acceleration over g plus its vertical acceleration;
    the bodies' angular momentum is left out), NaN in flight (vertical acceleration below -0.8 g)."""
    zmp_outside: np.ndarray
    """(T,) m, how far the zero-moment point lies outside the support polygon (the convex hull of the soles of
    the feet within :data:`SWING_CLEARANCE_M` of the lower one; the distance past its farthest-out edge line),
    0 inside it and in flight."""

    def longest_unsupported_s(self, tol: float = SUPPORT_TOLERANCE_M) -> float:
        """Longest run (s) of consecutive single-stance frames with the centre of mass more than ``tol`` outside."""
        return _longest_run(self.outside > tol) / self.fps

    def longest_zmp_outside_s(self, tol: float = ZMP_TOLERANCE_M) -> float:
        """Longest run (s) of consecutive frames with the zero-moment point more than ``tol`` outside the support
        polygon: the clip asks for accelerations the feet cannot push for (the robot tips over its foot edge)."""
        return _longest_run(self.zmp_outside > tol) / self.fps


def _longest_run(flags: np.ndarray) -> int:
    run = best = 0
    for bad in flags:
        run = run + 1 if bad else 0
        best = max(best, run)
    return best


def _zero_moment_point(com: np.ndarray, floor: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) point-mass zero-moment point of a (T, 3) centre-of-mass path over floor heights (T,); NaN in flight."""
    from scipy.ndimage import gaussian_filter1d

    if len(com) < 3:
        return com[:, :2].copy()
    c = gaussian_filter1d(com, ZMP_SMOOTH_S * fps, axis=0, mode="nearest")
    acc = np.gradient(np.gradient(c, 1.0 / fps, axis=0), 1.0 / fps, axis=0)
    g = GRAVITY + acc[:, 2]
    zmp = c[:, :2] - ((c[:, 2] - floor) / np.maximum(g, 1e-6))[:, None] * acc[:, :2]
    zmp[g < 0.2 * GRAVITY] = np.nan
    return zmp


def _outside_hull(points: np.ndarray, p: np.ndarray) -> float:
    """Distance (m) of p (2,) past the farthest-out edge line of the convex hull of points (K, 2); 0 inside."""
    from scipy.spatial import ConvexHull

    eq = ConvexHull(points).equations  # rows (nx, ny, offset), outward unit normals
    return max(float((eq[:, :2] @ p + eq[:, 2]).max()), 0.0)


def support_check(motion: Motion, spec: RobotSpec | None = None) -> SupportCheck:
    """:class:`SupportCheck` of a clip: forward kinematics with the robot's masses per frame; the stance foot's
    sole is the rectangle around its collision geoms' points (their radius included) in the foot's frame, and the
    centre of mass is projected on the floor in the frame of the foot's heading."""
    rs = spec or spec_for_joints(motion.joint_names)
    m = motion.for_robot(rs)
    kin = _clip_kinematics(m, rs)
    fh = _foot_heights(kin, float(m.fps))
    gap = fh.left - fh.right
    single = (np.abs(gap) >= SWING_CLEARANCE_M) & (np.minimum(fh.left, fh.right) <= SWING_CLEARANCE_M)
    outside, lateral = np.zeros(m.num_frames), np.zeros(m.num_frames)
    corners = []  # per foot (T, 4, 2): its sole rectangle's corners on the floor
    for i, foot in enumerate(FEET):
        cp = collision_points(kin.model, _sole_geoms(kin.model, foot))
        lo, hi = (cp.local[:, :2] - cp.radius[:, None]).min(0), (cp.local[:, :2] + cp.radius[:, None]).max(0)
        b = kin.model.body(foot).id
        x_axis = quat_rotate(kin.xquat[:, b], np.array([1.0, 0.0, 0.0]))[:, :2]
        c, s = (x_axis / np.linalg.norm(x_axis, axis=-1, keepdims=True)).T
        local = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]], [hi[0], lo[1]]])
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2) foot heading
        corners.append(kin.xpos[:, None, b, :2] + np.einsum("tij,kj->tki", rot, local))
        frames = np.flatnonzero(single & ((gap > 0) if i == 1 else (gap < 0)))  # the other foot is up
        if not len(frames):
            continue
        c, s = c[frames], s[frames]
        d = kin.com[frames, :2] - kin.xpos[frames, b, :2]
        rel = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)
        out = np.maximum(np.maximum(lo - rel, rel - hi), 0.0)
        outside[frames], lateral[frames] = np.hypot(out[:, 0], out[:, 1]), rel[:, 1]
    zmp = _zero_moment_point(kin.com, fh.lowest, float(m.fps))
    on_floor = np.stack([fh.left, fh.right], -1) <= fh.lowest[:, None] + SWING_CLEARANCE_M
    zmp_outside = np.zeros(m.num_frames)
    for f in np.flatnonzero(~np.isnan(zmp[:, 0])):
        pts = np.concatenate([corners[i][f] for i in range(len(FEET)) if on_floor[f, i]])
        zmp_outside[f] = _outside_hull(pts, zmp[f])
    return SupportCheck(single_stance=single, outside=outside, lateral=lateral, fps=float(m.fps), feet=fh, zmp=zmp,
                        zmp_outside=zmp_outside)  # fmt: skip


def balance_warning(name: str, motion: Motion, spec: RobotSpec | None = None) -> str | None:
    """One line when ``motion`` keeps its centre of mass outside the stance foot for longer than
    :data:`UNSUPPORTED_MAX_S` of single stance: poses the robot can pass through while moving (a step catches the
    fall) but not hold, so a clip that holds them makes the policy leave the reference to balance (slow or no
    convergence); None otherwise."""
    return _balance_message(name, support_check(motion, spec))


def _balance_message(name: str, sc: SupportCheck) -> str | None:
    run = sc.longest_unsupported_s()
    if run <= UNSUPPORTED_MAX_S:
        return None
    return (
        f"warning: clip {name}: for {run:.1f} s of single stance its centre of mass is up to "
        f"{100 * sc.outside.max():.1f} cm outside the stance foot, which the robot can pass through while stepping "
        f"but not hold; if the clip holds such poses, shift its pelvis over the stance foot"
    )


def dynamic_balance_warning(name: str, motion: Motion, spec: RobotSpec | None = None) -> str | None:
    """One line when ``motion``'s zero-moment point leaves the support polygon by more than
    :data:`ZMP_TOLERANCE_M` for longer than :data:`ZMP_OUTSIDE_MAX_S`: its centre of mass accelerates (typically
    a weight shift stopping over the stance foot) harder than the feet can push for, so the robot tips over a
    foot's edge where it follows the clip; None otherwise."""
    return _dynamic_message(name, support_check(motion, spec))


def _dynamic_message(name: str, sc: SupportCheck) -> str | None:
    run = sc.longest_zmp_outside_s()
    if run <= ZMP_OUTSIDE_MAX_S:
        return None
    worst = int(np.argmax(sc.zmp_outside))
    return (
        f"warning: clip {name}: at {worst / sc.fps:.2f} s its zero-moment point is {100 * sc.zmp_outside[worst]:.1f} "
        f"cm outside the feet ({run:.2f} s in a row): the centre of mass accelerates harder than the feet can "
        f"push for and the robot tips over a foot's edge there; slow that part of the clip (a weight shift over "
        f"~1 s or more)"
    )


FLOOR_TOLERANCE_M = 0.02
"""A clip whose stance feet are farther than this (m, median over stance frames) from z = 0 is reported."""


def floor_offset(motion: Motion, spec: RobotSpec | None = None) -> float:
    """Median height (m) of the lowest sole point over the clip's stance frames: > 0 the clip floats above the
    floor, < 0 its feet sink into it. The simulated robot stands on z = 0 whatever the clip says, so this offset
    appears in every frame's global tracking error and eats the motion-far and failure margins."""
    return _stance_median(foot_heights(motion, spec))


def _stance_median(fh: FootHeights) -> float:
    return float(np.median(fh.stance_heights()))


def floor_warning(name: str, motion: Motion, spec: RobotSpec | None = None) -> str | None:
    """One line naming the fix when ``motion``'s stance feet are off the floor by more than
    :data:`FLOOR_TOLERANCE_M`; None otherwise."""
    return _floor_message(name, foot_heights(motion, spec))


def _floor_message(name: str, fh: FootHeights) -> str | None:
    off = _stance_median(fh)
    if abs(off) <= FLOOR_TOLERANCE_M:
        return None
    where = "above" if off > 0 else "below"
    return (
        f"warning: clip {name}: its stance feet are {100 * abs(off):.1f} cm {where} the floor (median); the "
        f"robot stands on the floor, so the reference is off by that much everywhere; fix the clip with "
        f"`asap motion convert IN OUT.npz --fix-floor`"
    )


def clip_warnings(name: str, motion: Motion, spec: RobotSpec | None = None) -> list[str]:
    """The lines of :func:`floor_warning`, :func:`balance_warning` and :func:`dynamic_balance_warning` that apply
    to ``motion``, from one forward-kinematics pass (what training prints at start)."""
    sc = support_check(motion, spec)
    msgs = (_floor_message(name, sc.feet), _balance_message(name, sc), _dynamic_message(name, sc))
    return [msg for msg in msgs if msg]


# ---------------------------------------------------------------------- report
def _stats(x: np.ndarray) -> dict[str, float]:
    return {"min": float(np.min(x)), "median": float(np.median(x)), "max": float(np.max(x))}


def motion_info(motion: Motion, spec: RobotSpec | None = None) -> dict[str, Any]:
    """Figures of a clip: length, fps, joint ranges used, limit violations, foot clearance, centre of mass against
    the stance foot (:func:`support_check`) (JSON-ready)."""
    rs = spec or spec_for_joints(motion.joint_names)
    m = motion.for_robot(rs)
    sc = support_check(m, rs)
    fh = sc.feet
    stance = fh.stance()
    lo, hi = m.dof_pos.min(0), m.dof_pos.max(0)
    joints = {
        n: {"min": float(lo[j]), "max": float(hi[j]), "limit_lower": float(rs.pos_lower[j]),
            "limit_upper": float(rs.pos_upper[j])}
        for j, n in enumerate(rs.joint_names)
    }  # fmt: skip
    sh = fh.stance_heights()
    return {
        "robot": rs.name,
        "fps": float(m.fps),
        "frames": m.num_frames,
        "length_s": m.duration,
        "root_height": _stats(m.root_pos[:, 2]),
        "has": {k: getattr(m, k) is not None for k in ("action", "dof_vel", "root_lin_vel", "root_ang_vel")},
        "joints": joints,
        "limit_violations": m.limit_violations(rs),
        "foot_clearance": {
            "lowest_sole": _stats(fh.lowest),
            "left_sole": _stats(fh.left),
            "right_sole": _stats(fh.right),
            "stance_frames": int(stance.sum()),
            "stance_sole": _stats(sh),
            "penetration_frames": int((fh.lowest < -1e-3).sum()),
            "fix_floor_shift_clip": -float(fh.lowest.min()),
        },
        "support": {
            "single_stance_frames": int(sc.single_stance.sum()),
            "com_outside_max_m": float(sc.outside.max()),
            "longest_unsupported_s": sc.longest_unsupported_s(),
            "zmp_outside_max_m": float(sc.zmp_outside.max()),
            "longest_zmp_outside_s": sc.longest_zmp_outside_s(),
        },
        "meta": m.meta,
    }
