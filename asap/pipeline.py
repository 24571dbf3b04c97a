"""`asap pipeline` and `asap demo`: chain the stages under one run directory.

Stages: retarget a clip -> render it -> pretrain a tracking policy -> play it in the training simulator -> collect
episodes on the target (the virtual G1: a second simulator behind DDS with a hidden reality gap; or a real G1, the
operator pressing the buttons) -> train the delta action model on those logs -> fine-tune the policy against it ->
evaluate the pretrained and the fine-tuned ("asap") policy on the same target -> print the before/after table and
write ``summary.json``. Every stage writes into ``run_dir`` and is skipped when its output already exists; a killed
stage resumes from its newest checkpoint (pretraining, train-delta, fine-tuning).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asap.config import load_config, save_config, to_dict
from asap.motion.formats import robot_motion_layout
from asap.paths import repo_path
from asap.rl.checkpoints import latest_checkpoint


@dataclass
class PipelineConfig:
    """What `asap pipeline` runs."""

    run_dir: str = "run/demo"
    """Folder for every stage's outputs."""
    source: str = "builtin:arm_wave"
    """The clip: human motion to retarget (builtin:NAME, a BVH file or an AMASS npz) or a robot motion file to use
    as it is (ours, ASAP's .pkl, GMR, mjlab/Isaac Lab .npz, Unitree .csv)."""
    body_model: str = ""
    """SMPL body-model folder for AMASS sources."""
    render: bool = True
    """Render the retargeted motion and the policy's rollout to mp4."""
    pretrain_config: str = "configs/pretrain/demo.yaml"
    """Pretraining config (YAML)."""
    pretrain_overrides: list[str] = field(default_factory=list)
    """Dotted overrides for pretraining, e.g. ['run.max_time_s=600']."""
    pretrain_nproc: int = 1
    """Local data-parallel ranks for pretraining (``asap pretrain --nproc``, docs/scale.md): on 2 cores, 2 ranks keep
    both busy (one process keeps about one core busy)."""
    collect: bool = True
    """Collect rollouts on the virtual G1 after pretraining."""
    gap: str = "configs/real_gap/ankle_weak.yaml"
    """Reality-gap profile of the virtual G1."""
    episodes: int = 2
    """Episodes to collect on the target for the delta action model."""
    robot: str = "virtual"
    """Target robot: 'virtual' (the virtual G1 with ``gap``, spawned by the pipeline) or 'real' (a G1 on the network of
    ``deploy_config``; the operator starts each episode with the remote)."""
    deploy_config: str = ""
    """Runtime config for the target (configs/deploy/*.yaml; empty: the virtual G1's loopback defaults)."""
    deploy_overrides: list[str] = field(default_factory=list)
    """Dotted overrides of the runtime config, e.g. ['interface=enp3s0'] for the robot's network."""
    collect_excitation: float = 0.0
    """Excitation noise on the policy's actions while collecting the delta-training episodes (std in action units,
    :attr:`deploy.controller.ControllerConfig.excitation_std`; never in the evaluations): spreads the logged states
    of a repeatable policy on a repeatable robot so that π^Δ does not learn one trajectory (docs/delta.md)."""
    delta_config: str = ""
    """train-delta config (configs/delta/*.yaml); empty: stop after collecting."""
    delta_overrides: list[str] = field(default_factory=list)
    """Dotted overrides for train-delta, e.g. ['run.max_time_s=300']."""
    finetune_config: str = "configs/finetune/demo.yaml"
    """Fine-tuning config (configs/finetune/*.yaml)."""
    finetune_overrides: list[str] = field(default_factory=list)
    """Dotted overrides for fine-tuning, e.g. ['max_time_s=300']."""
    eval_episodes: int = 4
    """Episodes of each policy (pretrained, asap) in the final evaluation on the target."""
    rounds: int = 1
    """ASAP rounds (1: the paper's single pass). Each later round collects ``episodes`` more episodes on the target with
    the previous round's fine-tuned policy, trains π^Δ afresh on every round's logs and fine-tunes on from the previous
    round's policy: a π^Δ learned from the pretrained policy's episodes is weak on the states the fine-tuned policy
    visits (docs/delta.md, "More ASAP rounds"), and the later rounds' logs are those states."""
    round_finetune_overrides: list[str] = field(default_factory=list)
    """Dotted fine-tuning overrides for rounds after the first only (after ``finetune_overrides``), e.g.
    ['max_time_s=300']."""
    delta: str = ""
    """An existing delta model (``delta.pt``, or ``oracle:<gap.yaml>``) to fine-tune against instead of collecting
    logs and training one: π^Δ does not depend on the clip, so a model trained on other clips' logs can serve a new
    clip (the generalisation experiment of docs/delta.md)."""


