"""Robot-side pieces without DDS traffic: CRC, message layouts, remote, safety, state machine, contract, logger."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from deploy import crc  # noqa: E402
from deploy.messages import LowCmd_, LowState_, new_lowcmd, new_lowstate, plain  # noqa: E402
from deploy.remote import ButtonEdges, encode, pressed, sticks  # noqa: E402


def _sdk():
    """Unitree's SDK modules when installed (its wheel imports a missing `b2` package: stub it)."""
    if importlib.util.find_spec("unitree_sdk2py") is None:
        pytest.skip("unitree_sdk2 not installed")
    sys.modules.setdefault("unitree_sdk2py.b2", types.ModuleType("unitree_sdk2py.b2"))
    from unitree_sdk2py.idl.unitree_hg.msg import dds_
    from unitree_sdk2py.utils import crc as sdk_crc

    return dds_, sdk_crc


def _random_cmd(rng: np.random.Generator) -> LowCmd_:
    c = new_lowcmd()
    r = c.raw
    r["mode_pr"], r["mode_machine"] = 1, 5
    for f in ("q", "dq", "tau", "kp", "kd"):
        r["motor_cmd"][f] = rng.normal(size=35)
    r["motor_cmd"]["mode"] = rng.integers(0, 256, 35)
    r["motor_cmd"]["reserve"] = rng.integers(0, 2**32, 35)
    r["reserve"] = rng.integers(0, 2**32, 4)
    return c


def _random_state(rng: np.random.Generator) -> LowState_:
    s = new_lowstate()
    r = s.raw
    r["tick"], r["mode_machine"], r["version"] = 1234, 5, [3, 4]
    r["imu_state"]["quaternion"] = rng.normal(size=4)
    r["imu_state"]["temperature"] = -7
    for f in ("q", "dq", "ddq", "tau_est", "vol"):
        r["motor_state"][f] = rng.normal(size=35)
    r["motor_state"]["mode"] = rng.integers(0, 256, 35)
    r["motor_state"]["temperature"] = rng.integers(-100, 100, (35, 2))
    r["wireless_remote"] = rng.integers(0, 256, 40)
    return s


# ---------------------------------------------------------------------------------------------------- CRC
def test_crc_matches_bitwise_reference() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 250, 522):
        w = rng.integers(0, 2**32, n, dtype=np.uint64)
        assert crc.crc32_words(w) == crc.crc32_reference(w)
    assert crc.crc32_words([0]) == crc.crc32_reference([0])


def test_crc_of_messages_matches_sdk_pure_python_routine() -> None:
    _, sdk_crc = _sdk()
    import struct

    rng = np.random.default_rng(1)
    c = _random_cmd(rng)
    packed = c.raw.tobytes()
    assert len(packed) == struct.calcsize("<2B2x" + "B3x5fI" * 35 + "5I") == 1004
    words = list(struct.unpack("<251I", packed))[:-1]
    assert crc.lowcmd_crc(c.raw) == sdk_crc.CRC._crc_py(None, words)
    s = _random_state(rng)
    fmt = "<2I2B2xI" + "13fh2x" + "B3x4f2hf7I" * 35 + "40B5I"
    assert s.raw.dtype.itemsize == struct.calcsize(fmt) == 2092
    words = list(struct.unpack("<523I", s.raw.tobytes()))[:-1]
    assert crc.lowstate_crc(s.raw) == sdk_crc.CRC._crc_py(None, words)


def test_crc_is_fast() -> None:
    c = _random_cmd(np.random.default_rng(2))
    crc.seal(c)
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        crc.seal(c)
    per = (time.perf_counter() - t) / n
    assert per < 100e-6, f"{per * 1e6:.1f} us per LowCmd"
    assert crc.check(c)
    c.raw["motor_cmd"]["q"][0] += 1.0
    assert not crc.check(c)


# ---------------------------------------------------------------------------------------------------- messages
def test_fast_serialization_equals_cyclone_machinery() -> None:
    rng = np.random.default_rng(3)
    for msg, cls in ((_random_cmd(rng), LowCmd_), (_random_state(rng), LowState_)):
        fast = msg.serialize()
        slow = cls.__idl__.serialize(plain(msg))
        assert fast == slow
        back = cls.deserialize(slow)
        assert back.raw.tobytes() == msg.raw.tobytes()


