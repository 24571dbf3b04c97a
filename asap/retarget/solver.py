"""Batched inverse kinematics of the G1 on keypoint targets, and the floor geometry.

All frames of one or more clips are solved at once by Levenberg-Marquardt: each iteration runs one batched
forward kinematics (``asap.robot.kinematics.G1Kinematics``), builds the analytic Jacobian of every tracked
point w.r.t. the root position, root yaw/pitch/roll and the joint angles, and solves one small (29 x 29)
normal system per frame. Temporal smoothness enters as a pull toward the time-smoothed current solution,
joint limits as clamping (projected steps), redundancy as a weak pull toward the default pose.

Root orientation is parameterised by z-y-x Euler angles (yaw unwrapped), so every variable is a plain
number that can be smoothed in time; gimbal lock needs the pelvis pitched by 90 degrees (lying down).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from asap.retarget.config import SolverConfig
from asap.robot.kinematics import G1Kinematics
from asap.robot.spec import RobotSpec, get_spec
from asap.utils.rotations import euler_zyx_to_quat, quat_rotate


def gaussian_smooth(x: torch.Tensor, sigma: float, segments: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """Gaussian filter along dim 0 (edges held), applied separately inside each [start, stop) segment."""
    if sigma <= 0:
        return x
    radius = max(1, int(np.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    out = torch.empty_like(x)
    for a, b in segments or [(0, x.shape[0])]:
        seg = x[a:b].T.reshape(-1, 1, b - a)  # (D, 1, T)
        seg = torch.nn.functional.pad(seg, (radius, radius), mode="replicate")
        out[a:b] = torch.nn.functional.conv1d(seg, k).reshape(x.shape[1], b - a).T
    return out


@dataclass
class Keypoints:
    """Tracked points on the G1: body (index into all model bodies), offset in the body frame."""

    body_index: torch.Tensor
    """(M,) index into ``G1Kinematics.all_body_names``."""
    offset: torch.Tensor
    """(M, 3) point in the body frame."""
    dof_mask: torch.Tensor
    """(M, J) 1 where joint j moves the point."""


class G1Solver:
    """Kinematics, Jacobians, joint limits and floor geometry of one G1 variant (built once, reused)."""

    def __init__(self, robot: str | RobotSpec = "g1_23dof", dtype: torch.dtype = torch.float64) -> None:
        from asap.robot.model import ModelOptions, build_model

        self.spec = get_spec(robot) if isinstance(robot, str) else robot
        self.model = build_model(self.spec, options=ModelOptions(floor=False, actuators="none"))
        self.dtype = dtype
        self.kin = G1Kinematics(self.spec, model=self.model, dtype=dtype)
        m = self.model
        self.body_names = self.kin.all_body_names
        nb = len(self.body_names)
        self.parent = [int(m.body_parentid[b + 1]) - 1 for b in range(nb)]
        j_count = self.spec.num_joints
        self.nv = 6 + j_count
        dof_body = np.zeros(j_count, dtype=np.int64)
        axis = np.zeros((j_count, 3))
        anchor = np.zeros((j_count, 3))
        for d, name in enumerate(self.spec.joint_names):
            jid = m.joint(name).id
            dof_body[d] = int(m.jnt_bodyid[jid]) - 1
            axis[d] = m.jnt_axis[jid]
            anchor[d] = m.jnt_pos[jid]
        self.dof_body = torch.tensor(dof_body)
        self.dof_axis = torch.tensor(axis, dtype=dtype)
        self.dof_anchor = torch.tensor(anchor, dtype=dtype)
        # ancestors[b, d]: joint d moves body b
        anc = np.zeros((nb, j_count))
        for b in range(nb):
            chain, cur = set(), b
            while cur >= 0:
                chain.add(cur)
                cur = self.parent[cur]
            anc[b] = [1.0 if dof_body[d] in chain else 0.0 for d in range(j_count)]
        self.ancestors = torch.tensor(anc, dtype=dtype)
        self.lower = torch.tensor(self.spec.pos_lower, dtype=dtype)
        self.upper = torch.tensor(self.spec.pos_upper, dtype=dtype)
        self.default = torch.tensor(self.spec.default_pos, dtype=dtype)
        self._geom_points()

    # ------------------------------------------------------------------ geometry
    def _geom_points(self) -> None:
        """Collision geoms as spheres in body frames (:func:`asap.robot.model.collision_points`) for the floor."""
        from asap.robot.model import collision_points

        self.collision = collision_points(self.model)
        self.geom_body = torch.as_tensor(self.collision.body - 1)  # index into all_body_names (no world body)

    def foot_point_mask(self, foot_bodies: list[str]) -> torch.Tensor:
        """(F, P) mask of geom sample points that belong to each foot body."""
        idx = [self.body_names.index(b) for b in foot_bodies]
        return torch.stack([self.geom_body == i for i in idx])

    def point_heights(self, pos_all: torch.Tensor, quat_all: torch.Tensor) -> torch.Tensor:
        """Lowest z of every collision sample point's sphere (..., P), for all-body poses from ``kin.forward_all``."""
        return self.collision.heights(pos_all, quat_all, first_body=1)

    # ------------------------------------------------------------------ kinematics
    def keypoints(self, bodies: list[str], offsets: list[list[float]]) -> Keypoints:
        """Tracked-point description for a list of (body, offset)."""
        unknown = [b for b in bodies if b not in self.body_names]
        if unknown:
            raise ValueError(f"unknown G1 bodies {unknown}; valid: {list(self.spec.body_names)}")
        idx = torch.tensor([self.body_names.index(b) for b in bodies])
        return Keypoints(
            body_index=idx, offset=torch.tensor(np.asarray(offsets, dtype=np.float64), dtype=self.dtype),
            dof_mask=self.ancestors[idx],
        )  # fmt: skip

    def unpack(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(T, nv) -> root_pos (T,3), root_quat wxyz (T,4), dof (T,J)."""
        return x[:, :3], euler_zyx_to_quat(x[:, 3:6]), x[:, 6:]

    def fk(self, x: torch.Tensor, kp: Keypoints) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tracked point positions (T, M, 3) plus all body positions and orientations."""
        rp, rq, dof = self.unpack(x)
        pos_all, quat_all = self.kin.forward_all(rp, rq, dof)
        bp, bq = pos_all[:, kp.body_index], quat_all[:, kp.body_index]
        pts = bp + quat_rotate(bq, kp.offset.expand_as(bp))
        return pts, pos_all, quat_all

    def zero_pose_points(self, kp: Keypoints) -> torch.Tensor:
        """Tracked points (M, 3) with the root at the origin, identity orientation, all joints at 0."""
        x = torch.zeros(1, self.nv, dtype=self.dtype)
        return self.fk(x, kp)[0][0]

    def jacobian(self, x: torch.Tensor, pts: torch.Tensor, pos_all: torch.Tensor, quat_all: torch.Tensor,
                 kp: Keypoints) -> torch.Tensor:  # fmt: skip
        """d pts / d x, (T, M, 3, nv)."""
        t_count, m_count = pts.shape[:2]
        jac = torch.zeros(t_count, m_count, 3, self.nv, dtype=pts.dtype)
        jac[:, :, 0, 0] = 1.0
        jac[:, :, 1, 1] = 1.0
        jac[:, :, 2, 2] = 1.0
        yaw, pitch = x[:, 3], x[:, 4]
        zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
        ax_yaw = torch.stack([zero, zero, one], -1)
        ax_pitch = torch.stack([-yaw.sin(), yaw.cos(), zero], -1)
        ax_roll = torch.stack([yaw.cos() * pitch.cos(), yaw.sin() * pitch.cos(), -pitch.sin()], -1)
        rel = pts - x[:, None, :3]
        for i, ax in enumerate((ax_yaw, ax_pitch, ax_roll)):
            jac[:, :, :, 3 + i] = torch.linalg.cross(ax[:, None].expand_as(rel), rel)
        bq = quat_all[:, self.dof_body]
        axis_w = quat_rotate(bq, self.dof_axis.expand(t_count, -1, -1))
        pivot = pos_all[:, self.dof_body] + quat_rotate(bq, self.dof_anchor.expand(t_count, -1, -1))
        lever = pts[:, :, None, :] - pivot[:, None, :, :]  # (T, M, J, 3)
        jd = torch.linalg.cross(axis_w[:, None].expand_as(lever), lever) * kp.dof_mask[None, :, :, None]
        jac[:, :, :, 6:] = jd.permute(0, 1, 3, 2)
        return jac

    # ------------------------------------------------------------------ IK
    def solve(
        self,
        targets: torch.Tensor,
        weights: torch.Tensor,
        x0: torch.Tensor,
        kp: Keypoints,
        cfg: SolverConfig,
        segments: list[tuple[int, int]] | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """Minimise sum_t sum_m w (p_m(x_t) - target)^2 + smoothness + rest prior, s.t. joint limits."""
        x = x0.clone()
        lo = self.lower + cfg.limit_margin
        hi = self.upper - cfg.limit_margin
        x[:, 6:] = torch.maximum(torch.minimum(x[:, 6:], hi), lo)
        t_count = x.shape[0]
        w_s = torch.full((self.nv,), cfg.smooth_weight, dtype=x.dtype)
        w_s[:6] = cfg.smooth_root_weight
        w_r = torch.zeros(self.nv, dtype=x.dtype)
        w_r[6:] = cfg.rest_weight
        x_rest = torch.zeros(self.nv, dtype=x.dtype)
        x_rest[6:] = self.default
        w3 = weights[:, :, None].expand(-1, -1, 3).reshape(t_count, -1)  # (T, 3M)
        lam = torch.full((t_count,), cfg.damping, dtype=x.dtype)

        def kp_cost(p: torch.Tensor) -> torch.Tensor:
            return (weights * ((p - targets) ** 2).sum(-1)).sum(-1)

        pts, pos_all, quat_all = self.fk(x, kp)
        history = []
        eye = torch.eye(self.nv, dtype=x.dtype)
        for _ in range(cfg.iterations):
            x_bar = gaussian_smooth(x, cfg.smooth_sigma, segments)
            prior = w_s * (x - x_bar) ** 2 + w_r * (x - x_rest) ** 2
            cost = kp_cost(pts) + prior.sum(-1)
            history.append(float(cost.mean()))
            jac = self.jacobian(x, pts, pos_all, quat_all, kp).reshape(t_count, -1, self.nv)
            err = (pts - targets).reshape(t_count, -1)
            jw = jac * w3[:, :, None]
            h = jw.transpose(1, 2) @ jac + torch.diag(w_s + w_r)
            g = (jw * err[:, :, None]).sum(1) + w_s * (x - x_bar) + w_r * (x - x_rest)
            diag = torch.diagonal(h, dim1=1, dim2=2)
            h_lm = h + lam[:, None, None] * (diag[:, :, None] * eye + 1e-9 * eye)
            step = -torch.linalg.solve(h_lm, g.unsqueeze(-1)).squeeze(-1)
            x_new = x + step
            x_new[:, 6:] = torch.maximum(torch.minimum(x_new[:, 6:], hi), lo)
            pts_n, pos_n, quat_n = self.fk(x_new, kp)
            prior_n = w_s * (x_new - x_bar) ** 2 + w_r * (x_new - x_rest) ** 2
            cost_n = kp_cost(pts_n) + prior_n.sum(-1)
            ok = cost_n <= cost
            lam = torch.where(ok, lam * 0.3, lam * 5.0).clamp(1e-7, 1e4)
            x = torch.where(ok[:, None], x_new, x)
            pts = torch.where(ok[:, None, None], pts_n, pts)
            pos_all = torch.where(ok[:, None, None], pos_n, pos_all)
            quat_all = torch.where(ok[:, None, None], quat_n, quat_all)
        return x, {"cost_history": history}


@lru_cache(maxsize=4)
def get_solver(robot: str = "g1_23dof") -> G1Solver:
    """A cached solver per robot variant (building the model takes about a second)."""
    return G1Solver(robot)
