"""Observation layout asap_v1: offsets, terms on hand-computed states, history semantics, numpy/torch parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asap.obs import ObsBuilder, get_layout, privileged_terms, proprio_terms, world_to_base
from asap.robot.spec import get_spec

J = 23


def test_asap_v1_dims_and_offsets_match_reference_table():
    lay = get_layout("asap_v1")
    assert lay.dim("actor", J) == 380
    assert lay.dim("critic", J) == 557
    actor = {t: (o, d) for t, o, d in lay.table("actor", J)}
    assert actor == {
        "actions": (0, 23), "base_ang_vel": (23, 3), "dof_pos": (26, 23), "dof_vel": (49, 23),
        "history_actor": (72, 304), "projected_gravity": (376, 3), "ref_motion_phase": (379, 1),
    }  # fmt: skip
    hist = {t: (o, d) for t, o, d in lay.history_table("actor", J)}
    assert hist == {
        "actions": (72, 92), "base_ang_vel": (164, 12), "dof_pos": (176, 92), "dof_vel": (268, 92),
        "projected_gravity": (360, 12), "ref_motion_phase": (372, 4),
    }  # fmt: skip
    critic = [t for t, _, _ in lay.table("critic", J)]
    assert critic == sorted(critic)
    assert dict((t, d) for t, _, d in lay.table("critic", J))["history_critic"] == 316
    assert lay.to_dict(J)["groups"]["actor"]["dim"] == 380


def test_unknown_layout_is_an_error():
    with pytest.raises(ValueError, match="unknown observation layout"):
        get_layout("nope")


def _state(n=1, seed=0):
    rng = np.random.default_rng(seed)
    half = 0.3 / 2
    quat = np.tile([math.cos(half), math.sin(half), 0.0, 0.0], (n, 1))  # roll 0.3 rad about x
    return dict(
        root_quat=quat,
        base_ang_vel=rng.normal(size=(n, 3)),
        dof_pos=rng.normal(size=(n, J)),
        dof_vel=rng.normal(size=(n, J)),
        default_dof_pos=get_spec("g1_23dof").default_pos,
        last_action=rng.normal(size=(n, J)),
        phase=np.full(n, 0.25),
    )


def test_proprio_terms_hand_computed():
    s = _state()
    t = proprio_terms(**s)
    # roll by +0.3 about x: gravity (0,0,-1) in the body frame is (0, -sin 0.3, -cos 0.3)
    np.testing.assert_allclose(t["projected_gravity"][0], [0.0, -math.sin(0.3), -math.cos(0.3)], atol=1e-12)
    np.testing.assert_allclose(t["dof_pos"], s["dof_pos"] - s["default_dof_pos"])
    assert t["ref_motion_phase"].shape == (1, 1) and t["ref_motion_phase"][0, 0] == 0.25
    # world -> base of a yaw of 90 deg: world x becomes body -y
    q = np.array([[math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]])
    np.testing.assert_allclose(world_to_base(q, np.array([[1.0, 0, 0]])), [[0, -1, 0]], atol=1e-12)


def test_actor_obs_values_scales_and_order():
    s = _state()
    b = ObsBuilder("asap_v1", num_envs=1, num_joints=J, groups=("actor",))
    obs = b.build(proprio_terms(**s))["actor"][0]
    assert obs.shape == (380,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0:23], s["last_action"][0], rtol=1e-6)
    np.testing.assert_allclose(obs[23:26], 0.25 * s["base_ang_vel"][0], rtol=1e-6)
    np.testing.assert_allclose(obs[26:49], s["dof_pos"][0] - s["default_dof_pos"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs[49:72], 0.05 * s["dof_vel"][0], rtol=1e-6)
    assert np.all(obs[72:376] == 0)  # history starts empty: it excludes the current step
    np.testing.assert_allclose(obs[376:379], [0.0, -math.sin(0.3), -math.cos(0.3)], rtol=1e-6)
    assert obs[379] == pytest.approx(0.25)


def test_history_newest_first_excludes_current_and_resets():
    b = ObsBuilder("asap_v1", num_envs=2, num_joints=J, groups=("actor",))
    steps = [_state(2, seed=k) for k in range(6)]
    obs = [b.build(proprio_terms(**s))["actor"] for s in steps]
    # at step 5 the history holds steps 4, 3, 2, 1 (newest first)
    o = obs[5][0]
    for k, src in enumerate([4, 3, 2, 1]):
        np.testing.assert_allclose(o[72 + 23 * k : 72 + 23 * (k + 1)], steps[src]["last_action"][0], rtol=1e-6)
        np.testing.assert_allclose(o[164 + 3 * k : 164 + 3 * (k + 1)], 0.25 * steps[src]["base_ang_vel"][0], rtol=1e-6)
        np.testing.assert_allclose(o[268 + 23 * k : 268 + 23 * (k + 1)], 0.05 * steps[src]["dof_vel"][0], rtol=1e-6)
        assert o[372 + k] == pytest.approx(0.25)
    # resetting env 1 zeroes only its history
    b.reset(np.array([1]))
    o = b.build(proprio_terms(**_state(2, seed=9)))["actor"]
    assert np.all(o[1, 72:376] == 0)
    np.testing.assert_allclose(o[0, 72:95], steps[5]["last_action"][0], rtol=1e-6)


def test_clip_at_100():
    s = _state()
    s["dof_vel"] = np.full((1, J), 1e5)
    obs = ObsBuilder(num_envs=1, groups=("actor",)).build(proprio_terms(**s))["actor"][0]
    assert np.all(obs[49:72] == 100.0)


def test_noise_is_uniform_added_before_scaling():
    n = 4000
    s = _state(n)
    s["base_ang_vel"] = np.zeros((n, 3))
    s["dof_vel"] = np.zeros((n, J))
    b = ObsBuilder(num_envs=n, groups=("actor",), noise_level=1.0, seed=1)
    o = b.build(proprio_terms(**s))["actor"]
    ang = o[:, 23:26]
    assert np.abs(ang).max() <= 0.3 * 0.25 + 1e-6 and np.abs(ang).max() > 0.07  # U(-0.3,0.3) then *0.25
    vel = o[:, 49:72]
    assert np.abs(vel).max() <= 1.0 * 0.05 + 1e-6 and vel.std() == pytest.approx(0.05 / math.sqrt(3), rel=0.05)
    assert np.all(o[:, 0:23] == s["last_action"].astype(np.float32))  # actions carry no noise


def test_critic_privileged_terms_heading_frame():
    # robot root at (1, 0, 0.8) turned 90 deg in yaw; one reference body 1 m ahead in world x
    yaw = math.pi / 2
    q = np.array([[math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]])
    root = np.array([[1.0, 0.0, 0.8]])
    body = np.zeros((1, 27, 3))
    ref = np.zeros((1, 27, 3))
    ref[0, 0] = [2.0, 0.0, 0.8]
    body[0, 0] = [1.0, 0.0, 0.8]
    t = privileged_terms(root, q, body, ref)
    # world +x is body -y for a robot facing +y
    np.testing.assert_allclose(t["dif_local_rigid_body_pos"][0, 0:3], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(t["local_ref_rigid_body_pos"][0, 0:3], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(t["local_ref_rigid_body_pos"][0, 3:6], [0, 1, -0.8], atol=1e-12)  # (0,0,0)-root


def test_critic_obs_layout_and_numpy_torch_parity():
    s = _state(3)
    raw = proprio_terms(**s, base_lin_vel=np.ones((3, 3)))
    rng = np.random.default_rng(3)
    raw.update(privileged_terms(rng.normal(size=(3, 3)), s["root_quat"], rng.normal(size=(3, 27, 3)),
                                rng.normal(size=(3, 27, 3))))  # fmt: skip
    bn = ObsBuilder(num_envs=3, backend="numpy")
    bt = ObsBuilder(num_envs=3, backend="torch")
    for _ in range(3):
        on = bn.build(raw)
        ot = bt.build({k: torch.as_tensor(v) for k, v in raw.items()})
    assert on["critic"].shape == (3, 557)
    for g in ("actor", "critic"):
        np.testing.assert_allclose(ot[g].numpy(), on[g], rtol=1e-6, atol=1e-6)
    c = on["critic"][0]
    np.testing.assert_allclose(c[26:29], 2.0 * np.ones(3))  # base_lin_vel x2 after actions, base_ang_vel
    np.testing.assert_allclose(c[29:110], raw["dif_local_rigid_body_pos"][0], rtol=1e-5, atol=1e-6)


def test_missing_term_and_shape_errors():
    b = ObsBuilder(num_envs=1, groups=("actor",))
    raw = proprio_terms(**_state())
    del raw["dof_vel"]
    with pytest.raises(KeyError, match="dof_vel"):
        b.build(raw)
    raw = proprio_terms(**_state())
    raw["dof_pos"] = np.zeros((1, 22))
    with pytest.raises(ValueError, match="dof_pos"):
        b.build(raw)