def test_messages_interoperate_with_sdk_types() -> None:
    dds_, _ = _sdk()
    rng = np.random.default_rng(4)
    c = _random_cmd(rng)
    sdk = dds_.LowCmd_.deserialize(c.serialize())
    assert sdk.mode_machine == 5 and sdk.motor_cmd[0].mode == int(c.raw["motor_cmd"]["mode"][0])
    assert np.float32(sdk.motor_cmd[7].kp) == c.raw["motor_cmd"]["kp"][7]
    assert LowCmd_.__idl_typename__ == dds_.LowCmd_.__idl_typename__ == "unitree_hg.msg.dds_.LowCmd_"
    assert LowState_.__idl_typename__ == dds_.LowState_.__idl_typename__
    s = _random_state(rng)
    sdk_s = dds_.LowState_.deserialize(s.serialize())
    assert LowState_.deserialize(sdk_s.serialize()).raw.tobytes() == s.raw.tobytes()


# ---------------------------------------------------------------------------------------------------- remote
def test_remote_buttons_and_sticks() -> None:
    r = encode({"START", "A"}, lx=0.5, ly=-1.0)
    assert pressed(r) == {"START", "A"}
    assert r[2] == 0b100 and r[3] == 0b1  # START bit 2, A bit 8
    assert sticks(r)["lx"] == pytest.approx(0.5) and sticks(r)["ly"] == pytest.approx(-1.0)
    e = ButtonEdges()
    assert e.update(encode({"START"})) == {"START"}
    assert e.update(encode({"START"})) == set()
    assert e.update(encode({"START", "SELECT"})) == {"SELECT"}


# ---------------------------------------------------------------------------------------------------- safety
def _safety(**kw):
    from asap.robot.spec import MOTOR_NAMES, get_spec
    from deploy.safety import SafetyConfig, SafetyLayer

    t = get_spec("g1_29dof").motor_table()
    return SafetyLayer(t["lower"], t["upper"], t["effort"], MOTOR_NAMES, SafetyConfig(**kw)), t


def _state_args(t, quat=(1.0, 0, 0, 0)):
    return dict(q=t["default"].copy(), dq=np.zeros(29), quat=np.array(quat), gyro=np.zeros(3), tau_est=np.zeros(29))


def test_safety_watchdog_and_nonfinite_state() -> None:
    s, t = _safety()
    assert s.check_state(1.0, 0.99, **_state_args(t)) is None
    ev = s.check_state(1.0, 0.94, **_state_args(t))
    assert ev is not None and ev.kind == "watchdog" and "60 ms" in ev.cause
    s, t = _safety()
    a = _state_args(t)
    a["dq"][3] = np.nan
    assert s.check_state(1.0, 1.0, **a).kind == "nonfinite_state"
    s, _ = _safety()
    assert s.check_state(1.0, None, **_state_args(t)).kind == "watchdog"


def test_safety_fall_and_torque() -> None:
    s, t = _safety(max_tilt_deg=55)
    tilt = np.deg2rad(50)
    assert s.check_state(0, 0, **_state_args(t, (np.cos(tilt / 2), np.sin(tilt / 2), 0, 0))) is None
    tilt = np.deg2rad(60)
    ev = s.check_state(0, 0, **_state_args(t, (np.cos(tilt / 2), 0, np.sin(tilt / 2), 0)))
    assert ev.kind == "fall" and "60 deg" in ev.cause
    s, t = _safety(torque_violation_steps=3)
    a = _state_args(t)
    a["tau_est"][3] = 1.2 * t["effort"][3]
    assert s.check_state(0, 0, **a) is None and s.check_state(0, 0, **a) is None
    ev = s.check_state(0, 0, **a)
    assert ev.kind == "torque" and "left_knee_joint" in ev.cause
    assert s.check_state(0, 0, **a) is None  # latched: reported once


