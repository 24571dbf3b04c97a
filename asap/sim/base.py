"""The simulator protocol: N G1 robots on a plane, stepped one control step at a time, batched in torch.

Every backend (MuJoCo, Genesis, ...) implements :class:`Simulator`; envs, SysID, domain randomisation and
the virtual G1 talk only to this protocol. Conventions, identical in every backend:

* tensors are ``float32`` on ``cfg.device``, batched over envs (first dimension N, or n = len(env_ids));
* quaternions are wxyz; positions and velocities are in the world frame (angular velocity too);
* joints are in the spec's policy order (``get_spec(variant).joint_names``), J of them;
* tracked bodies are the spec's 27 points (``get_spec(variant).body_names``: 24 links + hands + head);
* per-body dynamics parameters are over the 24 links :data:`DYNAMICS_BODIES` (the extended points are massless);
* one ``step`` is one CONTROL step: ``decimation`` (4) physics substeps of ``sim_dt`` (0.005 s). With joint
  targets q*, each substep applies ``tau = clip(motor_strength * (kp_scale*Kp*(q* - q) - kd_scale*Kd*qd),
  -effort, effort)`` recomputed from the current q, qd (the reference's software PD at 200 Hz);
* command latency: a new command takes effect ``action_delay`` control steps late, and then its first
  ``substep_delay`` substeps still apply the command before it (:class:`DynamicsParams`; both 0 by default). The
  robot runtime's own loop has about one substep of it: a LowCmd computed from a LowState reaches the motors at
  their next 5 ms tick (docs/sim.md, "Command latency").

Env ids are ``torch.long`` tensors (or anything ``torch.as_tensor`` accepts); ``None`` means all envs. Setters take
one row per id, in the order of the ids (``set_root_state([2, 0], rows)``: row 0 goes to env 2); ids must not repeat.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import torch

from asap.robot.model import ModelOptions
from asap.robot.spec import LINK_NAMES, RobotSpec, get_spec

if TYPE_CHECKING:
    from collections.abc import Sequence

DYNAMICS_BODIES: tuple[str, ...] = LINK_NAMES
"""Bodies that :class:`DynamicsParams` per-body arrays refer to, in this order (the 24 tracked links)."""

ROOT_STATE_DIM = 13
"""Root state layout: pos (3), quat wxyz (4), linear velocity world (3), angular velocity world (3)."""

BACKENDS: dict[str, str] = {
    "mujoco": "asap.sim.mujoco_backend:MujocoSimulator",
    "genesis": "asap.sim.genesis_backend:GenesisSimulator",
}
"""Backend name -> ``module:class`` implementing :class:`Simulator` (imported lazily)."""

BACKEND_PACKAGES: dict[str, str] = {"mujoco": "mujoco", "genesis": "genesis"}
"""Backend name -> the third-party package it needs (checked without importing it: Genesis takes ~20 s to import)."""


class SimulatorUnavailable(ImportError):
    """The requested backend's package is not installed or cannot run here."""


@dataclass
class SimConfig:
    """How to build a batch of simulated G1s."""

    backend: str = "mujoco"
    """Backend name: 'mujoco' (CPU default) or 'genesis' (optional extra ``asap-g1[genesis]``)."""
    variant: str = "g1_23dof"
    """Robot variant from the spec: 'g1_23dof' or 'g1_29dof'."""
    num_envs: int = 1
    """Number of parallel envs N."""
    threads: int = 2
    """Native worker threads stepping the batch (0: all CPU cores)."""
    device: str = "cpu"
    """Torch device of every tensor the simulator returns or accepts."""
    mjcf: str | None = None
    """Path of a user MJCF of the G1 (None: Unitree's MJCF from the asset cache)."""
    model: ModelOptions = field(default_factory=ModelOptions)
    """Physics options of the robot model (floor, actuators, damping, frictionloss, armature, integrator...)."""
    max_action_delay: int = 3
    """Longest action delay (control steps) that :class:`DynamicsParams` ``action_delay`` may ask for."""
    persistent: bool = True
    """MuJoCo: keep one MjData per env (faster: the next step reuses the last forward pass; ~memory per env)."""
    genesis_backend: str = "cpu"
    """Genesis: ``gs.init`` backend ('cpu', 'gpu', 'cuda', 'vulkan', 'metal')."""

    @property
    def spec(self) -> RobotSpec:
        """The robot spec of ``variant``."""
        return get_spec(self.variant)


