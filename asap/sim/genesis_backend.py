"""Genesis backend (optional extra ``asap-g1[genesis]``, ``genesis-world==1.4.5``): the same protocol on Genesis.

The robot is the same MjSpec the MuJoCo backend compiles, prepared for Genesis by :mod:`asap.robot.genesis` (the
preparation the virtual G1's Genesis engine uses too: collision geoms only, MJCF text, a Genesis ground plane, the
spec's step and integrator). PD is Genesis' own position control (``kp``, ``kv``, force range from the spec: the
same law, recomputed at each 0.005 s step); a control step is ``decimation`` calls of ``scene.step()``. Genesis
quaternions are wxyz like ours; its free joint's angular velocity is converted at the boundary (see
``_ROOT_ANG_LOCAL``). ``genesis`` is imported when the simulator is built (importing it takes ~20 s), and
``gs.init`` runs once per process with the backend :func:`engine_backend` picks. The first scene build compiles
kernels (~100-170 s on 2 CPU cores, cached in ``~/.cache/genesis`` and ``~/.cache/quadrants``).

GPU: ``device=cuda`` (or ``cuda:K``) runs Genesis on CUDA (``gs.cuda``, on torch's current CUDA device, which a
data-parallel rank sets to ``cuda:<local_rank>``) with every tensor of the protocol on that device; without a CUDA
GPU visible to torch it fails in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from asap.robot.genesis import AVAILABLE, INSTALL_HINT, build_genesis_scene, import_genesis
from asap.robot.model import build_spec, standing_height
from asap.robot.spec import FEET, RobotSpec
from asap.sim.base import (
    DYNAMICS_BODIES,
    ROOT_STATE_DIM,
    ActionDelayQueue,
    BodyState,
    DynamicsParams,
    SimConfig,
    SimulatorUnavailable,
    as_env_ids,
    write_dynamics,
)
from asap.utils.rotations import quat_rotate_inverse

_ROOT_ANG_LOCAL = True
"""Genesis' free-joint angular velocity dofs are in the root link frame (as MuJoCo's); world at our boundary."""


def engine_backend(device: str, requested: str) -> str:
    """The ``gs.init`` backend for a simulator whose tensors live on ``device``: ``requested``, except that a CUDA
    ``device`` with the default ``'cpu'`` engine runs the engine on CUDA too (no host round trip per step).

    Raises ``RuntimeError`` (one line, naming the fix) when ``device`` is CUDA and torch sees no CUDA GPU.
    """
    if torch.device(device).type != "cuda":
        return requested
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"sim.device={device} but torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is "
            "False): set sim.device=cpu (device=cpu for training), or run on a machine with a GPU and a CUDA torch"
        )
    return "cuda" if requested == "cpu" else requested


class GenesisSimulator:
    """The :class:`asap.sim.base.Simulator` protocol on Genesis (``gs.cpu`` by default, ``gs.cuda`` for a CUDA
    ``device``: :func:`engine_backend`)."""

    def __init__(self, cfg: SimConfig) -> None:
        if not AVAILABLE:
            raise SimulatorUnavailable(f"the Genesis backend needs `{INSTALL_HINT}`")
        if cfg.model.actuators != "position":
            raise ValueError("the Genesis backend needs ModelOptions.actuators='position'")
        self.cfg = cfg
        self.spec: RobotSpec = cfg.spec
        self.num_envs = int(cfg.num_envs)
        self.num_joints = self.spec.num_joints
        self.device = torch.device(cfg.device)
        rs = self.spec
        gs = import_genesis(engine_backend(cfg.device, cfg.genesis_backend))
        self._gs = gs

        floor = cfg.model.floor_friction if cfg.model.floor else None
        robot_spec = build_spec(rs, cfg.mjcf, replace(cfg.model, floor=False))
        built = build_genesis_scene(gs, robot_spec, n_envs=self.num_envs, self_collision=cfg.model.self_collision,
                                    floor_friction=floor, batched_params=True)  # fmt: skip
        self.scene, self.robot, self.plane, twin = built.scene, built.robot, built.plane, built.twin
        robot = self.robot

        self._dofs = [robot.get_joint(n).dofs_idx_local[0] for n in rs.joint_names]
        self._root_dofs = list(robot.get_joint(twin.joint(0).name).dofs_idx_local)
        self._links = [robot.get_link(n).idx_local for n in rs.body_names]
        self._feet = [robot.get_link(n).idx_local for n in FEET]
        self._dyn_links = [robot.get_link(n).idx_local for n in DYNAMICS_BODIES]
        self._gdev = gs.device
        self._kp = torch.as_tensor(rs.kp, dtype=torch.float32, device=self.device)
        self._kd = torch.as_tensor(rs.kd, dtype=torch.float32, device=self.device)
        self._effort = torch.as_tensor(rs.effort_limit, dtype=torch.float32, device=self.device)
        robot.set_dofs_force_range(-self._g(self._effort), self._g(self._effort), self._dofs)
        robot.set_dofs_kp(self._g(self._kp), self._dofs)
        robot.set_dofs_kv(self._g(self._kd), self._dofs)
        self._standing_z = standing_height(twin, rs.default_pos, rs.joint_names)
        self._total_mass = float(twin.body_subtreemass[1])

        # nominal dynamics, read back from Genesis
        self._nominal_mass = robot.get_links_mass(self._dyn_links)[0].to(self.device, torch.float32)
        self._nominal_inertia = robot.get_links_inertia(self._dyn_links)[0].to(self.device, torch.float32)
        self._nominal_com = robot.get_links_COM(self._dyn_links)[0].to(self.device, torch.float32)
        self._geoms = [g.idx for g in robot.geoms] + ([g.idx for g in self.plane.geoms] if self.plane else [])
        self._geom_friction = torch.tensor(
            [float(g.get_friction()) for g in robot.geoms]
            + ([float(g.get_friction()) for g in self.plane.geoms] if self.plane else []),
            dtype=torch.float32,
            device=self.device,
        )
        self._nominal_damping = torch.as_tensor(twin.dof_damping[[twin.joint(n).dofadr[0] for n in rs.joint_names]])
        self._nominal_frictionloss = torch.as_tensor(
            twin.dof_frictionloss[[twin.joint(n).dofadr[0] for n in rs.joint_names]]
        )
        self._nominal_armature = torch.as_tensor(twin.dof_armature[[twin.joint(n).dofadr[0] for n in rs.joint_names]])

        n, j = self.num_envs, self.num_joints
        self._queue = ActionDelayQueue(n, j, cfg.max_action_delay, self.device)
        self._torque_mode = False
        self._torques = torch.zeros(n, j, device=self.device)
        self._applied = torch.zeros(n, j, device=self.device)
        """(N, J) the command the last substep applied: what a ``substep_delay`` keeps applying."""
        self._stale = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._dyn = self.default_dynamics(n)
        self.reset()

    # ------------------------------------------------------------------ helpers
    def _g(self, x: torch.Tensor) -> torch.Tensor:
        """To Genesis' device and float type."""
        return x.to(self._gdev, self._gs.tc_float).contiguous()

    def _t(self, x: torch.Tensor) -> torch.Tensor:
        """From Genesis to our device, float32."""
        return x.to(self.device, torch.float32)

    def _gids(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.to(self._gdev)

    @property
    def control_dt(self) -> float:
        """Seconds per control step."""
        return self.spec.control_dt

    @property
    def total_mass(self) -> float:
        """Nominal robot mass (kg)."""
        return self._total_mass

    # ------------------------------------------------------------------ state
    def get_root_state(self) -> torch.Tensor:
        """(N, 13) root state: pos, quat wxyz, lin vel world, ang vel world."""
        r = self.robot
        root = self._links[0:1]
        pos = self._t(r.get_links_pos(root)[:, 0])
        quat = self._t(r.get_links_quat(root)[:, 0])
        lin = self._t(r.get_links_vel(root)[:, 0])
        ang = self._t(r.get_links_ang(root)[:, 0])
        return torch.cat([pos, quat, lin, ang], dim=1)

    def set_root_state(self, env_ids: torch.Tensor | Sequence[int] | None, root_state: torch.Tensor) -> None:
        """Write (n, 13) root states of the given envs."""
        ids = as_env_ids(env_ids, self.num_envs)
        rs = torch.as_tensor(root_state, dtype=torch.float32, device=self.device).expand(len(ids), ROOT_STATE_DIM)
        quat = rs[:, 3:7] / rs[:, 3:7].norm(dim=1, keepdim=True)
        gids = self._gids(ids)
        self.robot.set_pos(self._g(rs[:, 0:3]), gids, zero_velocity=False)
        self.robot.set_quat(self._g(quat), gids, zero_velocity=False)
        ang = quat_rotate_inverse(quat, rs[:, 10:13]) if _ROOT_ANG_LOCAL else rs[:, 10:13]
        self.robot.set_dofs_velocity(self._g(torch.cat([rs[:, 7:10], ang], 1)), self._root_dofs, gids)
        self._stale[ids.to(self.device)] = True

    def get_joint_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(q, qd), each (N, J) in policy order."""
        return self._t(self.robot.get_dofs_position(self._dofs)), self._t(self.robot.get_dofs_velocity(self._dofs))

    def set_joint_state(self, env_ids: torch.Tensor | Sequence[int] | None, q: torch.Tensor, qd: torch.Tensor) -> None:
        """Write (n, J) joint positions and velocities of the given envs."""
        ids = as_env_ids(env_ids, self.num_envs)
        shape = (len(ids), self.num_joints)
        gids = self._gids(ids)
        q = torch.as_tensor(q, dtype=torch.float32).expand(shape)
        qd = torch.as_tensor(qd, dtype=torch.float32).expand(shape)
        self.robot.set_dofs_position(self._g(q), self._dofs, gids, zero_velocity=False)
        self.robot.set_dofs_velocity(self._g(qd), self._dofs, gids)
        self._stale[ids.to(self.device)] = True

    def reset(
        self,
        env_ids: torch.Tensor | Sequence[int] | None = None,
        root_state: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
        qd: torch.Tensor | None = None,
    ) -> None:
        """Fresh state for the given envs (default standing pose unless given); see the protocol."""
        ids = as_env_ids(env_ids, self.num_envs)
        if root_state is None:
            root_state = torch.zeros(len(ids), ROOT_STATE_DIM)
            root_state[:, 2] = self._standing_z
            root_state[:, 3] = 1.0
        default = torch.as_tensor(self.spec.default_pos, dtype=torch.float32, device=self.device)
        self.set_joint_state(ids, default if q is None else q, torch.zeros(self.num_joints) if qd is None else qd)
        self.set_root_state(ids, root_state)
        self._queue.fill(ids, 0.0 if self._torque_mode else default)
        self._torques[ids.to(self.device)] = 0.0
        self._applied[ids.to(self.device)] = 0.0 if self._torque_mode else default
        if not self._torque_mode:
            self.robot.control_dofs_position(self._g(default.expand(len(ids), -1)), self._dofs, self._gids(ids))

    def set_previous_targets(self, env_ids: torch.Tensor | Sequence[int] | None, targets: torch.Tensor) -> None:
        """The targets (n, J) rad in flight before the next step of the given envs (see the protocol)."""
        ids = as_env_ids(env_ids, self.num_envs)
        t = torch.as_tensor(targets, dtype=torch.float32, device=self.device).expand(len(ids), self.num_joints)
        self._queue.fill(ids, t)
        self._applied[ids.to(self.device)] = t

    # ------------------------------------------------------------------ stepping
    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """One control step (decimation Genesis steps) with PD targets or direct torques."""
        if targets is not None and torques is not None:
            raise ValueError("give joint targets or torques, not both")
        shape = (self.num_envs, self.num_joints)
        if targets is None and torques is None and self._torque_mode:
            torques = self._queue.latest.clone()
        switched = self._torque_mode != (torques is not None)
        if torques is not None:
            cmd = torch.as_tensor(torques, dtype=torch.float32, device=self.device).expand(shape)
            tau = self._queue.push(cmd) * self._dyn.motor_strength  # type: ignore[operator]
            command = torch.maximum(torch.minimum(tau, self._effort), -self._effort)
            self._torque_mode = True
        else:
            if targets is None:
                cmd = self._queue.latest.clone()
            else:
                cmd = torch.as_tensor(targets, dtype=torch.float32, device=self.device).expand(shape)
            self._torque_mode = False
            command = self._queue.push(cmd)
        late = self._dyn.substep_delay
        if bool(late.any()) and not switched:  # type: ignore[union-attr]
            # the first `late` substeps of an env still apply the command before this one (sub-step latency)
            for i in range(self.spec.decimation):
                self._apply(torch.where((late > i)[:, None], self._applied, command))  # type: ignore[operator]
                self.scene.step()
        else:
            self._apply(command)
            for _ in range(self.spec.decimation):
                self.scene.step()
        self._applied = command.clone()
        self._stale[:] = False

    def _apply(self, command: torch.Tensor) -> None:
        """Send an (N, J) command for the next substeps: torques in torque mode, else PD targets."""
        if self._torque_mode:
            self._torques = command
            self.robot.control_dofs_force(self._g(command), self._dofs)
        else:
            self.robot.control_dofs_position(self._g(command), self._dofs)

    def get_applied_torques(self) -> torch.Tensor:
        """(N, J) joint torques of the last substep."""
        if self._torque_mode:
            tau = self._torques.clone()
        else:
            from genesis.utils.misc import qd_to_torch

            solver = self.robot.solver
            applied = qd_to_torch(solver.dyn_state.dofs.qf_applied, transpose=True)
            tau = self._t(applied[:, [self.robot.dof_start + d for d in self._dofs]])
        tau[self._stale] = 0.0
        return tau

    # ------------------------------------------------------------------ bodies and contacts
    def get_body_state(self) -> BodyState:
        """World-frame pose and velocity of the 27 tracked bodies."""
        r = self.robot
        return BodyState(
            self._t(r.get_links_pos(self._links)),
            self._t(r.get_links_quat(self._links)),
            self._t(r.get_links_vel(self._links)),
            self._t(r.get_links_ang(self._links)),
        )

    def get_foot_contact_forces(self) -> torch.Tensor:
        """(N, 2, 3) net contact force on each ankle-roll link (world frame)."""
        f = self._t(self.robot.get_links_net_contact_force()[:, self._feet])
        f[self._stale] = 0.0
        return f

    # ------------------------------------------------------------------ dynamics
    def default_dynamics(self, n: int) -> DynamicsParams:
        """Nominal dynamics for n envs."""
        j, nb, dev = self.num_joints, len(DYNAMICS_BODIES), self.device

        def full(value: float | torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
            return torch.as_tensor(value, dtype=torch.float32, device=dev).expand(shape).clone()

        return DynamicsParams(
            friction=full(float(self._geom_friction.max()), (n,)),
            mass_scale=full(1.0, (n, nb)),
            mass_add=full(0.0, (n, nb)),
            com_offset=full(0.0, (n, nb, 3)),
            kp_scale=full(1.0, (n, j)),
            kd_scale=full(1.0, (n, j)),
            motor_strength=full(1.0, (n, j)),
            joint_damping=full(self._nominal_damping, (n, j)),
            joint_frictionloss=full(self._nominal_frictionloss, (n, j)),
            joint_armature=full(self._nominal_armature, (n, j)),
            action_delay=torch.zeros(n, dtype=torch.long, device=dev),
            substep_delay=torch.zeros(n, dtype=torch.long, device=dev),
        )

    def get_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None = None) -> DynamicsParams:
        """Current dynamics of the given envs."""
        return self._dyn.select(as_env_ids(env_ids, self.num_envs).to(self.device))

    def set_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None, params: DynamicsParams) -> None:
        """Set the given envs' dynamics; None fields are left as they are."""
        ids = as_env_ids(env_ids, self.num_envs)
        dev_ids = ids.to(self.device)
        changed = write_dynamics(self._dyn, dev_ids, params, self.num_joints, self.cfg.max_action_delay,
                                 self.spec.decimation)  # fmt: skip
        if not changed or len(ids) == 0:
            return
        self._queue.delay = self._dyn.action_delay  # type: ignore[assignment]
        d, r, gids = self._dyn.select(dev_ids), self.robot, self._gids(ids)
        if changed & {"kp_scale", "kd_scale", "motor_strength"}:
            r.set_dofs_kp(self._g(d.motor_strength * d.kp_scale * self._kp), self._dofs, gids)  # type: ignore[operator]
            r.set_dofs_kv(self._g(d.motor_strength * d.kd_scale * self._kd), self._dofs, gids)  # type: ignore[operator]
        if "friction" in changed:
            ratio = d.friction[:, None] / self._geom_friction[None, :]  # type: ignore[index]
            r.solver.set_geoms_friction_ratio(self._g(ratio), self._geoms, gids)
        if changed & {"mass_scale", "mass_add"}:
            mass = self._nominal_mass * d.mass_scale + d.mass_add  # type: ignore[operator]
            if (mass <= 0).any():
                raise ValueError("link masses must stay positive")
            ratio = mass / self._nominal_mass.clamp_min(1e-9)
            r.set_links_mass(self._g(mass), self._dyn_links, gids)
            r.set_links_inertia(self._g(self._nominal_inertia * ratio[..., None, None]), self._dyn_links, gids)
        if "com_offset" in changed:
            r.set_links_COM(self._g(self._nominal_com + d.com_offset), self._dyn_links, gids)  # type: ignore[operator]
        if "joint_damping" in changed:
            r.set_dofs_damping(self._g(d.joint_damping), self._dofs, gids)  # type: ignore[arg-type]
        if "joint_frictionloss" in changed:
            r.set_dofs_frictionloss(self._g(d.joint_frictionloss), self._dofs, gids)  # type: ignore[arg-type]
        if "joint_armature" in changed:
            r.set_dofs_armature(self._g(d.joint_armature), self._dofs, gids)  # type: ignore[arg-type]

    def push(self, env_ids: torch.Tensor | Sequence[int] | None, lin_vel_xy: torch.Tensor) -> None:
        """Set the root's world xy velocity of the given envs."""
        ids = as_env_ids(env_ids, self.num_envs)
        v = torch.as_tensor(lin_vel_xy, dtype=torch.float32, device=self.device).expand(len(ids), 2)
        self.robot.set_dofs_velocity(self._g(v), self._root_dofs[0:2], self._gids(ids))

    def close(self) -> None:
        """Destroy the Genesis scene (``gs.init`` stays for the process)."""
        self.scene = None  # type: ignore[assignment]


__all__ = ["AVAILABLE", "GenesisSimulator"]
