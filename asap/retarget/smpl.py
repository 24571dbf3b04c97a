"""AMASS / SMPL(-H / -X) parameter files -> human keypoints, with the user's licensed body model.

The body model (SMPL, SMPL-H or SMPL-X) is never shipped: the user downloads it and passes ``--body-model DIR``.
The model gives the rest joint locations for the clip's shape (betas); the pose chaining
(:func:`smpl_forward_kinematics`) is plain kinematics and needs only those rest joints.

File layouts read here:
- SMPL / AMASS SMPL-H / SMPL-X ``poses`` files: ``poses (T, 3*J)`` axis-angle (the first 22 joints are the
  body, identical in the three models), ``trans (T, 3)``, ``betas``, ``gender``, ``mocap_framerate``.
- SMPL-X "stageii" files: ``root_orient (T, 3)``, ``pose_body (T, 63)``, ``trans``, ``betas``, ``gender``,
  ``mocap_frame_rate``.
AMASS files are z-up already (the root orientation carries the model's y-up -> z-up turn).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asap.retarget.human import HumanMotion
from asap.utils.rotations import axis_angle_to_quat, quat_mul, quat_rotate

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
    "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
    "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
)  # fmt: skip
"""The 24 SMPL joints (the first 22 are the body joints shared by SMPL-H and SMPL-X)."""
SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
"""Parent index of each SMPL joint."""
NUM_BODY_JOINTS = 22
"""Body joints used for retargeting (hands/fingers are ignored)."""

_POSES_WIDTH = {72: "smpl", 156: "smplh", 165: "smplx"}
_MODEL_FILES = {
    "smpl": ("SMPL_{G}.pkl", "SMPL_{G}.npz", "basicmodel_{g}_lbs_10_207_0_v1.1.0.pkl"),
    "smplh": ("SMPLH_{G}.pkl", "SMPLH_{G}.npz", "model.npz"),
    "smplx": ("SMPLX_{G}.npz", "SMPLX_{G}.pkl"),
}
DOWNLOAD_HINT = {
    "smpl": "SMPL v1.1.0 from https://smpl.is.tue.mpg.de ('SMPL for Python'): put SMPL_NEUTRAL.pkl (renamed from "
    "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl; MALE/FEMALE likewise) in DIR/smpl/",
    "smplh": "SMPL-H (extended, AMASS) from https://mano.is.tue.mpg.de: put SMPLH_{NEUTRAL,MALE,FEMALE}.npz "
    "(or .pkl) in DIR/smplh/",
    "smplx": "SMPL-X from https://smpl-x.is.tue.mpg.de: put SMPLX_{NEUTRAL,MALE,FEMALE}.npz in DIR/smplx/",
}
"""What to download for each model type, and where to put it."""


class BodyModelError(RuntimeError):
    """The SMPL body model (or the smplx package) is missing; the message says what to get and where."""


class SmplFormatError(ValueError):
    """An SMPL parameter file is malformed (one-line message)."""


@dataclass
class SmplSequence:
    """SMPL parameters of one clip (body joints only)."""

    poses: np.ndarray
    """Axis-angle per body joint (T, 22, 3), rad; joint 0 is the root orientation."""
    trans: np.ndarray
    """Root translation (T, 3), m."""
    betas: np.ndarray
    """Shape coefficients."""
    gender: str
    """'neutral', 'male' or 'female'."""
    fps: float
    """Frames per second."""
    model_type: str
    """'smpl', 'smplh' or 'smplx' (from the file's layout)."""
    path: str = ""
    """Source file."""


def load_smpl_npz(path: str | Path) -> SmplSequence:
    """Read an AMASS-style SMPL / SMPL-H / SMPL-X npz (see module docstring)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if not zipfile.is_zipfile(p):
        raise SmplFormatError(f"{p}: not an .npz file")
    with np.load(p, allow_pickle=True) as z:
        d = {k: z[k] for k in z.files}
    if "trans" not in d:
        raise SmplFormatError(f"{p}: missing key 'trans'; SMPL needs trans + poses (or root_orient + pose_body)")
    trans = np.asarray(d["trans"], dtype=np.float64)
    if "root_orient" in d and "pose_body" in d:
        body = np.concatenate([np.asarray(d["root_orient"]), np.asarray(d["pose_body"])], axis=1)
        model_type = "smplx"
    elif "poses" in d:
        poses = np.asarray(d["poses"], dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] < 3 * NUM_BODY_JOINTS:
            raise SmplFormatError(f"{p}: poses must be (T, >=66), got {poses.shape}")
        model_type = _POSES_WIDTH.get(poses.shape[1], "smpl")
        body = poses[:, : 3 * NUM_BODY_JOINTS]
    else:
        raise SmplFormatError(f"{p}: missing 'poses' (or 'root_orient' + 'pose_body')")
    body = np.asarray(body, dtype=np.float64)
    if body.shape[0] != trans.shape[0] or trans.ndim != 2 or trans.shape[1] != 3:
        raise SmplFormatError(f"{p}: poses have {body.shape[0]} frames but trans has shape {trans.shape}")
    if body.shape[0] < 2:
        raise SmplFormatError(f"{p}: needs at least 2 frames, got {body.shape[0]}")
    if not (np.isfinite(body).all() and np.isfinite(trans).all()):
        raise SmplFormatError(f"{p}: poses/trans contain NaN/inf")
    fps = None
    for k in ("mocap_framerate", "mocap_frame_rate", "fps"):
        if k in d:
            fps = float(np.asarray(d[k]).reshape(-1)[0])
    if fps is None or fps <= 0:
        raise SmplFormatError(f"{p}: missing or bad frame rate (mocap_framerate / mocap_frame_rate)")
    gender = str(np.asarray(d.get("gender", "neutral")).reshape(-1)[0]) if "gender" in d else "neutral"
    gender = gender.strip().lower().replace("b'", "").replace("'", "") or "neutral"
    betas = np.asarray(d.get("betas", np.zeros(10)), dtype=np.float64).reshape(-1)
    return SmplSequence(
        poses=body.reshape(-1, NUM_BODY_JOINTS, 3), trans=trans, betas=betas, gender=gender, fps=fps,
        model_type=model_type, path=str(p),
    )  # fmt: skip


def smpl_forward_kinematics(
    poses: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray, parents: tuple[int, ...] = SMPL_PARENTS
) -> tuple[np.ndarray, np.ndarray]:
    """Chain local axis-angle rotations through the tree.

    ``poses (T, J, 3)``, ``trans (T, 3)``, ``rest_joints (J, 3)`` (the body model's joint locations for the
    clip's shape, zero pose). Returns world joint positions (T, J, 3) and orientations (T, J, 4) wxyz:
    ``R_i = R_parent * exp(pose_i)``, ``p_i = p_parent + R_parent (J_i - J_parent)``, ``p_0 = J_0 + trans``.
    """
    t_count, j_count = poses.shape[:2]
    if rest_joints.shape[0] < j_count:
        raise ValueError(f"rest_joints has {rest_joints.shape[0]} joints, poses need {j_count}")
    local = axis_angle_to_quat(poses)
    pos = np.zeros((t_count, j_count, 3))
    rot = np.zeros((t_count, j_count, 4))
    for i in range(j_count):
        par = parents[i]
        if par < 0:
            rot[:, i] = local[:, i]
            pos[:, i] = rest_joints[i] + trans
        else:
            rot[:, i] = quat_mul(rot[:, par], local[:, i])
            off = np.broadcast_to(rest_joints[i] - rest_joints[par], (t_count, 3))
            pos[:, i] = pos[:, par] + quat_rotate(rot[:, par], off)
    return pos, rot


def smpl_to_human(seq: SmplSequence, rest_joints: np.ndarray) -> HumanMotion:
    """Keypoints of the 22 body joints from a sequence and the rest joints of its shape."""
    pos, rot = smpl_forward_kinematics(seq.poses, seq.trans, rest_joints[:NUM_BODY_JOINTS])
    meta = {"format": "smpl", "model_type": seq.model_type, "gender": seq.gender, "source_fps": seq.fps}
    return HumanMotion(
        names=SMPL_JOINT_NAMES[:NUM_BODY_JOINTS], positions=pos, fps=seq.fps, parents=SMPL_PARENTS[:NUM_BODY_JOINTS],
        rotations=rot, source=seq.path, meta=meta,
    )  # fmt: skip


def find_body_model(body_model: str | Path | None, model_type: str, gender: str) -> Path:
    """The body-model file for a model type and gender under DIR (falls back to the neutral model)."""
    hint = DOWNLOAD_HINT[model_type]
    if body_model is None:
        raise BodyModelError(f"SMPL input needs a licensed body model: pass --body-model DIR with {hint}")
    root = Path(body_model).expanduser()
    if root.is_file():
        return root
    if not root.is_dir():
        raise BodyModelError(f"body model folder {root} does not exist; download {hint}")
    genders = [gender, "neutral"] if gender != "neutral" else ["neutral"]
    for g in genders:
        for pattern in _MODEL_FILES[model_type]:
            name = pattern.format(G=g.upper(), g=g)
            for folder in (root / model_type, root / model_type.upper(), root):
                cand = folder / name
                if cand.is_file():
                    return cand
                if model_type == "smplh" and (folder / g / name).is_file():
                    return folder / g / name
    raise BodyModelError(f"no {model_type.upper()} {gender} body model found in {root}; download {hint}")


def body_model_rest_joints(seq: SmplSequence, body_model: str | Path | None) -> np.ndarray:
    """Rest joint locations (22, 3) of the clip's shape from the user's body model (needs ``smplx``)."""
    path = find_body_model(body_model, seq.model_type, seq.gender)
    try:
        import smplx
        import torch
    except ImportError:
        raise BodyModelError(
            "SMPL input needs the 'smplx' package: pip install 'asap-g1[smpl]' (or pip install smplx)"
        ) from None
    num_betas = int(min(len(seq.betas), 16 if seq.model_type != "smpl" else 10))
    try:
        model = smplx.create(
            str(path), model_type=seq.model_type, gender=seq.gender if seq.gender in ("male", "female") else "neutral",
            num_betas=num_betas, ext=path.suffix.lstrip("."), use_pca=False,
        )  # fmt: skip
    except Exception as e:  # a wrong or corrupt file
        raise BodyModelError(f"cannot load body model {path}: {type(e).__name__}: {e}") from e
    betas = torch.tensor(seq.betas[:num_betas], dtype=torch.float32)[None]
    with torch.no_grad():
        out = model(betas=betas)
    return out.joints[0, :NUM_BODY_JOINTS].double().numpy()


def load_smpl_human(path: str | Path, body_model: str | Path | None) -> HumanMotion:
    """Read an SMPL npz and turn it into keypoints with the user's body model."""
    seq = load_smpl_npz(path)
    rest = body_model_rest_joints(seq, body_model)
    return smpl_to_human(seq, rest)
