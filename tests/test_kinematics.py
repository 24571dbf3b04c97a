"""Torch FK agrees with MuJoCo's kinematics for random poses."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from asap.robot.kinematics import G1Kinematics
from asap.robot.model import build_model
from asap.robot.spec import get_spec
from asap.utils.rotations import quat_normalize


@pytest.mark.parametrize("variant", ["g1_23dof", "g1_29dof"])
def test_fk_matches_mujoco(variant):
    rs = get_spec(variant)
    model = build_model(variant)
    kin = G1Kinematics(variant, model=model, dtype=torch.float64)
    rng = np.random.default_rng(0)
    n = 5
    root_pos = rng.normal(size=(n, 3))
    root_quat = quat_normalize(rng.normal(size=(n, 4)))
    dof = rng.uniform(rs.pos_lower, rs.pos_upper, size=(n, rs.num_joints))
    pos, quat = kin.forward(torch.tensor(root_pos), torch.tensor(root_quat), torch.tensor(dof))
    d = mujoco.MjData(model)
    for i in range(n):
        d.qpos[:3], d.qpos[3:7] = root_pos[i], root_quat[i]
        for j, name in enumerate(rs.joint_names):
            d.qpos[model.joint(name).qposadr[0]] = dof[i, j]
        mujoco.mj_kinematics(model, d)
        for b, name in enumerate(rs.body_names):
            np.testing.assert_allclose(pos[i, b].numpy(), d.body(name).xpos, atol=1e-9)
            q_ref = d.body(name).xquat
            assert abs(abs(np.dot(quat[i, b].numpy(), q_ref)) - 1) < 1e-9


def test_fk_is_differentiable_and_batched():
    kin = G1Kinematics("g1_23dof")
    dof = torch.zeros(2, 7, 23, requires_grad=True)
    root = torch.zeros(2, 7, 3)
    quat = torch.tensor([1.0, 0, 0, 0]).expand(2, 7, 4)
    pos, _ = kin.forward(root, quat, dof)
    assert pos.shape == (2, 7, 27, 3)
    pos[..., 24, :].sum().backward()  # the left hand depends on the left arm joints
    g = dof.grad[0, 0]
    assert g[15:19].abs().sum() > 0 and g[0:6].abs().sum() == 0