@dataclass
class DynamicsParams:
    """Per-env dynamics parameters; first dimension n = number of env ids. ``None`` leaves a field unchanged."""

    friction: torch.Tensor | None = None
    """(n,) sliding friction coefficient of every contact (floor and robot geoms)."""
    mass_scale: torch.Tensor | None = None
    """(n, 24) multiplier on the nominal mass (and inertia) of each link in :data:`DYNAMICS_BODIES`."""
    mass_add: torch.Tensor | None = None
    """(n, 24) kg added to each link after scaling (inertia scaled with the mass)."""
    com_offset: torch.Tensor | None = None
    """(n, 24, 3) m added to each link's nominal centre of mass, in the link frame."""
    kp_scale: torch.Tensor | None = None
    """(n, J) multiplier on the spec's Kp."""
    kd_scale: torch.Tensor | None = None
    """(n, J) multiplier on the spec's Kd."""
    motor_strength: torch.Tensor | None = None
    """(n, J) multiplier on the PD (or direct) torque, applied before clipping to the effort limit."""
    joint_damping: torch.Tensor | None = None
    """(n, J) passive viscous damping (N m s/rad), absolute value."""
    joint_frictionloss: torch.Tensor | None = None
    """(n, J) dry joint friction (N m), absolute value."""
    joint_armature: torch.Tensor | None = None
    """(n, J) reflected rotor inertia (kg m^2), absolute value."""
    action_delay: torch.Tensor | None = None
    """(n,) integer delay of joint targets/torques in control steps, 0..cfg.max_action_delay."""
    substep_delay: torch.Tensor | None = None
    """(n,) integer physics substeps (0.005 s) at the start of each control step that still apply the previous
    command, 0..decimation - 1 (a latency below one control step; added to ``action_delay``)."""

    def names(self) -> list[str]:
        """Names of the fields that are set (not None)."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def select(self, rows: torch.Tensor) -> DynamicsParams:
        """The same parameters for a subset of rows (indices into the first dimension)."""
        return DynamicsParams(
            **{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[rows]) for f in fields(self)}
        )


def write_dynamics(
    current: DynamicsParams,
    rows: torch.Tensor,
    params: DynamicsParams,
    num_joints: int,
    max_action_delay: int,
    decimation: int = 4,
) -> set[str]:
    """Write the set fields of ``params`` (n rows, or broadcastable to them) into ``rows`` of ``current``.

    ``current`` has every field filled (one row per env); ``rows`` (n,) are env ids on its device. Values are cast
    (float32; ``action_delay`` and ``substep_delay`` long) and broadcast to the field's per-env shape. Returns the
    names written. Raises ``ValueError`` for an ``action_delay`` outside [0, max_action_delay] or a
    ``substep_delay`` outside [0, decimation - 1].
    """
    n, nb = len(rows), len(DYNAMICS_BODIES)
    per_env = {
        "friction": (),
        "action_delay": (),
        "substep_delay": (),
        "mass_scale": (nb,),
        "mass_add": (nb,),
        "com_offset": (nb, 3),
    }
    names = set(params.names())
    for name in names:
        field_now = getattr(current, name)
        value = torch.as_tensor(getattr(params, name), device=field_now.device)
        shape = (n, *per_env.get(name, (num_joints,)))
        if name == "action_delay":
            value = value.to(torch.long).expand(shape)
            if value.numel() and (int(value.min()) < 0 or int(value.max()) > max_action_delay):
                raise ValueError(f"action_delay must be in [0, {max_action_delay}] (cfg.max_action_delay)")
        elif name == "substep_delay":
            value = value.to(torch.long).expand(shape)
            if value.numel() and (int(value.min()) < 0 or int(value.max()) > decimation - 1):
                raise ValueError(f"substep_delay must be in [0, {decimation - 1}] physics substeps (a longer latency "
                                 "is action_delay control steps plus the rest in substeps)")  # fmt: skip
        else:
            value = value.to(torch.float32).expand(shape)
        field_now[rows] = value
    return names


class BodyState(NamedTuple):
    """World-frame state of the 27 tracked bodies (spec ``body_names`` order)."""

    pos: torch.Tensor
    """(N, 27, 3) body frame origins."""
    quat: torch.Tensor
    """(N, 27, 4) body orientations, wxyz."""
    lin_vel: torch.Tensor
    """(N, 27, 3) linear velocity of each body frame origin, world frame."""
    ang_vel: torch.Tensor
    """(N, 27, 3) angular velocity, world frame."""


@runtime_checkable
class Simulator(Protocol):
    """A batch of N G1s on a plane. All tensors float32 on ``device``; see the module docstring."""

    cfg: SimConfig
    spec: RobotSpec
    num_envs: int
    num_joints: int
    device: torch.device

    @property
    def control_dt(self) -> float:
        """Seconds per :meth:`step` (sim_dt * decimation = 0.02)."""
        ...

    @property
    def total_mass(self) -> float:
        """Nominal total mass of the robot (kg)."""
        ...

    # --- state -----------------------------------------------------------------------------------------
    def get_root_state(self) -> torch.Tensor:
        """(N, 13) root (pelvis) state: pos, quat wxyz, lin vel world, ang vel world."""
        ...

    def set_root_state(self, env_ids: torch.Tensor | Sequence[int] | None, root_state: torch.Tensor) -> None:
        """Write (n, 13) root states of the given envs (the quaternion is normalised)."""
        ...

    def get_joint_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(q, qd), each (N, J), policy joint order."""
        ...

    def set_joint_state(self, env_ids: torch.Tensor | Sequence[int] | None, q: torch.Tensor, qd: torch.Tensor) -> None:
        """Write (n, J) joint positions and velocities of the given envs."""
        ...

    def reset(
        self,
        env_ids: torch.Tensor | Sequence[int] | None = None,
        root_state: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
        qd: torch.Tensor | None = None,
    ) -> None:
        """Put envs in a fresh state: the given root/joint state or the default standing pose, zero velocities.

        Clears solver warm start, applied torques and the action-delay queue (filled with the default pose
        targets, i.e. action 0). Dynamics parameters are kept.
        """
        ...

    def set_previous_targets(self, env_ids: torch.Tensor | Sequence[int] | None, targets: torch.Tensor) -> None:
        """Make the joint targets (n, J) rad the command in flight before the next step of envs ``env_ids`` (call
        after :meth:`reset` when a replay starts inside a log): a command latency (``action_delay``,
        ``substep_delay``) then applies them instead of the reset's default pose."""
        ...

    # --- stepping --------------------------------------------------------------------------------------
    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """Advance every env by one control step.

        ``targets`` (N, J): joint position targets q* for the PD law (see module docstring); ``torques`` (N, J):
        joint torques held over the control step (times motor_strength, clipped to the effort limit). Give one
        or neither (neither: hold the previous targets). Both pass through the per-env action-delay queue.
        """
        ...

    def get_applied_torques(self) -> torch.Tensor:
        """(N, J) joint torques applied during the last physics substep (after clipping)."""
        ...

    # --- bodies and contacts ---------------------------------------------------------------------------
    def get_body_state(self) -> BodyState:
        """World-frame pose and velocity of the 27 tracked bodies, after the last step or state write."""
        ...

    def get_foot_contact_forces(self) -> torch.Tensor:
        """(N, 2, 3) net contact force on the left/right ankle-roll links (world frame; +z pushes the foot up)."""
        ...

    # --- dynamics --------------------------------------------------------------------------------------
    def set_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None, params: DynamicsParams) -> None:
        """Set the given envs' dynamics; fields left None keep their current values."""
        ...

    def get_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None = None) -> DynamicsParams:
        """Current dynamics of the given envs (every field filled)."""
        ...

    def default_dynamics(self, n: int) -> DynamicsParams:
        """Nominal dynamics (the model's own values) for n envs, every field filled."""
        ...

    def push(self, env_ids: torch.Tensor | Sequence[int] | None, lin_vel_xy: torch.Tensor) -> None:
        """Set the root's world xy linear velocity of the given envs to (n, 2) (a push, as the reference)."""
        ...

    def close(self) -> None:
        """Release native resources (threads, kernels)."""
        ...