def test_safety_actions_and_targets() -> None:
    s, t = _safety(max_abs_action=100, limit_margin=0.3)
    names = tuple(f"j{i}" for i in range(3))
    assert s.check_action(0, np.array([1.0, -2.0, 99.0]), names) is None
    assert s.check_action(0, np.array([1.0, np.nan, 0.0]), names).kind == "nonfinite_action"
    s, t = _safety(max_abs_action=100)
    assert s.check_action(0, np.array([0.0, 101.0, 0.0]), names).kind == "action_range"
    s, t = _safety(limit_margin=0.3)
    motors = np.array([3, 4])  # left knee [-0.087, 2.88], left ankle pitch [-0.873, 0.524]
    assert s.check_targets(0, np.array([1.5, 0.7]), motors) is None  # ankle 0.18 rad past its limit: shaped
    ev = s.check_targets(0, np.array([0.3, 0.9]), motors)
    assert ev is not None and ev.kind == "target_limit" and "left_ankle_pitch_joint" in ev.cause


# ---------------------------------------------------------------------------------------------------- contract
@pytest.fixture(scope="module")
def policy_path(tmp_path_factory) -> Path:
    from deploy.testing import make_policy, test_contract

    return make_policy(tmp_path_factory.mktemp("pol") / "p.onnx", test_contract(motion_length_s=0.5))


def test_contract_roundtrip_and_errors(policy_path: Path) -> None:
    from deploy.contract import REQUIRED_KEYS, ContractError, OnnxPolicy, PolicyContract

    pol = OnnxPolicy(policy_path)
    c = pol.contract
    assert c.obs_dim == 380 and c.num_joints == 23 and c.history_length == 4 and c.control_dt == 0.02
    assert pol(np.zeros(380)).shape == (23,)
    meta = c.to_metadata()
    assert set(meta) == set(REQUIRED_KEYS) | {"target_clamp", "target_max_step"}  # shaping: always written
    c2 = PolicyContract.from_metadata(meta)
    np.testing.assert_array_equal(c2.kp, c.kp)
    bad = dict(meta)
    del bad["obs_dim"]
    with pytest.raises(ContractError, match="obs_dim"):
        PolicyContract.from_metadata(bad)
    bad = dict(meta, kp="1,2,3")
    with pytest.raises(ContractError, match="3 values for 23 joints"):
        PolicyContract.from_metadata(bad)
    bad = dict(meta, joint_names=meta["joint_names"].replace("left_knee_joint", "knee"))
    with pytest.raises(ContractError, match="unknown joint names"):
        PolicyContract.from_metadata(bad)


# ---------------------------------------------------------------------------------------------------- controller
def _fake_state(tick: int, now: float, q: np.ndarray | None = None, remote=None, quat=(1.0, 0, 0, 0)):
    from asap.robot.spec import get_spec
    from deploy.controller import RobotState

    q = get_spec("g1_29dof").motor_table()["default"] if q is None else q
    return RobotState(tick, q.copy(), np.zeros(29), np.zeros(29), np.array(quat, float), np.zeros(3), np.zeros(3),
                      np.zeros(40, np.uint8) if remote is None else remote, 5, now)  # fmt: skip


