"""Quaternion and rotation helpers. Quaternions are **wxyz**, unit norm, and act on column vectors.

Every function accepts NumPy arrays or torch tensors of shape (..., 4) / (..., 3) and returns the same
kind, so training (torch) and the robot runtime (NumPy) share one implementation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # np.ndarray | torch.Tensor


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(xs: list[Array], axis: int = -1) -> Array:
    if _is_torch(xs[0]):
        import torch

        return torch.stack(xs, dim=axis)
    return np.stack(xs, axis=axis)


def _sqrt(x: Array) -> Array:
    return x.sqrt() if _is_torch(x) else np.sqrt(x)


def _atan2(y: Array, x: Array) -> Array:
    if _is_torch(y):
        import torch

        return torch.atan2(y, x)
    return np.arctan2(y, x)


def _cos(x: Array) -> Array:
    return x.cos() if _is_torch(x) else np.cos(x)


def _sin(x: Array) -> Array:
    return x.sin() if _is_torch(x) else np.sin(x)


def _clip(x: Array, lo: float, hi: float) -> Array:
    return x.clamp(lo, hi) if _is_torch(x) else np.clip(x, lo, hi)


def _where(c: Array, a: Array, b: Array) -> Array:
    if _is_torch(c):
        import torch

        return torch.where(c, a, b)
    return np.where(c, a, b)


def xyzw_to_wxyz(q: Array) -> Array:
    """Reorder an xyzw quaternion (file boundary) to wxyz."""
    return q[..., [3, 0, 1, 2]]


def wxyz_to_xyzw(q: Array) -> Array:
    """Reorder a wxyz quaternion to xyzw (file boundary)."""
    return q[..., [1, 2, 3, 0]]


def quat_mul(a: Array, b: Array) -> Array:
    """Hamilton product a * b."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: Array) -> Array:
    """Conjugate (the inverse of a unit quaternion)."""
    return _stack([q[..., 0], -q[..., 1], -q[..., 2], -q[..., 3]])


def quat_normalize(q: Array) -> Array:
    """Scale to unit norm."""
    n = _sqrt((q * q).sum(-1))[..., None]
    return q / n


def quat_rotate(q: Array, v: Array) -> Array:
    """Rotate vectors v by q (body -> world when q is a body orientation)."""
    w = q[..., 0:1]
    u = q[..., 1:4]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def quat_rotate_inverse(q: Array, v: Array) -> Array:
    """Rotate vectors v by the inverse of q (world -> body)."""
    w = q[..., 0:1]
    u = -q[..., 1:4]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def _cross(a: Array, b: Array) -> Array:
    return _stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ]
    )


def projected_gravity(q: Array) -> Array:
    """Unit gravity (0, 0, -1) expressed in the body frame of orientation q."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return _stack([2 * (w * y - x * z), -2 * (w * x + y * z), -(w * w - x * x - y * y + z * z)])


def projected_gravity_z(q: Array) -> Array:
    """z of :func:`projected_gravity` for a quaternion of any norm (-1 upright, +1 upside down; 0 for q = 0)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    n = w * w + x * x + y * y + z * z
    return -(w * w - x * x - y * y + z * z) / _where(n > 0, n, n * 0 + 1)


