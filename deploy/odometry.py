"""Streamed root pose (motion capture, or the virtual G1's ground truth) as ROS 2 ``nav_msgs/Odometry`` over DDS.

Three parts, one per side of the wire:

- :class:`OdometryPublisher` (the virtual G1): samples the simulator's root at ``rate_hz``, stamps each sample with its
  capture time, adds noise, and publishes it ``latency_s`` later -- what a mocap bridge does.
- :class:`OdometryRecorder` (the robot runtime): takes every sample that arrived (not only the newest) and keeps it
  with its own stamps (``header.stamp`` and the arrival time); the logger writes them beside the control steps.
- :func:`interpolate_root` (log conversion): the root at any times -- the control steps' state times -- by linear
  interpolation of position and velocity and slerp of the orientation between the two samples around each time.

Frames: the pose is in ``header.frame_id`` (the world, z-up), the twist in ``child_frame_id`` (the body, ROS
convention); recorded samples hold world-frame velocities. Quaternions are xyzw on the wire and wxyz here
(:func:`deploy.messages.odometry_msg` / :func:`deploy.messages.odometry_arrays` convert).

Clocks: ``header.stamp`` is the publisher's clock (ROS time, UNIX seconds). When the two computers' clocks agree
(NTP/PTP, or one computer) the header stamps place every sample at its capture time and the latency drops out;
otherwise :func:`sample_times` falls back to the arrival times (the latency then shows as a lag).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from cyclonedds.core import Policy, Qos

from asap.utils.rotations import axis_angle_to_quat, quat_mul, quat_rotate, quat_rotate_inverse, slerp
from deploy.dds import Node
from deploy.messages import TOPIC_ODOMETRY, Odometry_, odometry_arrays, odometry_msg, ros_topic

SAMPLE_KEYS = ("stamp", "arrival", "pos", "quat", "lin_vel", "ang_vel")
"""Arrays of a recorded odometry stream: header stamp (s), arrival (s, this computer's UNIX time), position (3,) m,
orientation (4,) wxyz, linear and angular velocity (3,) in the world frame."""
ROOT_SOURCES = ("odometry", "estimate")
"""What a runtime can take the root from: an Odometry topic (``odometry[:TOPIC]``) or the proprioceptive estimate."""
MAX_GAP_S = 0.1
"""Longest interval between two samples that is interpolated across (longer gaps leave the steps in between invalid)."""
CLOCK_TOLERANCE_S = (-0.02, 0.5)
"""Range of the median (arrival - header stamp) within which the header clock is taken to agree with ours."""


def parse_root_source(text: str) -> tuple[str, str | None]:
    """``"odometry[:TOPIC]"`` or ``"estimate"`` -> (kind, DDS topic or None); the default topic is ``rt/odom``.

    Raises ``ValueError`` naming the accepted forms.
    """
    kind, _, topic = text.strip().partition(":")
    if kind == "odometry":
        return kind, ros_topic(topic) if topic else TOPIC_ODOMETRY
    if kind == "estimate" and not topic:
        return kind, None
    raise ValueError(f"unknown root source {text!r}: use odometry, odometry:TOPIC (e.g. odometry:/vrpn/g1/odom) "
                     "or estimate")  # fmt: skip


# ---------------------------------------------------------------------------------------------- publisher
@dataclass
class OdometryPublishConfig:
    """How the virtual G1 publishes its ground-truth root as nav_msgs/Odometry (a motion-capture stand-in)."""

    topic: str = TOPIC_ODOMETRY
    """DDS topic (ROS 2 names are mapped: ``/odom`` -> ``rt/odom``)."""
    rate_hz: float = 120.0
    """Samples per second (0: do not publish). Sampled at physics steps (200 Hz), so the spacing is 5 ms steps."""
    latency_s: float = 0.0
    """Delay between a sample's capture (its header stamp) and its publication."""
    pos_noise_m: float = 0.0
    """Standard deviation of the Gaussian noise on each position axis (m)."""
    rot_noise_rad: float = 0.0
    """Standard deviation of the Gaussian rotation-vector noise on the orientation, per axis (rad)."""
    frame_id: str = "world"
    """``header.frame_id`` (the pose's frame)."""
    child_frame_id: str = "pelvis"
    """``child_frame_id`` (the body whose pose it is; the twist is in its frame)."""


class OdometryPublisher:
    """Samples, delays and publishes a root pose stream (see :class:`OdometryPublishConfig`)."""

    def __init__(self, node: Node, cfg: OdometryPublishConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.writer = node.writer(ros_topic(cfg.topic), Odometry_)[0] if cfg.rate_hz > 0 else None
        self.pending: collections.deque[tuple[float, Odometry_]] = collections.deque()
        self.next_sample: float | None = None
        self.published = 0

    def update(self, stamp: float, pos: np.ndarray, quat: np.ndarray, lin_vel: np.ndarray, ang_vel: np.ndarray) -> None:
        """Offer the state captured at ``stamp`` (s, UNIX time; pose wxyz and velocities in the world frame);
        samples it when due and publishes every queued sample whose latency has passed."""
        if self.writer is None:
            return
        c = self.cfg
        period = 1.0 / c.rate_hz
        if self.next_sample is None or stamp >= self.next_sample - 1e-6:
            behind = self.next_sample is None or stamp - self.next_sample > 10 * period
            self.next_sample = (stamp if behind else self.next_sample) + period
            p = np.asarray(pos, dtype=np.float64)
            q = np.asarray(quat, dtype=np.float64)
            if c.pos_noise_m > 0:
                p = p + self.rng.normal(0.0, c.pos_noise_m, 3)
            if c.rot_noise_rad > 0:
                q = quat_mul(q, axis_angle_to_quat(self.rng.normal(0.0, c.rot_noise_rad, 3)))
            lin_b = quat_rotate_inverse(quat, np.asarray(lin_vel, dtype=np.float64))
            ang_b = quat_rotate_inverse(quat, np.asarray(ang_vel, dtype=np.float64))
            msg = odometry_msg(stamp, p, q, lin_b, ang_b, c.frame_id, c.child_frame_id)
            self.pending.append((stamp + c.latency_s, msg))
        while self.pending and self.pending[0][0] <= stamp + 1e-6:
            self.writer.write(self.pending.popleft()[1])
            self.published += 1


# ---------------------------------------------------------------------------------------------- recorder
SAMPLE_QOS = Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(256))
"""Reader QoS: matches reliable and best-effort publishers (ROS 2 default and sensor-data profiles) and keeps up
to 256 samples between two looks (2 s at 120 Hz)."""


class OdometryRecorder:
    """Every Odometry sample of one topic, with its header stamp and arrival time (runtime side)."""

    def __init__(self, node: Node, topic: str) -> None:
        self.topic = topic
        self.reader, self.match = node.reader(topic, Odometry_, qos=SAMPLE_QOS)
        self.latest: dict[str, np.ndarray] | None = None
        """The newest sample taken so far (world-frame velocities), or None."""
        self.count = 0
        self.bad = 0

    def poll(self, arrival: float | None = None) -> list[dict[str, Any]]:
        """Take every waiting sample; each a dict of :data:`SAMPLE_KEYS` (``arrival``: now, or the given time)."""
        out = []
        now = time.time() if arrival is None else arrival
        for s in self.reader.take(N=256):
            if getattr(s, "sample_info", None) is not None and not s.sample_info.valid_data:
                continue
            try:
                stamp, pos, quat, lin_b, ang_b = odometry_arrays(s)
            except ValueError:
                self.bad += 1
                continue
            out.append({"stamp": stamp, "arrival": now, "pos": pos, "quat": quat,
                        "lin_vel": quat_rotate(quat, lin_b), "ang_vel": quat_rotate(quat, ang_b)})  # fmt: skip
        if out:
            self.count += len(out)
            self.latest = max(out, key=lambda r: r["stamp"])
        return out


# ---------------------------------------------------------------------------------------------- interpolation
def sample_times(samples: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """The times to place recorded samples at, and which clock they are: ``"header"`` (the publisher's stamps) when the
    median (arrival - stamp) lies within :data:`CLOCK_TOLERANCE_S`, else ``"arrival"`` (this computer's clock)."""
    stamp, arrival = np.asarray(samples["stamp"], np.float64), np.asarray(samples["arrival"], np.float64)
    if stamp.size == 0:
        return stamp, "header"
    lag = float(np.median(arrival - stamp))
    lo, hi = CLOCK_TOLERANCE_S
    return (stamp, "header") if lo <= lag <= hi else (arrival, "arrival")


def interpolate_root(
    times: np.ndarray, samples: dict[str, np.ndarray], t: np.ndarray, max_gap_s: float = MAX_GAP_S
) -> dict[str, np.ndarray]:
    """The root at times ``t`` (T,) s from samples at ``times`` (S,) s (any order; the clock of ``t``).

    Returns ``pos`` (T, 3), ``quat`` (T, 4) wxyz (slerp), ``lin_vel``/``ang_vel`` (T, 3) (linear) and ``valid``
    (T,) bool: False where ``t`` is outside the samples or between two samples more than ``max_gap_s`` apart (those
    rows hold the nearest sample). Repeated stamps keep the later sample.
    """
    t = np.asarray(t, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    if n == 0:
        z = np.zeros((len(t), 3))
        return {"pos": z, "quat": np.tile([1.0, 0, 0, 0], (len(t), 1)), "lin_vel": z.copy(), "ang_vel": z.copy(),
                "valid": np.zeros(len(t), bool)}  # fmt: skip
    order = np.argsort(times, kind="stable")
    ts = times[order]
    keep = np.append(ts[1:] > ts[:-1], True)  # drop all but the last of equal stamps
    order, ts = order[keep], ts[keep]
    get = {k: np.asarray(samples[k], np.float64)[order] for k in ("pos", "quat", "lin_vel", "ang_vel")}
    i1 = np.clip(np.searchsorted(ts, t, side="right"), 1, max(len(ts) - 1, 1))
    i0 = i1 - 1
    if len(ts) == 1:
        i0 = i1 = np.zeros(len(t), dtype=np.int64)
    span = ts[i1] - ts[i0]
    a = np.clip(np.where(span > 0, (t - ts[i0]) / np.where(span > 0, span, 1.0), 0.0), 0.0, 1.0)
    valid = (t >= ts[0] - 1e-9) & (t <= ts[-1] + 1e-9) & (span <= max_gap_s)
    out = {k: (1 - a[:, None]) * get[k][i0] + a[:, None] * get[k][i1] for k in ("pos", "lin_vel", "ang_vel")}
    out["quat"] = slerp(get["quat"][i0], get["quat"][i1], a)
    out["valid"] = valid
    return out
