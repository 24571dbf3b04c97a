"""asap.utils.rotations: the one home of rotation math (NumPy and torch alike, checked against SciPy)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from asap.utils import rotations as R

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)


def _wxyz(rot: Rotation) -> np.ndarray:
    return R.xyzw_to_wxyz(rot.as_quat())


def _same_rotation(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(np.abs((a * b).sum(-1)), 1.0, atol=1e-12)


def test_constructors_match_scipy_in_numpy_and_torch():
    axis = RNG.normal(size=(5, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = RNG.uniform(-3, 3, 5)
    q = R.quat_from_axis_angle(axis, angle)
    _same_rotation(q, _wxyz(Rotation.from_rotvec(axis * angle[:, None])))
    np.testing.assert_allclose(R.quat_from_axis_angle(torch.from_numpy(axis), torch.from_numpy(angle)).numpy(), q)
    # smooth at zero (the FK's joints start at 0): finite gradients, unlike a rotation vector's norm
    a0 = torch.zeros(3, requires_grad=True)
    R.quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]), a0).sum().backward()
    assert torch.isfinite(a0.grad).all()

    ypr = RNG.uniform(-1.4, 1.4, (6, 3))
    q = R.euler_zyx_to_quat(ypr)
    _same_rotation(q, _wxyz(Rotation.from_euler("ZYX", ypr)))
    np.testing.assert_allclose(R.euler_zyx_to_quat(torch.from_numpy(ypr)).numpy(), q)
    rpy = R.quat_to_rpy(q)
    np.testing.assert_allclose(rpy, ypr[:, ::-1], atol=1e-12)
    np.testing.assert_allclose(R.quat_to_rpy(torch.from_numpy(q)).numpy(), rpy)

    yaw = RNG.uniform(-3, 3, 4)
    _same_rotation(R.quat_from_yaw(yaw), _wxyz(Rotation.from_euler("z", yaw[:, None])))
    assert R.quat_from_yaw(0.5).shape == (4,)
    np.testing.assert_allclose(R.yaw_quat(q), R.quat_from_yaw(ypr[:, 0]), atol=1e-12)

    for k, name in enumerate("xyz"):
        np.testing.assert_allclose(R.axis_rotation_matrix(k, yaw), Rotation.from_euler(name, yaw[:, None]).as_matrix())
        np.testing.assert_allclose(R.axis_rotation_matrix(k, torch.from_numpy(yaw)).numpy(),
                                   R.axis_rotation_matrix(k, yaw))  # fmt: skip
    assert R.axis_rotation_matrix(2, 0.3).shape == (3, 3)

    left = np.stack([-np.sin(yaw), np.cos(yaw), RNG.normal(size=4)], -1)  # the y axis turned by yaw
    np.testing.assert_allclose(R.heading_from_left(left), yaw, atol=1e-12)


def test_gravity_and_angular_velocity():
    q = _wxyz(Rotation.random(8, random_state=1))
    np.testing.assert_allclose(R.projected_gravity_z(q), R.projected_gravity(q)[:, 2], atol=1e-12)
    np.testing.assert_allclose(R.projected_gravity_z(3.0 * q), R.projected_gravity_z(q), atol=1e-12)  # any norm
    assert float(R.projected_gravity_z(np.array([1.0, 0, 0, 0]))) == -1.0
    assert float(R.projected_gravity_z(np.zeros(4))) == 0.0

    dt, omega = 0.02, np.array([0.3, -1.2, 0.7])
    t = np.arange(20) * dt
    traj = R.quat_mul(_wxyz(Rotation.from_rotvec(t[:, None] * omega)), np.array([0.9, 0.1, -0.3, 0.2]) / 0.98)
    w = R.angular_velocity(R.quat_normalize(traj), dt)
    np.testing.assert_allclose(w, np.broadcast_to(omega, w.shape), atol=1e-9)
    np.testing.assert_allclose(R.angular_velocity(torch.from_numpy(R.quat_normalize(traj)), dt).numpy(), w)


ROTATION_NAME = re.compile(
    r"(^|_)(quat|slerp|euler|axis_angle|rotvec|rpy|yaw)|rotation_matrix|^_?rot_[xyz]$|projected_gravity|"
    r"angular_velocity|heading"
)
NOT_HELPERS = {
    ("asap/motion/formats/_common.py", "normalize_quat"): "file-boundary validation with a MotionFormatError",
    ("envs/tracking/rewards.py", "feet_heading"): "a reward term (calls yaw_from_quat, wrap_to_pi)",
}


def test_rotation_helpers_live_in_one_module():
    """Rotation math is written once, in asap/utils/rotations.py (deploy imports it too: NumPy only)."""
    found = []
    for package in ("asap", "envs", "deploy", "scripts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "asap/utils/rotations.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and ROTATION_NAME.search(node.name):
                    if (rel, node.name) not in NOT_HELPERS:
                        found.append(f"{rel}:{node.lineno} {node.name}")
    assert not found, f"rotation helpers outside asap/utils/rotations.py: {found}"
    source = (ROOT / "asap/utils/rotations.py").read_text()
    assert not re.search(r"^import torch|^from torch", source, re.M)  # deploy may import it


@pytest.mark.parametrize("module", ["deploy.safety", "deploy.controller", "deploy.virtual_g1"])
def test_deploy_uses_the_shared_helpers(module):
    import importlib

    mod = importlib.import_module(module)
    for name in ("projected_gravity_z", "quat_to_rpy", "quat_rotate"):
        if hasattr(mod, name):
            assert getattr(mod, name) is getattr(R, name)
