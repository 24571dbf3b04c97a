"""What joint-target shaping does to a tracking policy in its training simulator (MuJoCo, `asap play`'s closed loop).

The same policy (checkpoint ``.pt`` or ONNX) runs on the same clip from ``--start-phases`` start phases under three
target-shaping rules (:mod:`asap.control`):

* ``runtime``: clamp to the joint limits + 0.5 rad/step rate limit (the robot runtime's rule, the training default);
* ``clamp``: clamp only;
* ``none``: ``default + 0.25 a`` as it is (the reference's training rule).

It prints success and the tracking errors of each, marks the rule the policy was trained with (its contract or
checkpoint config) and, with ``--json``, writes them. A policy trained without the clamp that tracks well under
``none`` but not under ``runtime`` depends on targets past the joint stops (the soft ankles). Example::

    python scripts/bench_shaping.py run/demo/pretrain/policy.onnx --motion motions/builtin/arm_wave.npz \\
        --start-phases 8 --json bench_shaping.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from asap.control import TargetShaping

RULES = {
    "runtime": TargetShaping(),
    "clamp": TargetShaping(clamp=True, max_step=0.0),
    "none": TargetShaping(clamp=False, max_step=0.0),
}
"""The shaping rules compared (name -> rule)."""


def bench(
    policy: str | Path, motion: str | Path, start_phases: int = 8, threads: int = 1, layout: str | None = None,
    variant: str | None = None, rules: tuple[str, ...] = tuple(RULES),
) -> dict[str, Any]:  # fmt: skip
    """Success and errors of ``policy`` on ``motion`` under each shaping rule (see module docstring)."""
    from asap.rl.play import play

    out: dict[str, Any] = {"policy": str(policy), "motion": str(motion), "start_phases": start_phases, "rules": {},
                           "trained_with": None}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in rules:
            t0 = time.perf_counter()
            s = play(policy, motion, out_dir=Path(tmp) / name, video=False, layout=layout, variant=variant,
                     start_phases=start_phases, threads=threads, shaping=RULES[name])  # fmt: skip
            out["rules"][name] = {
                "shaping": RULES[name].describe(), "success_rate": s["success_rate"], "E_mpjpe_mm": s["E_mpjpe_mm"],
                "E_g_mpjpe_mm": s["E_g_mpjpe_mm"], "steps_survived": s["steps_survived"],
                "expected_steps": s["expected_steps"], "seconds": time.perf_counter() - t0,
            }  # fmt: skip
            out["trained_with"] = s["policy_target_shaping"]
    out["trained_rule"] = next((n for n, r in RULES.items() if r.describe() == out["trained_with"]), None)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line (see module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("policy", help="checkpoint (.pt) or ONNX policy")
    p.add_argument("--motion", required=True, help="the clip the policy tracks")
    p.add_argument("--start-phases", type=int, default=8, help="evenly spaced start phases (default 8)")
    p.add_argument("--threads", type=int, default=1, help="simulator threads")
    p.add_argument("--layout", help="observation layout of an ONNX file without metadata")
    p.add_argument("--variant", help="robot variant of an ONNX file without metadata")
    p.add_argument("--rules", default=",".join(RULES), help=f"comma-separated subset of {list(RULES)}")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    rules = tuple(r.strip() for r in a.rules.split(",") if r.strip())
    bad = [r for r in rules if r not in RULES]
    if bad:
        p.error(f"unknown rule(s) {bad}; choose from {list(RULES)}")
    res = bench(a.policy, a.motion, a.start_phases, a.threads, a.layout, a.variant, rules)
    print(f"{res['policy']} on {res['motion']} ({a.start_phases} start phases); trained with: {res['trained_with']}")
    print(f"{'rule':<9} {'success':>8} {'E_mpjpe':>9} {'E_g-mpjpe':>10}  shaping")
    for name, r in res["rules"].items():
        mark = " *" if name == res["trained_rule"] else ""
        print(f"{name:<9} {100 * r['success_rate']:>7.0f}% {r['E_mpjpe_mm']:>9.1f} {r['E_g_mpjpe_mm']:>10.1f}  "
              f"{r['shaping']}{mark}")  # fmt: skip
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
