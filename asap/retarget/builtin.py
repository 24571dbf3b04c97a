"""Built-in procedural human clips that need no licence: squat, arm wave, side step, kick, one-foot balance.

Each clip is a keyframed human (1.7 m adult proportions; z-up, facing +x, left = +y) turned into keypoints:
the pelvis path and the ankle targets are keyframed, legs are solved by two-link inverse kinematics with the
knee in front, feet are flat and fixed on the ground while in stance, and the pelvis moves over the stance
foot before a foot leaves the ground, far enough that the retargeted G1's centre of mass stays over its stance
foot during single stance (checked by :func:`asap.motion.ops.support_check`; tests pin it). Keyframes are joined by
smooth (zero-velocity) cosine blends.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from asap.retarget.human import HumanMotion
from asap.utils.rotations import axis_rotation_matrix

KEYPOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "left_toe", "right_hip", "right_knee", "right_ankle",
    "right_toe", "spine", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
)  # fmt: skip
"""Keypoint names of the built-in human."""
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 10, 12, 13, 10, 15, 16)
"""Parent of each keypoint."""

# Body dimensions (m).
HIP_HALF_WIDTH = 0.09
PELVIS_TO_HIP_DROP = 0.07
THIGH = 0.43
SHIN = 0.42
ANKLE_HEIGHT = 0.08
FOOT = np.array([0.14, 0.0, -0.055])
"""Ankle -> ball of the foot (toe keypoint) in the foot frame."""
STANCE_HALF_WIDTH = 0.11
SPINE = 0.22
NECK = 0.50
HEAD = 0.64
SHOULDER_HALF_WIDTH = 0.18
SHOULDER_DROP = 0.04
UPPER_ARM = 0.29
FOREARM = 0.26
STAND_PELVIS_Z = ANKLE_HEIGHT + 0.995 * (THIGH + SHIN) + PELVIS_TO_HIP_DROP
"""Pelvis height when standing with nearly straight knees."""
FPS = 50.0
"""Frame rate of the generated clips."""


def keyframes(t: np.ndarray, times: list[float], values: list) -> np.ndarray:
    """Value at times t of a path through (times, values), joined by cosine blends (zero velocity at keys)."""
    vals = np.asarray(values, dtype=np.float64)
    tk = np.asarray(times, dtype=np.float64)
    idx = np.clip(np.searchsorted(tk, t, side="right") - 1, 0, len(tk) - 2)
    span = tk[idx + 1] - tk[idx]
    a = np.clip((t - tk[idx]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    s = 0.5 - 0.5 * np.cos(np.pi * a)
    s = s.reshape(-1, *([1] * (vals.ndim - 1)))
    return (1 - s) * vals[idx] + s * vals[idx + 1]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _leg(hip: np.ndarray, ankle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knee (T,3) by two-link IK with the knee in front; returns (knee, reachable ankle)."""
    d_vec = ankle - hip
    d = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    d_c = np.clip(d, abs(THIGH - SHIN) + 1e-3, THIGH + SHIN - 1e-4)
    u = d_vec / d
    ankle = hip + u * d_c
    cos_a = (THIGH**2 + d_c**2 - SHIN**2) / (2 * THIGH * d_c)
    sin_a = np.sqrt(np.clip(1 - cos_a**2, 0, 1))
    v = _unit(np.cross(u, np.array([0.0, 1.0, 0.0])))  # forward-up, perpendicular to the leg
    return hip + THIGH * (cos_a * u + sin_a * v), ankle


def _arm(shoulder: np.ndarray, flex: np.ndarray, abd: np.ndarray, elbow: np.ndarray, side: float) -> tuple:
    """Elbow and wrist from shoulder flexion (forward raise), abduction (side raise) and elbow flexion (rad)."""
    r = axis_rotation_matrix(1, -flex) @ axis_rotation_matrix(0, side * abd)
    down = np.array([0.0, 0.0, -1.0])
    upper = r @ down
    fore = r @ axis_rotation_matrix(1, -elbow) @ down
    e = shoulder + UPPER_ARM * upper
    return e, e + FOREARM * fore


