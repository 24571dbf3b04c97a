"""Which kind of error a policy's tracking error is: slow (posture, drift) or fast (dither), and on which joints.

For each group of logged episodes (a folder of Motion files from `asap collect` / `asap eval --over-dds`, or files),
against the clip they tracked from ``--start`` (s): E_mpjpe, its slow part (the root-relative error vectors smoothed
over ``--sigma`` s) and its fast part (the rest) (:func:`asap.eval.metrics.slow_fast_mpjpe`), E_acc, and the joints
with the largest mean |q - q_ref| in degrees. Prints one table; ``--json`` writes it.

    python scripts/tracking_error_split.py --motion motions/builtin/arm_wave.npz \\
        --logs run/demo_ml/collect/motions run/demo_ml/collect_r2/motions
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from asap.eval.compare import rollout_against_reference
from asap.eval.metrics import SLOW_SIGMA_S, slow_fast_mpjpe, tracking_metrics
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib


def split_group(files: list[Path], lib: MotionLib, start: float, sigma_s: float, top: int) -> dict:
    """Mean figures over the episodes ``files`` (see module docstring)."""
    rows, joint_err = [], []
    for f in files:
        ro = Motion.load(f)
        sim, ref, q, q_ref = rollout_against_reference(ro, lib, start)
        total, slow, fast = slow_fast_mpjpe(sim, ref, float(ro.fps), sigma_s)
        rows.append((total, slow, fast, tracking_metrics(sim, ref).E_acc))
        joint_err.append(np.abs(q - q_ref)[1:].mean(0))
    m = np.mean(rows, axis=0)
    je = np.degrees(np.mean(joint_err, axis=0))
    names = lib.spec.joint_names
    worst = [(names[i], round(float(je[i]), 1)) for i in np.argsort(-je)[:top]]
    return {"episodes": len(files), "E_mpjpe": float(m[0]), "E_mpjpe_slow": float(m[1]), "E_mpjpe_fast": float(m[2]),
            "E_acc": float(m[3]), "worst_joints_deg": worst}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--motion", required=True, help="the clip the episodes tracked")
    p.add_argument("--logs", nargs="+", required=True, help="folders of logged episodes, or files (one group each)")
    p.add_argument("--start", type=float, default=0.0, help="clip time (s) the episodes started at")
    p.add_argument("--sigma", type=float, default=SLOW_SIGMA_S, help="smoothing of the slow part (s)")
    p.add_argument("--top", type=int, default=5, help="joints listed")
    p.add_argument("--json", help="write the table here")
    a = p.parse_args(argv)
    lib = MotionLib(a.motion, spec="g1_23dof")
    out = {}
    for g in a.logs:
        files = sorted(Path(g).glob("*.npz")) if Path(g).is_dir() else [Path(g)]
        if not files:
            raise SystemExit(f"no .npz episodes in {g}")
        out[g] = split_group(files, lib, a.start, a.sigma, a.top)
    print(f"{'logs':60s} {'ep':>3} {'E_mpjpe':>8} {'slow':>6} {'fast':>6} {'E_acc':>6}  worst joints (deg)")
    for g, r in out.items():
        worst = ", ".join(f"{n.removesuffix('_joint')} {e}" for n, e in r["worst_joints_deg"])
        print(f"{g[-60:]:60s} {r['episodes']:3d} {r['E_mpjpe']:8.1f} {r['E_mpjpe_slow']:6.1f} "
              f"{r['E_mpjpe_fast']:6.1f} {r['E_acc']:6.2f}  {worst}")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