def test_state_machine_sequence_and_commands(policy_path: Path) -> None:
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, ControllerConfig, Mode

    pol = OnnxPolicy(policy_path)
    ctl = Controller(pol.contract, pol, ControllerConfig(ramp_s=0.1))
    assert ctl.command(0.0) is None and ctl.mode == Mode.WAIT
    q0 = np.zeros(29)
    ctl.on_state(_fake_state(1, 0.0, q=q0))
    assert ctl.mode == Mode.ZERO_TORQUE
    c = ctl.command(0.0)
    assert c.mode_machine == 5 and c.mode_pr == 0 and not c.kp.any() and not c.kd.any()
    ctl.request("run", 0.0)  # ignored outside HOLD
    assert ctl.mode == Mode.ZERO_TORQUE
    ctl.request("start", 0.0)
    assert ctl.mode == Mode.RAMP
    mid = ctl.command(0.05)
    np.testing.assert_allclose(mid.q, 0.5 * ctl.default_q, atol=1e-9)
    assert mid.kp[19] == 4.0 and mid.kd[19] == 0.2  # held wrist (23-DoF policy)
    assert mid.kp[3] == 200.0  # knee from the contract
    t, tick = 0.0, 1
    while ctl.mode != Mode.HOLD:
        t += 0.02
        tick += 1
        ctl.on_state(_fake_state(tick, t))
        ctl.check(t)
        ctl.policy_step(t)
    ctl.request("run", t)
    assert ctl.mode == Mode.RUN
    infos = []
    for _ in range(ctl.steps_per_motion):
        t += 0.02
        tick += 1
        ctl.on_state(_fake_state(tick, t))
        assert ctl.check(t) is None
        infos.append(ctl.policy_step(t))
    assert [i.run_step for i in infos] == list(range(25)) and infos[-1].phase == pytest.approx(1.0)
    assert infos[0].obs.shape == (380,) and infos[0].obs[-1] == pytest.approx(0.02 / 0.5)
    assert ctl.mode == Mode.RUN and (ctl.command(t).q == ctl.target).all()  # the last action is applied for a step
    t += 0.02
    tick += 1
    ctl.on_state(_fake_state(tick, t))
    assert ctl.policy_step(t).mode == Mode.RAMP  # then the motion has finished -> back to default
    assert ctl.mode == Mode.RAMP
    ctl.request("stop", t)
    assert ctl.mode == Mode.DAMPING
    d = ctl.command(t)
    assert not d.kp.any() and (d.kd == 8.0).all()
    assert [tr.dst for tr in ctl.transitions] == ["ZERO_TORQUE", "RAMP", "HOLD", "RUN", "RAMP", "DAMPING"]
    ctl.request("start", t)  # re-arm: upright and fresh
    assert ctl.mode == Mode.RAMP


def test_state_machine_faults(policy_path: Path) -> None:
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, ControllerConfig, Mode

    pol = OnnxPolicy(policy_path)
    ctl = Controller(pol.contract, pol, ControllerConfig(ramp_s=0.0))
    ctl.on_state(_fake_state(1, 0.0))
    ctl.request("start", 0.0)
    ctl.policy_step(0.01)
    assert ctl.mode == Mode.HOLD
    ctl.check(0.04)
    assert ctl.mode == Mode.HOLD
    ctl.check(0.07)  # no new tick for 70 ms
    assert ctl.mode == Mode.DAMPING and ctl.safety.fault.kind == "watchdog"
    assert ctl.transitions[-1].state_age == pytest.approx(0.07)
    ctl.request("start", 0.08)  # stale state: no re-arm
    assert ctl.mode == Mode.DAMPING
    ctl.on_state(_fake_state(2, 0.1))
    ctl.request("start", 0.1)
    assert ctl.mode == Mode.RAMP
    ctl.trip("signal", "SIGTERM received", 0.2)
    assert ctl.mode == Mode.DAMPING and ctl.quit_requested
    ctl.on_state(_fake_state(3, 0.21))
    ctl.request("start", 0.21)  # never re-arms after a signal
    assert ctl.mode == Mode.DAMPING


