"""Synthetic BVH files for the BVH and retarget tests (helpers only, no tests): a CMU-named human that squats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

THIGH, SHIN, HIP_Y = 43.0, 42.0, 100.0


def _hierarchy(scale: float = 1.0) -> str:
    s = scale

    def off(x: float, y: float, z: float) -> str:
        return f"OFFSET {x * s:.6f} {y * s:.6f} {z * s:.6f}"

    leg = lambda side, sx: (
        f"""
  JOINT {side}Hip
  {{
    {off(sx * 9, -7, 0)}
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT {side}Knee
    {{
      {off(0, -THIGH, 0)}
      CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT {side}Ankle
      {{
        {off(0, -SHIN, 0)}
        CHANNELS 3 Zrotation Yrotation Xrotation
        JOINT {side}Toe
        {{
          {off(0, -6, 13)}
          CHANNELS 3 Zrotation Yrotation Xrotation
          End Site
          {{
            {off(0, 0, 5)}
          }}
        }}
      }}
    }}
  }}"""
    )  # noqa: E731
    arm = lambda side, sx: (
        f"""
      JOINT {side}Shoulder
      {{
        {off(sx * 18, -4, 0)}
        CHANNELS 3 Yrotation Xrotation Zrotation
        JOINT {side}Elbow
        {{
          {off(0, -29, 0)}
          CHANNELS 3 Yrotation Xrotation Zrotation
          JOINT {side}Wrist
          {{
            {off(0, -26, 0)}
            CHANNELS 3 Yrotation Xrotation Zrotation
            End Site
            {{
              {off(0, -8, 0)}
            }}
          }}
        }}
      }}"""
    )  # noqa: E731
    return f"""HIERARCHY
ROOT Hips
{{
  {off(0, 0, 0)}
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation{leg("Left", 1)}{leg("Right", -1)}
  JOINT Chest
  {{
    {off(0, 25, 0)}
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Neck
    {{
      {off(0, 25, 0)}
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT Head
      {{
        {off(0, 12, 0)}
        CHANNELS 3 Zrotation Xrotation Yrotation
        End Site
        {{
          {off(0, 10, 0)}
        }}
      }}{arm("Left", 1)}{arm("Right", -1)}
    }}
  }}
}}
"""


CHANNEL_COUNT = 6 + 4 * 3 * 2 + 3 * 3 + 3 * 3 * 2


def squat_frames(n: int = 90, scale: float = 1.0) -> np.ndarray:
    """Channel values (n, CHANNEL_COUNT): squat with planted feet, arms out to the sides."""
    t = np.linspace(0, 1, n)
    k = np.deg2rad(70.0) * np.sin(np.pi * t) ** 2  # knee flexion
    h = 0.55 * k  # hip flexion
    a = h - k  # ankle keeps the foot flat
    hip_y = 8 + 7 + THIGH * np.cos(h) + SHIN * np.cos(h - k)
    hip_z = -(THIGH * np.sin(h) + SHIN * np.sin(h - k))
    arm = 70.0 * np.sin(np.pi * t) ** 2
    rows = np.zeros((n, CHANNEL_COUNT))
    rows[:, 0] = 0.0
    rows[:, 1] = hip_y * scale
    rows[:, 2] = hip_z * scale
    c = 6
    for _side in range(2):  # legs: Z Y X per joint (hip, knee, ankle, toe)
        rows[:, c + 2] = np.rad2deg(-h)
        rows[:, c + 5] = np.rad2deg(k)
        rows[:, c + 8] = np.rad2deg(a)
        c += 12
    rows[:, c + 1] = 15.0 * np.sin(np.pi * t) ** 2  # chest leans forward (X)
    c += 9
    for sgn in (1, -1):  # arms: Y X Z
        rows[:, c + 2] = sgn * arm
        rows[:, c + 5] = 0.0
        c += 9
    return rows


def write_bvh(path: Path, n: int = 90, scale: float = 1.0, frame_time: float = 1 / 30) -> Path:
    """Write the synthetic squat BVH (scale 1 = centimetres, 0.01 = metres)."""
    frames = squat_frames(n, scale)
    lines = [_hierarchy(scale), "MOTION", f"Frames: {n}", f"Frame Time: {frame_time:.7f}"]
    lines += [" ".join(f"{v:.5f}" for v in row) for row in frames]
    path.write_text("\n".join(lines) + "\n")
    return path


CMU_TO_MIXAMO = {
    "LeftHip": "LeftUpLeg", "LeftKnee": "LeftLeg", "LeftAnkle": "LeftFoot", "LeftToe": "LeftToeBase",
    "RightHip": "RightUpLeg", "RightKnee": "RightLeg", "RightAnkle": "RightFoot", "RightToe": "RightToeBase",
    "Chest": "Spine", "LeftShoulder": "LeftArm", "LeftElbow": "LeftForeArm", "LeftWrist": "LeftHand",
    "RightShoulder": "RightArm", "RightElbow": "RightForeArm", "RightWrist": "RightHand",
}  # fmt: skip
"""The synthetic skeleton's CMU (3dsMax-friendly) names -> Mixamo's."""


def clip_text(clip, rename: dict[str, str] | None = None, prefix: str = "") -> str:
    """BVH text of a parsed clip (joints renamed by ``rename``, names prefixed with ``prefix``)."""
    rename = rename or {}
    kids: dict[int, list[int]] = {i: [] for i in range(len(clip.joints))}
    for i, j in enumerate(clip.joints):
        if j.parent >= 0:
            kids[j.parent].append(i)
    out = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        j, pad = clip.joints[i], "  " * depth
        head = (
            "End Site" if j.end_site else f"{'ROOT' if j.parent < 0 else 'JOINT'} {prefix}{rename.get(j.name, j.name)}"
        )
        out.extend([pad + head, pad + "{", f"{pad}  OFFSET {' '.join(f'{v:.6f}' for v in j.offset)}"])
        if j.channels:
            out.append(f"{pad}  CHANNELS {len(j.channels)} {' '.join(j.channels)}")
        for k in kids[i]:
            emit(k, depth + 1)
        out.append(pad + "}")

    emit(0, 0)
    out += ["MOTION", f"Frames: {clip.num_frames}", f"Frame Time: {clip.frame_time:.7f}"]
    out += [" ".join(f"{v:.6f}" for v in row) for row in clip.frames]
    return "\n".join(out) + "\n"


def stand_z_up(clip, scale: float = 1.0):
    """The same clip turned to stand along +z (a rotation of +90 degrees about x: file y -> z, z -> -y), lengths
    multiplied by ``scale``. Channels keep their order; each one's axis and sign follow the rotation."""
    import copy

    out = copy.deepcopy(clip)
    axis = {"X": "X", "Y": "Z", "Z": "Y"}
    for j in out.joints:
        x, y, z = j.offset
        j.offset = np.array([x, -z, y]) * scale
        chans = []
        for k, ch in enumerate(j.channels):
            col = j.channel_start + k
            if ch[0] == "Z":
                out.frames[:, col] *= -1
            if ch.endswith("position"):
                out.frames[:, col] *= scale
            chans.append(axis[ch[0]] + ch[1:])
        j.channels = tuple(chans)
    return out
