"""Helpers shared by the importers and exporters."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

from asap.motion.motion import Motion, MotionFormatError
from asap.robot.spec import MOTOR_NAMES, RobotSpec, get_spec


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite``; create the parent folder."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def load_pickle(path: Path) -> object:
    """The object in a joblib/pickle file; one-line error for a missing or foreign file."""
    import joblib

    if not path.exists():
        raise MotionFormatError(f"{path}: no such file")
    try:
        return joblib.load(path)
    except Exception as e:  # joblib raises many kinds on foreign bytes
        raise MotionFormatError(f"{path}: not a joblib/pickle motion file ({type(e).__name__}: {e})") from None


def read_fps(value: object, where: str) -> float:
    """A frame rate stored as a number or a 1-element array."""
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise MotionFormatError(f"{where}: fps is not a number ({value!r})") from None


def checked(motion: Motion, where: str) -> Motion:
    """``motion`` after :meth:`Motion.check`; a failure is re-raised naming ``where`` (the file, the pkl key)."""
    try:
        motion.check()
    except MotionFormatError as e:
        raise MotionFormatError(f"{where}: {e}") from None
    return motion


def spec_for_joints(names: tuple[str, ...] | list[str]) -> RobotSpec:
    """The G1 variant a motion's joints belong to: 29-DoF when it has wrist joints, else 23-DoF."""
    full = get_spec("g1_29dof")
    if set(full.joint_names) <= set(names):
        return full
    return get_spec("g1_23dof")


def spec_for_count(j: int, what: str) -> RobotSpec:
    """The G1 variant with ``j`` joints (23 or 29)."""
    for v in ("g1_23dof", "g1_29dof"):
        if get_spec(v).num_joints == j:
            return get_spec(v)
    raise MotionFormatError(f"{what} has {j} joint columns; a G1 motion has 23 (g1_23dof) or 29 (g1_29dof)")


@lru_cache(maxsize=4)
def kinematic_model(variant: str = "g1_23dof") -> mujoco.MjModel:
    """The variant's MuJoCo model without floor or actuators (kinematics, joint axes, collision geoms)."""
    from asap.robot.model import ModelOptions, build_spec

    return build_spec(variant, options=ModelOptions(floor=False, actuators="none")).compile()


def joint_axes(spec: RobotSpec) -> np.ndarray:
    """Hinge axes (J, 3) of the spec's joints in their body frames, from the MuJoCo model."""
    m = kinematic_model(spec.name)
    return np.stack([m.jnt_axis[m.joint(n).id] for n in spec.joint_names]).astype(np.float64)


def motor_columns(motion: Motion) -> np.ndarray:
    """Joint angles (T, 29) in Unitree motor order; joints the motion lacks (held wrists) get their default."""
    full = get_spec("g1_29dof")
    have = {n: i for i, n in enumerate(motion.joint_names)}
    missing = [n for n in MOTOR_NAMES if n not in have and n not in _WRISTS]
    if missing:
        raise MotionFormatError(f"motion lacks joints {missing[:4]} needed for a 29-joint G1 file")
    out = np.tile(full.default_pos, (motion.num_frames, 1))
    for j, n in enumerate(MOTOR_NAMES):
        if n in have:
            out[:, j] = motion.dof_pos[:, have[n]]
    return out


_WRISTS = tuple(n for n in MOTOR_NAMES if "wrist" in n)


def normalize_quat(q: np.ndarray, what: str, tol: float = 1e-2) -> np.ndarray:
    """Normalise quaternions read from text/other tools; error when one is far from unit norm."""
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    off = np.abs(n[..., 0] - 1.0)
    if not np.isfinite(off).all():
        raise MotionFormatError(f"{what} has NaN/inf values")
    if (off > tol).any():
        f = int(np.argmax(off))
        raise MotionFormatError(f"{what} is not a unit quaternion (|q| = {n[f, 0]:.4f} at frame {f})")
    return q / n