class ActionDelayQueue:
    """Per-env FIFO of the last ``max_delay + 1`` commands; env i applies the one ``delay[i]`` control steps old."""

    def __init__(self, num_envs: int, num_joints: int, max_delay: int, device: torch.device) -> None:
        self.buffer = torch.zeros(num_envs, max(0, max_delay) + 1, num_joints, device=device)
        self.delay = torch.zeros(num_envs, dtype=torch.long, device=device)
        self._rows = torch.arange(num_envs, device=device)

    @property
    def latest(self) -> torch.Tensor:
        """(N, J) the newest command of every env."""
        return self.buffer[:, 0]

    def push(self, command: torch.Tensor) -> torch.Tensor:
        """Add the newest (N, J) command; return the (N, J) commands to apply now."""
        if self.buffer.shape[1] > 1:
            self.buffer = torch.roll(self.buffer, 1, dims=1)
        self.buffer[:, 0] = command
        return self.buffer[self._rows, self.delay]

    def fill(self, env_ids: torch.Tensor, command: torch.Tensor | float) -> None:
        """Make every queued command of the given envs equal to ``command`` (on reset)."""
        value = command if isinstance(command, float) or command.dim() == 1 else command[:, None]
        self.buffer[env_ids.to(self.buffer.device)] = value


