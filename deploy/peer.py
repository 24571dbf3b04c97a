"""A stand-in G1 that checks the runtime from the robot's side (tests and scripts/bench_runtime.py).

It plays the robot on the DDS wire and nothing more: it publishes ``rt/lowstate`` at ``--hz`` (default 500 Hz,
the G1's rate) for a motionless standing robot (default pose, upright IMU, running ``tick`` in ms, CRC), and it
records every ``rt/lowcmd`` it receives with its arrival time on its own monotonic clock, stamped in DDS's
receive thread. It runs in its own process and shares nothing with the runtime but the wire types and the CRC,
so what it reports is what a robot would have received:

- the kind of every command: ``position`` (some kp > 0), ``damping`` (kp 0 and kd > 0 on all 29 motors) or
  ``zero`` (kp 0 and kd 0: zero torque);
- stall latency: after ``stall`` it stops publishing; the time from its last LowState write to the first
  damping command it receives afterwards.

Control, one command per line on stdin: ``press B [B ...]`` (hold remote buttons for 0.1 s), ``stall``,
``resume``, ``tilt DEG`` (the IMU pitched by DEG degrees), ``report``, ``quit``. Answers are JSON lines on stdout
with an ``event`` key: ``ready``, ``stall_damped`` (``latency_ms``), ``report`` (see :meth:`PeerNode.report`).
:class:`Peer` starts one as a child process (``python -m deploy.peer``) and talks to it.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from asap.robot.spec import NUM_MOTORS, get_spec
from deploy import crc
from deploy.dds import MatchCounter, Node
from deploy.messages import TOPIC_LOWCMD, TOPIC_LOWSTATE, LowCmd_, LowState_, new_lowstate
from deploy.remote import encode

PRESS_S = 0.1
"""How long ``press`` holds the buttons (s): several runtime ticks, one rising edge."""


class _CommandRecorder(MatchCounter):
    """Takes every LowCmd as it arrives and classifies it (runs in DDS's receive thread)."""

    def __init__(self, peer: PeerNode) -> None:
        super().__init__()
        self.peer = peer

    def on_data_available(self, reader: Any) -> None:  # noqa: D102
        t = time.monotonic()
        for s in reader.take(N=256):
            if getattr(s, "sample_info", None) is None or not s.sample_info.valid_data:
                continue
            self.peer.record(t, s)


class PeerNode:
    """The stand-in robot (see module docstring)."""

    def __init__(self, domain_id: int, interface: str | None = "lo", hz: float = 500.0, publish_state: bool = True,
                 mode_machine: int = 5) -> None:  # fmt: skip
        self.period = 1.0 / hz
        self.publish_state = publish_state
        self.mode_machine = mode_machine
        self.node = Node(domain_id, interface)
        self.recorder = _CommandRecorder(self)
        self.cmd_reader, _ = self.node.reader(TOPIC_LOWCMD, LowCmd_, listener=self.recorder)
        self.state_writer, self.state_match = (
            self.node.writer(TOPIC_LOWSTATE, LowState_) if publish_state else (None, MatchCounter())
        )
        self.msg = new_lowstate()
        r = self.msg.raw
        r["mode_machine"] = mode_machine
        r["version"] = [1, 0]
        r["imu_state"]["quaternion"] = [1.0, 0.0, 0.0, 0.0]
        r["imu_state"]["accelerometer"] = [0.0, 0.0, 9.81]
        r["motor_state"]["mode"][:NUM_MOTORS] = 1
        r["motor_state"]["q"][:NUM_MOTORS] = get_spec("g1_29dof").motor_table()["default"]
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.kinds: list[str] = []
        self.last_cmd: dict[str, Any] | None = None
        self.bad_crc = 0
        self.tick_ms = 0
        self.press_until = 0.0
        self.stalled = False
        self.stall_t: float | None = None
        self.stall_latencies: list[float] = []
        self.out_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ commands in
    def record(self, t: float, s: LowCmd_) -> None:
        """Classify one received LowCmd (arrival time ``t``, monotonic s)."""
        raw = s.raw
        mc = raw["motor_cmd"][:NUM_MOTORS]
        kp, kd = mc["kp"].astype(np.float64), mc["kd"].astype(np.float64)
        kind = "position" if (kp > 0).any() else ("damping" if (kd > 0).all() else "zero")
        ok = crc.check(s)
        with self.lock:
            self.bad_crc += not ok
            self.times.append(t)
            self.kinds.append(kind)
            self.last_cmd = {"kind": kind, "kp_max": float(kp.max()), "kd_min": float(kd.min()),
                             "kd_max": float(kd.max()), "mode_machine": int(raw["mode_machine"]), "crc_ok": bool(ok),
                             "t": t}  # fmt: skip
            damped = self.stall_t is not None and kind == "damping" and t > self.stall_t
            if damped:
                lat = t - self.stall_t
                self.stall_latencies.append(lat)
                self.stall_t = None
        if damped:
            self.say({"event": "stall_damped", "latency_ms": lat * 1e3, "n": len(self.stall_latencies)})

    # ------------------------------------------------------------------------------------------ output
    def say(self, obj: dict[str, Any]) -> None:
        """One JSON line on stdout."""
        with self.out_lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def report(self) -> dict[str, Any]:
        """What the peer received: counts per kind, the last command, the trailing run of one kind, stalls.

        ``tail``: the kind of the last command, how many commands of that kind came last in a row, and the time
        (s) from the first of them to the last (how long the robot was held that way at the end).
        """
        with self.lock:
            kinds, times = list(self.kinds), list(self.times)
            last = None if self.last_cmd is None else dict(self.last_cmd)
            lat = list(self.stall_latencies)
            bad = self.bad_crc
        tail: dict[str, Any] = {"kind": None, "count": 0, "seconds": 0.0}
        if kinds:
            k = len(kinds) - 1
            while k > 0 and kinds[k - 1] == kinds[-1]:
                k -= 1
            tail = {"kind": kinds[-1], "count": len(kinds) - k, "seconds": times[-1] - times[k]}
        now = time.monotonic()
        if last is not None:
            last["age_s"] = now - last.pop("t")
        return {
            "event": "report", "received": len(kinds), "bad_crc": bad,
            "counts": {c: kinds.count(c) for c in ("position", "damping", "zero")}, "last": last, "tail": tail,
            "stall_latency_ms": [x * 1e3 for x in lat], "state_ticks_ms": self.tick_ms,
        }  # fmt: skip

    # ------------------------------------------------------------------------------------------ loop
    def _apply(self, line: str, now: float, last_pub: float | None) -> bool:
        """Apply one control line; False on quit."""
        parts = line.split()
        if not parts:
            return True
        cmd, args = parts[0], parts[1:]
        r = self.msg.raw
        if cmd == "press":
            r["wireless_remote"] = encode(set(args))
            self.press_until = now + PRESS_S
        elif cmd == "stall":
            with self.lock:
                self.stalled = True
                self.stall_t = last_pub
        elif cmd == "resume":
            with self.lock:
                self.stalled = False
                self.stall_t = None
        elif cmd == "tilt":
            a = np.deg2rad(float(args[0])) / 2
            r["imu_state"]["quaternion"] = [np.cos(a), 0.0, np.sin(a), 0.0]
        elif cmd == "report":
            self.say(self.report())
        elif cmd == "quit":
            return False
        else:
            self.say({"event": "error", "message": f"unknown peer command {cmd!r}"})
        return True

    def run(self, lines: queue.Queue[str], stop: threading.Event) -> None:
        """Publish states at the set rate and apply control lines until ``quit``, EOF or ``stop``."""
        self.say({"event": "ready"})
        t_next = time.monotonic()
        last_pub: float | None = None
        ms = max(1, round(self.period * 1e3))
        while not stop.is_set():
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            while not lines.empty():
                if not self._apply(lines.get_nowait(), now, last_pub):
                    return
            if self.press_until and now >= self.press_until:
                self.msg.raw["wireless_remote"] = encode(())
                self.press_until = 0.0
            if self.state_writer is not None and not self.stalled:
                self.tick_ms = (self.tick_ms + ms) & 0xFFFFFFFF
                self.msg.raw["tick"] = self.tick_ms
                crc.seal(self.msg)
                last_pub = time.monotonic()  # taken before the write: latencies are never flattered
                self.state_writer.write(self.msg)
            t_next += self.period
            if time.monotonic() - t_next > 0.05:  # far behind: drop the backlog
                t_next = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.peer``."""
    p = argparse.ArgumentParser(prog="deploy.peer", description=__doc__.splitlines()[0])
    p.add_argument("--domain-id", type=int, required=True, help="DDS domain")
    p.add_argument("--net", default="lo", help="network interface (default lo)")
    p.add_argument("--hz", type=float, default=500.0, help="LowState rate (default 500, the G1's)")
    p.add_argument("--no-state", action="store_true", help="only record LowCmds (an observer, not a robot)")
    p.add_argument("--rt-priority", type=int, default=0, help="SCHED_FIFO priority (0 = normal scheduling)")
    args = p.parse_args(argv)
    if args.rt_priority > 0:
        try:
            import os

            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
        except (PermissionError, OSError):
            pass
    peer = PeerNode(args.domain_id, args.net, args.hz, publish_state=not args.no_state)
    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def read_stdin() -> None:
        for line in sys.stdin:
            lines.put(line.strip())
        lines.put("quit")

    def on_signal(signum: int, frame: object) -> None:  # noqa: ARG001
        stop.set()

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    threading.Thread(target=read_stdin, daemon=True).start()
    peer.run(lines, stop)
    peer.say(peer.report())
    return 0


class Peer:
    """A :class:`PeerNode` in a child process, driven over its stdin/stdout."""

    def __init__(self, domain_id: int, interface: str = "lo", hz: float = 500.0, publish_state: bool = True,
                 rt_priority: int = 0, log: str | Path | None = None) -> None:  # fmt: skip
        cmd = [sys.executable, "-m", "deploy.peer", "--domain-id", str(domain_id), "--net", interface, "--hz", str(hz)]
        if not publish_state:
            cmd.append("--no-state")
        if rt_priority > 0:
            cmd += ["--rt-priority", str(rt_priority)]
        self._err = open(log, "w") if log else None  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     text=True, bufsize=1)  # fmt: skip
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.events.put({"event": "exited"})

    def wait(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next message of kind ``event`` (others before it are dropped); TimeoutError after ``timeout`` s."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the peer sent no {event!r} within {timeout:g} s")
            try:
                msg = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if msg.get("event") == event:
                return msg
            if msg.get("event") == "exited":
                raise RuntimeError(f"the peer exited while waiting for {event!r}")

    def send(self, line: str) -> None:
        """One control line (see the module docstring)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def press(self, *buttons: str) -> None:
        """Press and release remote buttons (held :data:`PRESS_S`)."""
        self.send("press " + " ".join(buttons))

    def report(self, timeout: float = 10.0) -> dict[str, Any]:
        """The peer's :meth:`PeerNode.report`."""
        self.send("report")
        return self.wait("report", timeout)

    def close(self) -> None:
        """Stop the child (quit, then terminate/kill)."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        if self._err is not None:
            self._err.close()


if __name__ == "__main__":
    sys.exit(main())
