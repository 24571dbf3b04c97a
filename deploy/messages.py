"""DDS message types of the G1 (``unitree_hg``), ROS 2's ``nav_msgs/Odometry`` (mocap), and the sim-control topic.

The ``unitree_hg`` structs are declared here field for field and with the same IDL type names as Unitree's SDK
(``unitree_hg.msg.dds_.LowCmd_`` ...), so the wire format and the type information exchanged at discovery are
identical to the SDK's, and the runtime does not depend on the (broken) PyPI SDK wheel.

Attribution: the ``unitree_hg`` field lists (names, types, order and array sizes) must equal the IDL of Unitree's
SDK, unitree_sdk2 / unitree_sdk2_python (``unitree_hg/msg/dds_``), Copyright (c) 2016-2024 HangZhou YuShu
TECHNOLOGY CO.,LTD. ("Unitree Robotics"), BSD-3-Clause licence; the declarations below are the project's own.

Speed: Cyclone's Python serializer costs ~0.3 ms per LowCmd and ~0.5 ms per LowState. The hot path instead keeps
each message as a NumPy record in the **C struct layout** (the layout the CRC is computed over, 1004 / 2092 bytes)
and converts to and from the XCDR1 payload with three byte slices (XCDR1 packs the first motor's ``mode`` byte
right after the header bytes, the C struct pads it to the next 4-byte boundary). A message object built with
:func:`new_lowcmd` / received through a DataReader carries that record as ``.raw``; its ``serialize`` and
``deserialize`` use the fast path. Objects built field by field the usual dataclass way still go through
Cyclone's machinery, so both styles interoperate (checked in ``tests/test_deploy_units.py``: the fast path against
Cyclone's serializer, and the bytes and type names against the SDK's own classes when it is installed).
"""

# No `from __future__ import annotations` here (the IDL classes' field types are their annotations), so function
# annotations with `X | Y` or `tuple[...]` are quoted: the robot runtime runs on Python 3.8 (ruff FA102).
from dataclasses import dataclass
from typing import Any

import cyclonedds.idl as idl
import cyclonedds.idl.annotations as annotate
import cyclonedds.idl.types as types
import numpy as np

NUM_SLOTS = 35
"""Motor slots in a unitree_hg LowCmd/LowState (the G1 uses the first 29)."""
REMOTE_BYTES = 40
"""Length of ``LowState.wireless_remote``."""

# ---------------------------------------------------------------------------------------------- C struct layouts
MOTOR_CMD_C = np.dtype(
    {"names": ["mode", "q", "dq", "tau", "kp", "kd", "reserve"],
     "formats": ["u1", "<f4", "<f4", "<f4", "<f4", "<f4", "<u4"],
     "offsets": [0, 4, 8, 12, 16, 20, 24], "itemsize": 28}
)  # fmt: skip
LOWCMD_C = np.dtype(
    {"names": ["mode_pr", "mode_machine", "motor_cmd", "reserve", "crc"],
     "formats": ["u1", "u1", (MOTOR_CMD_C, (NUM_SLOTS,)), ("<u4", (4,)), "<u4"],
     "offsets": [0, 1, 4, 4 + 28 * NUM_SLOTS, 4 + 28 * NUM_SLOTS + 16], "itemsize": 1004}
)  # fmt: skip
"""unitree_hg LowCmd_ in C layout (what the CRC covers: '<2B2x' + 'B3x5fI'*35 + '5I')."""

IMU_C = np.dtype(
    {"names": ["quaternion", "gyroscope", "accelerometer", "rpy", "temperature"],
     "formats": [("<f4", (4,)), ("<f4", (3,)), ("<f4", (3,)), ("<f4", (3,)), "<i2"],
     "offsets": [0, 16, 28, 40, 52], "itemsize": 56}
)  # fmt: skip
MOTOR_STATE_C = np.dtype(
    {"names": ["mode", "q", "dq", "ddq", "tau_est", "temperature", "vol", "sensor", "motorstate", "reserve"],
     "formats": ["u1", "<f4", "<f4", "<f4", "<f4", ("<i2", (2,)), "<f4", ("<u4", (2,)), "<u4", ("<u4", (4,))],
     "offsets": [0, 4, 8, 12, 16, 20, 24, 28, 36, 40], "itemsize": 56}
)  # fmt: skip
_MS0 = 16 + 56  # first motor_state
LOWSTATE_C = np.dtype(
    {"names": ["version", "mode_pr", "mode_machine", "tick", "imu_state", "motor_state", "wireless_remote",
               "reserve", "crc"],
     "formats": [("<u4", (2,)), "u1", "u1", "<u4", IMU_C, (MOTOR_STATE_C, (NUM_SLOTS,)), ("u1", (REMOTE_BYTES,)),
                 ("<u4", (4,)), "<u4"],
     "offsets": [0, 8, 9, 12, 16, _MS0, _MS0 + 56 * NUM_SLOTS, _MS0 + 56 * NUM_SLOTS + 40,
                 _MS0 + 56 * NUM_SLOTS + 56], "itemsize": _MS0 + 56 * NUM_SLOTS + 60}
)  # fmt: skip
"""unitree_hg LowState_ in C layout ('<2I2B2xI' + '13fh2x' + 'B3x4f2hf7I'*35 + '40B5I', 2092 bytes)."""

