"""`asap sysid`: identify simulator dynamics from logged episodes (the SysID baseline, :mod:`asap.delta.sysid`)."""

from __future__ import annotations

import argparse
import json


def _sysid(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from asap.delta.commands import _overrides
    from asap.delta.sysid import SysIDConfig, sysid
    from asap.eval.openloop import summary_line

    options = {"motions": "motions", "out": "out_dir", "gap": "gap", "method": "method"}
    cfg = load_config(SysIDConfig, args.config, _overrides(args, options))
    s = sysid(cfg)
    values = ", ".join(f"{k} {v:.3g}" for k, v in s["values"].items())
    print(f"identified ({s['method']}, {s['candidates']} candidates): {values}")
    for h in s["openloop"]:
        print(f"open loop {h} s, E_g-mpjpe (mm): {summary_line(s['openloop'], h)}")
    print(json.dumps({k: s[k] for k in ("dynamics", "generations", "time_s", "episodes")}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap sysid`."""
    p = sub.add_parser(
        "sysid",
        help="identify simulator dynamics (Kp/Kd, strength, friction, mass/CoM, delay) from logged episodes",
        description="Find the simulator parameters whose open-loop replay of the logged actions from the logged "
        "states best reproduces the logs (CMA-ES, or a grid with method=grid). Writes OUT/dynamics.yaml (for "
        "`asap finetune --dynamics`), the held-out open-loop report OUT/openloop.{json,md,png} (OpenLoop, SysID, "
        "Oracle when the gap is known) and OUT/sysid.json; re-running continues from OUT/sysid_state.pkl. "
        "Settings: --config YAML (configs/sysid/*.yaml), then key=value overrides, e.g. population=8 "
        "generations=5 'params={kp_scale.ankles: [0.3, 1.5]}'.",
    )
    p.add_argument("--motions", nargs="+", help="logged episodes: `asap collect` motions folder(s) or files")
    p.add_argument("--out", help="run directory (out_dir)")
    p.add_argument("--config", help="YAML config (configs/sysid/*.yaml)")
    p.add_argument("--gap", help="reality-gap profile the logs came from, when known (adds the Oracle row)")
    p.add_argument("--method", choices=("cma", "grid"), help="optimiser (method)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. population=8 generations=5")
    p.set_defaults(func=_sysid)