def test_runtime_obs_equals_torch_builder(policy_path: Path) -> None:
    """The runtime's numpy observation equals asap.obs' torch builder fed the same states (history included)."""
    torch = pytest.importorskip("torch")
    from asap.obs import ObsBuilder, proprio_terms
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, ControllerConfig, Mode

    pol = OnnxPolicy(policy_path)
    c = pol.contract
    ctl = Controller(c, pol, ControllerConfig(ramp_s=0.0))
    rng = np.random.default_rng(5)
    ctl.on_state(_fake_state(1, 0.0))
    ctl.request("start", 0.0)
    ctl.policy_step(0.0)
    ctl.request("run", 0.0)
    assert ctl.mode == Mode.RUN
    ref = ObsBuilder(c.obs_layout, num_envs=1, num_joints=c.num_joints, backend="torch", groups=("actor",))
    last = np.zeros(c.num_joints)
    for k in range(10):
        q = ctl.default_q + rng.normal(scale=0.05, size=29)
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        quat *= np.sign(quat[0])
        st = _fake_state(k + 2, 0.02 * k, q=q, quat=(1.0, 0.0, 0.0, 0.0))
        st.quat = quat * 0.05 + np.array([1.0, 0, 0, 0])
        st.quat /= np.linalg.norm(st.quat)
        st.dq = rng.normal(size=29)
        st.gyro = rng.normal(size=3)
        ctl.on_state(st)
        info = ctl.policy_step(0.02 * k)
        jm = c.motor_index
        raw = proprio_terms(
            torch.tensor(st.quat[None], dtype=torch.float32), torch.tensor(st.gyro[None], dtype=torch.float32),
            torch.tensor(st.q[jm][None], dtype=torch.float32), torch.tensor(st.dq[jm][None], dtype=torch.float32),
            torch.tensor(c.default_joint_pos, dtype=torch.float32), torch.tensor(last[None], dtype=torch.float32),
            torch.tensor([info.phase], dtype=torch.float32),
        )  # fmt: skip
        expect = ref.build(raw)["actor"][0].numpy()
        np.testing.assert_allclose(info.obs, expect, atol=1e-6, rtol=0)
        last = np.clip(info.action, -100, 100)


# ---------------------------------------------------------------------------------------------------- logger
def test_logger_chunks_survive_crash_and_convert(tmp_path: Path) -> None:
    from asap.control import ACTION_ALIGNMENT
    from deploy.logger import RolloutLogger, log_to_motions, read_log

    meta = {"joint_names": ["left_knee_joint", "right_knee_joint"], "joint_motor_index": [3, 9], "control_dt": 0.02,
            "motion_name": "m", "steps_per_motion": 3}  # fmt: skip
    lg = RolloutLogger(tmp_path / "log", meta, chunk_steps=4)
    modes = [2, 3, 3, 3, 1, 2, 3]
    for i, m in enumerate(modes):
        lg.log({
            "time": i * 0.02, "mode": np.int8(m), "episode": np.int32(0 if i < 5 else 1),
            "q": np.full(29, i, np.float32), "dq": np.zeros(29, np.float32),
            "imu_quat": np.array([1, 0, 0, 0], np.float32),
            "action": np.array([i, -i], np.float32), "root_valid": True, "root_pos": np.array([0, 0, 0.8]),
            "root_quat": np.array([1.0, 0, 0, 0]), "root_lin_vel": np.zeros(3), "root_ang_vel": np.zeros(3),
        })  # fmt: skip
    lg.event({"from": "HOLD", "to": "RUN"})
    # simulate a crash: no close(); the unfinished second chunk (rows 4..6) is lost, plus a half-written temp file
    (tmp_path / "log" / ".chunk_00001.tmp.npz").write_bytes(b"PK\x03\x04garbage")
    log = read_log(tmp_path / "log")
    assert len(log["steps"]["time"]) == 4 and log["events"][0]["to"] == "RUN"
    motions = log_to_motions(tmp_path / "log")
    assert len(motions) == 1
    m = motions[0]
    assert m.fps == 50 and m.joint_names == ("left_knee_joint", "right_knee_joint")
    assert m.num_frames == 3  # 3 policy steps (the row after them was lost with the unfinished chunk)
    np.testing.assert_array_equal(m.action[:, 0], [1, 2, 3])  # action[f] = output computed from frame f's state
    assert m.meta["action_alignment"] == ACTION_ALIGNMENT
    np.testing.assert_array_equal(m.dof_pos[:, 0], [1, 2, 3])
    assert m.meta["completed"] and m.meta["root_source"] == "mocap"


