"""`asap robot-sim`, `asap collect`, `asap deploy`: the robot side on the command line.

Imports stay inside the handlers so that `asap --help` works without the DDS stack installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

COMMANDS = ("robot-sim", "collect", "deploy")
"""The sub-commands :func:`register` adds (``asap.cli`` loads only this module for them)."""

CHECKLIST = """\
Before sending torque commands to a real G1:
  [ ] Robot hangs in its gantry/support with the feet just touching the ground; the area around it is clear.
  [ ] Someone holds the emergency stop (the remote's L2+B damping or the power button) and watches the robot.
  [ ] Debug (low-level) mode: from zero-torque mode press L2+R2, then L2+A (some units also need L2+B);
      the robot must not be in any high-level (sport/locomotion) mode, or it fights our commands.
  [ ] Waist mode matches the policy: a 23/29-DoF policy needs the waist unlocked (29-DoF mode); the robot
      reports it in LowState.mode_machine (printed below) and the runtime echoes it in every LowCmd.
  [ ] This computer is on the robot's network (192.168.123.x) on interface {net}; DDS domain {domain}.
  [ ] Policy: {policy} (motion {motion}, {length:.1f} s, {variant}).
Remote: START = ramp to the default pose (2 s) and hold; A = run the motion; SELECT = damping.
Keyboard: s = START, a = A, d or space = damping, q = damping and quit. Ctrl-C also damps before exiting.
"""


def _runtime_config(args: argparse.Namespace, domain_default: int, net_default: str | None):  # noqa: ANN202
    from asap.config import load_config
    from deploy.runtime import RuntimeConfig

    cfg = load_config(RuntimeConfig, args.config, args.override)
    if args.domain_id is not None:
        cfg.domain_id = args.domain_id
    elif args.config is None:
        cfg.domain_id = domain_default
    if args.net is not None:
        cfg.interface = args.net
    elif args.config is None:
        cfg.interface = net_default
    if getattr(args, "root_source", None) is not None:
        from deploy.odometry import parse_root_source

        parse_root_source(args.root_source)  # one-line error before anything starts
        cfg.root_source = args.root_source
    return cfg


def check_motion_arg(policy, motion: str | None) -> None:  # noqa: ANN001
    """``--motion``: refuse (ContractError, one line naming both clips) a motion file that is not the clip the
    policy file runs (its ``clips[clip_index]`` fingerprint); a policy without fingerprints cannot be checked."""
    if motion is None:
        return
    from asap.contract import ContractError, motion_fingerprint

    c = policy.contract
    if c.clip is None:
        raise ContractError(f"{policy.path} carries no clip fingerprint (exported before fingerprints existed), so "
                            "--motion cannot be checked: re-export it, or drop --motion")  # fmt: skip
    c.check_motion(motion_fingerprint(motion, c.robot_variant), where=str(policy.path), runtime=True)


def robot_sim_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``asap robot-sim``."""
    p.add_argument("--engine", default="mujoco", choices=["mujoco", "genesis"], help="physics engine")
    p.add_argument("--gap", default=None, help="reality-gap profile (configs/real_gap/<x>.yaml); default none")
    p.add_argument("--domain-id", type=int, default=1, help="DDS domain (default 1)")
    p.add_argument("--net", default="lo", help="network interface (default lo)")
    p.add_argument("--no-support", action="store_true", help="start without the support (robot stands free)")
    p.add_argument("--mode-machine", type=int, default=5, help="mode_machine reported in LowState")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--rt-priority", type=int, default=0, help="SCHED_FIFO priority of the sim loop (0 = normal)")
    p.add_argument("--parent-pid", type=int, default=0, help="stop when the process with this pid ends (0: never)")
    p.add_argument("--odom-topic", default="rt/odom", help="topic of the ground-truth nav_msgs/Odometry (rt/odom)")
    p.add_argument("--odom-hz", type=float, default=120.0, help="odometry rate (Hz; 0 = off; default 120)")
    p.add_argument("--odom-latency", type=float, default=0.0, help="odometry publication delay (s; default 0)")
    p.add_argument("--odom-noise", type=float, default=0.0, help="odometry position noise, std per axis (m)")
    p.add_argument("--odom-rot-noise", type=float, default=0.0, help="odometry orientation noise, std per axis (rad)")


def _robot_sim(args: argparse.Namespace) -> int:
    from deploy.virtual_g1 import main_from_args

    return main_from_args(args)


def _collect(args: argparse.Namespace) -> int:
    from deploy.collect import OperatorScript, collect

    cfg = _runtime_config(args, 1 if args.virtual else 0, "lo" if args.virtual else None)
    if not args.virtual and not cfg.interface:
        raise ValueError("collect on the real robot needs --net IFACE (or --virtual for the virtual G1)")
    if args.motion is not None:
        from deploy.contract import OnnxPolicy

        check_motion_arg(OnnxPolicy(args.policy), args.motion)
    summary = collect(
        args.policy, args.out, args.episodes, cfg, virtual=args.virtual, gap=args.gap,
        script=OperatorScript(keep_support=args.keep_support), timeout_s=args.timeout, spawn_sim=not args.no_spawn,
        engine=args.engine,
    )  # fmt: skip
    print(json.dumps({k: summary[k] for k in ("episodes_converted", "completed", "mode", "fault", "jitter_ms_p99")},
                     default=str))  # fmt: skip
    for p in summary["motions"]:
        print(f"  {p}")
    if summary.get("operator_error"):
        print(f"operator: {summary['operator_error']}", file=sys.stderr)
    return 0 if summary["episodes_converted"] >= args.episodes else 1


def _deploy(args: argparse.Namespace) -> int:
    from deploy.contract import OnnxPolicy
    from deploy.runtime import Runtime

    cfg = _runtime_config(args, 0, args.net)
    if args.dry_run and args.seconds is None:
        args.seconds = 5.0
    pol = OnnxPolicy(args.policy)
    check_motion_arg(pol, args.motion)
    c = pol.contract
    print(CHECKLIST.format(net=cfg.interface, domain=cfg.domain_id, policy=args.policy, motion=c.motion_name,
                           length=c.motion_length_s, variant=c.robot_variant))  # fmt: skip
    log_dir = Path(args.log_dir or f"run/deploy/{time.strftime('%Y%m%d_%H%M%S')}")
    if args.dry_run:
        rt = Runtime(pol, cfg, log_dir=log_dir, dry_run=True)
        print(f"[deploy] dry run: listening on {cfg.interface} domain {cfg.domain_id} for {args.seconds:.0f} s; "
              "no command is sent")  # fmt: skip
        summary = rt.run(max_seconds=args.seconds)
        st = rt.ctrl.state
        if st is None:
            print("[deploy] no LowState received: check the interface, the domain id and the robot's network")
            return 1
        import numpy as np

        jm = c.motor_index
        print(f"[deploy] LowState OK: tick {st.tick}, mode_machine {st.mode_machine}, IMU quat "
              f"{np.round(st.quat, 3).tolist()}, bad CRC {summary['bad_crc']}")  # fmt: skip
        lo, hi = rt.ctrl.safety.lower[jm], rt.ctrl.safety.upper[jm]
        out = [c.joint_names[i] for i in np.nonzero((st.q[jm] < lo) | (st.q[jm] > hi))[0]]
        print(f"[deploy] joints outside limits: {out or 'none'}")
        return 0
    if not args.yes:
        ans = input("Type 'yes' when every item above is checked: ")
        if ans.strip().lower() != "yes":
            print("aborted")
            return 1
    rt = Runtime(pol, cfg, log_dir=log_dir, keyboard=True)
    summary = rt.run(max_seconds=args.seconds)
    print(json.dumps(summary, default=str))
    print(f"[deploy] log: {log_dir}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="runtime config YAML (configs/deploy/*.yaml)")
    p.add_argument("--domain-id", type=int, default=None, help="DDS domain id")
    p.add_argument("--net", default=None, help="network interface")
    p.add_argument("--override", nargs="*", default=[], help="config overrides key.sub=value")
    p.add_argument(
        "--root-source",
        default=None,
        help="root pose source: odometry[:TOPIC] (ROS 2 nav_msgs/Odometry, default topic rt/odom; the "
        "virtual G1 publishes its ground truth there) or estimate (IMU + leg kinematics, no mocap)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap robot-sim`, `asap collect`, `asap deploy`."""
    p = sub.add_parser(
        "robot-sim", help="serve a virtual G1 (MuJoCo + reality gap) over DDS",
        description="Serve a virtual G1 over the robot's own DDS topics (LowState out, LowCmd in; domain 1 on lo by "
        "default), with a hidden reality-gap profile (configs/real_gap/*.yaml), for asap collect / asap deploy "
        "to drive as they would a real G1. Runs until stopped (Ctrl-C).",
    )  # fmt: skip
    robot_sim_arguments(p)
    p.set_defaults(func=_robot_sim)

    p = sub.add_parser(
        "collect", help="run a policy's motion N times on a G1 (virtual or real), log, convert",
        description="Run an exported policy (policy.onnx; `asap export` makes one from a checkpoint) through the robot "
        "runtime N times and write OUT/log (the 50 Hz rollout log), OUT/motions (one Motion file per episode, "
        "with the applied action: the delta model's training data) and OUT/summary.json. --virtual starts a "
        "virtual G1 with --gap and presses its buttons; on a real G1 (--net IFACE) you press START, A, SELECT.",
    )  # fmt: skip
    p.add_argument("--policy", required=True, help="policy ONNX with the deploy contract")
    p.add_argument("--out", required=True, help="output directory (log/, motions/, summary.json)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to record")
    p.add_argument("--virtual", action="store_true", help="use the virtual G1 (started here unless --no-spawn)")
    p.add_argument("--gap", default=None, help="reality-gap profile for the virtual G1")
    p.add_argument("--no-spawn", action="store_true", help="use an already running `asap robot-sim`")
    p.add_argument("--keep-support", action="store_true", help="virtual G1: keep the support during the motion")
    p.add_argument(
        "--engine",
        default="mujoco",
        choices=["mujoco", "genesis"],
        help="virtual G1: physics engine of the spawned simulator (an engine gap when it is genesis)",
    )
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--motion", default=None, help="refuse to start unless this motion file is the policy's clip")
    _common(p)
    p.set_defaults(func=_collect)

    p = sub.add_parser(
        "deploy", help="run a policy on the real G1 (checklist, remote/keyboard control)",
        description="Run an exported policy (policy.onnx) on a G1 through the safety layer: START ramps to the "
        "default pose, A runs the motion, SELECT damps; every exit ends in damping. --dry-run only reads the "
        "robot's state. Prints the safety checklist first (gantry, emergency stop, debug mode).",
    )  # fmt: skip
    p.add_argument("--policy", required=True, help="policy ONNX with the deploy contract")
    p.add_argument("--dry-run", action="store_true", help="connect and read state only; never send commands")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (dry run: 5)")
    p.add_argument("--log-dir", default=None, help="log directory (default run/deploy/<time>)")
    p.add_argument("--yes", action="store_true", help="skip the interactive confirmation")
    p.add_argument("--motion", default=None, help="refuse to start unless this motion file is the policy's clip")
    _common(p)
    p.set_defaults(func=_deploy)
