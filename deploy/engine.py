"""Physics engines of the virtual G1: one G1, one 0.005 s step at a time, behind a small interface.

:class:`deploy.virtual_g1.VirtualG1` owns everything else (DDS, the motor PD and reality gap, support band, control
messages, tick and CRC); an engine only holds the physics. Both engines build the robot from the same MjSpec
(``g1_29dof``, torque actuators) with the gap's model edits (added mass, joint damping and friction, floor friction).

Conventions of :class:`EngineState`: positions and velocities of the root (pelvis) in the world frame, quaternion
wxyz, joint arrays in wire (motor) order, gyro and accelerometer in the pelvis frame; the accelerometer reads the
specific force ``R^T (a - g)`` of the pelvis origin (about +9.81 on z when at rest, upright).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import mujoco
import numpy as np

from asap.robot.model import ModelOptions, build_spec, standing_height
from asap.robot.spec import MOTOR_NAMES, RobotSpec, get_spec
from asap.utils.rotations import quat_rotate, quat_rotate_inverse
from deploy.gap import RealGapConfig

GRAVITY = np.array([0.0, 0.0, -9.81])
ENGINES = ("mujoco", "genesis")


@dataclass
class EngineState:
    """One read-out of the simulated G1 (see module docstring for frames)."""

    pos: np.ndarray
    """(3,) root position, world."""
    quat: np.ndarray
    """(4,) root orientation, wxyz."""
    lin_vel: np.ndarray
    """(3,) root linear velocity, world."""
    ang_vel: np.ndarray
    """(3,) root angular velocity, world."""
    q: np.ndarray
    """(29,) joint positions, wire order."""
    dq: np.ndarray
    """(29,) joint velocities."""
    ddq: np.ndarray
    """(29,) joint accelerations."""
    gyro: np.ndarray
    """(3,) angular velocity in the pelvis frame."""
    acc: np.ndarray
    """(3,) accelerometer (specific force) in the pelvis frame."""


class Engine(Protocol):
    """What the virtual G1 needs from a physics engine."""

    name: str
    dt: float
    stand_z: float

    def reset(self, pos: np.ndarray, quat: np.ndarray, q: np.ndarray) -> None:
        """Root pose (world, wxyz) and joint positions (wire order), all velocities zero."""

    def set_torque(self, tau: np.ndarray) -> None:
        """Motor torques (29, wire order) for the following steps."""

    def apply_external(self, wrench: np.ndarray | None) -> None:
        """World-frame force and torque (6,) on the pelvis centre of mass for the next step (None: nothing)."""

    def add_velocity(self, lin_world: np.ndarray, ang_body: np.ndarray) -> None:
        """Add to the root's linear velocity (world) and angular velocity (pelvis frame)."""

    def step(self) -> None:
        """One physics step of ``dt`` seconds."""

    def state(self) -> EngineState:
        """The current state."""


def robot_spec() -> RobotSpec:
    """The 29-motor G1 every engine simulates."""
    return get_spec("g1_29dof")


def gap_model_options(gap: RealGapConfig, base: ModelOptions) -> ModelOptions:
    """``base`` with the gap's joint damping, joint friction and floor friction; a gap field left at its default (no
    change) keeps ``base``'s value."""
    none = RealGapConfig()
    return replace(
        base,
        joint_damping=base.joint_damping if gap.joint_damping == none.joint_damping else gap.joint_damping,
        joint_frictionloss=base.joint_frictionloss if gap.joint_friction == none.joint_friction else gap.joint_friction,
        floor_friction=base.floor_friction if gap.floor_friction == none.floor_friction else gap.floor_friction,
    )