def test_log_conversion_names_its_root_source_and_shaping(tmp_path: Path) -> None:
    """A virtual-G1 log converts to a Motion whose root is the simulator's ground truth and which carries the
    target shaping the runtime applied (what the delta model's replay must apply), RUN frames only."""
    from asap.control import TargetShaping
    from deploy.logger import RolloutLogger, log_to_motions

    meta = {"joint_names": ["left_knee_joint"], "joint_motor_index": [3], "control_dt": 0.02, "motion_name": "m",
            "steps_per_motion": 2, "virtual": True, "gap": "ankle_weak.yaml",
            **TargetShaping(clamp=False, max_step=0.0).to_metadata()}  # fmt: skip
    lg = RolloutLogger(tmp_path / "log", meta, chunk_steps=100)
    for i, m in enumerate([1, 2, 3, 3, 4, 4]):  # RAMP, HOLD, RUN x2, DAMPING x2
        lg.log({"time": i * 0.02, "mode": np.int8(m), "episode": np.int32(0), "q": np.full(29, i, np.float32),
                "dq": np.zeros(29, np.float32), "imu_quat": np.array([1, 0, 0, 0], np.float32),
                "action": np.array([i], np.float32), "root_valid": True, "root_pos": np.array([0, 0, 0.8]),
                "root_quat": np.array([1.0, 0, 0, 0]), "root_lin_vel": np.zeros(3),
                "root_ang_vel": np.zeros(3)})  # fmt: skip
    lg.close()
    (m,) = log_to_motions(tmp_path / "log")
    assert m.meta["root_source"] == "simulator" and m.meta["gap"] == "ankle_weak.yaml"
    assert TargetShaping.from_metadata({k: str(m.meta[k]) for k in TargetShaping.METADATA_KEYS}) == TargetShaping(
        clamp=False, max_step=0.0
    )
    np.testing.assert_array_equal(m.dof_pos[:, 0], [2, 3, 4])  # the RUN frames and the state after the last action
    np.testing.assert_array_equal(m.action[:, 0], [2, 3, 0])  # no damping-frame action is ever replayed


def test_start_pose_blend_before_run(tmp_path: Path) -> None:
    """A policy that carries its motion's start pose: A blends to it, then runs; a stop cancels the run."""
    from dataclasses import replace

    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, ControllerConfig, Mode
    from deploy.testing import make_policy, test_contract

    c = test_contract(motion_length_s=0.5)
    start = c.default_joint_pos.copy()
    start[18] = 1.0  # left elbow bent at the motion's first frame
    pol = OnnxPolicy(make_policy(tmp_path / "s.onnx", replace(c, start_joint_pos=start)))
    np.testing.assert_allclose(pol.contract.start_joint_pos, start)
    ctl = Controller(pol.contract, pol, ControllerConfig(ramp_s=0.0, start_blend_s=0.1))
    ctl.on_state(_fake_state(1, 0.0))
    ctl.request("start", 0.0)
    ctl.policy_step(0.0)
    assert ctl.mode == Mode.HOLD
    ctl.request("run", 0.0)
    assert ctl.mode == Mode.RAMP and ctl.pending_run is not None
    elbow = int(pol.contract.motor_index[18])
    assert ctl.command(0.05).q[elbow] == pytest.approx(0.5)  # half-way through the blend
    assert ctl.command(0.1).q[elbow] == pytest.approx(1.0)  # the blend ends at the start pose
    info = ctl.policy_step(0.12)
    assert ctl.mode == Mode.RUN and info.run_step == 0 and ctl.run_step == 1  # the policy runs in that step
    ctl.request("stop", 0.13)
    ctl.request("start", 0.2)
    ctl.policy_step(0.2)
    ctl.request("run", 0.2)
    ctl.request("stop", 0.21)  # stop during the blend: no run afterwards
    assert ctl.pending_run is None and ctl.mode == Mode.DAMPING


def _run_infos(policy_path: Path, cfg) -> list:  # noqa: ANN001
    """The PolicyStepRecords of one whole run (start -> hold -> run) of the policy on a still robot."""
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, Mode

    pol = OnnxPolicy(policy_path)
    ctl = Controller(pol.contract, pol, cfg)
    ctl.on_state(_fake_state(1, 0.0))
    ctl.request("start", 0.0)
    t, tick = 0.0, 1
    while ctl.mode != Mode.HOLD:
        t, tick = t + 0.02, tick + 1
        ctl.on_state(_fake_state(tick, t))
        ctl.policy_step(t)
    ctl.request("run", t)
    infos = []
    for _ in range(ctl.steps_per_motion):
        t, tick = t + 0.02, tick + 1
        ctl.on_state(_fake_state(tick, t))
        infos.append(ctl.policy_step(t))
    return infos


