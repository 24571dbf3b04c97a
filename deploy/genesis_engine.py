"""Genesis engine of the virtual G1 (``asap robot-sim --engine genesis``; needs ``genesis-world``).

The robot is the MjSpec the MuJoCo engine compiles (torque actuators, the gap's added mass, joint damping and
friction written into it), prepared for Genesis by :mod:`asap.robot.genesis` (the preparation the Genesis simulator
backend uses too: collision geoms only, MJCF text, a Genesis ground plane whose friction is the gap's floor
friction, the spec's 0.005 s step and implicitfast integrator). One un-batched scene on ``gs.cpu`` (unless Genesis
is already initialised), one substep, self collision on (as MuJoCo's model).

* Torques: ``control_dofs_force`` on the 29 joint dofs (force range opened to +-1e4 N m; the virtual G1 clips to
  the gap's effort limits before).
* Support band and other external wrenches: ``apply_links_external_wrench`` on the pelvis centre of mass in world
  coordinates, for one step (as MuJoCo's ``xfrc_applied``).
* Gyro: the root's angular velocity rotated into the pelvis frame. Accelerometer: Genesis' classical linear
  acceleration of the pelvis origin (``get_links_acc``, world) minus gravity, rotated into the pelvis frame. MuJoCo
  reads the free joint's ``qacc`` (the same quantity, the pelvis-origin acceleration); the contact solvers differ,
  so individual samples differ a little (in support at rest both read (0, 0, 9.81) within 0.5 m/s^2). Right after
  :meth:`GenesisEngine.reset`, before a step, Genesis holds no acceleration (the read-out is then ~0; the virtual G1
  publishes only after a step). Joint accelerations are the backward difference of the joint velocities over one
  step.
* Gap edits: added mass, joint damping, joint frictionloss and floor friction are applied (the first three through
  the MJCF, and damping/frictionloss also set on the dofs explicitly); the PD-side gap (Kp/Kd/strength, torque
  limits, latency, noise) is the virtual G1's, engine-independent.

Importing genesis takes ~20 s; the first scene build compiles kernels (minutes on 2 cores, cached in
``~/.cache/genesis`` and ``~/.cache/quadrants``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asap.robot.genesis import AVAILABLE, INSTALL_HINT, build_genesis_scene, import_genesis
from asap.robot.model import standing_height
from asap.robot.spec import MOTOR_NAMES
from asap.utils.rotations import quat_rotate, quat_rotate_inverse
from deploy.engine import GRAVITY, EngineState, gap_model_spec, robot_spec
from deploy.gap import RealGapConfig


class GenesisUnavailable(RuntimeError):
    """genesis-world is not installed."""


class GenesisEngine:
    """The G1 in Genesis (see module docstring)."""

    name = "genesis"

    def __init__(self, gap: RealGapConfig | None = None) -> None:
        if not AVAILABLE:
            raise GenesisUnavailable(f"the virtual G1's Genesis engine needs `{INSTALL_HINT}`; or use --engine mujoco")
        gs = import_genesis("cpu")
        gap = gap or RealGapConfig()
        rs = robot_spec()
        built = build_genesis_scene(gs, gap_model_spec(gap, floor=False), floor_friction=float(gap.floor_friction))
        self.scene, self.robot, self.plane, twin = built.scene, built.robot, built.plane, built.twin
        self.dt = built.dt
        self.stand_z = standing_height(twin, rs.default_pos, rs.joint_names)
        r = self.robot
        self._dofs = [r.get_joint(n).dofs_idx_local[0] for n in MOTOR_NAMES]
        self._root_dofs = list(r.get_joint(twin.joint(0).name).dofs_idx_local)
        self._pelvis = r.get_link("pelvis").idx_local
        if r.get_link("pelvis").idx_local != 0 or self._root_dofs != list(range(6)):
            raise RuntimeError("the Genesis G1 must have the pelvis as its free-floating root")
        self._qadr = [r.get_joint(n).qs_idx_local[0] for n in MOTOR_NAMES]
        n = len(self._dofs)
        r.set_dofs_force_range(np.full(n, -1e4), np.full(n, 1e4), self._dofs)
        r.set_dofs_damping(np.full(n, float(gap.joint_damping)), self._dofs)
        r.set_dofs_frictionloss(np.full(n, float(gap.joint_friction)), self._dofs)
        self._ref_com = gs.link_ref_frame.link_COM
        self._tau = np.zeros(n)
        self._wrench: np.ndarray | None = None
        self._dq_prev = np.zeros(n)
        self._ddq = np.zeros(n)

    @staticmethod
    def _np(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().astype(np.float64)

    def reset(self, pos: np.ndarray, quat: np.ndarray, q: np.ndarray) -> None:
        """See :class:`deploy.engine.Engine`."""
        r = self.robot
        r.set_dofs_position(np.asarray(q, dtype=np.float64), self._dofs)
        r.set_pos(np.asarray(pos, dtype=np.float64))
        r.set_quat(np.asarray(quat, dtype=np.float64))
        r.zero_all_dofs_velocity()
        self._dq_prev[:] = 0.0
        self._ddq[:] = 0.0

    def set_torque(self, tau: np.ndarray) -> None:
        """See :class:`deploy.engine.Engine`."""
        self._tau = np.asarray(tau, dtype=np.float64).copy()

    def apply_external(self, wrench: np.ndarray | None) -> None:
        """See :class:`deploy.engine.Engine`."""
        self._wrench = None if wrench is None else np.asarray(wrench, dtype=np.float64).copy()

    def add_velocity(self, lin_world: np.ndarray, ang_body: np.ndarray) -> None:
        """See :class:`deploy.engine.Engine` (Genesis' free-joint angular dofs are in the root link frame)."""
        v = self._np(self.robot.get_dofs_velocity(self._root_dofs))
        v[0:3] += lin_world
        v[3:6] += ang_body
        self.robot.set_dofs_velocity(v, self._root_dofs)

    def step(self) -> None:
        """See :class:`deploy.engine.Engine`."""
        r = self.robot
        r.control_dofs_force(self._tau, self._dofs)
        if self._wrench is not None:
            r.apply_links_external_wrench(
                force=self._wrench[None, 0:3], torque=self._wrench[None, 3:6], links_idx_local=[self._pelvis],
                ref=self._ref_com,
            )  # fmt: skip
        self.scene.step()
        dq = self._np(r.get_dofs_velocity())[self._dofs]
        self._ddq = (dq - self._dq_prev) / self.dt
        self._dq_prev = dq

    def state(self) -> EngineState:
        """See :class:`deploy.engine.Engine`."""
        r = self.robot
        qpos = self._np(r.get_qpos())
        vel = self._np(r.get_dofs_velocity())
        acc = self._np(r.get_links_acc([self._pelvis]))[0]
        quat = qpos[3:7] / np.linalg.norm(qpos[3:7])
        gyro = vel[self._root_dofs[3:6]]
        return EngineState(
            pos=qpos[0:3], quat=quat, lin_vel=vel[self._root_dofs[0:3]], ang_vel=quat_rotate(quat, gyro),
            q=qpos[self._qadr], dq=vel[self._dofs], ddq=self._ddq.copy(), gyro=gyro,
            acc=quat_rotate_inverse(quat, acc - GRAVITY),
        )  # fmt: skip


__all__ = ["AVAILABLE", "GenesisEngine", "GenesisUnavailable"]
