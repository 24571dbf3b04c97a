"""``asap collect``: run N episodes of a policy's motion on a G1 (virtual or real), log them, convert to Motions.

On the virtual G1 a scripted operator does what a person does with the remote: reset the robot into its
support, START (ramp to the default pose), A (blend to the motion's start pose, then run it; the support is
released as the policy starts), and again after the motion ends (or after a fall: reset, START re-arms). On
the real robot the operator presses the buttons and the command stops after N finished episodes.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.controller import Mode
from deploy.log_commands import export_motions
from deploy.runtime import Runtime, RuntimeConfig


@dataclass
class OperatorScript:
    """Timing of the scripted operator on the virtual G1."""

    settle_s: float = 0.5
    """Wait after a reset before pressing START."""
    hold_s: float = 0.3
    """Time in HOLD (in the support) before pressing A."""
    keep_support: bool = False
    """Keep the robot in its support during the motion (tests of the runtime, not of balance). Otherwise the
    support is released the moment the policy starts, as an operator lowers a gantry: the PD stand at the
    default pose alone is not balanced (the G1's ankles are too soft), so it must not stand free before."""
    arm_attempts: int = 3
    """Tries (reset, support, START) to bring the robot to HOLD before an episode: on a loaded computer the virtual
    G1 can miss the runtime's 50 ms state deadline while ramping, the watchdog damps, and START re-arms it."""


class VirtualOperator(threading.Thread):
    """Presses the virtual G1's remote buttons for ``episodes`` episodes (see module docstring)."""

    def __init__(self, runtime: Runtime, client: Any, episodes: int, script: OperatorScript | None = None) -> None:
        super().__init__(daemon=True)
        self.rt = runtime
        self.cli = client
        self.episodes = episodes
        self.script = script or OperatorScript()
        self.stop = False
        self.error: str | None = None

    def _wait_mode(self, modes: tuple[Mode, ...], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.stop:
            if self.rt.ctrl.mode in modes:
                return True
            time.sleep(0.01)
        return self.rt.ctrl.mode in modes

    def run(self) -> None:  # noqa: D102
        s = self.script
        try:
            if not self._wait_mode((Mode.ZERO_TORQUE,), 30.0):
                self.error = "no LowState from the virtual G1"
                return
            for _ in range(self.episodes):
                if self.stop:
                    return
                for _attempt in range(max(1, s.arm_attempts)):
                    self.cli.send("reset")
                    self.cli.send("support_on")
                    time.sleep(s.settle_s)
                    self.cli.press("START")
                    if self._wait_mode((Mode.HOLD,), 10.0):
                        break
                else:
                    self.error = (f"robot did not reach HOLD in {s.arm_attempts} tries (mode "
                                  f"{self.rt.ctrl.mode.name}); see the runtime's transitions in the log")  # fmt: skip
                    return
                time.sleep(s.hold_s)
                if self.rt.ctrl.mode != Mode.HOLD:
                    continue  # a fault while holding: the next episode resets
                self.cli.press("A")
                self._wait_mode((Mode.RUN,), self.rt.ctrl.cfg.start_blend_s + 2.0)  # after the start-pose blend
                if not s.keep_support:
                    self.cli.send("support_off")
                self._wait_mode((Mode.RAMP, Mode.HOLD, Mode.DAMPING), self.rt.contract.motion_length_s + 10.0)
                time.sleep(0.2)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            self.error = f"{type(e).__name__}: {e}"


def collection_request(
    policy: str | Path, episodes: int, gap: str | Path | None, virtual: bool, engine: str
) -> dict[str, Any]:
    """What a collection was asked for, as stored in its ``summary.json`` (``request``): a finished collection is
    reused only for the same request (:func:`asap.eval.closed_loop.evaluate_over_dds`)."""
    return {"policy": str(Path(policy).resolve()), "episodes": int(episodes), "virtual": bool(virtual),
            "gap": str(Path(gap).resolve()) if gap else None, "engine": engine if virtual else None}  # fmt: skip


def collect(
    policy: str | Path, out_dir: str | Path, episodes: int = 1, cfg: RuntimeConfig | None = None,
    virtual: bool = True, gap: str | Path | None = None, script: OperatorScript | None = None,
    timeout_s: float | None = None, spawn_sim: bool = True, odometry: Any = None, engine: str = "mujoco",
) -> dict[str, Any]:  # fmt: skip
    """Run ``episodes`` episodes and convert them; returns a summary (also written to out_dir/summary.json).

    The root of the converted Motions comes from ``cfg.root_source`` (:class:`deploy.runtime.RuntimeConfig`);
    ``odometry`` (a :class:`deploy.odometry.OdometryPublishConfig`) sets how a spawned virtual G1 publishes its
    ground truth; ``engine``: the spawned virtual G1's physics engine (``mujoco`` or ``genesis``).
    """
    from deploy import virtual_g1

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg or RuntimeConfig(domain_id=1, interface="lo")
    proc = None
    if virtual and spawn_sim:
        proc = virtual_g1.spawn(gap, cfg.domain_id, cfg.interface or "lo", log=out / "virtual_g1.log",
                                odometry=odometry, engine=engine)  # fmt: skip
    try:
        rt = Runtime(policy, cfg, log_dir=out / "log",
                     extra_meta={"gap": str(gap) if gap else None, "virtual": virtual,
                                 "engine": engine if virtual else None})  # fmt: skip
        op = None
        if virtual:
            cli = virtual_g1.SimClient(cfg.domain_id, cfg.interface)
            if not cli.wait(30.0):
                raise RuntimeError("the virtual G1 did not come up (no match on asap/sim/ctrl within 30 s)")
            op = VirtualOperator(rt, cli, episodes, script)
            op.start()
        else:
            print(f"[collect] waiting for {episodes} episode(s): START = ramp to default, A = run, SELECT = damping",
                  flush=True)  # fmt: skip
        budget = timeout_s if timeout_s is not None else episodes * (rt.contract.motion_length_s + 15.0) + 30.0

        def done(r: Runtime) -> bool:
            finished = r.ctrl.episode + 1 >= episodes and r.ctrl.mode != Mode.RUN
            if op is not None:
                return not op.is_alive() and r.ctrl.mode != Mode.RUN
            return finished

        summary = rt.run(max_seconds=budget, until=done)
        if op is not None:
            op.stop = True
            op.join(2.0)
            summary["operator_error"] = op.error
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except Exception:  # noqa: BLE001
                proc.kill()
    motions, paths = export_motions(out / "log", out / "motions")  # what `asap log export` writes
    summary["motions"] = paths
    summary["episodes_converted"] = len(paths)
    summary["completed"] = [bool(m.meta["completed"]) for m in motions]
    summary["root_source"] = sorted({str(m.meta["root_source"]) for m in motions})
    summary["request"] = collection_request(policy, episodes, gap if virtual else None, virtual, engine)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