def test_excitation_noise_is_applied_and_logged(policy_path: Path) -> None:
    """Collection excitation: the applied (and logged) action is the policy's plus N(0, std) noise, seeded."""
    from deploy.controller import ControllerConfig

    plain = _run_infos(policy_path, ControllerConfig(ramp_s=0.0, start_blend_s=0.0))
    noisy = _run_infos(policy_path, ControllerConfig(ramp_s=0.0, start_blend_s=0.0, excitation_std=0.1))
    again = _run_infos(policy_path, ControllerConfig(ramp_s=0.0, start_blend_s=0.0, excitation_std=0.1))
    # the first step sees the same observation (no action applied yet): the difference is the noise alone
    d = noisy[0].action - plain[0].action
    assert 0.03 < d.std() < 0.2 and abs(d.mean()) < 0.06
    assert not np.allclose(noisy[0].obs, noisy[1].obs)  # the noisy action reaches the next observation
    np.testing.assert_array_equal(np.stack([i.action for i in noisy]), np.stack([i.action for i in again]))


def test_collect_spawns_the_virtual_g1_on_the_requested_engine(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """`asap collect --virtual --engine genesis` hands the engine to the spawned virtual G1 (an engine gap)."""
    from deploy import virtual_g1
    from deploy.collect import collect

    seen = {}

    def spawn(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.update(kwargs)
        raise RuntimeError("spawned")

    monkeypatch.setattr(virtual_g1, "spawn", spawn)
    with pytest.raises(RuntimeError, match="spawned"):
        collect("policy.onnx", tmp_path, engine="genesis")
    assert seen["engine"] == "genesis"


def test_virtual_operator_re_arms_when_the_first_start_fails() -> None:
    """A watchdog fault while ramping (a loaded computer) does not end the collection: the operator resets and
    presses START again, up to ``arm_attempts`` times, then reports the error."""
    from types import SimpleNamespace

    from deploy.collect import OperatorScript, VirtualOperator
    from deploy.controller import Mode

    class Robot:
        def __init__(self, fail_starts: int) -> None:
            self.fail_starts, self.presses = fail_starts, []
            self.ctrl = SimpleNamespace(mode=Mode.ZERO_TORQUE, cfg=SimpleNamespace(start_blend_s=0.0))
            self.contract = SimpleNamespace(motion_length_s=0.1)

        def send(self, what: str) -> None:
            pass

        def press(self, button: str) -> None:
            self.presses.append(button)
            if button == "START":
                ok = self.presses.count("START") > self.fail_starts
                self.ctrl.mode = Mode.HOLD if ok else Mode.DAMPING
            elif button == "A":
                self.ctrl.mode = Mode.RAMP  # the run ended at once

    script = OperatorScript(settle_s=0.0, hold_s=0.0, arm_attempts=3)
    for fails, error in ((2, None), (3, "did not reach HOLD in 3 tries")):
        robot = Robot(fails)
        op = VirtualOperator(robot, robot, 1, script)  # type: ignore[arg-type]
        op._wait_mode = lambda modes, timeout, r=robot: r.ctrl.mode in modes  # type: ignore[method-assign]
        op.run()
        assert robot.presses.count("START") == min(fails + 1, 3)
        assert (op.error is None) if error is None else (error in op.error)
        assert ("A" in robot.presses) == (error is None)


def test_test_domains_are_unique_in_a_process_and_valid_cyclone_ids() -> None:
    """Every DDS test module takes its domain ids from one counter: no two tests of a process share a participant
    (they once did: modules counted from overlapping pid-based starts), ids stay off 0/1 and inside Cyclone's range."""
    import subprocess

    code = "from deploy.testing import next_test_domain as n; print(*[n() for _ in range(231)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ids = [int(x) for x in out]
    assert len(set(ids)) == 231 and min(ids) == 2 and max(ids) == 232
    code = "from deploy.testing import next_test_domain as n\nfor _ in range(232): n()"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and "fewer processes" in r.stderr
