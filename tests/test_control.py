"""The shared control rule (asap.control): target shaping, steps per clip, phase, logged-action alignment."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch

from asap.contract import ContractError, PolicyContract
from asap.control import ACTION_ALIGNMENT, TargetShaping, motion_steps, policy_phase, shape_targets
from asap.motion.formats.asap_pkl import read_asap_pkl, write_asap_pkl
from asap.motion.motion import Motion, MotionFormatError
from asap.motion.synthetic import synthetic_motion
from asap.robot.spec import get_spec

RS = get_spec("g1_23dof")
ANKLE_ROLL = RS.joint_names.index("left_ankle_roll_joint")  # limits +-0.2618 rad, default 0


def _shape(action, previous, shaping, lib=np):
    f = (lambda x: torch.as_tensor(x, dtype=torch.float64)) if lib is torch else np.asarray
    out = shape_targets(f(action), None if previous is None else f(previous), f(RS.default_pos), RS.action_scale,
                        f(RS.pos_lower), f(RS.pos_upper), shaping)  # fmt: skip
    return [np.asarray(x) for x in out]


@pytest.mark.parametrize("lib", [np, torch], ids=["numpy", "torch"])
def test_shape_targets_clip_scale_rate_limit_clamp(lib) -> None:
    a = np.zeros(RS.num_joints)
    a[ANKLE_ROLL] = 4.0  # 1 rad past the ankle roll's 0.26 rad stop
    a[0] = 1000.0  # clipped to 100
    prev = RS.default_pos.copy()
    clipped, unshaped, target = _shape(a, prev, TargetShaping(), lib)
    assert clipped[0] == 100.0 and unshaped[ANKLE_ROLL] == pytest.approx(1.0)
    assert target[ANKLE_ROLL] == pytest.approx(RS.pos_upper[ANKLE_ROLL])  # rate limit 0.5, then the clamp at 0.26
    assert target[0] == pytest.approx(prev[0] + 0.5)  # hip pitch: rate-limited to 0.5 rad per step
    _, _, t = _shape(a, prev, TargetShaping(clamp=True, max_step=0.0), lib)
    assert t[0] == pytest.approx(RS.pos_upper[0]) and t[ANKLE_ROLL] == pytest.approx(RS.pos_upper[ANKLE_ROLL])
    _, _, t = _shape(a, prev, TargetShaping(clamp=False, max_step=0.0), lib)  # the reference's training rule
    np.testing.assert_allclose(t, RS.default_pos + 0.25 * np.clip(a, -100, 100))
    _, _, t = _shape(a, None, TargetShaping(), lib)  # no previous target: clamp only
    assert t[0] == pytest.approx(RS.pos_upper[0])


def test_shape_targets_numpy_equals_torch() -> None:
    rng = np.random.default_rng(0)
    for shaping in (TargetShaping(), TargetShaping(clamp=False), TargetShaping(max_step=0.1)):
        a, prev = rng.normal(scale=3.0, size=(8, RS.num_joints)), RS.default_pos + rng.normal(size=(8, RS.num_joints))
        for x, y in zip(_shape(a, prev, shaping, np), _shape(a, prev, shaping, torch), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-12)


def test_shaping_is_in_the_contract_metadata() -> None:
    c = PolicyContract.for_robot("g1_23dof", "asap_v1", "m", 1.0, shaping=TargetShaping(clamp=False, max_step=0.0))
    meta = c.to_metadata()
    assert meta["target_clamp"] == "0" and float(meta["target_max_step"]) == 0.0
    assert PolicyContract.from_metadata(meta).shaping == TargetShaping(clamp=False, max_step=0.0)
    legacy = {k: v for k, v in meta.items() if not k.startswith("target_")}
    assert PolicyContract.from_metadata(legacy).shaping == TargetShaping()  # what the runtime always applied
    with pytest.raises(ContractError, match="target_clamp"):
        PolicyContract.from_metadata({**meta, "target_clamp": "maybe"})
    with pytest.raises(ContractError, match="target_max_step"):
        PolicyContract.from_metadata({**meta, "target_max_step": "-1"})


def test_training_uses_the_runtime_shaping_by_default() -> None:
    from envs.tracking.config import TrackingEnvConfig

    assert TrackingEnvConfig().target_shaping == TargetShaping()


def test_env_sends_shaped_targets(tmp_path) -> None:
    """The training env's simulator receives clamped, rate-limited targets (it sent default + 0.25 a before)."""
    from asap.motion.motionlib import MotionLib
    from asap.sim.base import SimConfig, make_simulator
    from envs.tracking.config import TrackingEnvConfig
    from envs.tracking.env import TrackingEnv

    lib = MotionLib([synthetic_motion(num_frames=26, speed=(0.0, 0.0, 0.0), yaw_rate=0.0, amplitude=0.05)])
    sim = make_simulator(SimConfig(num_envs=2, threads=1))
    try:
        env = TrackingEnv(TrackingEnvConfig(obs_noise_level=0.0), sim, lib)
        env.set_eval(True)
        env.reset_to(torch.zeros(2, dtype=torch.long), torch.zeros(2))
        q0, _ = sim.get_joint_state()
        a = torch.zeros(2, RS.num_joints)
        a[:, ANKLE_ROLL] = 4.0
        a[:, 0] = 8.0
        env.step(a)
        t = env.targets
        assert torch.allclose(t[:, ANKLE_ROLL], torch.tensor(RS.pos_upper[ANKLE_ROLL], dtype=torch.float32))
        assert torch.allclose(t[:, 0], q0[:, 0] + 0.5, atol=1e-6)  # rate limit against the initial pose
        assert torch.allclose(env.actions[:, ANKLE_ROLL], torch.tensor(4.0))  # the obs keeps the clipped action
    finally:
        sim.close()