def _stage(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.time()


def _done(t0: float, what: str) -> None:
    print(f"--- {what} ({time.time() - t0:.0f} s)", flush=True)


def stage_retarget(cfg: PipelineConfig, out: Path, layout: str | None = None) -> Path:
    """Retarget ``cfg.source`` to ``out`` (skipped when it exists); prints the quality report. A source that is
    already a robot motion (our .npz, ASAP's .pkl, GMR, mjlab/Isaac Lab, Unitree .csv) is read and written as ours
    instead (what `asap motion convert` does); ``layout``: that file's layout (:func:`robot_motion_layout` of
    ``cfg.source``; None for human motion)."""
    from asap.motion.formats import read_motion
    from asap.retarget.config import load_table
    from asap.retarget.pipeline import format_report, retarget_many, save_result
    from asap.retarget.solver import get_solver
    from asap.retarget.sources import load_source, table_for

    if out.exists():
        print(f"{out} exists: skipped")
        return out
    if layout is not None:
        motion = read_motion(cfg.source).for_robot("g1_23dof")
        motion.save(out)
        print(f"{cfg.source}: a robot motion ({layout} layout), {motion.num_frames} frames at {motion.fps:g} fps: "
              "no retargeting needed")  # fmt: skip
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
    from asap.rl.distributed import run_ranks
    from asap.rl.runner import pretrain

    summary = out / "metrics.json"
    if summary.exists() and (out / "policy.onnx").exists():
        done = json.loads(summary.read_text())
        print(f"{out} holds a finished run (stopped: {done.get('stop_reason')}): skipped")
        return done
    overrides = [f"motion={motion}", f"run.out_dir={out}", *cfg.pretrain_overrides]
    last = latest_checkpoint(out)
    if last is not None:
        overrides.append(f"run.resume={last}")
        print(f"resuming from {last}")
    pcfg = load_config(PretrainConfig, repo_path(cfg.pretrain_config), overrides)
    result = run_ranks(pretrain, pcfg, cfg.pretrain_nproc)
    if result is None:
        raise RuntimeError("pretraining returned no result: run `asap pipeline` itself, not under torchrun")
    return result


def _target_name(cfg: PipelineConfig) -> str:
    if cfg.robot == "virtual":
        return f"the virtual G1 (gap: {Path(cfg.gap).stem if cfg.gap else 'none'})"
    if cfg.robot == "real":
        return "the real G1"
    raise ValueError(f"robot must be 'virtual' or 'real', not {cfg.robot!r}")


def stage_target_episodes(
    cfg: PipelineConfig, policy: Path, motion: Path, out: Path, episodes: int, excitation: float = 0.0
) -> dict[str, Any]:
    """``episodes`` episodes of ``policy`` on the target through the robot runtime over DDS (skipped when
    ``out/summary.json`` exists), scored against ``motion``: success rate and mean errors. ``excitation``: noise
    std on the policy's actions (collection only)."""
    from asap.eval.closed_loop import evaluate_over_dds
    from deploy.runtime import RuntimeConfig

    virtual = cfg.robot == "virtual"
    overrides = [*cfg.deploy_overrides, *([f"controller.excitation_std={excitation}"] if excitation > 0 else [])]
    path = cfg.deploy_config or ("configs/deploy/virtual.yaml" if virtual else "")
    rcfg = load_config(RuntimeConfig, repo_path(path) if path else None, overrides) if path or overrides else None
    gap = str(repo_path(cfg.gap)) if (virtual and cfg.gap) else None
    res = evaluate_over_dds(policy, motion, out, episodes, gap, cfg=rcfg, virtual=virtual)
    res["gap"] = cfg.gap if virtual else None
    return res


def stage_train_delta(cfg: PipelineConfig, logs: list[Path], out: Path) -> Path:
    """`asap train-delta` on the episode folders ``logs`` into ``out`` (skipped when finished; resumes from its newest
    checkpoint)."""
    from asap.delta.config import DeltaTrainConfig
    from asap.delta.train import train_delta

    if (out / "summary.json").exists() and (out / "delta.pt").exists():
        print(f"{out} holds a finished delta model: skipped")
        return out / "delta.pt"
    overrides = [f"motions=[{','.join(str(p) for p in logs)}]", f"run.out_dir={out}", *cfg.delta_overrides]
    if cfg.robot == "virtual" and cfg.gap:
        overrides.append(f"gap={repo_path(cfg.gap)}")
    last = latest_checkpoint(out)
    if last is not None:
        overrides.append(f"run.resume={last}")
        print(f"resuming from {last}")
    return Path(train_delta(load_config(DeltaTrainConfig, repo_path(cfg.delta_config), overrides))["delta"])


def stage_finetune(
    cfg: PipelineConfig, start_dir: Path, delta: Path, out: Path, extra_overrides: list[str] | None = None
) -> Path:
    """`asap finetune` against ``delta`` from the newest checkpoint in ``start_dir`` (the pretraining run, or the
    previous round's fine-tuning run) into ``out`` (skipped when finished; resumes)."""
    from asap.delta.finetune import FinetuneConfig, finetune

    onnx = out / "policy.onnx"
    if (out / "metrics.json").exists() and onnx.exists():
        print(f"{out} holds a finished fine-tuning run: skipped")
        return onnx
    start = latest_checkpoint(start_dir)
    if start is None:
        raise FileNotFoundError(f"no model_*.pt in {start_dir}: run the stage that writes it first")
    overrides = [f"checkpoint={start}", f"delta={delta}", f"out_dir={out}", *cfg.finetune_overrides,
                 *(extra_overrides or [])]  # fmt: skip
    last = latest_checkpoint(out)
    if last is not None:
        overrides.append(f"resume={last}")
        print(f"resuming from {last}")
    finetune(load_config(FinetuneConfig, repo_path(cfg.finetune_config), overrides))
    return onnx


def note_changed_settings(cfg: PipelineConfig, saved: Path) -> list[str]:
    """Say which settings differ from the ones the run directory was last run with (``saved``, its
    ``pipeline.yaml``): finished stages are kept as they are, so a changed setting only reaches the stages still to
    run (``rounds=2`` on a finished run is meant that way; a changed ``episodes`` or gap is not). Returns the keys."""
    if not saved.is_file():
        return []
    try:
        old = to_dict(load_config(PipelineConfig, saved, []))
    except (ValueError, TypeError):  # written by another version of the config
        return []
    new = to_dict(cfg)
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        diff = "; ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
        print(f"note: {saved.parent} was last run with other settings ({diff}); its finished stages are kept as they "
              "are (delete a stage's folder to run it again, or give another run_dir)", flush=True)  # fmt: skip
    return changed


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the stages of :class:`PipelineConfig`; returns (and writes) a summary with the headline errors."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    note_changed_settings(cfg, run / "pipeline.yaml")
    save_config(cfg, run / "pipeline.yaml")
    name = cfg.source.removeprefix("builtin:")
    name = Path(name).stem
    report: dict[str, Any] = {"source": cfg.source}

    layout = robot_motion_layout(cfg.source)
    t = _stage(f"1. {'retarget' if layout is None else 'read'} {cfg.source}")
    motion_path = stage_retarget(cfg, run / "motions" / f"{name}.npz", layout)
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

    if not cfg.collect:
        return _finish(run, report)
    where = _target_name(cfg)
    report["target"] = {"robot": cfg.robot, "gap": cfg.gap if cfg.robot == "virtual" else None}
    if cfg.delta:  # a π^Δ trained on other logs: no collection, no delta training (π^Δ does not see the clip)
        delta = Path(cfg.delta)
        if not delta.is_file() and not cfg.delta.startswith("oracle:"):
            raise FileNotFoundError(f"delta={cfg.delta}: no such delta model (a delta.pt of `asap train-delta`)")
        print(f"\n=== 5-6. using the delta action model {cfg.delta} (no collection, no delta training) ===")
        report["delta"] = cfg.delta
    else:
        t = _stage(f"5. collect {cfg.episodes} episode(s) on {where}")
        col_dir = round_dirs(run, 1)["collect"]
        report["virtual_g1" if cfg.robot == "virtual" else "real_g1"] = stage_target_episodes(
            cfg, onnx, motion_path, col_dir, cfg.episodes, excitation=cfg.collect_excitation
        )
        _done(t, f"episodes -> {col_dir / 'motions'}")

        if not cfg.delta_config:
            return _finish(run, report)
        t = _stage("6. train the delta action model (PPO on the open-loop replay of the logs)")
        delta_dir = round_dirs(run, 1)["delta"]
        delta = stage_train_delta(cfg, [col_dir / "motions"], delta_dir)
        report["openloop"] = json.loads((delta_dir / "openloop.json").read_text())
        windows = json.loads((delta_dir / "summary.json").read_text()).get("openloop_windows")
        if windows:  # delta models trained before the window counts were recorded have none
            report["openloop_windows"] = windows
        _done(t, f"delta model: {delta}")

    t = _stage("7. fine-tune the policy against the frozen delta model")
    ft_onnx = stage_finetune(cfg, run / "pretrain", delta, round_dirs(run, 1)["finetune"])
    _done(t, f"policy: {ft_onnx}")
    if cfg.rounds > 1:
        ft_onnx = run_later_rounds(cfg, run, motion_path, report)

    t = _stage(f"8. evaluate the pretrained and the fine-tuned policy on {where}")
    asap_eval = "asap" if cfg.rounds == 1 else f"asap_r{cfg.rounds}"
    for key, policy, folder in (("pretrained", onnx, "pretrained"), ("asap", ft_onnx, asap_eval)):
        report[key] = stage_target_episodes(cfg, policy, motion_path, run / "eval" / folder, cfg.eval_episodes)
    _done(t, f"episodes -> {run / 'eval'}")
    return _finish(run, report)


def round_dirs(run: Path, r: int) -> dict[str, Path]:
    """The collect / delta / finetune folders of ASAP round ``r`` (1-based; round 1 keeps the plain names)."""
    tag = "" if r == 1 else f"_r{r}"
    return {k: run / f"{k}{tag}" for k in ("collect", "delta", "finetune")}


def run_later_rounds(cfg: PipelineConfig, run: Path, motion: Path, report: dict[str, Any]) -> Path:
    """Rounds 2..``cfg.rounds`` after round 1's fine-tuning (see :attr:`PipelineConfig.rounds`): collect with the
    previous round's policy (its episodes also score that policy on the target: ``report["rounds"]``), train π^Δ on
    every round's logs, fine-tune from the previous round's newest checkpoint. Returns the last policy.onnx."""
    if cfg.delta:
        raise ValueError("rounds > 1 collects with each round's policy: drop delta=... (a given π^Δ) or set rounds=1")
    where = _target_name(cfg)
    rounds: list[dict[str, Any]] = report.setdefault("rounds", [])
    policy = round_dirs(run, 1)["finetune"] / "policy.onnx"
    for r in range(2, cfg.rounds + 1):
        prev, cur = round_dirs(run, r - 1), round_dirs(run, r)
        t = _stage(f"round {r}/{cfg.rounds}: collect {cfg.episodes} episode(s) with round {r - 1}'s policy on {where}")
        exc = cfg.collect_excitation
        col = stage_target_episodes(cfg, policy, motion, cur["collect"], cfg.episodes, excitation=exc)
        _done(t, f"episodes -> {cur['collect'] / 'motions'}; round {r - 1}'s policy: success {col['success_rate']:.0%}")
        t = _stage(f"round {r}/{cfg.rounds}: train the delta action model on the logs of rounds 1-{r}")
        logs = [round_dirs(run, k)["collect"] / "motions" for k in range(1, r + 1)]
        delta = stage_train_delta(cfg, logs, cur["delta"])
        _done(t, f"delta model: {delta}")
        t = _stage(f"round {r}/{cfg.rounds}: fine-tune round {r - 1}'s policy against the new delta model")
        policy = stage_finetune(cfg, prev["finetune"], delta, cur["finetune"], cfg.round_finetune_overrides)
        _done(t, f"policy: {policy}")
        keys = ("success_rate", "E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc", "rollouts")
        openloop = json.loads((cur["delta"] / "openloop.json").read_text())
        rounds.append({"round": r, "collected_with": f"round {r - 1}", **{k: col[k] for k in keys if k in col},
                       "openloop": openloop, "policy": str(policy)})  # fmt: skip
    return policy


def _finish(run: Path, report: dict[str, Any]) -> dict[str, Any]:
    (run / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    if "training_sim" in report:
        rows: list[tuple[str, dict[str, Any], str]] = [("pretrained, training sim (MuJoCo)", report["training_sim"],
                                                        "success")]  # fmt: skip
        tgt = report.get("target", {})
        where = "virtual G1" if tgt.get("robot", "virtual") == "virtual" else "real G1"
        if where == "virtual G1" and tgt.get("gap"):
            where += f" ({Path(tgt['gap']).stem})"
        target = report.get("virtual_g1") or report.get("real_g1")
        if target is not None and "asap" not in report:
            rows.append((f"pretrained, {where}", target, "success_rate"))
        if "pretrained" in report:
            rows.append((f"pretrained, {where}", report["pretrained"], "success_rate"))
        for rnd in report.get("rounds", []):  # each later round's collection scored the previous round's policy
            rows.append((f"asap round {rnd['round'] - 1}, {where}", rnd, "success_rate"))
        if "asap" in report:
            last = f" round {len(report['rounds']) + 1}" if report.get("rounds") else ""
            rows.append((f"asap{last}, {where}", report["asap"], "success_rate"))
        title = "before/after ASAP" if "asap" in report else "training simulator vs target (the sim-to-real gap)"
        print(f"\n=== tracking error: {title} ===")
        print(f"{'policy, where':<44} {'success':>8} {'E_g-mpjpe':>10} {'E_mpjpe':>9} {'E_vel':>7} {'E_acc':>7}")
        for label, m, key in rows:
            succ = f"{100 * float(m[key]):.0f}%"
            n = f" ({int(m['rollouts'])} ep.)" if "rollouts" in m else ""
            print(f"{label + n:<44} {succ:>8} {m['E_g_mpjpe']:10.1f} {m['E_mpjpe']:9.1f} {m['E_vel']:7.2f} "
                  f"{m['E_acc']:7.2f}")  # fmt: skip
        print("(mm, mm/frame, mm/frame^2; on the robot each episode starts from the default pose and the reference is "
              "aligned at the start)")  # fmt: skip
    if "openloop" in report:
        from asap.eval.openloop import summary_line

        h = max(report["openloop"], key=float)
        cells = summary_line(report["openloop"], h, report.get("openloop_windows", {}).get(h))
        print(f"open-loop replay of held-out logs, {float(h):g} s, E_g-mpjpe (mm): {cells}")
    print(f"\nsummary: {run / 'summary.json'}")
    return report


DEMO_CONFIG = "configs/pipeline/demo.yaml"
"""What `asap demo` (and `make demo`) runs."""


def _pipeline(args: argparse.Namespace) -> int:
    cfg = load_config(PipelineConfig, repo_path(args.config or DEMO_CONFIG), args.overrides)
    run_pipeline(cfg)
    return 0


def _demo(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.quick:
        overrides += ["pretrain_config=", "collect=false", "delta_config="]
    cfg = load_config(PipelineConfig, repo_path(DEMO_CONFIG), overrides)
    run_pipeline(cfg)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap pipeline` and `asap demo`."""
    p = sub.add_parser("pipeline", help="run the stages in order under one run directory (resumable)")
    p.add_argument("--config", help=f"YAML (fields of PipelineConfig; default {DEMO_CONFIG}, configs/pipeline/*.yaml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. source=builtin:kick run_dir=run/kick")
    p.set_defaults(func=_pipeline)
    d = sub.add_parser(
        "demo", help="the built-in demo: the whole ASAP loop on an arm-wave clip and a virtual G1 with weak ankles"
    )
    d.add_argument("--quick", action="store_true", help="only retarget and render (under a minute)")
    d.add_argument("--debug", action="store_true", help="show tracebacks")
    d.add_argument("overrides", nargs="*", help="dotted overrides of the pipeline config")
    d.set_defaults(func=_demo)
