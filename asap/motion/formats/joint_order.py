"""Joint orders of files that carry no joint names, and the forward-kinematics check that tells them apart.

A file without names (mjlab/BeyondMimic npz, Unitree csv, GMR pkl) holds its joint columns in the order of the
simulator that wrote it. The G1's known orders, :data:`asap.robot.spec.JOINT_ORDERS`, are two walks of one
kinematic tree, with all joints or without the wrists:

=================  ======  ====================================================================================
name               joints  order
=================  ======  ====================================================================================
``unitree``        29      depth-first (Unitree's motor order, MuJoCo/mjlab, GMR): ``MOTOR_NAMES``
``isaaclab``       29      breadth-first (IsaacLab/PhysX, BeyondMimic): ``ISAACLAB_JOINT_ORDER``
``unitree_23``     23      depth-first without the six wrist joints (ASAP's 23-DoF G1, IsaacGym)
``isaaclab_23``    23      breadth-first without the six wrist joints
=================  ======  ====================================================================================

When the file also holds world body poses (pelvis first, then one body per joint), :func:`check_joint_order`
runs forward kinematics of the joint columns in each order of their count from the stored pelvis pose and keeps the
order whose bodies land on the stored ones (in depth-first or breadth-first body order, quaternions wxyz or xyzw);
when none does, the file is refused in one line. Bodies the tree walk does not know (fixed links some descriptions
keep) are allowed: the check then matches each computed body to the nearest stored one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from asap.motion.motion import MotionFormatError
from asap.robot.spec import JOINT_ORDERS, MOTOR_NAMES
from asap.utils.rotations import quat_angle

POS_TOL = 0.01
"""Largest mean body-position error (m, worst checked frame) for a joint order to fit the stored body poses."""
ROT_TOL = 0.05
"""Largest mean body-orientation error (rad, worst checked frame) for a joint order to fit (exact body order)."""
MAX_CHECK_FRAMES = 64
"""Frames (evenly spaced) used by the check; enough to see every joint move, cheap for long clips."""


def orders_for_count(count: int) -> list[str]:
    """Names of the known orders with ``count`` joints, default first."""
    return [k for k, v in JOINT_ORDERS.items() if len(v) == count]


def default_order(count: int, what: str) -> str:
    """The default order for ``count`` joint columns; one-line error when the G1 has no such count."""
    names = orders_for_count(count)
    if not names:
        counts = sorted({len(v) for v in JOINT_ORDERS.values()})
        raise MotionFormatError(f"{what} has {count} joint columns; a G1 motion has {' or '.join(map(str, counts))}")
    return names[0]


def order_names(name: str, count: int, what: str) -> tuple[str, ...]:
    """Joint names of a known order, checked against the file's column count."""
    if name not in JOINT_ORDERS:
        raise MotionFormatError(f"unknown joint order {name!r}; choose one of {list(JOINT_ORDERS)}")
    names = JOINT_ORDERS[name]
    if len(names) != count:
        raise MotionFormatError(
            f"{what} has {count} joint columns but joint order {name!r} has {len(names)}; "
            f"orders with {count}: {orders_for_count(count) or 'none'}"
        )
    return names


@cache
def _joint_bodies() -> dict[str, str]:
    """The body each hinge joint moves, from the 29-DoF model."""
    from asap.motion.formats._common import kinematic_model

    m = kinematic_model("g1_29dof")
    return {n: m.body(int(m.jnt_bodyid[m.joint(n).id])).name for n in MOTOR_NAMES}


def body_order(joint_order: str) -> tuple[str, ...]:
    """Bodies in the traversal of ``joint_order``: the pelvis, then the body of each joint in that order."""
    jb = _joint_bodies()
    return ("pelvis", *(jb[n] for n in JOINT_ORDERS[joint_order]))


@dataclass
class OrderCheck:
    """Result of :func:`check_joint_order`."""

    order: str
    """Joint order chosen (a key of :data:`JOINT_ORDERS`)."""
    body_order: str
    """How the stored bodies were matched: the name of an order, or ``nearest`` (file with extra bodies)."""
    errors_m: dict[str, float]
    """Mean body-position error (m, worst checked frame) of every order tried."""
    quat_order: str = "wxyz"
    """Order of the stored body quaternions that fits (``xyzw`` files are read converted)."""

    def meta(self) -> dict[str, object]:
        """Entries for ``Motion.meta``."""
        return {
            "joint_order": self.order,
            "joint_order_check": {
                "method": "forward kinematics against stored body poses",
                "body_order": self.body_order,
                "quat_order": self.quat_order,
                "error_m": {k: round(v, 6) for k, v in self.errors_m.items()},
            },
        }