def test_motion_steps_on_a_30fps_clip() -> None:
    cr7 = 118 / 30  # CR7: 119 frames at 30 fps
    assert motion_steps(cr7, 0.02) == 197  # the robot ran floor(196.67) = 196 before
    assert int(np.floor(cr7 / 0.02)) == 196
    np.testing.assert_array_equal(motion_steps(np.array([cr7, 4.0, 0.01]), 0.02), [197, 200, 1])
    ts = motion_steps(torch.tensor([cr7, cr7], dtype=torch.float32), 0.02, torch.tensor([0.0, 3.9]))
    assert ts.tolist() == [197, 2] and ts.dtype == torch.long
    assert motion_steps(0.5, 0.02, 0.44) == 3  # 3 steps to the end of a 0.5 s clip started at 0.44 s
    # the contract (runtime) and the training env's time-out count the same: one helper
    m = synthetic_motion(num_frames=119, fps=30.0)
    c = PolicyContract.for_robot("g1_23dof", "asap_v1", "cr7_like", m.duration)
    assert c.motion_steps == 197


def test_policy_phase_is_clipped() -> None:
    assert policy_phase(0, 0.02, 1.0) == pytest.approx(0.02)
    assert policy_phase(196, 0.02, 118 / 30) == 1.0  # the last step of CR7 is past the end: clipped
    ph = policy_phase(torch.tensor([0, 196]), 0.02, torch.tensor([1.0, 118 / 30]), torch.tensor([0.5, 0.0]))
    assert torch.allclose(ph, torch.tensor([0.52, 1.0]))


