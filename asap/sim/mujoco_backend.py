"""MuJoCo backend: N G1s in one ``mujoco.batch.Batch``, stepped by MuJoCo's native thread pool.

One control step is a single native call (``Batch.step(nstep=decimation, stage=VEL)``): the threads step every
env through its ``decimation`` substeps and then recompute positions and velocities at the new state, so body
poses and velocities are current, while contact forces and actuator torques are those of the last substep. There
is no Python per substep and no per-env Python loop on the hot path; reads are bulk numpy slices of the batch's
bound arrays.

PD runs inside MuJoCo position actuators (built by :func:`asap.robot.model.build_spec` from the spec's Kp, Kd and
effort limits): ``force = gain*ctrl + b1*q + b2*qd`` with gain = -b1 = Kp, b2 = -Kd, clamped to ``forcerange`` --
the software PD law, recomputed at every substep. Per-env Kp/Kd scale and motor strength are per-env actuator
gains (``Batch.expand``: the model field becomes per-env only once some env differs from the nominal value);
friction, masses, CoM, joint damping, frictionloss and armature likewise. Direct torques go through
``qfrc_applied`` with actuation disabled for the step. Foot contact forces come from two MuJoCo ``contact``
sensors (net force on each ankle-roll link).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import mujoco
import numpy as np
import torch
from mujoco import batch as mjbatch

from asap.robot.model import build_spec, standing_height
from asap.robot.spec import FEET, RobotSpec
from asap.sim.base import (
    DYNAMICS_BODIES,
    ROOT_STATE_DIM,
    ActionDelayQueue,
    BodyState,
    DynamicsParams,
    SimConfig,
    as_env_ids,
    write_dynamics,
)
from asap.sim.state import SimState
from asap.utils.rotations import quat_rotate, quat_rotate_inverse

AVAILABLE = True
"""MuJoCo is a core dependency: this backend always imports."""

_VEL = int(mujoco.mjtStage.mjSTAGE_VEL.value)
_FOOT_SENSOR = "{}_contact_force"
_CONTACT_FORCE = 2  # contact sensor data bit: force
_REDUCE_NETFORCE = 3  # contact sensor reduction: one net force (world frame)
_ACTUATION_OFF = int(mujoco.mjtDisableBit.mjDSBL_ACTUATION.value)


def add_foot_sensors(spec: mujoco.MjSpec) -> None:
    """Add one net-contact-force sensor per foot (ankle-roll link) to ``spec`` unless already there."""
    have = {s.name for s in spec.sensors}
    for foot in FEET:
        name = _FOOT_SENSOR.format(foot)
        if name in have:
            continue
        spec.add_sensor(
            name=name,
            type=mujoco.mjtSensor.mjSENS_CONTACT,
            objtype=mujoco.mjtObj.mjOBJ_BODY,
            objname=foot,
            intprm=[_CONTACT_FORCE, _REDUCE_NETFORCE, 1],
        )


def build_sim_model(cfg: SimConfig, spec: mujoco.MjSpec | None = None) -> tuple[mujoco.MjModel, np.ndarray]:
    """Compile the simulation model (foot sensors added) and return it with the default standing qpos."""
    rs = cfg.spec
    if spec is None:
        spec = build_spec(rs, cfg.mjcf, cfg.model)
    add_foot_sensors(spec)
    model = spec.compile()
    qpos = np.zeros(model.nq)
    qpos[3] = 1.0
    qadr = np.array([model.joint(n).qposadr[0] for n in rs.joint_names])
    qpos[qadr] = rs.default_pos
    qpos[2] = standing_height(model, rs.default_pos, rs.joint_names)
    return model, qpos


def _np(x: torch.Tensor | np.ndarray | Sequence[float], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A float64 numpy copy of a tensor/array (optionally broadcast to shape)."""
    arr = x.detach().to("cpu", torch.float64).numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    return np.broadcast_to(arr, shape) if shape is not None else arr


