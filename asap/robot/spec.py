"""The G1 robot specification: the single source of truth for joints, gains, limits, bodies and timing.

Every stage (retargeting, simulation, training, evaluation, logging and the robot runtime) reads the
numbers below through :func:`get_spec`; nothing else in the project re-types them.

Conventions: SI units, z-up world, quaternions wxyz. Joint order is the *policy order*; ``motor_index``
maps each policy joint to its slot on the DDS wire (``LowCmd.motor_cmd[i]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SIM_DT = 0.005
"""Physics time step in seconds (200 Hz)."""
DECIMATION = 4
"""Physics steps per policy step (policy at 50 Hz)."""
ACTION_SCALE = 0.25
"""Joint target = default pose + ACTION_SCALE * action."""
ACTION_CLIP = 100.0
"""Raw actions and observations are clipped to +-ACTION_CLIP."""
NUM_MOTORS = 29
"""Motors on the G1 (the DDS LowCmd carries 35 slots; the first 29 are used)."""


@dataclass(frozen=True)
class JointRow:
    """One row of the joint table (all 29 motors of the G1)."""

    name: str
    default: float
    kp: float
    kd: float
    effort: float
    velocity: float
    lower: float
    upper: float
    armature: float


# Motor order on the wire (Unitree's G1 order). Numbers: asap-method.md section 1; wrists: held joints.
_MOTORS: tuple[JointRow, ...] = (
    JointRow("left_hip_pitch_joint", -0.1, 100, 2.5, 88, 32, -2.5307, 2.8798, 0.03),
    JointRow("left_hip_roll_joint", 0.0, 100, 2.5, 88, 32, -0.5236, 2.9671, 0.03),
    JointRow("left_hip_yaw_joint", 0.0, 100, 2.5, 88, 32, -2.7576, 2.7576, 0.03),
    JointRow("left_knee_joint", 0.3, 200, 5.0, 139, 20, -0.087267, 2.8798, 0.03),
    JointRow("left_ankle_pitch_joint", -0.2, 20, 0.2, 50, 37, -0.87267, 0.5236, 0.03),
    JointRow("left_ankle_roll_joint", 0.0, 20, 0.1, 50, 37, -0.2618, 0.2618, 0.03),
    JointRow("right_hip_pitch_joint", -0.1, 100, 2.5, 88, 32, -2.5307, 2.8798, 0.03),
    JointRow("right_hip_roll_joint", 0.0, 100, 2.5, 88, 32, -2.9671, 0.5236, 0.03),
    JointRow("right_hip_yaw_joint", 0.0, 100, 2.5, 88, 32, -2.7576, 2.7576, 0.03),
    JointRow("right_knee_joint", 0.3, 200, 5.0, 139, 20, -0.087267, 2.8798, 0.03),
    JointRow("right_ankle_pitch_joint", -0.2, 20, 0.2, 50, 37, -0.87267, 0.5236, 0.03),
    JointRow("right_ankle_roll_joint", 0.0, 20, 0.1, 50, 37, -0.2618, 0.2618, 0.03),
    JointRow("waist_yaw_joint", 0.0, 400, 5.0, 88, 32, -2.618, 2.618, 0.03),
    JointRow("waist_roll_joint", 0.0, 400, 5.0, 50, 37, -0.52, 0.52, 0.03),
    JointRow("waist_pitch_joint", 0.0, 400, 5.0, 50, 37, -0.52, 0.52, 0.03),
    JointRow("left_shoulder_pitch_joint", 0.0, 90, 2.0, 25, 37, -3.0892, 2.6704, 0.03),
    JointRow("left_shoulder_roll_joint", 0.0, 60, 1.0, 25, 37, -1.5882, 2.2515, 0.03),
    JointRow("left_shoulder_yaw_joint", 0.0, 20, 0.4, 25, 37, -2.618, 2.618, 0.03),
    JointRow("left_elbow_joint", 0.0, 60, 1.0, 25, 37, -1.0472, 2.0944, 0.03),
    JointRow("left_wrist_roll_joint", 0.0, 20, 0.5, 25, 37, -1.97222, 1.97222, 0.03),
    JointRow("left_wrist_pitch_joint", 0.0, 10, 0.2, 5, 22, -1.61443, 1.61443, 0.03),
    JointRow("left_wrist_yaw_joint", 0.0, 10, 0.2, 5, 22, -1.61443, 1.61443, 0.03),
    JointRow("right_shoulder_pitch_joint", 0.0, 90, 2.0, 25, 37, -3.0892, 2.6704, 0.04),
    JointRow("right_shoulder_roll_joint", 0.0, 60, 1.0, 25, 37, -2.2515, 1.5882, 0.03),
    JointRow("right_shoulder_yaw_joint", 0.0, 20, 0.4, 25, 37, -2.618, 2.618, 0.03),
    JointRow("right_elbow_joint", 0.0, 60, 1.0, 25, 37, -1.0472, 2.0944, 0.03),
    JointRow("right_wrist_roll_joint", 0.0, 20, 0.5, 25, 37, -1.97222, 1.97222, 0.03),
    JointRow("right_wrist_pitch_joint", 0.0, 10, 0.2, 5, 22, -1.61443, 1.61443, 0.03),
    JointRow("right_wrist_yaw_joint", 0.0, 10, 0.2, 5, 22, -1.61443, 1.61443, 0.03),
)

WRIST_MOTORS = (19, 20, 21, 26, 27, 28)
"""Motor indices of the six wrist joints (held in the 23-DoF variant)."""
HELD_WRIST_KP = 4.0
"""Kp the robot runtime uses to hold locked wrists at their default (23-DoF variant)."""
HELD_WRIST_KD = 0.2
"""Kd the robot runtime uses to hold locked wrists (23-DoF variant)."""

LINK_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip_pitch_link", "left_hip_roll_link", "left_hip_yaw_link",
    "left_knee_link", "left_ankle_pitch_link", "left_ankle_roll_link",
    "right_hip_pitch_link", "right_hip_roll_link", "right_hip_yaw_link",
    "right_knee_link", "right_ankle_pitch_link", "right_ankle_roll_link",
    "waist_yaw_link", "waist_roll_link", "torso_link",
    "left_shoulder_pitch_link", "left_shoulder_roll_link", "left_shoulder_yaw_link", "left_elbow_link",
    "right_shoulder_pitch_link", "right_shoulder_roll_link", "right_shoulder_yaw_link", "right_elbow_link",
)  # fmt: skip
"""The 24 tracked rigid links (ASAP body order)."""


@dataclass(frozen=True)
class ExtendedBody:
    """A massless tracked point rigidly attached to a link (identity rotation)."""

    name: str
    parent: str
    offset: tuple[float, float, float]


EXTENDED_BODIES: tuple[ExtendedBody, ...] = (
    ExtendedBody("left_hand_link", "left_elbow_link", (0.25, 0.0, 0.0)),
    ExtendedBody("right_hand_link", "right_elbow_link", (0.25, 0.0, 0.0)),
    ExtendedBody("head_link", "torso_link", (0.0, 0.0, 0.42)),
)
"""The three extended points (indices 24-26 of the body list)."""

FEET = ("left_ankle_roll_link", "right_ankle_roll_link")
"""Bodies that carry the feet."""
UPPER_BODY = (
    "left_shoulder_pitch_link", "left_shoulder_roll_link", "left_shoulder_yaw_link", "left_elbow_link",
    "right_shoulder_pitch_link", "right_shoulder_roll_link", "right_shoulder_yaw_link", "right_elbow_link",
    "left_hand_link", "right_hand_link", "head_link",
)  # fmt: skip
"""Tracking group 'upper' (11 bodies); every other tracked body is 'lower' (16)."""
VR_3POINT = ("left_hand_link", "right_hand_link", "head_link")
"""Tracking group 'vr_3point'."""
PENALISED_CONTACT = ("pelvis", "shoulder", "hip")
"""Name fragments of bodies whose contacts are penalised."""

INIT_ROOT_POS = (0.0, 0.0, 0.8)
"""Initial root position (m) when no motion gives one."""


@dataclass(frozen=True)
class RobotSpec:
    """A G1 variant: which motors the policy drives, in which order, with which numbers."""

    name: str
    """Variant name (``g1_23dof`` or ``g1_29dof``)."""
    motor_index: np.ndarray
    """DDS motor slot of each policy joint (J,)."""
    joint_names: tuple[str, ...]
    """Policy joint order (J names, with the ``_joint`` suffix, as in the MJCF)."""
    held_motor_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Motors that exist on the robot but the policy does not drive (held at their default)."""
    sim_dt: float = SIM_DT
    """Physics step (s)."""
    decimation: int = DECIMATION
    """Physics steps per control step."""
    action_scale: float = ACTION_SCALE
    """Target = default + action_scale * action."""
    action_clip: float = ACTION_CLIP
    """Clip for raw actions and observations."""

    @property
    def num_joints(self) -> int:
        """Number of policy joints J."""
        return len(self.joint_names)

    @property
    def control_dt(self) -> float:
        """Policy period (s)."""
        return self.sim_dt * self.decimation

    def _col(self, attr: str, motors: np.ndarray | None = None) -> np.ndarray:
        idx = self.motor_index if motors is None else motors
        return np.array([getattr(_MOTORS[i], attr) for i in idx], dtype=np.float64)

    @property
    def default_pos(self) -> np.ndarray:
        """Default joint angles (rad), policy order."""
        return self._col("default")

    @property
    def kp(self) -> np.ndarray:
        """Position gains (Nm/rad)."""
        return self._col("kp")

    @property
    def kd(self) -> np.ndarray:
        """Velocity gains (Nm s/rad)."""
        return self._col("kd")

    @property
    def effort_limit(self) -> np.ndarray:
        """Torque limits (Nm)."""
        return self._col("effort")

    @property
    def velocity_limit(self) -> np.ndarray:
        """Joint speed limits (rad/s)."""
        return self._col("velocity")

    @property
    def pos_lower(self) -> np.ndarray:
        """Lower position limits (rad)."""
        return self._col("lower")

    @property
    def pos_upper(self) -> np.ndarray:
        """Upper position limits (rad)."""
        return self._col("upper")

    @property
    def armature(self) -> np.ndarray:
        """Reflected rotor inertia per joint (kg m^2)."""
        return self._col("armature")

    @property
    def body_names(self) -> tuple[str, ...]:
        """The 27 tracked points: 24 links then the 3 extended bodies."""
        return LINK_NAMES + tuple(b.name for b in EXTENDED_BODIES)

    @property
    def num_bodies(self) -> int:
        """Number of tracked points (27)."""
        return len(self.body_names)

    def body_index(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Indices of the given body names in :attr:`body_names`."""
        order = {n: i for i, n in enumerate(self.body_names)}
        missing = [n for n in names if n not in order]
        if missing:
            raise KeyError(f"unknown body names {missing}; valid: {list(self.body_names)}")
        return np.array([order[n] for n in names], dtype=np.int64)

    @property
    def upper_body_mask(self) -> np.ndarray:
        """Boolean mask over the 27 bodies: True for the 'upper' tracking group."""
        return np.isin(np.array(self.body_names), np.array(UPPER_BODY))

    def motor_table(self) -> dict[str, np.ndarray]:
        """All 29 motors' numbers in wire order (used by the robot runtime for held joints)."""
        idx = np.arange(NUM_MOTORS)
        out = {a: self._col(a, idx) for a in ("default", "kp", "kd", "effort", "velocity", "lower", "upper")}
        if len(self.held_motor_index):
            out["kp"][self.held_motor_index] = HELD_WRIST_KP
            out["kd"][self.held_motor_index] = HELD_WRIST_KD
        return out


MOTOR_NAMES: tuple[str, ...] = tuple(r.name for r in _MOTORS)
"""All 29 motor (joint) names in wire order."""

ISAACLAB_JOINT_ORDER: tuple[str, ...] = (
    "left_hip_pitch_joint", "right_hip_pitch_joint", "waist_yaw_joint",
    "left_hip_roll_joint", "right_hip_roll_joint", "waist_roll_joint",
    "left_hip_yaw_joint", "right_hip_yaw_joint", "waist_pitch_joint",
    "left_knee_joint", "right_knee_joint", "left_shoulder_pitch_joint", "right_shoulder_pitch_joint",
    "left_ankle_pitch_joint", "right_ankle_pitch_joint", "left_shoulder_roll_joint", "right_shoulder_roll_joint",
    "left_ankle_roll_joint", "right_ankle_roll_joint", "left_shoulder_yaw_joint", "right_shoulder_yaw_joint",
    "left_elbow_joint", "right_elbow_joint",
    "left_wrist_roll_joint", "right_wrist_roll_joint", "left_wrist_pitch_joint", "right_wrist_pitch_joint",
    "left_wrist_yaw_joint", "right_wrist_yaw_joint",
)  # fmt: skip
"""The 29 joints in IsaacLab's order: a breadth-first walk of the G1's kinematic tree (the pelvis's children left
leg, right leg, waist in the description's order, then all their children, ...), which is how IsaacLab's PhysX
articulations number joints and bodies (BeyondMimic files written from IsaacLab use it). Unitree, MuJoCo and mjlab
use the depth-first order, :data:`MOTOR_NAMES`. Derived from Unitree's G1 MJCF tree; tests/test_layouts.py
walks the MJCF breadth-first and checks this tuple against it."""

VARIANT_23_JOINTS = frozenset(MOTOR_NAMES[i] for i in range(NUM_MOTORS) if i not in WRIST_MOTORS)
"""Joints of ASAP's 23-DoF G1 (all but the six wrists)."""

JOINT_ORDERS: dict[str, tuple[str, ...]] = {
    "unitree": MOTOR_NAMES,
    "isaaclab": ISAACLAB_JOINT_ORDER,
    "unitree_23": tuple(n for n in MOTOR_NAMES if n in VARIANT_23_JOINTS),
    "isaaclab_23": tuple(n for n in ISAACLAB_JOINT_ORDER if n in VARIANT_23_JOINTS),
}
"""The known orders of nameless joint columns in other tools' files: depth-first (``unitree``: Unitree, MuJoCo,
mjlab, GMR, IsaacGym) and breadth-first (``isaaclab``) walks of the tree, with all 29 joints or without the wrists
(``_23``: ASAP's 23-DoF G1). The first of each joint count is the default (asap.motion.formats.joint_order)."""


def _both_sides(*joints: str) -> tuple[str, ...]:
    return tuple(f"{side}_{j}_joint" for side in ("left", "right") for j in joints)


JOINT_SETS: dict[str, tuple[str, ...]] = {
    "ankles": _both_sides("ankle_pitch", "ankle_roll"),
    "knees": _both_sides("knee"),
    "hips": _both_sides("hip_pitch", "hip_roll", "hip_yaw"),
    "legs": _both_sides("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll"),
}
"""Named joint subsets (Δa's joints, the joints a fine-tuning anchor leaves free; ``all`` means every policy joint)."""


def resolve_joints(variant: str, joints: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Joint names of a joint selection, in policy order (the joints Δa acts on, the joints an anchor leaves free).

    ``joints``: ``all``, a :data:`JOINT_SETS` name, a joint name, or several of them separated by commas
    (``knees,ankles``; the config field is one string), or a sequence of joint names. Raises ``ValueError`` (one
    line) on unknown names.
    """
    names = get_spec(variant).joint_names
    if isinstance(joints, str):
        items = [s.strip() for s in joints.split(",") if s.strip()]
        if "all" in items:
            return tuple(names)
        picked: list[str] = []
        for item in items:
            if item in JOINT_SETS:
                picked.extend(JOINT_SETS[item])
            elif item in names:
                picked.append(item)
            else:
                raise ValueError(f"unknown joint set or joint {item!r}: use 'all', {sorted(JOINT_SETS)}, joint "
                                 f"names of {variant}, or several separated by commas")  # fmt: skip
        joints = picked
    unknown = [j for j in joints if j not in names]
    if unknown:
        raise ValueError(f"joints {unknown} are not joints of {variant}")
    if not joints:
        raise ValueError("no joints given: use 'all', a joint set or joint names")
    chosen = set(joints)
    return tuple(n for n in names if n in chosen)


VARIANTS = ("g1_23dof", "g1_29dof")
"""Known robot variants."""


@lru_cache(maxsize=None)  # functools.cache: Python >= 3.9 (the robot runtime runs on 3.8)
def get_spec(variant: str = "g1_23dof") -> RobotSpec:
    """Return the spec of a G1 variant (``g1_23dof`` or ``g1_29dof``)."""
    if variant == "g1_29dof":
        idx = np.arange(NUM_MOTORS)
        held = np.zeros(0, dtype=np.int64)
    elif variant == "g1_23dof":
        idx = np.array([i for i in range(NUM_MOTORS) if i not in WRIST_MOTORS])
        held = np.array(WRIST_MOTORS)
    else:
        raise ValueError(f"unknown robot variant {variant!r}; choose one of {VARIANTS}")
    return RobotSpec(
        name=variant,
        motor_index=idx,
        joint_names=tuple(MOTOR_NAMES[i] for i in idx),
        held_motor_index=held,
    )
