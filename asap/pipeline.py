"""`asap pipeline` and `asap demo`: chain the stages under one run directory.

Stages so far: retarget a clip -> render it -> pretrain a tracking policy -> play it in the training simulator
-> collect rollouts on the virtual G1 (a second simulator behind DDS, with a hidden reality gap) -> print the
tracking error in the training simulator beside the error on the virtual G1: the gap the delta action model
will close. Every stage writes into ``run_dir`` and is skipped when its output already exists, so a killed
pipeline resumes where it stopped (pretraining resumes from its last checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asap.config import load_config, save_config
from asap.paths import repo_path


@dataclass
class PipelineConfig:
    """What `asap pipeline` runs."""

    run_dir: str = "run/demo"
    """Folder for every stage's outputs."""
    source: str = "builtin:arm_wave"
    """Human motion to retarget: builtin:NAME, a BVH file or an AMASS npz."""
    body_model: str = ""
    """SMPL body-model folder for AMASS sources."""
    render: bool = True
    """Render the retargeted motion and the policy's rollout to mp4."""
    pretrain_config: str = "configs/pretrain/demo.yaml"
    """Pretraining config (YAML)."""
    pretrain_overrides: list[str] = field(default_factory=list)
    """Dotted overrides for pretraining, e.g. ['run.max_time_s=600']."""
    collect: bool = True
    """Collect rollouts on the virtual G1 after pretraining."""
    gap: str = "configs/real_gap/ankle_weak.yaml"
    """Reality-gap profile of the virtual G1."""
    episodes: int = 2
    """Episodes to collect on the virtual G1."""


def _stage(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.time()


def _done(t0: float, what: str) -> None:
    print(f"--- {what} ({time.time() - t0:.0f} s)", flush=True)


def stage_retarget(cfg: PipelineConfig, out: Path) -> Path:
    """Retarget ``cfg.source`` to ``out`` (skipped when it exists); prints the quality report."""
    from asap.retarget.config import load_table
    from asap.retarget.pipeline import format_report, retarget_many, save_result
    from asap.retarget.solver import get_solver
    from asap.retarget.sources import load_source, table_for

    if out.exists():
        print(f"{out} exists: skipped")
        return out
    human = load_source(cfg.source, None, cfg.body_model or None)
    table = load_table(table_for(human), ["robot=g1_23dof"])
    (result,) = retarget_many([human], table, get_solver("g1_23dof"))
    save_result(result, out)
    print(format_report(result.report, cfg.source))
    return out


def stage_pretrain(cfg: PipelineConfig, motion: Path, out: Path) -> dict[str, Any]:
    """Pretrain on ``motion`` into ``out`` (resumes from the newest checkpoint; skipped when finished)."""
    from asap.rl.config import PretrainConfig
    from asap.rl.runner import pretrain

    summary = out / "metrics.json"
    if summary.exists() and (out / "policy.onnx").exists():
        done = json.loads(summary.read_text())
        print(f"{out} holds a finished run (stopped: {done.get('stop_reason')}): skipped")
        return done
    overrides = [f"motion={motion}", f"run.out_dir={out}", *cfg.pretrain_overrides]
    ckpts = sorted(out.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[-1]) if p.stem[6:].isdigit() else -1)
    if ckpts:
        overrides.append(f"run.resume={ckpts[-1]}")
        print(f"resuming from {ckpts[-1]}")
    pcfg = load_config(PretrainConfig, repo_path(cfg.pretrain_config), overrides)
    return pretrain(pcfg)


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the stages of :class:`PipelineConfig`; returns (and writes) a summary with the headline errors."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "pipeline.yaml")
    name = cfg.source.removeprefix("builtin:")
    name = Path(name).stem
    report: dict[str, Any] = {"source": cfg.source}

    t = _stage(f"1. retarget {cfg.source}")
    motion_path = stage_retarget(cfg, run / "motions" / f"{name}.npz")
    report["motion"] = str(motion_path)
    _done(t, f"motion: {motion_path}")

    if cfg.render:
        from asap.motion.motion import Motion
        from asap.motion.render import render_motion

        t = _stage("2. render the retargeted motion")
        video = run / f"{name}.mp4"
        if not video.exists():
            render_motion(Motion.load(motion_path), video, fps=25, width=480, height=360, overwrite=True)
        report["motion_video"] = str(video)
        _done(t, f"video: {video}")

    if not cfg.pretrain_config:
        return _finish(run, report)
    t = _stage("3. pretrain a tracking policy (PPO, MuJoCo)")
    pre = stage_pretrain(cfg, motion_path, run / "pretrain")
    onnx = run / "pretrain" / "policy.onnx"
    keys = ("stop_reason", "train_time_s", "iterations", "checkpoint")
    report["pretrain"] = {k: pre[k] for k in keys if k in pre}
    _done(t, f"policy: {onnx}")

    from asap.eval.compare import compare_rollout
    from asap.rl.play import play

    t = _stage("4. play the policy in the training simulator")
    sim = play(onnx, motion_path, out_dir=run / "play", json_path=run / "play" / "play.json", video=cfg.render)
    # the same frames and error function as play's summary; success also needs play's own ending (no tilt, clip end)
    sim_m = compare_rollout(sim["rollout"], motion_path)
    sim_m.success = sim_m.success and bool(sim["per_rollout"][0]["success"])
    report["training_sim"] = sim_m.as_dict()
    _done(t, f"success {sim['success']}, E_mpjpe {sim['E_mpjpe_mm']:.1f} mm")

    if cfg.collect:
        from deploy.collect import collect

        t = _stage(f"5. collect {cfg.episodes} episode(s) on the virtual G1 (gap: {cfg.gap})")
        col_dir = run / "collect"
        summ = col_dir / "summary.json"
        if summ.exists():
            col = json.loads(summ.read_text())
            print(f"{summ} exists: skipped")
        else:
            col = collect(onnx, col_dir, episodes=cfg.episodes, gap=repo_path(cfg.gap))
        metrics = [compare_rollout(p, motion_path, align="start") for p in col.get("motions", [])]
        if not metrics:
            raise RuntimeError(f"the virtual G1 produced no episodes; see {col_dir / 'virtual_g1.log'}")
        from dataclasses import replace

        from asap.eval.metrics import mean_metrics

        # an episode succeeds only if it also ran to the end of the motion (no safety stop, no fall)
        completed = col.get("completed", [True] * len(metrics))
        metrics = [replace(m, success=m.success and bool(c)) for m, c in zip(metrics, completed, strict=True)]
        report["virtual_g1"] = mean_metrics(metrics)
        report["virtual_g1"]["gap"] = cfg.gap
        _done(t, f"{len(metrics)} episode(s) -> {col_dir / 'motions'}")
    return _finish(run, report)