class MujocoSimulator:
    """The :class:`asap.sim.base.Simulator` protocol on ``mujoco.batch`` (CPU, native threads)."""

    def __init__(self, cfg: SimConfig, spec: mujoco.MjSpec | None = None) -> None:
        """Build N envs; ``spec`` lets a caller (e.g. the virtual G1) pass a customised MjSpec of the robot."""
        if cfg.model.actuators != "position":
            raise ValueError("the MuJoCo backend needs ModelOptions.actuators='position' (PD inside MuJoCo)")
        if cfg.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {cfg.num_envs}")
        self.cfg = cfg
        self.spec: RobotSpec = cfg.spec
        self.num_envs = int(cfg.num_envs)
        self.num_joints = self.spec.num_joints
        self.device = torch.device(cfg.device)
        self.model, self.default_qpos = build_sim_model(cfg, spec)
        m = self.model
        if m.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError("the robot's root joint must be a free joint (first joint of the model)")
        rs = self.spec
        threads = cfg.threads if cfg.threads > 0 else (os.cpu_count() or 1)
        self.batch = mjbatch.Batch(m, nsim=self.num_envs, nthread=threads, persistent=cfg.persistent)

        # index maps (policy order -> MuJoCo addresses)
        self._qadr = np.array([m.joint(n).qposadr[0] for n in rs.joint_names])
        self._vadr = np.array([m.joint(n).dofadr[0] for n in rs.joint_names])
        act_of_joint = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu)}
        self._act = np.array([act_of_joint[m.joint(n).id] for n in rs.joint_names])
        self._body = np.array([m.body(n).id for n in rs.body_names])
        self._links = np.array([m.body(n).id for n in DYNAMICS_BODIES])
        self._root_body = int(m.body_rootid[self._body[0]])
        foot_adr = [m.sensor_adr[m.sensor(_FOOT_SENSOR.format(f)).id] for f in FEET]
        self._foot_cols = np.concatenate([np.arange(a, a + 3) for a in foot_adr])
        self._contact_geoms = np.flatnonzero((m.geom_contype != 0) | (m.geom_conaffinity != 0))
        self._effort = rs.effort_limit
        self._kp = rs.kp
        self._kd = rs.kd

        b = self.batch
        self._qpos, self._qvel = b.bind("qpos"), b.bind("qvel")
        self._ctrl, self._qfrc = b.bind("ctrl"), b.bind("qfrc_applied")
        self._warm = b.bind("qacc_warmstart")
        self._xpos, self._xquat = b.bind("xpos"), b.bind("xquat")
        self._cvel, self._subtree_com = b.bind("cvel"), b.bind("subtree_com")
        self._sensordata, self._act_force = b.bind("sensordata"), b.bind("actuator_force")

        n, j = self.num_envs, self.num_joints
        self._queue = ActionDelayQueue(n, j, cfg.max_action_delay, self.device)
        self._applied = np.zeros((n, j))
        """(N, J) the command the last substep applied (policy order): what a ``substep_delay`` keeps applying."""
        self._hold = torch.as_tensor(self.spec.default_pos, dtype=torch.float32, device=self.device)
        """(J,) the command queued on reset in PD mode (hold the default pose)."""
        self._torque_mode = False
        self._torques = np.zeros((n, j))  # torques applied in torque mode (policy order)
        self._stale_acc = np.zeros(n, dtype=bool)  # contact/torque readouts invalid since a state write
        self._dirty = np.zeros(n, dtype=bool)  # envs whose derived fields need a forward pass
        self._nominal = self.default_dynamics(1)
        self._dyn = self.default_dynamics(n)
        self.reset()

    # ------------------------------------------------------------------ properties
    @property
    def control_dt(self) -> float:
        """Seconds per control step."""
        return self.spec.control_dt

    @property
    def total_mass(self) -> float:
        """Mass of the robot (kg) of env 0's nominal model."""
        return float(self.model.body_subtreemass[self._root_body])

    # ------------------------------------------------------------------ helpers
    def _t(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(self.device)

    def _flush(self) -> None:
        """Recompute positions/velocities of envs whose state or model was written since their last step."""
        if self._dirty.any():
            self.batch.forward(np.flatnonzero(self._dirty).astype(np.int32), stage=_VEL)
            self._dirty[:] = False

    def _touch(self, ids: np.ndarray, stale_acc: bool = True) -> None:
        self._dirty[ids] = True
        if stale_acc:
            self._stale_acc[ids] = True

    # ------------------------------------------------------------------ state
    def get_root_state(self) -> torch.Tensor:
        """(N, 13) root state: pos, quat wxyz, lin vel world, ang vel world."""
        qpos, qvel = self._qpos[:, 0:7], self._qvel[:, 0:6]
        ang_world = quat_rotate(qpos[:, 3:7], qvel[:, 3:6])  # MuJoCo's free-joint angular velocity is local
        return self._t(np.concatenate([qpos, qvel[:, 0:3], ang_world], axis=1))

    def set_root_state(self, env_ids: torch.Tensor | Sequence[int] | None, root_state: torch.Tensor) -> None:
        """Write (n, 13) root states of the given envs."""
        self._set_root(as_env_ids(env_ids, self.num_envs).numpy(), root_state)

    def _set_root(self, ids: np.ndarray, root_state: torch.Tensor | np.ndarray) -> None:
        rs = _np(root_state, (len(ids), ROOT_STATE_DIM))
        quat = rs[:, 3:7] / np.linalg.norm(rs[:, 3:7], axis=1, keepdims=True)
        self._qpos[ids, 0:3] = rs[:, 0:3]
        self._qpos[ids, 3:7] = quat
        self._qvel[ids, 0:3] = rs[:, 7:10]
        self._qvel[ids, 3:6] = quat_rotate_inverse(quat, rs[:, 10:13])
        self._touch(ids)

    def get_joint_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(q, qd), each (N, J) in policy order."""
        return self._t(self._qpos[:, self._qadr]), self._t(self._qvel[:, self._vadr])

    def set_joint_state(self, env_ids: torch.Tensor | Sequence[int] | None, q: torch.Tensor, qd: torch.Tensor) -> None:
        """Write (n, J) joint positions and velocities of the given envs."""
        self._set_joints(as_env_ids(env_ids, self.num_envs).numpy(), q, qd)

    def _set_joints(self, ids: np.ndarray, q: torch.Tensor | np.ndarray, qd: torch.Tensor | np.ndarray) -> None:
        shape = (len(ids), self.num_joints)
        self._qpos[np.ix_(ids, self._qadr)] = _np(q, shape)
        self._qvel[np.ix_(ids, self._vadr)] = _np(qd, shape)
        self._touch(ids)

    def reset(
        self,
        env_ids: torch.Tensor | Sequence[int] | None = None,
        root_state: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
        qd: torch.Tensor | None = None,
    ) -> None:
        """Fresh state for the given envs (default standing pose unless given); see the protocol."""
        ids_t = as_env_ids(env_ids, self.num_envs)
        ids = ids_t.numpy()
        n = len(ids)
        if root_state is None:
            root = np.zeros((n, ROOT_STATE_DIM))
            root[:, 0:7] = self.default_qpos[0:7]
            self._set_root(ids, root)
        else:
            self._set_root(ids, root_state)
        q = torch.from_numpy(self.spec.default_pos) if q is None else q
        qd = torch.zeros(self.num_joints) if qd is None else qd
        self._set_joints(ids, q, qd)
        self._warm[ids] = 0.0
        self._qfrc[ids] = 0.0
        self._torques[ids] = 0.0
        self._queue.fill(ids_t, 0.0 if self._torque_mode else self._hold)
        self._ctrl[np.ix_(ids, self._act)] = self.spec.default_pos
        self._applied[ids] = 0.0 if self._torque_mode else self.spec.default_pos

    def set_previous_targets(self, env_ids: torch.Tensor | Sequence[int] | None, targets: torch.Tensor) -> None:
        """The targets (n, J) rad in flight before the next step of the given envs (see the protocol)."""
        ids_t = as_env_ids(env_ids, self.num_envs)
        t = torch.as_tensor(targets, dtype=torch.float32, device=self.device).expand(len(ids_t), self.num_joints)
        self._queue.fill(ids_t, t)
        self._applied[ids_t.numpy()] = _np(t)

    # ------------------------------------------------------------------ stepping
    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """One control step (decimation substeps) with PD targets or direct torques; see the protocol."""
        if targets is not None and torques is not None:
            raise ValueError("give joint targets or torques, not both")
        shape = (self.num_envs, self.num_joints)
        if targets is None and torques is None and self._torque_mode:
            torques = self._queue.latest.clone()  # hold the previous command, in the mode it was given
        switched = self._torque_mode != (torques is not None)
        if torques is not None:
            cmd = torques.to(self.device, torch.float32).expand(shape)
            tau = _np(self._queue.push(cmd)) * _np(self._dyn.motor_strength)
            np.clip(tau, -self._effort, self._effort, out=tau)
            self._set_torque_mode(True)
            command = tau
        else:
            if targets is None:
                cmd = self._queue.latest.clone()
            else:
                cmd = targets.to(self.device, torch.float32).expand(shape)
            self._set_torque_mode(False)
            command = _np(self._queue.push(cmd))
        late = _np(self._dyn.substep_delay)
        if late.any() and not switched:
            # the first `late` substeps of an env still apply the command before this one (sub-step latency)
            self._flush()
            for i in range(self.spec.decimation):
                self._apply(np.where((late > i)[:, None], self._applied, command))
                self.batch.step(nstep=1, stage=_VEL)
        else:
            self._apply(command)
            self._flush()
            self.batch.step(nstep=self.spec.decimation, stage=_VEL)
        self._applied[:] = command
        self._stale_acc[:] = False

    def _apply(self, command: np.ndarray) -> None:
        """Write an (N, J) command (policy order) for the next substeps: torques in torque mode, else PD targets."""
        if self._torque_mode:
            self._torques[:] = command
            self._qfrc[:, self._vadr] = command
        else:
            self._ctrl[:, self._act] = command

    def _set_torque_mode(self, on: bool) -> None:
        if on == self._torque_mode:
            return
        flags = self.batch.expand("opt.disableflags")
        if on:
            flags[:] = flags | _ACTUATION_OFF
        else:
            flags[:] = flags & ~_ACTUATION_OFF
            self._qfrc[:, self._vadr] = 0.0
        self._torque_mode = on

    def get_applied_torques(self) -> torch.Tensor:
        """(N, J) joint torques of the last substep (zero right after a state write)."""
        tau = self._torques.copy() if self._torque_mode else self._act_force[:, self._act]
        tau[self._stale_acc] = 0.0
        return self._t(tau)

    # ------------------------------------------------------------------ bodies and contacts
    def get_body_state(self) -> BodyState:
        """World-frame pose and velocity of the 27 tracked bodies."""
        self._flush()
        pos = self._xpos[:, self._body]
        quat = self._xquat[:, self._body]
        cvel = self._cvel[:, self._body]
        ang = cvel[..., 0:3]
        # cvel's linear part is the velocity of the point at the root subtree's CoM; move it to each body origin
        arm = pos - self._subtree_com[:, self._root_body][:, None, :]
        lin = cvel[..., 3:6] + np.cross(ang, arm)
        return BodyState(self._t(pos), self._t(quat), self._t(lin), self._t(ang))

    def read_state(self) -> SimState:
        """Every quantity of :class:`asap.sim.state.SimState` in one pass: the values of the ``get_*`` reads (same
        float64 arithmetic, same rounding to float32), written into one fresh float32 buffer whose column blocks
        the returned tensors view (no per-quantity allocation or conversion)."""
        self._flush()
        n, j, nb = self.num_envs, self.num_joints, len(self._body)
        buf = np.empty((n, 13 + 2 * j + 13 * nb + j + 6), dtype=np.float32)
        qpos, qvel = self._qpos, self._qvel
        buf[:, 0:7] = qpos[:, 0:7]
        buf[:, 7:10] = qvel[:, 0:3]
        buf[:, 10:13] = quat_rotate(qpos[:, 3:7], qvel[:, 3:6])
        o = 13
        buf[:, o : o + j] = qpos[:, self._qadr]
        buf[:, o + j : o + 2 * j] = qvel[:, self._vadr]
        o += 2 * j
        pos = self._xpos[:, self._body]
        cvel = self._cvel[:, self._body]
        ang = cvel[..., 0:3]
        arm = pos - self._subtree_com[:, self._root_body][:, None, :]
        blocks = ((pos, 3), (self._xquat[:, self._body], 4), (cvel[..., 3:6] + np.cross(ang, arm), 3), (ang, 3))
        for x, w in blocks:
            buf[:, o : o + w * nb].reshape(n, nb, w)[:] = x
            o += w * nb
        if self._torque_mode:
            buf[:, o : o + j] = self._torques
        else:
            buf[:, o : o + j] = self._act_force[:, self._act]
        buf[:, o + j : o + j + 6] = self._sensordata[:, self._foot_cols]
        np.negative(buf[:, o + j : o + j + 6], out=buf[:, o + j : o + j + 6])
        if self._stale_acc.any():
            buf[np.ix_(self._stale_acc, np.arange(o, o + j + 6))] = 0.0
        t = torch.from_numpy(buf).to(self.device)
        b = 13 + 2 * j
        bp, bq, bl, ba = (
            t[:, b + c * nb : b + (c + w) * nb].view(n, nb, w) for c, w in ((0, 3), (3, 4), (7, 3), (10, 3))
        )
        return SimState(
            root_pos=t[:, 0:3], root_quat=t[:, 3:7], root_lin_vel=t[:, 7:10], root_ang_vel=t[:, 10:13],
            q=t[:, 13 : 13 + j], qd=t[:, 13 + j : 13 + 2 * j], body_pos=bp, body_quat=bq,
            body_lin_vel=bl, body_ang_vel=ba, tau=t[:, o : o + j],
            feet_force=t[:, o + j : o + j + 6].view(n, 2, 3),
        )  # fmt: skip

    def get_foot_contact_forces(self) -> torch.Tensor:
        """(N, 2, 3) net contact force on each ankle-roll link during the last substep (world frame)."""
        # MuJoCo's net-force contact sensor reports the force the foot exerts; negate for the force on the foot
        f = -self._sensordata[:, self._foot_cols].reshape(self.num_envs, 2, 3)
        f[self._stale_acc] = 0.0
        return self._t(f)

    # ------------------------------------------------------------------ dynamics
    def default_dynamics(self, n: int) -> DynamicsParams:
        """Nominal dynamics of the compiled model for n envs."""
        m, j, nb = self.model, self.num_joints, len(DYNAMICS_BODIES)
        floor = m.geom_friction[self._contact_geoms, 0]

        def full(value: float | np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
            return torch.as_tensor(np.broadcast_to(value, shape).copy(), dtype=torch.float32, device=self.device)

        return DynamicsParams(
            friction=full(float(floor.max()) if len(floor) else 1.0, (n,)),
            mass_scale=full(1.0, (n, nb)),
            mass_add=full(0.0, (n, nb)),
            com_offset=full(0.0, (n, nb, 3)),
            kp_scale=full(1.0, (n, j)),
            kd_scale=full(1.0, (n, j)),
            motor_strength=full(1.0, (n, j)),
            joint_damping=full(m.dof_damping[self._vadr], (n, j)),
            joint_frictionloss=full(m.dof_frictionloss[self._vadr], (n, j)),
            joint_armature=full(m.dof_armature[self._vadr], (n, j)),
            action_delay=torch.zeros(n, dtype=torch.long, device=self.device),
            substep_delay=torch.zeros(n, dtype=torch.long, device=self.device),
        )

    def get_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None = None) -> DynamicsParams:
        """Current dynamics of the given envs."""
        ids = as_env_ids(env_ids, self.num_envs).to(self.device)
        return self._dyn.select(ids)

    def _model_field(self, name: str, ids: np.ndarray, values: np.ndarray, nominal: np.ndarray) -> np.ndarray | None:
        """Per-env model field (expanded only when some env departs from the nominal values)."""
        existing = self.batch.expanded(name)
        if existing is None and np.array_equal(values, np.broadcast_to(nominal, values.shape)):
            return None
        return self.batch.expand(name)

    def set_dynamics(self, env_ids: torch.Tensor | Sequence[int] | None, params: DynamicsParams) -> None:
        """Set the given envs' dynamics; None fields are left as they are."""
        ids_t = as_env_ids(env_ids, self.num_envs)
        ids = ids_t.numpy()
        changed = write_dynamics(self._dyn, ids_t.to(self.device), params, self.num_joints, self.cfg.max_action_delay,
                                 self.spec.decimation)  # fmt: skip
        if not changed:
            return
        self._queue.delay = self._dyn.action_delay  # type: ignore[assignment]
        self._write_model(ids, changed)

    def _write_model(self, ids: np.ndarray, changed: set[str]) -> None:
        m, dyn = self.model, self._dyn
        sel = torch.from_numpy(ids).to(self.device)

        def rows(name: str) -> np.ndarray:
            return _np(getattr(dyn, name)[sel])

        needs_const = False
        if changed & {"kp_scale", "kd_scale", "motor_strength"}:
            ms, kps, kds = rows("motor_strength"), rows("kp_scale"), rows("kd_scale")
            gain = ms * kps * self._kp
            damp = ms * kds * self._kd
            nominal_gain = m.actuator_gainprm[self._act, 0]
            field = self._model_field("actuator_gainprm", ids, gain, nominal_gain)
            if field is not None:
                field[np.ix_(ids, self._act, [0])] = gain[..., None]
                bias = self.batch.expand("actuator_biasprm")
                bias[np.ix_(ids, self._act, [1])] = -gain[..., None]
            field = self._model_field("actuator_biasprm", ids, -damp, m.actuator_biasprm[self._act, 2])
            if field is not None:
                field[np.ix_(ids, self._act, [2])] = -damp[..., None]
        if "friction" in changed:
            fr = rows("friction")
            field = self._model_field("geom_friction", ids, fr, m.geom_friction[self._contact_geoms[:1], 0])
            if field is not None:
                field[np.ix_(ids, self._contact_geoms, [0])] = np.repeat(fr[:, None], len(self._contact_geoms), 1)[
                    ..., None
                ]
        if changed & {"mass_scale", "mass_add"}:
            nominal = m.body_mass[self._links]
            mass = nominal * rows("mass_scale") + rows("mass_add")
            if (mass <= 0).any():
                raise ValueError("link masses must stay positive")
            field = self._model_field("body_mass", ids, mass, nominal)
            if field is not None:
                field[np.ix_(ids, self._links)] = mass
                ratio = np.where(nominal > 0, mass / np.where(nominal > 0, nominal, 1.0), 1.0)
                inertia = self.batch.expand("body_inertia")
                inertia[np.ix_(ids, self._links)] = m.body_inertia[self._links] * ratio[..., None]
                needs_const = True
        if "com_offset" in changed:
            ipos = m.body_ipos[self._links] + rows("com_offset")
            field = self._model_field("body_ipos", ids, ipos, m.body_ipos[self._links])
            if field is not None:
                field[np.ix_(ids, self._links)] = ipos
                needs_const = True
        for name, mfield in (
            ("joint_damping", "dof_damping"),
            ("joint_frictionloss", "dof_frictionloss"),
            ("joint_armature", "dof_armature"),
        ):
            if name in changed:
                vals = rows(name)
                field = self._model_field(mfield, ids, vals, getattr(m, mfield)[self._vadr])
                if field is not None:
                    field[np.ix_(ids, self._vadr)] = vals
                    needs_const = needs_const or name == "joint_armature"
        if needs_const:
            self.batch.set_const(np.sort(ids).astype(np.int32))  # mujoco.batch wants ascending ids
        self._touch(ids, stale_acc=False)

    def push(self, env_ids: torch.Tensor | Sequence[int] | None, lin_vel_xy: torch.Tensor) -> None:
        """Set the root's world xy velocity of the given envs."""
        ids = as_env_ids(env_ids, self.num_envs).numpy()
        self._qvel[ids, 0:2] = _np(lin_vel_xy, (len(ids), 2))
        self._touch(ids, stale_acc=False)

    def close(self) -> None:
        """Nothing to release explicitly (the batch's threads stop with the object)."""
