"""`asap pretrain` and `asap play`."""

from __future__ import annotations

import argparse
import json
import os


def _pretrain(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from asap.rl.config import PretrainConfig
    from asap.rl.distributed import run_ranks
    from asap.rl.runner import pretrain

    overrides = list(args.overrides)
    if args.resume:
        from asap.rl.checkpoints import resolve_checkpoint

        overrides.append(f"run.resume={resolve_checkpoint(args.resume)}")
    if args.out:
        overrides.append(f"run.out_dir={args.out}")
    cfg = load_config(PretrainConfig, args.config, overrides)
    result = run_ranks(pretrain, cfg, args.nproc)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(json.dumps({k: result[k] for k in ("checkpoint", "onnx", "train_time_s", "stop_reason") if k in result}))
    return 0


def _play(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from asap.rl.play import play

    out = args.out or os.path.join("run", "play")
    wrap = None
    if args.delta:
        from asap.delta.aligned import AlignedSimulator
        from asap.delta.oracle import load_delta

        model = load_delta(args.delta, args.variant or "g1_23dof")

        def wrap(sim):  # the simulator as fine-tuning saw it: training physics + the frozen delta model
            return AlignedSimulator(sim, model)

    s = play(args.policy, args.motion, out_dir=out, json_path=args.json, video=not args.no_video, layout=args.layout,
             variant=args.variant, start_phases=args.start_phases, sim=args.sim, threads=args.threads,
             wrap_sim=wrap)  # fmt: skip
    if args.delta:
        s["delta"] = args.delta
    print(f"{s['motion_name']} ({s['motion_length_s']:.2f} s), {s['policy_kind']} policy, {s['num_rollouts']} "
          f"rollout(s)")  # fmt: skip
    print(f"{'start_s':>8} {'success':>8} {'steps':>11} {'E_mpjpe_mm':>11} {'E_g-mpjpe_mm':>13}")
    for r, exp in zip(s["per_rollout"], s["expected_steps"], strict=True):
        print(f"{r['start_s']:8.2f} {str(r['success']):>8} {r['steps']:>5d}/{exp:<5d} {r['E_mpjpe_mm']:11.1f} "
              f"{r['E_g_mpjpe_mm']:13.1f}")  # fmt: skip
    print(f"success rate {100 * s['success_rate']:.0f}%, E_mpjpe {s['E_mpjpe_mm']:.1f} mm, "
          f"E_g-mpjpe {s['E_g_mpjpe_mm']:.1f} mm; per-step errors: {s['errors_csv']}")  # fmt: skip
    if "video" in s:
        print(f"video: {s['video']}")
    elif "video_error" in s:
        print(f"video skipped: {s['video_error']}")
    if args.json:
        print(f"json: {args.json}")
    return 0 if s["success"] else 3


def add_nproc_option(p: argparse.ArgumentParser) -> None:
    """``--nproc N``: data-parallel training in N local ranks (docs/scale.md)."""
    p.add_argument("--nproc", type=int, default=1,
                   help="train data-parallel in N local processes (torch.distributed: Gloo on CPU, NCCL on GPU; "
                   "num_envs is per process); under torchrun leave it out")  # fmt: skip


def _export(args: argparse.Namespace) -> int:
    from asap.rl.export import export_checkpoint

    for path in export_checkpoint(args.checkpoint, args.out):
        print(f"exported {args.checkpoint} -> {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap pretrain` and `asap play`."""
    p = sub.add_parser(
        "pretrain",
        help="train a motion-tracking policy with PPO",
        description="Train a tracking policy. Settings: --config YAML, then key.sub=value overrides, e.g. "
        "motion=motions/squat.npz sim=mujoco num_envs=128 run.max_time_s=1200.",
    )
    p.add_argument("--config", help="YAML config (configs/pretrain/*.yaml)")
    p.add_argument("--resume", help="checkpoint (.pt) to resume from, or a run folder (its last checkpoint)")
    p.add_argument("--out", help="run directory (run.out_dir)")
    add_nproc_option(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("overrides", nargs="*", help="dotted overrides key.sub=value")
    p.set_defaults(func=_pretrain)

    e = sub.add_parser(
        "export",
        help="export a training checkpoint as a deployable policy.onnx",
        description="Export a checkpoint (model_*.pt of asap pretrain or asap finetune) as the ONNX file training "
        "writes at its end (the deploy contract in its metadata; one file per clip), for asap collect, asap deploy "
        "and asap eval --over-dds.",
    )
    e.add_argument("checkpoint", help="model_*.pt, or a run folder (its final checkpoint)")
    e.add_argument("--out", help="ONNX file to write (default: the checkpoint's name with .onnx, beside it)")
    e.add_argument("--debug", action="store_true", help="show tracebacks")
    e.set_defaults(func=_export)

    q = sub.add_parser(
        "play",
        help="run a policy closed loop in simulation (video + tracking errors)",
        description="Run a checkpoint (.pt from asap pretrain) or an ONNX policy of layout asap_v1 (ours, or a "
        "batch-1 model released with ASAP) on a motion. Exit status 3 when a rollout fails.",
    )
    q.add_argument("policy", help="model_*.pt or *.onnx")
    q.add_argument("--motion", required=True, help="the motion to track (any readable motion file)")
    q.add_argument("--json", help="write success, steps survived, E_mpjpe and E_g-mpjpe (mm) here")
    q.add_argument("--no-video", action="store_true", help="skip rendering")
    q.add_argument("--out", help="output folder (default run/play)")
    q.add_argument("--layout", help="observation layout of an ONNX without metadata (default asap_v1)")
    q.add_argument("--variant", help="robot variant of an ONNX without metadata (default g1_23dof)")
    q.add_argument("--start-phases", type=int, default=1, help="rollouts from this many evenly spaced phases")
    q.add_argument("--sim", default="mujoco", help="simulator backend")
    q.add_argument("--delta", help="delta model (delta.pt, or oracle:GAP.yaml): run in the aligned simulator")
    q.add_argument("--threads", type=int, default=1, help="simulator threads")
    q.add_argument("--debug", action="store_true", help="show tracebacks")
    q.set_defaults(func=_play)