# Where XCDR1 and the C layout differ: the first motor's mode byte (see module docstring).
_CMD_MODE0_C, _CMD_MODE0_X, _CMD_REST_C = 4, 2, 8
_ST_MODE0_C, _ST_MODE0_X, _ST_REST_C = _MS0, _MS0 - 2, _MS0 + 4
_XCDR1_LE = b"\x00\x01\x00\x00"


def _c_to_xcdr(buf: bytes, mode0_c: int, mode0_x: int, rest_c: int) -> bytes:
    return _XCDR1_LE + buf[:mode0_x] + buf[mode0_c : mode0_c + 1] + b"\x00" + buf[rest_c:]


def _xcdr_to_c(payload: "bytes | memoryview", mode0_c: int, mode0_x: int, rest_c: int, size: int) -> bytes:
    pad_a = b"\x00" * (mode0_c - mode0_x)
    out = bytes(payload[:mode0_x]) + pad_a + bytes(payload[mode0_x : mode0_x + 1]) + b"\x00\x00\x00"
    out += bytes(payload[mode0_x + 2 : mode0_x + 2 + size - rest_c])
    return out


# ---------------------------------------------------------------------------------------------- IDL structs
@dataclass
@annotate.final
@annotate.autoid("sequential")
class MotorCmd_(idl.IdlStruct, typename="unitree_hg.msg.dds_.MotorCmd_"):
    """One motor command (PD target, feed-forward torque, gains)."""

    mode: types.uint8
    q: types.float32
    dq: types.float32
    tau: types.float32
    kp: types.float32
    kd: types.float32
    reserve: types.uint32


@dataclass
@annotate.final
@annotate.autoid("sequential")
class MotorState_(idl.IdlStruct, typename="unitree_hg.msg.dds_.MotorState_"):
    """One motor's measured state."""

    mode: types.uint8
    q: types.float32
    dq: types.float32
    ddq: types.float32
    tau_est: types.float32
    temperature: types.array[types.int16, 2]
    vol: types.float32
    sensor: types.array[types.uint32, 2]
    motorstate: types.uint32
    reserve: types.array[types.uint32, 4]


@dataclass
@annotate.final
@annotate.autoid("sequential")
class IMUState_(idl.IdlStruct, typename="unitree_hg.msg.dds_.IMUState_"):
    """IMU: quaternion wxyz, gyroscope (body frame, rad/s), accelerometer (m/s^2), rpy, temperature."""

    quaternion: types.array[types.float32, 4]
    gyroscope: types.array[types.float32, 3]
    accelerometer: types.array[types.float32, 3]
    rpy: types.array[types.float32, 3]
    temperature: types.int16


class _FastMixin:
    """Methods attached to LowCmd_/LowState_ (below): fast (de)serialization via the C-layout record ``raw``."""

    # (no annotations here: Cyclone's metaclass would take them for IDL fields)
    _C_DTYPE = np.dtype("u1")
    _SLICES = (0, 0, 0)

    def serialize(self, buffer: Any = None, endianness: Any = None, use_version_2: "bool | None" = None) -> bytes:
        raw = self.__dict__.get("raw")
        if raw is None or use_version_2 or buffer is not None or endianness is not None:
            if raw is not None:
                return _to_dataclass(self).serialize(buffer=buffer, endianness=endianness, use_version_2=use_version_2)
            return self.__idl__.serialize(self, buffer=buffer, endianness=endianness, use_version_2=use_version_2)
        return _c_to_xcdr(raw.tobytes(), *self._SLICES)

    @classmethod
    def deserialize(cls, data: bytes, has_header: bool = True, use_version_2: "bool | None" = None) -> Any:
        size = cls._C_DTYPE.itemsize
        if has_header and bytes(data[:4]) == _XCDR1_LE and len(data) >= size:
            c = _xcdr_to_c(memoryview(data)[4:], *cls._SLICES, size)
            return cls.from_raw(np.ndarray((), dtype=cls._C_DTYPE, buffer=bytearray(c)))
        obj = cls.__idl__.deserialize(data, has_header=has_header, use_version_2=use_version_2)
        return cls.from_raw(to_raw(obj))

    @classmethod
    def from_raw(cls, raw: np.ndarray) -> Any:
        """A message object backed by the C-layout record ``raw`` (no copy)."""
        obj = cls.__new__(cls)
        obj.__dict__["raw"] = raw
        return obj


