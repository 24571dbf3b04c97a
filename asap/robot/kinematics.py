"""Batched, differentiable forward kinematics of the G1 in torch.

The kinematic tree (body offsets, joint axes) is read from the compiled MuJoCo model, so FK agrees with
the simulator by construction. Used by the MotionLib (body poses of reference motions) and by retargeting
(inverse kinematics by gradient descent).
"""

from __future__ import annotations

from functools import lru_cache

import mujoco
import numpy as np
import torch

from asap.robot.spec import RobotSpec, get_spec
from asap.utils.rotations import quat_from_axis_angle, quat_mul, quat_rotate


class G1Kinematics:
    """Forward kinematics of a G1 variant for any batch shape.

    ``forward(root_pos (...,3), root_quat (...,4) wxyz, dof_pos (...,J))`` returns world positions
    ``(...,B,3)`` and orientations ``(...,B,4)`` of the spec's 27 tracked bodies (``body_names``);
    ``forward_all`` returns every body of the model (``all_body_names``).
    """

    def __init__(
        self,
        spec: RobotSpec | str = "g1_23dof",
        model: mujoco.MjModel | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.spec = get_spec(spec) if isinstance(spec, str) else spec
        if model is None:
            from asap.robot.model import ModelOptions, build_model

            model = build_model(self.spec, options=ModelOptions(floor=False, actuators="none"))
        self.device = torch.device(device)
        self.dtype = dtype
        names = [model.body(i).name for i in range(model.nbody)]
        self.all_body_names: tuple[str, ...] = tuple(names[1:])
        self._parent = [int(model.body_parentid[i]) - 1 for i in range(1, model.nbody)]
        root = int(model.joint(0).bodyid[0]) if model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE else -1
        if root != 1:
            raise ValueError("the model's first body must carry the floating base (free joint)")
        joint_of_dof = {n: i for i, n in enumerate(self.spec.joint_names)}
        self._dof: list[int] = []  # per body (excluding world): policy dof index, or -1 (welded)
        axes = np.zeros((model.nbody - 1, 3))
        anchors = np.zeros((model.nbody - 1, 3))
        for b in range(1, model.nbody):
            jnts = [j for j in range(model.njnt) if model.jnt_bodyid[j] == b]
            hinge = [j for j in jnts if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
            if len(hinge) > 1:
                raise ValueError(f"body {names[b]} has more than one hinge; not supported")
            if hinge:
                jname = model.joint(hinge[0]).name
                if jname not in joint_of_dof:
                    raise ValueError(f"model joint {jname} is not a joint of variant {self.spec.name}")
                self._dof.append(joint_of_dof[jname])
                axes[b - 1] = model.jnt_axis[hinge[0]]
                anchors[b - 1] = model.jnt_pos[hinge[0]]
            else:
                self._dof.append(-1)
        kw = {"device": self.device, "dtype": dtype}
        self._pos = torch.tensor(model.body_pos[1:], **kw)
        self._quat = torch.tensor(model.body_quat[1:], **kw)
        self._axis = torch.tensor(axes, **kw)
        self._anchor = torch.tensor(anchors, **kw)
        self._has_anchor = bool(np.abs(anchors).max() > 0)
        self.body_names = self.spec.body_names
        order = {n: i for i, n in enumerate(self.all_body_names)}
        missing = [n for n in self.body_names if n not in order]
        if missing:
            raise ValueError(f"model lacks tracked bodies {missing}")
        self.tracked_index = torch.tensor([order[n] for n in self.body_names], device=self.device)

    def forward_all(
        self, root_pos: torch.Tensor, root_quat: torch.Tensor, dof_pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """World poses of every model body (excluding the world body), (...,nbody-1,3) and (...,nbody-1,4)."""
        pos: list[torch.Tensor] = []
        quat: list[torch.Tensor] = []
        for b, parent in enumerate(self._parent):
            if parent < 0:  # the floating base
                p, q = root_pos, root_quat
            else:
                pp, pq = pos[parent], quat[parent]
                p = pp + quat_rotate(pq, self._pos[b].expand_as(pp))
                q = quat_mul(pq, self._quat[b].expand_as(pq))
                d = self._dof[b]
                if d >= 0:
                    rot = quat_from_axis_angle(self._axis[b], dof_pos[..., d])
                    if self._has_anchor:
                        a = self._anchor[b].expand_as(p)
                        p = p + quat_rotate(q, a)
                        q = quat_mul(q, rot)
                        p = p - quat_rotate(q, a)
                    else:
                        q = quat_mul(q, rot)
            pos.append(p)
            quat.append(q)
        return torch.stack(pos, dim=-2), torch.stack(quat, dim=-2)

    def forward(
        self, root_pos: torch.Tensor, root_quat: torch.Tensor, dof_pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """World poses of the 27 tracked bodies (spec order)."""
        p, q = self.forward_all(root_pos, root_quat, dof_pos)
        return p[..., self.tracked_index, :], q[..., self.tracked_index, :]

    def forward_numpy(
        self, root_pos: np.ndarray, root_quat: np.ndarray, dof_pos: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """NumPy convenience wrapper of :meth:`forward` (float64 in, float64 out)."""
        t = [
            torch.as_tensor(np.asarray(x), device=self.device, dtype=self.dtype) for x in (root_pos, root_quat, dof_pos)
        ]
        with torch.no_grad():
            p, q = self.forward(*t)
        return p.cpu().double().numpy(), q.cpu().double().numpy()


@lru_cache(maxsize=4)
def shared_kinematics(variant: str) -> G1Kinematics:
    """Float64 CPU kinematics of a variant, built once and shared (read-only) by every caller."""
    return G1Kinematics(variant, device="cpu", dtype=torch.float64)