def as_env_ids(env_ids: torch.Tensor | Sequence[int] | None, num_envs: int) -> torch.Tensor:
    """Env ids as a ``torch.long`` CPU tensor in the caller's order (``None``: all envs, ascending).

    Row i of any per-env argument that comes with the ids belongs to env ``ids[i]``, so the order is kept.
    A boolean mask of shape (num_envs,) selects its True envs in ascending order.
    Raises ``ValueError`` on out-of-range or repeated ids (a repeated id would make two rows race for one env).
    """
    if env_ids is None:
        return torch.arange(num_envs, dtype=torch.long)
    ids = torch.as_tensor(env_ids).to("cpu")
    if ids.dtype == torch.bool:
        if ids.shape != (num_envs,):
            raise ValueError(f"a boolean env mask must have shape ({num_envs},), got {tuple(ids.shape)}")
        return torch.nonzero(ids).flatten()
    ids = ids.to(torch.long).flatten()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_envs):
        raise ValueError(f"env ids must be in [0, {num_envs}), got {ids.tolist()}")
    if torch.unique(ids).numel() != ids.numel():
        raise ValueError(f"env ids must not repeat (one row per env), got {ids.tolist()}")
    return ids


def make_simulator(cfg: SimConfig, **kwargs: object) -> Simulator:
    """Build the simulator backend named by ``cfg.backend`` (extra keyword arguments go to its constructor)."""
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown simulator backend {cfg.backend!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[cfg.backend].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise SimulatorUnavailable(f"backend {cfg.backend!r} cannot be imported: {e}") from e
    return getattr(mod, cls)(cfg, **kwargs)


def available_backends() -> list[str]:
    """Backends whose packages are installed here (checked without importing them; for tests and benchmarks)."""
    return [name for name in BACKENDS if importlib.util.find_spec(BACKEND_PACKAGES[name]) is not None]