def _finish(run: Path, report: dict[str, Any]) -> dict[str, Any]:
    (run / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    if "training_sim" in report:
        print("\n=== tracking error: training simulator vs virtual G1 (the sim-to-real gap) ===")
        print(f"{'where':<28} {'success':>8} {'E_g-mpjpe':>10} {'E_mpjpe':>9} {'E_vel':>7} {'E_acc':>7}")
        rows = [("training sim (MuJoCo)", report["training_sim"], "success")]
        if "virtual_g1" in report:
            rows.append((f"virtual G1 ({Path(report['virtual_g1']['gap']).stem})", report["virtual_g1"],
                         "success_rate"))  # fmt: skip
        for label, m, key in rows:
            succ = f"{100 * float(m[key]):.0f}%"
            print(f"{label:<28} {succ:>8} {m['E_g_mpjpe']:10.1f} {m['E_mpjpe']:9.1f} {m['E_vel']:7.2f} "
                  f"{m['E_acc']:7.2f}")  # fmt: skip
        print("(mm, mm/frame, mm/frame^2; the virtual G1 starts from the default pose, its reference is aligned at "
              "the start)")  # fmt: skip
    print(f"\nsummary: {run / 'summary.json'}")
    return report


def _pipeline(args: argparse.Namespace) -> int:
    cfg = load_config(PipelineConfig, args.config, args.overrides)
    run_pipeline(cfg)
    return 0


def _demo(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.quick:
        overrides += ["pretrain_config=", "collect=false"]
    cfg = load_config(PipelineConfig, None, overrides)
    run_pipeline(cfg)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap pipeline` and `asap demo`."""
    p = sub.add_parser("pipeline", help="run the stages in order under one run directory (resumable)")
    p.add_argument("--config", help="YAML (fields of PipelineConfig)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. source=builtin:kick run_dir=run/kick")
    p.set_defaults(func=_pipeline)
    d = sub.add_parser("demo", help="the built-in demo: retarget an arm-wave clip, pretrain, collect on the virtual G1")
    d.add_argument("--quick", action="store_true", help="only retarget and render (about a minute)")
    d.add_argument("--debug", action="store_true", help="show tracebacks")
    d.add_argument("overrides", nargs="*", help="dotted overrides of the pipeline config")
    d.set_defaults(func=_demo)