def _assemble(
    t: np.ndarray,
    pelvis: np.ndarray,
    lean: np.ndarray,
    ankles: tuple[np.ndarray, np.ndarray],
    foot_pitch: tuple[np.ndarray, np.ndarray],
    arms: tuple[tuple, tuple],
    wrists: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> np.ndarray:
    """Keypoints (T, 18, 3) from the pelvis path, torso lean (rad, forward +), ankle paths and arm angles."""

    out = np.zeros((len(t), len(KEYPOINTS), 3))
    k = {name: i for i, name in enumerate(KEYPOINTS)}
    out[:, k["pelvis"]] = pelvis
    torso = axis_rotation_matrix(1, lean)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        hip = pelvis + np.array([0.0, sgn * HIP_HALF_WIDTH, -PELVIS_TO_HIP_DROP])
        ankle_target = ankles[0] if side == "left" else ankles[1]
        knee, ankle = _leg(hip, ankle_target)
        pitch = foot_pitch[0] if side == "left" else foot_pitch[1]
        toe = ankle + (axis_rotation_matrix(1, pitch) @ FOOT)
        out[:, k[f"{side}_hip"]] = hip
        out[:, k[f"{side}_knee"]] = knee
        out[:, k[f"{side}_ankle"]] = ankle
        out[:, k[f"{side}_toe"]] = toe
    out[:, k["spine"]] = pelvis + torso @ np.array([0, 0, SPINE])
    neck = pelvis + torso @ np.array([0, 0, NECK])
    out[:, k["neck"]] = neck
    out[:, k["head"]] = pelvis + torso @ np.array([0, 0, HEAD])
    for (side, sgn), (flex, abd, elb), wrist in zip((("left", 1.0), ("right", -1.0)), arms, wrists, strict=True):
        sh = neck + torso @ np.array([0.0, sgn * SHOULDER_HALF_WIDTH, -SHOULDER_DROP])
        e, w = _arm(sh, flex + lean, abd, elb, sgn)
        if wrist is not None:
            w = e + FOREARM * _unit(wrist)
        out[:, k[f"{side}_shoulder"]] = sh
        out[:, k[f"{side}_elbow"]] = e
        out[:, k[f"{side}_wrist"]] = w
    return out


def _time(duration: float) -> np.ndarray:
    return np.arange(int(round(duration * FPS)) + 1) / FPS


def _foot(y: float, x: float = 0.0) -> list[float]:
    return [x, y, ANKLE_HEIGHT]


def _const(t: np.ndarray, v: float) -> np.ndarray:
    return np.full(len(t), v)


def squat() -> np.ndarray:
    """Two squats, feet planted, hips back, torso leaning forward, arms forward for balance (5 s)."""
    t = _time(5.0)
    z0 = STAND_PELVIS_Z - 0.01
    keys = [0, 0.4, 1.4, 1.8, 2.6, 2.9, 3.9, 4.2, 5.0]
    depth = [0, 0, 1, 1, 0, 0, 0.8, 0.8, 0]
    d = keyframes(t, keys, depth)
    pelvis = np.stack([-0.14 * d, 0 * d, z0 - 0.40 * d], -1)
    lean = 0.55 * d
    la = np.tile(_foot(STANCE_HALF_WIDTH), (len(t), 1))
    ra = np.tile(_foot(-STANCE_HALF_WIDTH), (len(t), 1))
    flex = 1.3 * d
    arm = (flex, _const(t, 0.1), 0.2 + 0.2 * d)
    return _assemble(t, pelvis, lean, (la, ra), (0 * t, 0 * t), (arm, arm))


def arm_wave() -> np.ndarray:
    """Right arm raised to the side, forearm waving (4 s); slight weight shift, feet planted."""
    t = _time(4.0)
    z0 = STAND_PELVIS_Z - 0.01
    raise_ = keyframes(t, [0, 0.3, 1.0, 3.2, 3.9, 4.0], [0, 0, 1, 1, 0, 0])
    pelvis = np.stack([0 * t, -0.02 * raise_, _const(t, z0)], -1)
    la = np.tile(_foot(STANCE_HALF_WIDTH), (len(t), 1))
    ra = np.tile(_foot(-STANCE_HALF_WIDTH), (len(t), 1))
    left = (_const(t, 0.05), _const(t, 0.15), _const(t, 0.25))
    right = (0.1 * raise_, 1.55 * raise_, 0.3 * (1 - raise_))
    # forearm up, swaying side to side in the frontal plane
    sway = raise_ * (0.35 + 0.45 * np.sin(2 * np.pi * 1.4 * t))
    fore_up = np.stack([0.15 + 0 * t, -np.sin(sway), np.cos(sway)], -1)
    fore_down = np.array([0.2, -0.1, -1.0])
    wrist_dir = raise_[:, None] * fore_up + (1 - raise_[:, None]) * fore_down
    return _assemble(t, pelvis, 0 * t + 0.03, (la, ra), (0 * t, 0 * t), (left, right), (None, wrist_dir))


def side_step() -> np.ndarray:
    """Two steps to the left (lead foot, then trailing foot), then two back to the right (5.4 s)."""
    t = _time(5.4)
    w, step, lift = STANCE_HALF_WIDTH, 0.2, 0.08
    z0 = STAND_PELVIS_Z - 0.05
    # phases: (start, end) of: shift, swing, settle for each of 4 steps
    starts = [0.3, 1.55, 2.8, 4.05]
    ly = [w, w + step, w + step, w + step, w]
    ry = [-w, -w, -w + step, -w, -w]
    lz_keys, rz_keys = [0.0], [0.0]
    l_t, r_t = [0.0], [0.0]
    lyv, ryv = [ly[0]], [ry[0]]
    pel_t, pel_y = [0.0], [0.0]
    swing_foot = ["left", "right", "right", "left"]
    for s, (t0, foot) in enumerate(zip(starts, swing_foot, strict=True)):
        support_y = ry[s] if foot == "left" else ly[s]
        # shift the pelvis over the support foot, swing, then re-centre between the feet
        over = 0.7 * support_y + 0.3 * pel_y[-1]
        centre = 0.5 * (ly[s + 1] + ry[s + 1])
        pel_t += [t0, t0 + 0.35, t0 + 0.55, t0 + 0.85, t0 + 1.2]
        pel_y += [pel_y[-1], over, over, 0.5 * (over + centre), centre]
        if foot == "left":
            l_t += [t0 + 0.35, t0 + 0.6, t0 + 0.85]
            lyv += [ly[s], 0.5 * (ly[s] + ly[s + 1]), ly[s + 1]]
            lz_keys += [0.0, lift, 0.0]
        else:
            r_t += [t0 + 0.35, t0 + 0.6, t0 + 0.85]
            ryv += [ry[s], 0.5 * (ry[s] + ry[s + 1]), ry[s + 1]]
            rz_keys += [0.0, lift, 0.0]
    for tt, vv, zz in ((l_t, lyv, lz_keys), (r_t, ryv, rz_keys)):
        tt.append(5.4)
        vv.append(vv[-1])
        zz.append(0.0)
    py = keyframes(t, pel_t + [5.4], pel_y + [pel_y[-1]])
    spread = np.abs(keyframes(t, l_t, lyv) - keyframes(t, r_t, ryv)) - 2 * w
    pelvis = np.stack([0 * t, py, z0 - 0.25 * np.clip(spread, 0, None)], -1)
    la = np.stack([0 * t, keyframes(t, l_t, lyv), ANKLE_HEIGHT + keyframes(t, l_t, lz_keys)], -1)
    ra = np.stack([0 * t, keyframes(t, r_t, ryv), ANKLE_HEIGHT + keyframes(t, r_t, rz_keys)], -1)
    arm = (_const(t, 0.1), _const(t, 0.25), _const(t, 0.4))
    return _assemble(t, pelvis, 0 * t + 0.05, (la, ra), (0 * t, 0 * t), (arm, arm))


def kick(pelvis_shift: float = 0.21, kick_y: float = -0.03, shift_s: float = 1.4) -> np.ndarray:
    """Weight onto the left foot, right front kick (chamber, extend, re-chamber), foot back down, weight back
    (2.6 s + 2 x ``shift_s``). ``pelvis_shift``: sideways pelvis travel towards the stance foot (m); ``kick_y``: the
    kicking foot's sideways position at full extension (m, left = +y); ``shift_s``: duration of each weight shift
    (s)."""
    lift = 0.4 + shift_s  # the swing foot leaves the floor 0.1 s after the weight is over the stance foot
    down = lift + 2.2
    t = _time(down + 0.4 + shift_s)
    z0 = STAND_PELVIS_Z - 0.02
    # a weight shift over 0.6 s put the zero-moment point 5 cm past the stance foot's outer edge as it stopped
    # (asap.motion.ops.dynamic_balance_warning): the policy fell at the lift-off; over 1.4 s it stays on the sole
    shift = keyframes(t, [0, 0.3, 0.3 + shift_s, down + 0.1, down + 0.1 + shift_s, t[-1]], [0, 0, 1, 1, 0, 0])
    # the pelvis goes past the stance foot and the kick stays near the midline: the retargeted G1's centre of
    # mass then stays over its stance foot (asap.motion.ops.support_check; 0.085 / -0.08 left it 8 cm beside it)
    pelvis = np.stack([0.02 * shift, pelvis_shift * shift, z0 - 0.02 * shift], -1)
    la = np.tile(_foot(STANCE_HALF_WIDTH), (len(t), 1))
    keys = [0, lift, lift + 0.5, lift + 0.95, lift + 1.35, lift + 1.8, down, t[-1]]
    ra_k = [
        _foot(-STANCE_HALF_WIDTH), _foot(-STANCE_HALF_WIDTH), [0.22, kick_y - 0.01, 0.38], [0.62, kick_y, 0.62],
        [0.62, kick_y, 0.62], [0.22, kick_y - 0.01, 0.38], _foot(-STANCE_HALF_WIDTH), _foot(-STANCE_HALF_WIDTH),
    ]  # fmt: skip
    ra = keyframes(t, keys, ra_k)
    pitch_r = keyframes(t, keys, [0, 0, 0.3, 0.9, 0.9, 0.3, 0, 0])
    kick_amt = keyframes(t, keys, [0, 0, 0.5, 1, 1, 0.5, 0, 0])
    lean = -0.12 * kick_amt
    left = (0.4 * kick_amt, 0.3 + 0.3 * shift, _const(t, 0.6))
    right = (-0.3 * kick_amt, 0.2 + 0.4 * shift, _const(t, 0.5))
    return _assemble(t, pelvis, lean, (la, ra), (0 * t, pitch_r), (left, right))


def balance() -> np.ndarray:
    """Stand on the left foot with the right knee raised and arms out, hold, put the foot down (5 s)."""
    t = _time(5.0)
    z0 = STAND_PELVIS_Z - 0.02
    shift = keyframes(t, [0, 0.3, 1.0, 4.0, 4.6, 5.0], [0, 0, 1, 1, 0, 0])
    lift = keyframes(t, [0, 1.0, 1.6, 3.5, 4.1, 5.0], [0, 0, 1, 1, 0, 0])
    sway = 0.008 * np.sin(2 * np.pi * 0.7 * t) * lift
    # as in the kick: far enough over the stance foot for the G1's centre of mass (0.09 / -0.07: 8 cm beside it)
    pelvis = np.stack([sway, 0.20 * shift + 0.5 * sway, z0 - 0.02 * shift], -1)
    la = np.tile(_foot(STANCE_HALF_WIDTH), (len(t), 1))
    down = np.array(_foot(-STANCE_HALF_WIDTH))
    up = np.array([0.14, -0.03, 0.42])
    ra = (1 - lift[:, None]) * down + lift[:, None] * up
    arms_out = keyframes(t, [0, 0.8, 1.6, 3.6, 4.4, 5.0], [0, 0, 1, 1, 0, 0])
    arm = (0.1 + 0 * t, 0.1 + 1.3 * arms_out, 0.3 * (1 - arms_out) + 0.1)
    return _assemble(t, pelvis, 0 * t + 0.04, (la, ra), (0 * t, 0.25 * lift), (arm, arm))


CLIPS: dict[str, Callable[[], np.ndarray]] = {
    "squat": squat,
    "arm_wave": arm_wave,
    "side_step": side_step,
    "kick": kick,
    "balance": balance,
}
"""Built-in clip generators by name."""


def builtin_clip(name: str) -> HumanMotion:
    """The built-in human clip ``name`` as keypoints (see :data:`CLIPS`)."""
    if name not in CLIPS:
        raise ValueError(f"unknown built-in clip {name!r}; available: {', '.join(CLIPS)} (or 'all')")
    pos = CLIPS[name]()
    return HumanMotion(
        names=KEYPOINTS, positions=pos, fps=FPS, parents=PARENTS, source=f"builtin:{name}",
        meta={"format": "builtin", "clip": name},
    )  # fmt: skip
