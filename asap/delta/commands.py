"""`asap train-delta` (the delta action model and its open-loop report) and `asap finetune` (the policy against it)."""

from __future__ import annotations

import argparse
import json

from asap.rl.commands import add_nproc_option


def _overrides(args: argparse.Namespace, options: dict[str, str]) -> list[str]:
    """The dotted overrides plus ``key=value`` for each command-line option given (``options``: option -> key)."""
    out = list(args.overrides)
    for option, key in options.items():
        value = getattr(args, option)
        if value:
            out.append(f"{key}=[{','.join(value)}]" if isinstance(value, list) else f"{key}={value}")
    return out


def _train_delta(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from asap.delta.config import DeltaTrainConfig
    from asap.delta.train import train_delta
    from asap.eval.openloop import summary_line
    from asap.rl.distributed import run_ranks

    options = {"motions": "motions", "out": "run.out_dir", "resume": "run.resume", "gap": "gap"}
    cfg = load_config(DeltaTrainConfig, args.config, _overrides(args, options))
    s = run_ranks(train_delta, cfg, args.nproc)
    if s is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    for h in s["openloop"]:
        print(f"open loop {h} s, E_g-mpjpe (mm): {summary_line(s['openloop'], h, s['openloop_windows'][h])}")
    print(json.dumps({k: s[k] for k in ("delta", "checkpoint", "train_time_s", "episodes")}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap train-delta` and `asap finetune`."""
    register_train_delta(sub)
    register_finetune(sub)


def register_train_delta(sub: argparse._SubParsersAction) -> None:
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
    add_nproc_option(p)
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. env.joints=ankles")
    p.set_defaults(func=_train_delta)


def _finetune(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from asap.delta.finetune import FinetuneConfig, finetune
    from asap.rl.distributed import run_ranks

    options = {"checkpoint": "checkpoint", "delta": "delta", "dynamics": "dynamics", "resume": "resume",
               "out": "out_dir", "dynamics_model": "dynamics_model"}  # fmt: skip
    cfg = load_config(FinetuneConfig, args.config, _overrides(args, options))
    r = run_ranks(finetune, cfg, args.nproc)
    if r is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    ev = r.get("final_eval", {})
    print(f"fine-tuned on the aligned simulator: success {100 * ev.get('success_rate', 0):.0f}%, "
          f"E_mpjpe {ev.get('E_mpjpe_mm', float('nan')):.1f} mm; policy: {r.get('onnx')}")  # fmt: skip
    print(json.dumps({k: r[k] for k in ("checkpoint", "onnx", "train_time_s", "stop_reason") if k in r}))
    return 0


def register_finetune(sub: argparse._SubParsersAction) -> None:
    """Add `asap finetune`."""
    p = sub.add_parser(
        "finetune",
        help="fine-tune a pretrained policy with the frozen delta model inside every simulator step",
        description="PPO on the tracking task in the aligned simulator (training simulator + frozen π^Δ), starting "
        "from a pretraining checkpoint; exports OUT/policy.onnx (deployed without π^Δ). Settings: --config YAML "
        "(configs/finetune/*.yaml), then key=value overrides, e.g. max_time_s=600 without_delta_ratio=0.1 "
        "pretrain.num_envs=64. Without a delta model: --dynamics (SysID), --dynamics-model (DeltaDynamics) "
        "or domain randomisation alone (--config configs/finetune/dr.yaml).",
    )
    p.add_argument("--checkpoint", help="pretraining checkpoint (model_*.pt), or its run folder (its final checkpoint)")
    p.add_argument("--delta", help="delta model (delta.pt of `asap train-delta`)")
    p.add_argument("--dynamics", help="train in identified simulator dynamics (dynamics.yaml of `asap sysid`)")
    p.add_argument("--dynamics-model", help="simulator corrected by a learned next-state residual (dynamics_model.pt)")
    p.add_argument("--out", help="run directory (out_dir)")
    p.add_argument("--config", help="YAML config (configs/finetune/*.yaml)")
    p.add_argument("--resume", help="a fine-tuning checkpoint of this run to continue from")
    add_nproc_option(p)
    p.add_argument("overrides", nargs="*", help="dotted overrides")
    p.set_defaults(func=_finetune)
