"""Does the delta action model close the gap? collect -> train-delta -> finetune -> collect again, on a virtual G1.

Starting from a pretraining run (``model_*.pt`` + ``policy.onnx``, e.g. ``run/demo/pretrain``) and its clip:

1. the pretrained policy in its training simulator (`asap play`: success, E_mpjpe) — the 1.3x reference;
2. ``--episodes`` episodes of it on the virtual G1 with the gap ``--gap`` (`asap collect`, over DDS, through the
   robot runtime): the logs for π^Δ and the "before" row;
3. `asap train-delta` on those logs (held-out episodes; the open-loop table with the Oracle row);
4. `asap finetune` from the pretraining checkpoint against the frozen π^Δ;
5. ``--eval-episodes`` episodes of the fine-tuned policy on the same virtual G1: the "after" row.

Every stage writes into ``--out`` and is skipped when its output exists (a killed run resumes). Prints the
before/after table and the open-loop table; writes ``--out/bench_delta.json``. Example::

    python scripts/bench_delta.py --pretrain run/demo/pretrain --motion run/demo/motions/arm_wave.npz \\
        --gap configs/real_gap/ankle_weak.yaml --out run/bench_delta/ankle_weak
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def newest_checkpoint(run: Path) -> Path:
    """The highest-numbered ``model_<it>.pt`` of a run directory (:func:`asap.rl.checkpoints.latest_checkpoint`)."""
    from asap.rl.checkpoints import latest_checkpoint

    last = latest_checkpoint(run)
    if last is None:
        raise FileNotFoundError(f"no model_*.pt in {run}")
    return last


def virtual_g1(policy: Path, motion: Path, out: Path, episodes: int, gap: str) -> dict[str, Any]:
    """Collect ``episodes`` on the virtual G1 (skipped when done) and score them against the clip."""
    from asap.eval.closed_loop import evaluate_over_dds

    return evaluate_over_dds(policy, motion, out, episodes, gap)


def main() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrain", required=True, help="pretraining run directory (model_*.pt, policy.onnx)")
    ap.add_argument("--motion", required=True, help="the clip the policy tracks")
    ap.add_argument("--gap", default="configs/real_gap/ankle_weak.yaml", help="reality-gap profile")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--episodes", type=int, default=20, help="episodes logged for π^Δ")
    ap.add_argument("--eval-episodes", type=int, default=4, help="episodes of the fine-tuned policy")
    ap.add_argument("--delta-config", default="configs/delta/demo.yaml")
    ap.add_argument("--finetune-config", default="configs/finetune/demo.yaml")
    ap.add_argument("--delta", nargs="*", default=[], help="train-delta overrides (key=value)")
    ap.add_argument("--finetune", nargs="*", default=[], help="finetune overrides (key=value)")
    args = ap.parse_args()

    from asap.config import load_config
    from asap.delta.config import DeltaTrainConfig
    from asap.delta.finetune import FinetuneConfig, finetune
    from asap.delta.train import train_delta
    from asap.paths import repo_path
    from asap.rl.play import play

    out, pre, motion = Path(args.out), Path(args.pretrain), Path(args.motion)
    gap = str(repo_path(args.gap))
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"gap": args.gap, "pretrain": str(pre), "motion": str(motion), "times_s": {}}

    def timed(name: str, fn):
        t = time.time()
        r = fn()
        res["times_s"][name] = time.time() - t
        print(f"[bench_delta] {name}: {res['times_s'][name]:.0f} s", flush=True)
        return r

    s = timed("play_pretrained", lambda: play(pre / "policy.onnx", motion, out_dir=out / "play_pretrained", video=False,
                                              start_phases=1))  # fmt: skip
    res["pretrained_training_sim"] = {"success": s["success_rate"], "E_mpjpe": s["E_mpjpe_mm"],
                                      "E_g_mpjpe": s["E_g_mpjpe_mm"]}  # fmt: skip
    res["pretrained_virtual_g1"] = timed(
        "collect_pretrained", lambda: virtual_g1(pre / "policy.onnx", motion, out / "collect", args.episodes, gap)
    )
    delta_dir = out / "delta"
    if not (delta_dir / "summary.json").exists():
        logs = out / "collect" / "motions"
        dcfg = load_config(DeltaTrainConfig, repo_path(args.delta_config),
                           [f"motions=[{logs}]", f"run.out_dir={delta_dir}", f"gap={gap}", *args.delta])  # fmt: skip
        timed("train_delta", lambda: train_delta(dcfg))
    res["openloop"] = json.loads((delta_dir / "openloop.json").read_text())
    res["train_delta_time_s"] = json.loads((delta_dir / "summary.json").read_text())["train_time_s"]
    ft_dir = out / "finetune"
    if not (ft_dir / "metrics.json").exists():
        fcfg = load_config(FinetuneConfig, repo_path(args.finetune_config), [
            f"checkpoint={newest_checkpoint(pre)}", f"delta={delta_dir / 'delta.pt'}", f"out_dir={ft_dir}",
            *args.finetune])  # fmt: skip
        timed("finetune", lambda: finetune(fcfg))
    ft = json.loads((ft_dir / "metrics.json").read_text())
    res["finetune_time_s"] = ft["train_time_s"]
    res["finetuned_aligned_sim"] = ft.get("final_eval")
    s = timed("play_finetuned", lambda: play(ft_dir / "policy.onnx", motion, out_dir=out / "play_finetuned",
                                             video=False, start_phases=1))  # fmt: skip
    res["finetuned_training_sim"] = {"success": s["success_rate"], "E_mpjpe": s["E_mpjpe_mm"],
                                     "E_g_mpjpe": s["E_g_mpjpe_mm"]}  # fmt: skip
    res["finetuned_virtual_g1"] = timed(
        "collect_finetuned",
        lambda: virtual_g1(ft_dir / "policy.onnx", motion, out / "collect_finetuned", args.eval_episodes, gap),
    )
    (out / "bench_delta.json").write_text(json.dumps(res, indent=1, default=str))

    print(f"\n=== closed loop, gap {Path(args.gap).stem} ===")
    print(f"{'policy / where':<34} {'success':>8} {'E_g-mpjpe':>10} {'E_mpjpe':>9}")
    for label, key, sk in (("pretrained, training sim", "pretrained_training_sim", "success"),
                           ("pretrained, virtual G1", "pretrained_virtual_g1", "success_rate"),
                           ("fine-tuned, training sim", "finetuned_training_sim", "success"),
                           ("fine-tuned, virtual G1", "finetuned_virtual_g1", "success_rate")):  # fmt: skip
        m = res[key]
        print(f"{label:<34} {100 * float(m[sk]):7.0f}% {m['E_g_mpjpe']:10.1f} {m['E_mpjpe']:9.1f}")
    print("\n=== open loop (held-out), E_g-mpjpe mm ===")
    for h, row in res["openloop"].items():
        print(f"{h:>5} s  " + "  ".join(f"{m} {v['E_g_mpjpe']:.1f}" for m, v in row.items()))
    print(f"\ntrain-delta {res['train_delta_time_s'] / 60:.1f} min, finetune {res['finetune_time_s'] / 60:.1f} min; "
          f"{out / 'bench_delta.json'}")  # fmt: skip


if __name__ == "__main__":
    main()