def gap_model_spec(
    gap: RealGapConfig, floor: bool = True, variant: str | RobotSpec | None = None, base: ModelOptions | None = None,
    mjcf: str | None = None,
) -> mujoco.MjSpec:  # fmt: skip
    """The G1 MjSpec with the gap's model edits (the one place they are made, for the virtual G1's engines and the
    protocol targets of ``asap eval``): the options ``base`` (default: torque actuators) with the gap's joint damping
    and friction and floor friction (:func:`gap_model_options`), the added masses, and actuator force ranges times
    ``torque_limit_scale`` (the saturation of :class:`deploy.gap.ActuatorLaw`; torque actuators get torques the law
    already clipped). ``floor``: add the floor (when ``base`` is None); ``variant``: the robot (default: the engines'
    29-motor G1); ``mjcf``: a user MJCF."""
    opts = gap_model_options(gap, base or ModelOptions(actuators="motor", floor=floor))
    spec = build_spec(robot_spec() if variant is None else variant, mjcf, options=opts)
    for body, kg in gap.added_mass.items():
        b = spec.body(body)
        if b is None:
            raise ValueError(f"reality gap adds mass to unknown body {body!r}")
        b.mass = b.mass + float(kg)
    if gap.torque_limit_scale != 1.0:
        for act in spec.actuators:
            act.forcerange = [float(x) * float(gap.torque_limit_scale) for x in act.forcerange]
    return spec


class MujocoEngine:
    """The G1 in MuJoCo (the reference engine)."""

    name = "mujoco"

    def __init__(self, gap: RealGapConfig | None = None) -> None:
        gap = gap or RealGapConfig()
        rs = robot_spec()
        self.model = gap_model_spec(gap).compile()
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep)
        self.qadr = np.array([self.model.joint(n).qposadr[0] for n in MOTOR_NAMES])
        self.vadr = np.array([self.model.joint(n).dofadr[0] for n in MOTOR_NAMES])
        self.act = np.array([self.model.actuator(n.replace("_joint", "")).id for n in MOTOR_NAMES])
        self.pelvis = self.model.body("pelvis").id
        self.stand_z = standing_height(self.model, rs.default_pos, rs.joint_names)

    def reset(self, pos: np.ndarray, quat: np.ndarray, q: np.ndarray) -> None:
        """See :class:`Engine`."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[0:3] = pos
        self.data.qpos[3:7] = quat
        self.data.qpos[self.qadr] = q
        mujoco.mj_forward(self.model, self.data)

    def set_torque(self, tau: np.ndarray) -> None:
        """See :class:`Engine`."""
        self.data.ctrl[self.act] = tau

    def apply_external(self, wrench: np.ndarray | None) -> None:
        """See :class:`Engine` (MuJoCo's ``xfrc_applied`` acts at the body's centre of mass)."""
        self.data.xfrc_applied[self.pelvis] = 0.0 if wrench is None else wrench

    def add_velocity(self, lin_world: np.ndarray, ang_body: np.ndarray) -> None:
        """See :class:`Engine` (MuJoCo's free-joint angular velocity is in the body frame)."""
        self.data.qvel[0:3] += lin_world
        self.data.qvel[3:6] += ang_body

    def step(self) -> None:
        """See :class:`Engine`."""
        mujoco.mj_step(self.model, self.data)

    def state(self) -> EngineState:
        """See :class:`Engine`."""
        d = self.data
        quat = d.qpos[3:7].copy()
        gyro = d.qvel[3:6].copy()
        return EngineState(
            pos=d.qpos[0:3].copy(), quat=quat, lin_vel=d.qvel[0:3].copy(), ang_vel=quat_rotate(quat, gyro),
            q=d.qpos[self.qadr].copy(), dq=d.qvel[self.vadr].copy(), ddq=d.qacc[self.vadr].copy(), gyro=gyro,
            acc=quat_rotate_inverse(quat, d.qacc[0:3] - GRAVITY),
        )  # fmt: skip


def make_engine(name: str, gap: RealGapConfig | None = None) -> Engine:
    """Build the named engine ('mujoco' or 'genesis')."""
    if name == "mujoco":
        return MujocoEngine(gap)
    if name == "genesis":
        from deploy.genesis_engine import GenesisEngine

        return GenesisEngine(gap)
    raise ValueError(f"unknown engine {name!r} for the virtual G1 (one of {', '.join(ENGINES)})")