def test_motion_with_action_must_declare_its_alignment(tmp_path) -> None:
    m = synthetic_motion(num_frames=10, action=True)
    assert m.meta["action_alignment"] == ACTION_ALIGNMENT
    p = m.save(tmp_path / "ok.npz")
    assert Motion.load(p).action is not None
    bad = Motion(**{**m.__dict__, "meta": {"source": "old asap collect"}})
    with pytest.raises(MotionFormatError, match="action alignment missing") as e:
        bad.save(tmp_path / "bad.npz")
    assert "\n" not in str(e.value)
    data = dict(np.load(p))
    data["meta"] = np.array('{"action_alignment": "action[f] was applied during (t[f-1], t[f]]"}')
    np.savez(tmp_path / "old.npz", **data)
    with pytest.raises(MotionFormatError, match=r"old\.npz: action alignment 'action\[f\] was applied"):
        Motion.load(tmp_path / "old.npz")
    Motion(**{**m.__dict__, "action": None, "meta": {}}).check()  # no action: nothing to declare


def test_reference_pkl_actions_are_shifted_at_the_boundary(tmp_path) -> None:
    """The reference stores in frame f the action applied before it; ours the one applied after it."""
    m = synthetic_motion(num_frames=6, action=True)
    p = write_asap_pkl(m, tmp_path / "a.pkl")
    raw = joblib.load(p)["a"]["action"]
    np.testing.assert_allclose(raw[1:], m.action[:-1], atol=1e-6)  # theirs: a[f] = ours a[f-1]
    assert not raw[0].any()
    back = read_asap_pkl(p)
    assert back.meta["action_alignment"] == ACTION_ALIGNMENT
    np.testing.assert_allclose(back.action[:-1], m.action[:-1], atol=1e-6)
    assert not back.action[-1].any()


def test_training_ends_where_the_robot_would_fault_on_a_target():
    """The tracking task and the robot runtime share the target-limit fault (asap.control.TARGET_FAULT_MARGIN): an
    action whose unshaped target lies more than 2 rad past a limit ends the episode as a failure, a smaller one is
    only clamped; the runtime's safety layer faults at the same margin."""
    import numpy as np
    import torch

    from asap.control import TARGET_FAULT_MARGIN, target_limit_excess
    from asap.motion.motionlib import MotionLib
    from asap.motion.synthetic import synthetic_motion
    from asap.robot.spec import get_spec
    from asap.sim.base import SimConfig, make_simulator
    from deploy.safety import SafetyConfig, SafetyLayer
    from envs.tracking.config import TrackingEnvConfig
    from envs.tracking.env import TrackingEnv

    spec = get_spec("g1_23dof")
    assert SafetyConfig().limit_margin == TARGET_FAULT_MARGIN == 2.0
    j = spec.joint_names.index("left_ankle_pitch_joint")
    hi = spec.pos_upper[j]
    sim = make_simulator(SimConfig(num_envs=2, threads=1))
    cfg = TrackingEnvConfig()
    cfg.termination.motion_far = False
    cfg.termination.gravity_tilt = 0.0
    env = TrackingEnv(cfg, sim, MotionLib([synthetic_motion(num_frames=30, fps=50)]))
    env.reset_to(torch.zeros(2, dtype=torch.long), torch.zeros(2))
    a = torch.zeros(2, 23)
    a[0, j] = (hi + 2.2 - spec.default_pos[j]) / spec.action_scale  # 2.2 rad past the stop: the robot faults
    a[1, j] = (hi + 1.5 - spec.default_pos[j]) / spec.action_scale  # 1.5 rad past: clamped, no fault
    _, info = env.step(a)
    assert info.terminated.tolist() == [True, False]
    ex = target_limit_excess(
        np.asarray(spec.default_pos) + spec.action_scale * a.numpy(), spec.pos_lower, spec.pos_upper
    )
    assert ex[0, j] == pytest.approx(2.2, abs=1e-5) and ex[1, j] == pytest.approx(1.5, abs=1e-5)
    layer = SafetyLayer(spec.pos_lower, spec.pos_upper, spec.effort_limit, spec.joint_names)
    assert layer.check_targets(0.0, np.asarray(spec.default_pos) + spec.action_scale * a[1].numpy()) is None
    assert (
        layer.check_targets(0.0, np.asarray(spec.default_pos) + spec.action_scale * a[0].numpy()).kind == "target_limit"
    )
    sim.close()