def _fk(joint_pos: np.ndarray, order: str, root_pos: np.ndarray, root_quat: np.ndarray) -> dict[str, np.ndarray]:
    """World positions and orientations of the 29-DoF G1's bodies, by name (missing joints at 0)."""
    import torch

    from asap.robot.kinematics import shared_kinematics

    kin = shared_kinematics("g1_29dof")
    spec = kin.spec
    q = np.zeros((joint_pos.shape[0], spec.num_joints))
    col = {n: i for i, n in enumerate(spec.joint_names)}
    for i, n in enumerate(JOINT_ORDERS[order]):
        q[:, col[n]] = joint_pos[:, i]
    with torch.no_grad():
        p, r = kin.forward_all(*(torch.as_tensor(x, dtype=torch.float64) for x in (root_pos, root_quat, q)))
    return {"names": np.array(kin.all_body_names), "pos": p.numpy(), "quat": r.numpy()}


def check_joint_order(
    joint_pos: np.ndarray, body_pos: np.ndarray, body_quat: np.ndarray | None, what: str
) -> OrderCheck:
    """Pick the order of nameless joint columns from the stored world body poses, or refuse in one line.

    ``joint_pos`` (T, J) rad; ``body_pos`` (T, B, 3) m and ``body_quat`` (T, B, 4) wxyz world poses with the
    pelvis first. Every known order with J joints is tried against the bodies in depth-first and breadth-first
    order, with the stored quaternions read wxyz and (the usual trap) xyzw (position and orientation errors
    below :data:`POS_TOL` / :data:`ROT_TOL`); a file with more bodies than the tree walk knows is matched body by
    body to the nearest stored position. Raises
    :class:`MotionFormatError` when no order fits, or when the file has fewer bodies than the robot.
    """
    count = joint_pos.shape[1]
    default_order(count, what)
    frames = np.unique(np.linspace(0, joint_pos.shape[0] - 1, MAX_CHECK_FRAMES).round().astype(int))
    jp, bp = joint_pos[frames], body_pos[frames]
    bq = body_quat[frames] if body_quat is not None else None
    candidates = orders_for_count(count)
    quat_orders = ("wxyz", "xyzw") if bq is not None else ("wxyz",)
    errors: dict[str, float] = {}
    fits: list[tuple[float, int, int, str, str, str]] = []  # error, preferences (defaults first), orders, body walk
    for order in candidates:
        best = np.inf
        for qo in quat_orders:
            qs = None if bq is None else bq if qo == "wxyz" else bq[..., [3, 0, 1, 2]]
            root = qs[:, 0] if qs is not None else np.tile([1.0, 0, 0, 0], (len(frames), 1))
            fk = _fk(jp, order, bp[:, 0], root)
            index = {str(n): i for i, n in enumerate(fk["names"])}
            pref = (candidates.index(order), quat_orders.index(qo))
            walks = list(dict.fromkeys(candidates + orders_for_count(bp.shape[1] - 1)))
            walks = [w for w in walks if len(body_order(w)) == bp.shape[1]]
            for walk in walks:
                idx = [index[b] for b in body_order(walk)]
                pos_err = float(np.linalg.norm(fk["pos"][:, idx] - bp, axis=-1).mean(-1).max())
                rot_err = 0.0 if qs is None else float(quat_angle(fk["quat"][:, idx], qs).mean(-1).max())
                best = min(best, pos_err)
                if pos_err < POS_TOL and rot_err < ROT_TOL:
                    fits.append((pos_err, *pref, order, qo, walk))
            if not walks:  # the stored bodies follow no known walk: nearest stored body per computed one
                bodies = body_order(order)
                if bp.shape[1] < len(bodies):
                    raise MotionFormatError(
                        f"{what}: {bp.shape[1]} stored bodies, fewer than the {len(bodies)} of a {count}-joint G1, "
                        f"so the joint order cannot be checked; pass --joint-order ({', '.join(candidates)})"
                    )
                pos = fk["pos"][:, [index[b] for b in bodies]]
                err = float(np.linalg.norm(pos[:, :, None] - bp[:, None], axis=-1).min(-1).mean(-1).max())
                best = min(best, err)
                if err < POS_TOL:
                    fits.append((err, *pref, order, qo, "nearest"))
        errors[order] = best
    if not fits:
        tried = ", ".join(f"{k} {100 * v:.1f} cm" for k, v in errors.items())
        raise MotionFormatError(
            f"{what}: the joint columns fit no known joint order (forward kinematics misses the stored body poses "
            f"by {tried}); pass --joint-order ({', '.join(candidates)}) if you know it"
        )
    *_, order, quat_order, walk = min(fits)
    return OrderCheck(order=order, body_order=walk, errors_m=errors, quat_order=quat_order)