@dataclass
@annotate.final
@annotate.autoid("sequential")
class LowCmd_(idl.IdlStruct, typename="unitree_hg.msg.dds_.LowCmd_"):
    """G1 low-level command on ``rt/lowcmd``."""

    mode_pr: types.uint8
    mode_machine: types.uint8
    motor_cmd: types.array[MotorCmd_, 35]
    reserve: types.array[types.uint32, 4]
    crc: types.uint32


@dataclass
@annotate.final
@annotate.autoid("sequential")
class LowState_(idl.IdlStruct, typename="unitree_hg.msg.dds_.LowState_"):
    """G1 low-level state on ``rt/lowstate``."""

    version: types.array[types.uint32, 2]
    mode_pr: types.uint8
    mode_machine: types.uint8
    tick: types.uint32
    imu_state: IMUState_
    motor_state: types.array[MotorState_, 35]
    wireless_remote: types.array[types.uint8, 40]
    reserve: types.array[types.uint32, 4]
    crc: types.uint32


# The fast path is attached after class creation: Cyclone's type-object builder requires IdlStruct as the
# direct base class, so a mixin base is not possible.
for _cls, _dt, _sl in ((LowCmd_, LOWCMD_C, (_CMD_MODE0_C, _CMD_MODE0_X, _CMD_REST_C)),
                       (LowState_, LOWSTATE_C, (_ST_MODE0_C, _ST_MODE0_X, _ST_REST_C))):  # fmt: skip
    _cls._C_DTYPE, _cls._SLICES = _dt, _sl
    _cls.serialize = _FastMixin.serialize
    _cls.deserialize = classmethod(_FastMixin.deserialize.__func__)
    _cls.from_raw = classmethod(_FastMixin.from_raw.__func__)


