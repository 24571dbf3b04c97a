"""Benchmark the robot runtime: per-step time and FLOPs, and loop-period jitter against the virtual G1.

0. Policy FLOPs: multiply-adds of the ONNX graph's MatMul/Gemm nodes for one observation (2 FLOPs each, +1 per
   output for a Gemm's bias), from the graph's shapes (needs ``onnx``: the full install, not the robot's).
1. Per-step time of the runtime path alone, one thread on one CPU core (the process is pinned to it; onnxruntime
   runs one intra-op thread): the policy step in RUN (observation from a LowState with asap.obs, ONNX
   inference, safety checks, target computation), plus LowCmd fill + CRC + serialization, N times; inference
   and observation also alone. ``budget``: the p99 per-step time as a fraction of the 20 ms policy period, and
   the implied inference throughput (FLOPs / p50), to judge the headroom on a slower core (the G1's computer).
   With ``--policy`` this part runs with the runtime install alone (``--skip-jitter --stalls 0``), e.g. onboard.
2. Jitter: the full runtime at 50 Hz (100 Hz command ticks) in RUN against a virtual G1 child process over DDS on
   ``lo`` for ``--seconds`` (default 60); the policy period is measured at each step; jitter = |period - 20 ms|.
3. Watchdog, measured by the robot: an independent peer process (:mod:`deploy.peer`, LowState at 500 Hz like the
   G1) stops publishing while the policy runs, ``--stalls`` times (default 30, at varied phases of the 10 ms tick);
   latency = its last LowState write to the first damping LowCmd it receives, on its own clock (transit both ways
   and the runtime's loop included). Budget: ``safety.state_timeout_s`` (50 ms).

Policy: ``--policy`` (an exported policy) or a random [512, 256, 128] MLP with ASAP's 380 -> 23 contract.

    python scripts/bench_runtime.py --json run/bench/runtime.json [--seconds 60] [--stalls 30] [--rt-priority 0]
    python3 bench_runtime.py --policy policy.onnx --skip-jitter --stalls 0     # onboard: runtime install only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def policy_flops(policy_path: Path) -> dict[str, Any]:
    """FLOPs of one policy evaluation (batch 1) from the ONNX graph's MatMul/Gemm shapes (see module docstring).

    Dynamic dimensions (the batch) count as 1. Returns ``{"error": ...}`` when ``onnx`` is not installed.
    """
    try:
        import onnx
        from onnx import helper, shape_inference
    except ImportError:
        return {"error": "onnx is not installed (count the FLOPs on the workstation)"}
    graph = shape_inference.infer_shapes(onnx.load(str(policy_path))).graph
    shapes: dict[str, list[int]] = {init.name: list(init.dims) for init in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else 1 for d in dims])
    flops, layers, other = 0, [], {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            other[node.op_type] = other.get(node.op_type, 0) + 1
            continue
        a, b = (shapes.get(x) for x in node.input[:2])
        if a is None or b is None:
            raise ValueError(f"{policy_path}: no shape for an input of {node.op_type} node {node.name!r}")
        if node.op_type == "MatMul":
            m, k, n = int(np.prod(a[:-1])), a[-1], b[-1]
            f = 2 * m * k * n
        else:
            at = {x.name: helper.get_attribute_value(x) for x in node.attribute}
            m, k = (a[1], a[0]) if at.get("transA") else (a[0], a[1])
            n = b[0] if at.get("transB") else b[1]
            f = 2 * m * k * n + (m * n if len(node.input) > 2 and node.input[2] else 0)
        flops += f
        layers.append(f"{k}x{n}")
    params = sum(int(np.prod(init.dims)) for init in graph.initializer)
    return {"flops": int(flops), "mflops": flops / 1e6, "params": params, "layers": layers, "other_ops": other}


def _pin_one_core() -> tuple[int | None, set[int] | None]:
    """Pin this process to one of its allowed CPU cores; returns (core, previous affinity), or Nones off Linux."""
    if not hasattr(os, "sched_setaffinity"):
        return None, None
    before = os.sched_getaffinity(0)
    core = max(before)  # the last core: core 0 takes most interrupts
    os.sched_setaffinity(0, {core})
    return core, before


def _latency(policy_path: Path, n: int) -> dict[str, float]:
    from asap.robot.spec import get_spec
    from deploy import crc
    from deploy.contract import OnnxPolicy
    from deploy.controller import Controller, ControllerConfig, Mode, RobotState
    from deploy.messages import new_lowcmd, new_lowstate

    pol = OnnxPolicy(policy_path, threads=1)
    ctl = Controller(pol.contract, pol, ControllerConfig(ramp_s=0.0))
    msg = new_lowstate()
    raw = msg.raw
    raw["motor_state"]["q"][:29] = get_spec("g1_29dof").motor_table()["default"]
    raw["imu_state"]["quaternion"] = [1, 0, 0, 0]
    rng = np.random.default_rng(0)
    ctl.on_state(RobotState.from_raw(raw, 0.0))
    ctl.request("start", 0.0)
    ctl.policy_step(0.0)
    ctl.request("run", 0.0)
    assert ctl.mode == Mode.RUN
    ctl.steps_per_motion = 10**9
    cmd = new_lowcmd()
    step, full = [], []
    for k in range(n + 50):
        raw["tick"] = k + 1
        raw["motor_state"]["dq"][:29] = rng.normal(scale=0.1, size=29)
        t0 = time.perf_counter()
        st = RobotState.from_raw(raw, float(k))
        ctl.on_state(st)
        ctl.check(float(k))
        t1 = time.perf_counter()
        ctl.policy_step(float(k))
        t2 = time.perf_counter()
        c = ctl.command(float(k))
        mc = cmd.raw["motor_cmd"]
        mc["q"][:29], mc["kp"][:29], mc["kd"][:29] = c.q, c.kp, c.kd
        crc.seal(cmd)
        cmd.serialize()
        t3 = time.perf_counter()
        ctl.last_fresh = float(k)
        if k >= 50:
            step.append(t2 - t1)
            full.append(t3 - t0)
    obs = ctl.observe(st, 0.5)
    inf, ob = [], []
    for k in range(n + 50):  # the two biggest parts alone
        t0 = time.perf_counter()
        pol(obs)
        t1 = time.perf_counter()
        ctl.observe(st, 0.5)
        t2 = time.perf_counter()
        if k >= 50:
            inf.append(t1 - t0)
            ob.append(t2 - t1)
    s, f, i, o = (np.array(x) * 1e3 for x in (step, full, inf, ob))
    return {
        "obs_policy_ms_p50": float(np.percentile(s, 50)), "obs_policy_ms_p99": float(np.percentile(s, 99)),
        "tick_ms_p50": float(np.percentile(f, 50)), "tick_ms_p99": float(np.percentile(f, 99)),
        "inference_ms_p50": float(np.percentile(i, 50)), "inference_ms_p99": float(np.percentile(i, 99)),
        "observation_ms_p50": float(np.percentile(o, 50)), "observation_ms_p99": float(np.percentile(o, 99)),
        "samples": n, "threads": 1,
    }  # fmt: skip


def _jitter(policy_path: Path, seconds: float, domain: int, rt_priority: int, gap: str | None) -> dict[str, float]:
    from deploy import virtual_g1
    from deploy.collect import OperatorScript, VirtualOperator
    from deploy.controller import ControllerConfig, Mode
    from deploy.runtime import Runtime, RuntimeConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench_runtime_"))
    proc = virtual_g1.spawn(gap, domain, "lo", log=tmp / "sim.log")
    try:
        cfg = RuntimeConfig(domain_id=domain, interface="lo", cmd_hz=100, rt_priority=rt_priority,
                            controller=ControllerConfig(ramp_s=1.0))  # fmt: skip
        rt = Runtime(policy_path, cfg, log_dir=tmp / "log")
        rt.ctrl.steps_per_motion = 10**9  # keep running the policy for the whole window
        cli = virtual_g1.SimClient(domain, "lo")
        if not cli.wait(30):
            raise RuntimeError("virtual G1 did not start")
        op = VirtualOperator(rt, cli, 1, OperatorScript(keep_support=True))
        op.start()
        mark: dict[str, float] = {}

        def until(r: Runtime) -> bool:
            if r.ctrl.mode == Mode.RUN and "t" not in mark:
                mark["t"], mark["i"] = time.monotonic(), len(r.periods)
            return "t" in mark and time.monotonic() - mark["t"] >= seconds or r.ctrl.mode == Mode.DAMPING

        summary = rt.run(max_seconds=seconds + 60, until=until)
        if "i" not in mark or summary["fault"]:
            raise RuntimeError(f"the runtime did not run the policy: {summary}")
        per = np.array(rt.periods[mark["i"] + 1 :])
        comp = np.array(rt.compute_times) * 1e3
    finally:
        proc.terminate()
        proc.wait(10)
    jit = np.abs(per - 0.02) * 1e3
    return {
        "seconds": float(per.sum()), "steps": int(per.size), "period_ms_mean": float(per.mean() * 1e3),
        "jitter_ms_p50": float(np.percentile(jit, 50)), "jitter_ms_p99": float(np.percentile(jit, 99)),
        "jitter_ms_max": float(jit.max()), "late_steps_over_1ms": int((jit > 1.0).sum()),
        "policy_step_ms_p99_in_loop": float(np.percentile(comp, 99)), "rt_priority": rt_priority,
        "bad_crc": summary["bad_crc"],
    }  # fmt: skip


def _watchdog(policy_path: Path, stalls: int, domain: int, rt_priority: int) -> dict[str, Any]:
    import threading

    from deploy.controller import ControllerConfig, Mode
    from deploy.peer import Peer
    from deploy.runtime import Runtime, RuntimeConfig

    peer = Peer(domain, "lo", rt_priority=rt_priority)
    try:
        peer.wait("ready", 30)
        cfg = RuntimeConfig(domain_id=domain, interface="lo", cmd_hz=100, rt_priority=rt_priority,
                            controller=ControllerConfig(ramp_s=0.2))  # fmt: skip
        rt = Runtime(policy_path, cfg)
        rt.ctrl.steps_per_motion = 10**9  # the policy runs until the stall
        lat: list[float] = []
        err: list[BaseException] = []
        done = threading.Event()

        def wait_mode(mode: Mode, timeout: float = 10.0) -> None:
            end = time.monotonic() + timeout
            while rt.ctrl.mode != mode:
                if time.monotonic() > end:
                    raise RuntimeError(f"runtime in {rt.ctrl.mode.name}, expected {mode.name}")
                time.sleep(0.002)

        def operator() -> None:
            try:
                wait_mode(Mode.ZERO_TORQUE, 30)
                for i in range(stalls):
                    peer.press("START")  # also re-arms after the previous stall's damping
                    wait_mode(Mode.HOLD)
                    peer.press("A")
                    wait_mode(Mode.RUN)
                    time.sleep(0.1 + 0.0037 * (i % 11))  # stalls spread over the phases of the 10 ms tick
                    peer.send("stall")
                    lat.append(peer.wait("stall_damped", 5)["latency_ms"])
                    peer.send("resume")
                    time.sleep(0.05)
            except BaseException as e:  # noqa: BLE001 - reported below
                err.append(e)
            done.set()

        threading.Thread(target=operator, daemon=True).start()
        summary = rt.run(max_seconds=stalls * 5.0 + 30, until=lambda r: done.is_set())
        if err:
            raise RuntimeError(f"watchdog run failed: {err[0]}")
        ages = [t.state_age * 1e3 for t in rt.ctrl.transitions if t.cause.startswith("watchdog")]
    finally:
        peer.close()
    x = np.asarray(lat)
    return {
        "stalls": int(x.size), "latency_ms_p50": float(np.percentile(x, 50)),
        "latency_ms_p99": float(np.percentile(x, 99)), "latency_ms_max": float(x.max()),
        "over_50ms": int((x > 50.0).sum()), "runtime_state_age_ms_max": float(max(ages)),
        "watchdog_wakes": summary["watchdog_wakes"], "rt_priority": rt_priority,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--policy", default=None, help="policy ONNX (default: random 380->23 MLP [512,256,128])")
    p.add_argument("--seconds", type=float, default=60.0, help="jitter window at 50 Hz")
    p.add_argument("--samples", type=int, default=5000, help="latency samples")
    p.add_argument("--domain-id", type=int, default=200 + os.getpid() % 30,
                   help="DDS domain of the jitter run (the watchdog run uses the next one)")  # fmt: skip
    p.add_argument("--rt-priority", type=int, default=0, help="SCHED_FIFO priority of the loop (0 = normal)")
    p.add_argument("--gap", default=None, help="reality-gap profile of the virtual G1")
    p.add_argument("--skip-jitter", action="store_true", help="no jitter run")
    p.add_argument("--stalls", type=int, default=30, help="watchdog: LowState stalls measured by the peer (0: none)")
    args = p.parse_args(argv)
    if args.policy:
        policy = Path(args.policy)
    else:
        from deploy.testing import make_policy, test_contract

        policy = make_policy(Path(tempfile.mkdtemp()) / "bench.onnx", test_contract(motion_length_s=10.0),
                             hidden=(512, 256, 128))  # fmt: skip
    res: dict = {"policy": str(policy) if args.policy else "random MLP 380-512-256-128-23",
                 "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                             "loadavg_start": os.getloadavg()}}  # fmt: skip
    if args.rt_priority > 0:  # this thread only; children (the virtual G1) start with normal scheduling
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(args.rt_priority))
    res["flops"] = policy_flops(policy)
    print(json.dumps(res["flops"]), flush=True)
    core, affinity = _pin_one_core()
    try:
        res["latency"] = _latency(policy, args.samples)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    lat = res["latency"]
    lat["cpu_core"] = core
    res["budget"] = {
        "policy_period_ms": 20.0, "tick_p99_fraction_of_period": lat["tick_ms_p99"] / 20.0,
        "headroom_x": 20.0 / lat["tick_ms_p99"],
        "inference_gflops_per_s": res["flops"]["flops"] / (lat["inference_ms_p50"] * 1e-3) / 1e9
        if "flops" in res["flops"] else None,
    }  # fmt: skip
    print(json.dumps(lat), flush=True)
    print(json.dumps(res["budget"]), flush=True)
    if not args.skip_jitter:
        res["jitter"] = _jitter(policy, args.seconds, args.domain_id, args.rt_priority, args.gap)
        print(json.dumps(res["jitter"]), flush=True)
    if args.stalls > 0:
        res["watchdog"] = _watchdog(policy, args.stalls, args.domain_id + 1, args.rt_priority)
        print(json.dumps(res["watchdog"]), flush=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
