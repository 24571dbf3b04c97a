"""`asap eval`: closed-loop evaluation of policies on a target (and the open-loop replay report of logs)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _eval(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    if not args.policies and not args.open_loop and not args.logs:
        raise ValueError("give policies to evaluate closed loop, --logs of a robot's episodes, or --open-loop LOGS")
    out = Path(args.out)
    video = None
    if args.video:
        from asap.eval.closed_loop import VideoConfig

        video = VideoConfig()
    if args.logs:
        from asap.eval.closed_loop import evaluate_logs

        if args.policies or not args.motions or len(args.motions) != 1:
            raise ValueError("--logs scores logged episodes against one clip: give --motions CLIP and no policies")
        r = evaluate_logs(args.logs, args.motions[0], out, video=video, progress=not args.no_progress)
        _print_table(r, f"logged episodes against {Path(args.motions[0]).stem}")
    if args.policies:
        from asap.eval.closed_loop import evaluate

        if not args.motions:
            raise ValueError("closed-loop evaluation needs --motions (the clips the policies track)")
        r = evaluate(args.policies, args.motions, out, target=args.target, gap=args.gap, episodes=args.episodes,
                     seeds=args.seeds, init_noise=args.init_noise, over_dds=args.over_dds, threads=args.threads,
                     progress=not args.no_progress, video=video, engine=args.engine,
                     start_from=args.start_from or ())  # fmt: skip
        t = r["target"]
        _print_table(r, f"closed loop on {t['backend']} (gap {t['gap']}), {r['episodes']} episode(s) x "
                        f"{len(r['seeds'])} seed(s), mean ± std over seeds")  # fmt: skip
    if args.open_loop:
        res = open_loop(args.open_loop, out / "openloop" if args.policies else out, delta=args.delta, gap=args.gap,
                        sim=args.target, threads=args.threads, sysid=args.sysid, dynamics=args.dynamics)  # fmt: skip
        from asap.eval.openloop import summary_line, window_counts

        for h, windows in window_counts(res["report"]).items():
            print(f"open loop {h} s, E_g-mpjpe (mm): {summary_line(res['metrics'], h, windows)}")
        print(f"open loop on {res['episodes']} episode(s): {res['files']['markdown']}")
    return 0


def _print_table(r: dict, title: str) -> None:
    from asap.eval.closed_loop import PAPER_COLUMNS

    print(title)
    width = max(len(p) for p in r["policies"])
    print(f"{'policy':<{width}}  " + "  ".join(f"{h:>16}" for _, h in PAPER_COLUMNS))
    for label, p in r["policies"].items():
        cells = []
        for key, _ in PAPER_COLUMNS:
            st = p["metrics"].get(key)
            scale = 100.0 if key == "success_rate" else 1.0
            cells.append("-" if st is None else f"{scale * st['mean']:.1f} ± {scale * st['std']:.1f}")
        print(f"{label:<{width}}  " + "  ".join(f"{c:>16}" for c in cells))
    print(f"report: {r['files']['report']}, metrics: {r['files']['metrics']}, plot: {r['files']['plot']}")
    for per_motion in r.get("videos", {}).values():
        for path in per_motion.values():
            print(f"video: {path}")


def open_loop(logs: list[str], out: Path, delta: str | None, gap: str | None, sim: str, threads: int,
              sysid: str | None = None, dynamics: str | None = None) -> dict:  # fmt: skip
    """`--open-loop`: :func:`asap.eval.openloop.openloop_eval` on ``logs``, with a SysID row for ``sysid`` (a
    ``dynamics.yaml`` of `asap sysid`, or its output folder) and a DeltaDynamics row for ``dynamics`` (a model of
    `asap train-dynamics`, or its output folder)."""
    from asap.eval.openloop import ReplayFn, openloop_eval

    rows: dict[str, ReplayFn] = {}
    if sysid:
        from asap.delta.sysid import sysid_replay
        from asap.sim.dynamics import load_dynamics

        p = Path(sysid)
        rows["SysID"] = sysid_replay(load_dynamics(p / "dynamics.yaml" if p.is_dir() else p))
    if dynamics:
        from asap.delta.delta_dynamics import load_dynamics_model
        from asap.delta.delta_dynamics_train import dynamics_replay

        d = Path(dynamics)
        rows["DeltaDynamics"] = dynamics_replay(load_dynamics_model(d / "dynamics_model.pt" if d.is_dir() else d))
    return openloop_eval(logs, out, delta=delta, gap=gap, sim=sim, threads=threads, methods=rows)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap eval`."""
    p = sub.add_parser(
        "eval",
        help="closed-loop evaluation of policies on a target (simulator + reality gap, or the virtual G1 over DDS)",
        description="Run each policy on each motion from phase 0, N episodes x K seeds, on the target (a simulator "
        "backend with a reality-gap profile, or with --over-dds the robot runtime on a virtual G1 over DDS), and "
        "write OUT/metrics.json (per policy and motion: mean ± std over seeds), OUT/report.md (Table IV layout) and "
        "OUT/report.png (error over time, per-joint error); --video adds OUT/videos/<policy>_<motion>.mp4 (the first "
        "episode of seed 0, the reference as a translucent ghost). --open-loop LOGS adds the open-loop replay report "
        "of logged episodes (OUT/openloop/, or OUT without policies).",
    )
    p.add_argument("policies", nargs="*", metavar="POLICY", help="policy.onnx files or pretraining checkpoints")
    p.add_argument("--motions", nargs="+", metavar="M", help="the clips to track (each policy must be trained on them)")
    p.add_argument("--target", default="mujoco", help="simulator backend of the protocol target (default mujoco)")
    p.add_argument("--gap", help="reality-gap profile (configs/real_gap/*.yaml); default: none")
    p.add_argument("--over-dds", action="store_true", help="run on the virtual G1 over DDS through the robot runtime")
    p.add_argument("--engine", default="mujoco", choices=["mujoco", "genesis"],
                   help="with --over-dds: the virtual G1's physics engine (genesis: an engine gap)")  # fmt: skip
    p.add_argument("--episodes", type=int, default=1, help="episodes per policy, motion and seed (default 1)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 (initial-state and sensor noise; default 1)")
    p.add_argument("--init-noise", type=float, default=0.0,
                   help="initial-state noise level (x the tracking task's init-noise sigmas; default 0)")  # fmt: skip
    p.add_argument("--start-from", nargs="+", metavar="LOGS",
                   help="protocol targets: start each episode from the first frame of a logged episode (`asap "
                   "collect`'s motions folder or files: the runtime's start after the support release) instead of "
                   "the reference state")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="simulator threads (default 1)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--open-loop", nargs="+", metavar="LOGS", help="logged episodes for the open-loop replay report")
    p.add_argument("--logs", nargs="+", metavar="DIR", help="closed loop from a robot's logs: `asap collect` output "
                   "folders (one row each) scored against the one clip of --motions")  # fmt: skip
    p.add_argument("--delta", help="open loop: delta model (delta.pt or oracle:<gap.yaml>) for the ASAP row")
    p.add_argument("--sysid", help="open loop: identified dynamics (`asap sysid` output: dynamics.yaml or its folder)")
    p.add_argument("--dynamics", help="open loop: DeltaDynamics model (`asap train-dynamics` output or its folder)")
    p.add_argument(
        "--video",
        action="store_true",
        help="render each policy x motion's first episode of seed 0 with "
        "the reference as a translucent ghost to OUT/videos/ (needs offscreen OpenGL: EGL or OSMesa)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)
