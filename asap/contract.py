"""The policy contract: the ONNX metadata that training writes and the runtime, the virtual G1 and the logger read.

Metadata keys (ONNX ``metadata_props``; vectors are comma-separated lists of numbers or names):

=================== ==================================================================================
``joint_names``      policy joint order (J names, ``_joint`` suffix), the order of actions and obs terms
``default_joint_pos`` default pose (J, rad); joint target = default + action_scale * action
``kp`` / ``kd``      PD gains sent to the motors for the policy joints (J each)
``action_scale``     scale of the raw action (0.25 for ASAP)
``obs_layout``       observation layout registered in :mod:`asap.obs` (``asap_v1``)
``obs_dim``          width of the actor observation (380 for asap_v1 with 23 joints)
``history_length``   history steps of the layout (4)
``control_dt``       policy period in seconds (0.02)
``motion_name``      name of the tracked motion
``motion_length_s``  motion length in seconds; the phase is (k+1)*control_dt / motion_length_s
``robot_variant``    ``g1_23dof`` or ``g1_29dof`` (motors outside joint_names are held at their default)
``start_joint_pos``  optional: the motion's joint angles at phase 0 (J); the runtime blends to it before running
``target_clamp``     optional: ``1`` when joint targets are clamped to the position limits (default 1)
``target_max_step``  optional: rate limit of joint targets, rad per control step, 0 = none (default 0.5); both
                     written by every export, so the runtime shapes targets as training did (:mod:`asap.control`)
=================== ==================================================================================

One definition serves both sides (NumPy only, no training code). The model has one input
(``(batch, obs_dim)`` float32) and one output (``(batch, J)``), batch dynamic or 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asap.control import TargetShaping, motion_steps
from asap.robot.spec import MOTOR_NAMES, get_spec

REQUIRED_KEYS = (
    "joint_names", "default_joint_pos", "kp", "kd", "action_scale", "obs_layout", "obs_dim", "history_length",
    "control_dt", "motion_name", "motion_length_s", "robot_variant",
)  # fmt: skip
"""Metadata keys the runtime requires."""
OPTIONAL_KEYS = ("start_joint_pos", *TargetShaping.METADATA_KEYS)
"""Metadata keys the runtime uses when present."""


class ContractError(ValueError):
    """The ONNX file or its metadata does not satisfy the policy contract."""


@dataclass(frozen=True)
class PolicyContract:
    """Everything the runtime needs to know about a policy, read from its ONNX metadata."""

    joint_names: tuple[str, ...]
    """Policy joint order."""
    default_joint_pos: np.ndarray
    """Default pose (J,)."""
    kp: np.ndarray
    """Motor Kp per policy joint (J,)."""
    kd: np.ndarray
    """Motor Kd per policy joint (J,)."""
    action_scale: float
    """Target = default + action_scale * action."""
    obs_layout: str
    """Observation layout name."""
    obs_dim: int
    """Actor observation width."""
    history_length: int
    """History steps."""
    control_dt: float
    """Policy period (s)."""
    motion_name: str
    """Tracked motion."""
    motion_length_s: float
    """Motion length (s)."""
    robot_variant: str
    """Robot variant."""
    start_joint_pos: np.ndarray | None = None
    """Optional (metadata ``start_joint_pos``): the motion's joint angles at phase 0 (J,). When present the
    controller blends from the held default pose to it before starting the policy, as the reference does."""
    shaping: TargetShaping = field(default_factory=TargetShaping)
    """How actions become joint targets beyond ``default + action_scale * a`` (metadata ``target_clamp``,
    ``target_max_step``; files without them get the defaults, clamp and 0.5 rad/step)."""

    @classmethod
    def for_robot(
        cls, variant: str, layout: str, motion_name: str, motion_length_s: float,
        start_joint_pos: np.ndarray | None = None, shaping: TargetShaping | None = None,
    ) -> PolicyContract:  # fmt: skip
        """A contract filled from the robot spec and the layout registry."""
        from asap.obs import get_layout

        rs = get_spec(variant)
        lay = get_layout(layout)
        return cls(
            joint_names=rs.joint_names, default_joint_pos=rs.default_pos.copy(), kp=rs.kp.copy(), kd=rs.kd.copy(),
            action_scale=rs.action_scale, obs_layout=layout, obs_dim=lay.dim("actor", rs.num_joints),
            history_length=lay.history_length, control_dt=rs.control_dt, motion_name=motion_name,
            motion_length_s=float(motion_length_s), robot_variant=variant,
            start_joint_pos=None if start_joint_pos is None else np.asarray(start_joint_pos, dtype=np.float64),
            shaping=shaping or TargetShaping(),
        )  # fmt: skip

    @property
    def num_joints(self) -> int:
        """J."""
        return len(self.joint_names)

    @property
    def motion_steps(self) -> int:
        """Policy steps of one run of the motion from its start (:func:`asap.control.motion_steps`)."""
        return motion_steps(self.motion_length_s, self.control_dt)

    @property
    def motor_index(self) -> np.ndarray:
        """DDS motor slot of each policy joint (J,)."""
        return np.array([MOTOR_NAMES.index(n) for n in self.joint_names], dtype=np.int64)

    def to_metadata(self) -> dict[str, str]:
        """The metadata strings of this contract (inverse of :meth:`from_metadata`)."""
        f = lambda a: ",".join(repr(float(x)) for x in a)  # noqa: E731
        return {
            "joint_names": ",".join(self.joint_names), "default_joint_pos": f(self.default_joint_pos),
            "kp": f(self.kp), "kd": f(self.kd), "action_scale": repr(float(self.action_scale)),
            "obs_layout": self.obs_layout, "obs_dim": str(int(self.obs_dim)),
            "history_length": str(int(self.history_length)), "control_dt": repr(float(self.control_dt)),
            "motion_name": self.motion_name, "motion_length_s": repr(float(self.motion_length_s)),
            "robot_variant": self.robot_variant,
            **({} if self.start_joint_pos is None else {"start_joint_pos": f(self.start_joint_pos)}),
            **self.shaping.to_metadata(),
        }  # fmt: skip

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str = "policy") -> PolicyContract:
        """Parse and validate metadata strings."""
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ContractError(f"{where}: ONNX metadata lacks {missing} (required: {list(REQUIRED_KEYS)})")

        def vec(key: str) -> np.ndarray:
            try:
                return np.array([float(x) for x in meta[key].split(",") if x.strip()], dtype=np.float64)
            except ValueError as e:
                raise ContractError(f"{where}: metadata {key!r} is not a comma-separated list of numbers") from e

        def num(key: str, kind: type = float) -> float:
            try:
                return kind(float(meta[key])) if kind is int else float(meta[key])
            except ValueError as e:
                raise ContractError(f"{where}: metadata {key!r}={meta[key]!r} is not a number") from e

        names = tuple(n.strip() for n in meta["joint_names"].split(",") if n.strip())
        unknown = [n for n in names if n not in MOTOR_NAMES]
        if unknown:
            raise ContractError(f"{where}: unknown joint names {unknown}; the G1 has {list(MOTOR_NAMES)}")
        j = len(names)
        try:
            shaping = TargetShaping.from_metadata(meta, where)
        except ValueError as e:
            raise ContractError(str(e)) from None
        c = cls(
            joint_names=names, default_joint_pos=vec("default_joint_pos"), kp=vec("kp"), kd=vec("kd"),
            action_scale=num("action_scale"), obs_layout=meta["obs_layout"].strip(), obs_dim=int(num("obs_dim")),
            history_length=int(num("history_length")), control_dt=num("control_dt"),
            motion_name=meta["motion_name"].strip(), motion_length_s=num("motion_length_s"),
            robot_variant=meta["robot_variant"].strip(),
            start_joint_pos=vec("start_joint_pos") if "start_joint_pos" in meta else None, shaping=shaping,
        )  # fmt: skip
        for key in ("default_joint_pos", "kp", "kd", "start_joint_pos"):
            if getattr(c, key) is not None and getattr(c, key).shape != (j,):
                raise ContractError(f"{where}: metadata {key!r} has {getattr(c, key).size} values for {j} joints")
        get_spec(c.robot_variant)  # raises on an unknown variant
        if not (0 < c.control_dt < 1):
            raise ContractError(f"{where}: control_dt {c.control_dt} s is not a plausible policy period")
        if c.motion_length_s <= 0:
            raise ContractError(f"{where}: motion_length_s must be > 0, got {c.motion_length_s}")
        return c
