"""`asap train-dynamics`: the DeltaDynamics baseline, a learned next-state residual (:mod:`asap.delta.delta_dynamics`,
trained by :mod:`asap.delta.delta_dynamics_train`)."""

from __future__ import annotations

import argparse
import json


def _train_dynamics(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from asap.delta.commands import _overrides
    from asap.delta.delta_dynamics_train import DeltaDynamicsConfig, train_dynamics
    from asap.eval.openloop import summary_line

    options = {"motions": "motions", "out": "out_dir", "resume": "resume", "gap": "gap"}
    cfg = load_config(DeltaDynamicsConfig, args.config, _overrides(args, options))
    s = train_dynamics(cfg)
    for h in s["openloop"]:
        print(f"open loop {h} s, E_g-mpjpe (mm): {summary_line(s['openloop'], h)}")
    print(json.dumps({k: s[k] for k in ("dynamics_model", "checkpoint", "train_time_s", "iterations", "episodes")}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap train-dynamics`."""
    p = sub.add_parser(
        "train-dynamics",
        help="train the DeltaDynamics baseline: a residual of the next state on logged episodes (K-step loss)",
        description="Train an MLP that corrects the simulator state after every step so that replaying the logged "
        "actions from the logged states reproduces the logged states (windows of K steps with the model in the "
        "loop, loss over all K steps, K growing 1, 2, 4, ...). Writes OUT/dynamics_model.pt (+ .json: state "
        "layout, normalisation; for `asap finetune --dynamics-model`) and the held-out open-loop report "
        "OUT/openloop.{json,md,png} (OpenLoop, Oracle when the gap is known, DeltaDynamics). Settings: --config "
        "YAML (configs/dynamics/*.yaml), then key=value overrides, e.g. max_time_s=120 num_envs=128.",
    )
    p.add_argument("--motions", nargs="+", help="logged episodes: `asap collect` motions folder(s) or files")
    p.add_argument("--out", help="run directory (out_dir)")
    p.add_argument("--config", help="YAML config (configs/dynamics/*.yaml)")
    p.add_argument("--gap", help="reality-gap profile the logs came from, when known (adds the Oracle row)")
    p.add_argument("--resume", help="a checkpoint (model_<it>.pt) of this run to continue from")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. max_time_s=120 curriculum=[1,2,4,8]")
    p.set_defaults(func=_train_dynamics)
