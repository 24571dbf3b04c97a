"""`asap train-delta`: train the delta action model on logged episodes and report its open-loop error."""

from __future__ import annotations

import argparse
import json


def _train_delta(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from asap.delta.config import DeltaTrainConfig
    from asap.delta.train import train_delta

    overrides = list(args.overrides)
    if args.motions:
        overrides.append("motions=[" + ",".join(args.motions) + "]")
    if args.out:
        overrides.append(f"run.out_dir={args.out}")
    if args.resume:
        overrides.append(f"run.resume={args.resume}")
    if args.gap:
        overrides.append(f"gap={args.gap}")
    cfg = load_config(DeltaTrainConfig, args.config, overrides)
    s = train_delta(cfg)
    for h, row in s["openloop"].items():
        cells = ", ".join(f"{m} {v['E_g_mpjpe']:.1f}" for m, v in row.items())
        print(f"open loop {h} s, E_g-mpjpe (mm): {cells}")
    print(json.dumps({k: s[k] for k in ("delta", "checkpoint", "train_time_s", "episodes")}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap train-delta`."""
    p = sub.add_parser(
        "train-delta",
        help="train the delta action model on logged episodes (open-loop replay, PPO)",
        description="Train π^Δ so that the simulator replaying logged actions + Δa reproduces the logged states. "
        "Writes OUT/delta.pt and the open-loop report OUT/openloop.{json,md,png}. Settings: --config YAML, then "
        "key.sub=value overrides, e.g. env.joints=ankles run.max_time_s=600 num_envs=128.",
    )
    p.add_argument("--motions", nargs="+", help="logged episodes: `asap collect` motions folder(s) or files")
    p.add_argument("--out", help="run directory (run.out_dir)")
    p.add_argument("--config", help="YAML config (configs/delta/*.yaml)")
    p.add_argument("--gap", help="reality-gap profile the logs came from, when known (adds the Oracle row)")
    p.add_argument("--resume", help="rsl-rl checkpoint (model_*.pt) of this run to resume from")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. env.joints=ankles")
    p.set_defaults(func=_train_delta)