def yaw_from_quat(q: Array) -> Array:
    """Heading angle (rotation about world z) of q."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return _atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def heading_from_left(left: Array) -> Array:
    """Heading (rad, about world z) of a frame whose left-pointing axis is ``left`` (..., 3): forward = left x up."""
    return _atan2(-left[..., 0], left[..., 1])


def quat_from_yaw(yaw: Array) -> Array:
    """Rotation by ``yaw`` (rad, any shape, or a float) about world z, (..., 4)."""
    half = 0.5 * (yaw if _is_torch(yaw) or isinstance(yaw, np.ndarray) else np.asarray(yaw, dtype=np.float64))
    zero = half * 0
    return _stack([_cos(half), zero, zero, _sin(half)])


def yaw_quat(q: Array) -> Array:
    """The heading-only part of q (rotation about world z)."""
    return quat_from_yaw(yaw_from_quat(q))


def quat_from_axis_angle(axis: Array, angle: Array) -> Array:
    """Rotation by ``angle`` (rad, (...)) about the unit ``axis`` ((3,) or (..., 3)); smooth at angle 0 (torch
    gradients included), unlike :func:`axis_angle_to_quat` of a rotation vector."""
    half = 0.5 * angle
    s = _sin(half)
    return _stack([_cos(half), axis[..., 0] * s, axis[..., 1] * s, axis[..., 2] * s])


def euler_zyx_to_quat(ypr: Array) -> Array:
    """(..., 3) yaw, pitch, roll (rad) -> the quaternion of Rz(yaw) Ry(pitch) Rx(roll)."""
    h = 0.5 * ypr
    c, s = _cos(h), _sin(h)
    z = c[..., 0] * 0
    qz = _stack([c[..., 0], z, z, s[..., 0]])
    qy = _stack([c[..., 1], z, s[..., 1], z])
    qx = _stack([c[..., 2], s[..., 2], z, z])
    return quat_mul(quat_mul(qz, qy), qx)


def quat_to_rpy(q: Array) -> Array:
    """(..., 3) roll, pitch, yaw (rad) of q = Rz(yaw) Ry(pitch) Rx(roll) (the IMU's ``rpy``; pitch in [-pi/2, pi/2])."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    sp = _clip(2 * (w * y - z * x), -1.0, 1.0)
    return _stack(
        [
            _atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
            sp.arcsin() if _is_torch(sp) else np.arcsin(sp),
            yaw_from_quat(q),
        ]
    )


def axis_rotation_matrix(axis: int, angle: Array) -> Array:
    """Rotation matrices (..., 3, 3) by ``angle`` (rad, (...) or a float) about coordinate axis 0 (x), 1 (y), 2 (z)."""
    a = angle if _is_torch(angle) or isinstance(angle, np.ndarray) else np.asarray(angle, dtype=np.float64)
    c, s = _cos(a), _sin(a)
    zero, one = c * 0, c * 0 + 1
    m = [[one, zero, zero], [zero, one, zero], [zero, zero, one]]
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[i][i], m[j][j], m[i][j], m[j][i] = c, c, -s, s
    return _stack([_stack(row) for row in m], axis=-2)


def angular_velocity(quat: Array, dt: float) -> Array:
    """World-frame angular velocity (T, ..., 3) of orientations (T, ..., 4) sampled every ``dt`` s (central
    differences of the relative rotation, one-sided at both ends)."""
    t = quat.shape[0]
    i = np.arange(t)
    prev, nxt = np.clip(i - 1, 0, t - 1), np.clip(i + 1, 0, t - 1)
    span = (nxt - prev) * dt
    d = quat_to_axis_angle(quat_mul(quat[nxt], quat_conj(quat[prev])))
    span = span.reshape((t,) + (1,) * (d.ndim - 1))
    return d / (span if not _is_torch(d) else d.new_tensor(span))


def axis_angle_to_quat(aa: Array) -> Array:
    """Rotation vector (axis * angle, rad) to quaternion."""
    angle = _sqrt((aa * aa).sum(-1))
    half = 0.5 * angle
    small = angle < 1e-8
    if _is_torch(aa):
        s = _where(small, 0.5 - angle * angle / 48.0, half.sin() / _where(small, angle * 0 + 1, angle))
        c = half.cos()
    else:
        safe = np.where(small, 1.0, angle)
        s = np.where(small, 0.5 - angle * angle / 48.0, np.sin(half) / safe)
        c = np.cos(half)
    return _stack([c, aa[..., 0] * s, aa[..., 1] * s, aa[..., 2] * s])


def quat_to_axis_angle(q: Array) -> Array:
    """Quaternion to rotation vector (angle in [0, pi])."""
    q = q * _where(q[..., 0:1] < 0, -1.0 + 0 * q[..., 0:1], 1.0 + 0 * q[..., 0:1])
    sin_half = _sqrt((q[..., 1:4] ** 2).sum(-1))
    angle = 2.0 * _atan2(sin_half, q[..., 0])
    small = sin_half < 1e-8
    scale = _where(small, 2.0 + 0 * angle, angle / _where(small, 1.0 + 0 * sin_half, sin_half))
    return q[..., 1:4] * scale[..., None]


def quat_angle(a: Array, b: Array) -> Array:
    """Angle (rad, in [0, pi]) of the rotation between a and b."""
    d = _clip(abs((a * b).sum(-1)), 0.0, 1.0)
    return 2.0 * (d.arccos() if _is_torch(d) else np.arccos(d))


def quat_to_matrix(q: Array) -> Array:
    """Rotation matrix (..., 3, 3) of q."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        _stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
        _stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
        _stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
    ]
    return _stack(rows, axis=-2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) to wxyz quaternions with w >= 0 (NumPy)."""
    from scipy.spatial.transform import Rotation

    shape = m.shape[:-2]
    q = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat()
    q = xyzw_to_wxyz(q)
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(*shape, 4)


def slerp(q0: Array, q1: Array, t: Array) -> Array:
    """Spherical interpolation between q0 and q1 at fractions t (broadcast over the leading axes)."""
    dot = (q0 * q1).sum(-1)
    neg = dot < 0
    q1 = _where(neg[..., None], -q1, q1)
    dot = abs(dot)
    dot = _clip(dot, -1.0, 1.0)
    t = t[..., None] if t.ndim == dot.ndim else t
    if _is_torch(dot):
        theta = dot.arccos()
        sin_t = theta.sin()
        lin = sin_t < 1e-6
        safe = _where(lin, sin_t * 0 + 1, sin_t)
        w0 = _where(lin[..., None], 1 - t, ((1 - t) * theta[..., None]).sin() / safe[..., None])
        w1 = _where(lin[..., None], t, (t * theta[..., None]).sin() / safe[..., None])
    else:
        theta = np.arccos(dot)
        sin_t = np.sin(theta)
        lin = sin_t < 1e-6
        safe = np.where(lin, 1.0, sin_t)
        w0 = np.where(lin[..., None], 1 - t, np.sin((1 - t) * theta[..., None]) / safe[..., None])
        w1 = np.where(lin[..., None], t, np.sin(t * theta[..., None]) / safe[..., None])
    return quat_normalize(w0 * q0 + w1 * q1)


def wrap_to_pi(a: Array) -> Array:
    """Wrap angles to (-pi, pi]."""
    return _atan2(a.sin(), a.cos()) if _is_torch(a) else np.arctan2(np.sin(a), np.cos(a))