# ROS 2 messages as DDS sees them (ROS 2's name mangling: type ``pkg/msg/T`` is ``pkg::msg::dds_::T_``, topic
# ``/name`` is ``rt/name``), field for field the standard layout, so a mocap bridge's nav_msgs/Odometry stream is read
# (and the virtual G1's ground truth written) by plain Cyclone DDS without a ROS install.
@dataclass
@annotate.final
@annotate.autoid("sequential")
class Time_(idl.IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    """builtin_interfaces/Time: seconds and nanoseconds (ROS time: the publisher's clock, usually UNIX time)."""

    sec: types.int32
    nanosec: types.uint32


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Header_(idl.IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    """std_msgs/Header: capture time and the frame the data is expressed in."""

    stamp: Time_
    frame_id: str


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Point_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    """geometry_msgs/Point (m)."""

    x: types.float64
    y: types.float64
    z: types.float64


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Quaternion_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    """geometry_msgs/Quaternion: **x, y, z, w** on the wire (the project is wxyz inside: convert at the boundary)."""

    x: types.float64
    y: types.float64
    z: types.float64
    w: types.float64


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Vector3_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    """geometry_msgs/Vector3."""

    x: types.float64
    y: types.float64
    z: types.float64


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Pose_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    """geometry_msgs/Pose."""

    position: Point_
    orientation: Quaternion_


@dataclass
@annotate.final
@annotate.autoid("sequential")
class PoseWithCovariance_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    """geometry_msgs/PoseWithCovariance (covariance row-major over x, y, z, rot x, rot y, rot z)."""

    pose: Pose_
    covariance: types.array[types.float64, 36]


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Twist_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    """geometry_msgs/Twist: linear (m/s) and angular (rad/s) velocity."""

    linear: Vector3_
    angular: Vector3_


@dataclass
@annotate.final
@annotate.autoid("sequential")
class TwistWithCovariance_(idl.IdlStruct, typename="geometry_msgs::msg::dds_::TwistWithCovariance_"):
    """geometry_msgs/TwistWithCovariance."""

    twist: Twist_
    covariance: types.array[types.float64, 36]


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Odometry_(idl.IdlStruct, typename="nav_msgs::msg::dds_::Odometry_"):
    """nav_msgs/Odometry: pose in ``header.frame_id`` (the world), twist in ``child_frame_id`` (the body)."""

    header: Header_
    child_frame_id: str
    pose: PoseWithCovariance_
    twist: TwistWithCovariance_


@dataclass
@annotate.final
@annotate.autoid("sequential")
class SimCtrl_(idl.IdlStruct, typename="asap_msgs.msg.dds_.SimCtrl_"):
    """A command to the virtual G1 (see :data:`SIM_COMMANDS`); ``remote`` feeds ``LowState.wireless_remote``."""

    seq: types.uint32
    command: types.uint8
    remote: types.array[types.uint8, 40]
    args: types.array[types.float64, 4]


SIM_COMMANDS = {
    "remote": 1,  # set the wireless-remote bytes reported in LowState (held until the next 'remote')
    "pause_state": 2,  # stop publishing LowState (the physics keeps running)
    "resume_state": 3,
    "support_on": 4,  # elastic support band on the torso
    "support_off": 5,
    "push": 6,  # add args[0:3] (m/s) to the root linear velocity
    "reset": 7,  # back to the default standing pose
    "tip": 8,  # add args[0:3] (rad/s) to the root angular velocity
    "quit": 9,
}
"""Virtual-G1 control commands on :data:`TOPIC_SIMCTRL`."""

TOPIC_LOWCMD = "rt/lowcmd"
TOPIC_LOWSTATE = "rt/lowstate"
TOPIC_ODOMETRY = "rt/odom"
"""Default odometry topic (ROS 2 ``/odom``): the virtual G1 publishes its ground truth there."""
TOPIC_SIMCTRL = "asap/sim/ctrl"


# ---------------------------------------------------------------------------------------------- helpers
def new_lowcmd() -> LowCmd_:
    """A zeroed LowCmd backed by a C-layout record (fast path)."""
    return LowCmd_.from_raw(np.zeros((), dtype=LOWCMD_C))


def new_lowstate() -> LowState_:
    """A zeroed LowState backed by a C-layout record (fast path)."""
    return LowState_.from_raw(np.zeros((), dtype=LOWSTATE_C))


def to_raw(msg: Any) -> np.ndarray:
    """The C-layout record of a LowCmd_/LowState_ (built from dataclass fields when it has none)."""
    raw = msg.__dict__.get("raw")
    if raw is not None:
        return raw
    if isinstance(msg, LowCmd_):
        r = np.zeros((), dtype=LOWCMD_C)
        r["mode_pr"], r["mode_machine"], r["crc"] = msg.mode_pr, msg.mode_machine, msg.crc
        r["reserve"] = msg.reserve
        for i, m in enumerate(msg.motor_cmd):
            r["motor_cmd"][i] = (m.mode, m.q, m.dq, m.tau, m.kp, m.kd, m.reserve)
        return r
    if isinstance(msg, LowState_):
        r = np.zeros((), dtype=LOWSTATE_C)
        r["version"], r["mode_pr"], r["mode_machine"], r["tick"] = msg.version, msg.mode_pr, msg.mode_machine, msg.tick
        imu = msg.imu_state
        r["imu_state"] = (imu.quaternion, imu.gyroscope, imu.accelerometer, imu.rpy, imu.temperature)
        for i, m in enumerate(msg.motor_state):
            r["motor_state"][i] = (m.mode, m.q, m.dq, m.ddq, m.tau_est, m.temperature, m.vol, m.sensor,
                                   m.motorstate, m.reserve)  # fmt: skip
        r["wireless_remote"], r["reserve"], r["crc"] = msg.wireless_remote, msg.reserve, msg.crc
        return r
    raise TypeError(f"no C layout for {type(msg).__name__}")


def _to_dataclass(msg: Any) -> Any:
    """A plain field-by-field copy of a raw-backed LowCmd_/LowState_ (for Cyclone's own serializer)."""
    r = msg.__dict__["raw"]
    f = lambda x: [float(v) for v in np.asarray(x).reshape(-1)]  # noqa: E731
    u = lambda x: [int(v) for v in np.asarray(x).reshape(-1)]  # noqa: E731
    if isinstance(msg, LowCmd_):
        m = r["motor_cmd"]
        return LowCmd_(
            mode_pr=int(r["mode_pr"]), mode_machine=int(r["mode_machine"]),
            motor_cmd=[MotorCmd_(int(m["mode"][i]), *f(m[["q", "dq", "tau", "kp", "kd"]][i].tolist()),
                                 int(m["reserve"][i])) for i in range(NUM_SLOTS)],
            reserve=u(r["reserve"]), crc=int(r["crc"]),
        )  # fmt: skip
    imu = r["imu_state"]
    ms = r["motor_state"]
    return LowState_(
        version=u(r["version"]), mode_pr=int(r["mode_pr"]), mode_machine=int(r["mode_machine"]), tick=int(r["tick"]),
        imu_state=IMUState_(f(imu["quaternion"]), f(imu["gyroscope"]), f(imu["accelerometer"]), f(imu["rpy"]),
                            int(imu["temperature"])),
        motor_state=[MotorState_(int(ms["mode"][i]), float(ms["q"][i]), float(ms["dq"][i]), float(ms["ddq"][i]),
                                 float(ms["tau_est"][i]), u(ms["temperature"][i]), float(ms["vol"][i]),
                                 u(ms["sensor"][i]), int(ms["motorstate"][i]), u(ms["reserve"][i]))
                     for i in range(NUM_SLOTS)],
        wireless_remote=u(r["wireless_remote"]), reserve=u(r["reserve"]), crc=int(r["crc"]),
    )  # fmt: skip


def plain(msg: Any) -> Any:
    """A dataclass-only copy of a message (useful for printing/comparing with the SDK's objects)."""
    return _to_dataclass(msg) if "raw" in msg.__dict__ else msg


def ros_topic(name: str) -> str:
    """The DDS topic of a ROS 2 topic name: ``/odom`` or ``odom`` -> ``rt/odom`` (names already ``rt/...`` kept)."""
    n = name.strip()
    if not n or n == "/":
        raise ValueError("empty topic name: give e.g. /odom or rt/odom")
    return n if n.startswith("rt/") else "rt/" + n.lstrip("/")


def odometry_msg(
    stamp: float, pos: np.ndarray, quat: np.ndarray, lin_vel_body: np.ndarray, ang_vel_body: np.ndarray,
    frame_id: str = "world", child_frame_id: str = "pelvis",
) -> Odometry_:  # fmt: skip
    """An Odometry message: ``stamp`` capture time (s, UNIX), ``pos`` (3,) m and ``quat`` (4,) **wxyz** of the body in
    ``frame_id``, velocities (3,) in the body frame ``child_frame_id`` (ROS convention); zero covariances."""
    sec = int(np.floor(stamp))
    nsec = min(int(round((stamp - sec) * 1e9)), 999_999_999)
    w, x, y, z = (float(v) for v in quat)
    return Odometry_(
        header=Header_(stamp=Time_(sec=sec, nanosec=nsec), frame_id=frame_id),
        child_frame_id=child_frame_id,
        pose=PoseWithCovariance_(pose=Pose_(position=Point_(*(float(v) for v in pos)),
                                            orientation=Quaternion_(x=x, y=y, z=z, w=w)), covariance=[0.0] * 36),
        twist=TwistWithCovariance_(twist=Twist_(linear=Vector3_(*(float(v) for v in lin_vel_body)),
                                                angular=Vector3_(*(float(v) for v in ang_vel_body))),
                                   covariance=[0.0] * 36),
    )  # fmt: skip


def odometry_arrays(msg: Odometry_) -> "tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]":
    """``(stamp s, pos (3,), quat (4,) wxyz, linear (3,), angular (3,))`` of an Odometry message, in the message's own
    frames (pose in ``header.frame_id``, twist in ``child_frame_id``); the quaternion is normalised (a zero one
    raises ``ValueError``)."""
    st = msg.header.stamp
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    t = msg.twist.twist
    q = np.array([o.w, o.x, o.y, o.z], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not n > 1e-9:
        raise ValueError(f"odometry message at {st.sec}.{st.nanosec:09d} has a zero orientation quaternion")
    return (
        st.sec + st.nanosec * 1e-9,
        np.array([p.x, p.y, p.z], dtype=np.float64),
        q / n,
        np.array([t.linear.x, t.linear.y, t.linear.z], dtype=np.float64),
        np.array([t.angular.x, t.angular.y, t.angular.z], dtype=np.float64),
    )
