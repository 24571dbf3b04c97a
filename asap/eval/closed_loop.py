"""Closed-loop evaluation (`asap eval`): policies run on motions from phase 0 on a target, N episodes x K seeds, scored
with the paper's metrics and reported as Table IV (mean ± std over seeds).

Targets (ARCHITECTURE.md, "Target"):

* a **protocol target** (:class:`asap.eval.targets.GapSimulator`): a simulator backend with a reality-gap profile,
  stepped through the training env's closed loop (:func:`asap.rl.play.closed_loop` on
  :class:`envs.tracking.env.TrackingEnv` in eval mode), i.e. the runtime's own policy path: observations from
  :mod:`asap.obs`, joint targets from :func:`asap.control.shape_targets` with the policy's contract shaping (the
  test ``tests/test_train_deploy_parity.py`` holds that loop and :class:`deploy.controller.Controller` equal step by
  step). The N episodes of one seed run as N envs of one batch. A seed sets the env's generator (initial-state
  noise: :class:`envs.tracking.config.InitNoiseConfig` times ``init_noise``, drawn per episode) and the target's
  sensor noise (when the gap profile has some);
* the **virtual G1 over DDS** (:func:`evaluate_over_dds`): the robot runtime drives a virtual G1 with the gap
  (:func:`deploy.collect.collect`), each logged episode scored against the clip with the reference aligned at the
  start. A seed there is one more collection (timing jitter is the noise source; the virtual G1's sensor-noise seed
  is fixed).

Per episode: :func:`asap.eval.compare.compare_rollout` (every :class:`asap.eval.metrics.TrackingMetrics` field,
taken generically through ``as_dict()``), success only when the episode also reached the clip's end without a
failure (tilt or the mean body distance limit; on DDS: no safety stop); an episode that failed within two steps
counts as a failure with no error values. Means over the N episodes of a seed, then mean ± std (population std)
over the K seeds, per policy (all its motions) and per motion.

Artifacts in ``out``: ``metrics.json``, ``report.md`` (Table IV layout), ``report.png`` (mean body distance per
frame, mean absolute joint-angle error per joint); with ``--video`` also ``videos/<policy>_<motion>.mp4``: the first
episode of seed 0 of each policy and motion, the reference drawn as a translucent ghost (re-anchored at the
episode's start where the episodes were scored so: DDS, logs).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.control import motion_steps
from asap.eval.compare import compare_rollout, reference_body_positions, reference_dof_pos, rollout_body_positions
from asap.eval.metrics import mean_metrics
from asap.eval.targets import GapSimulator, resolve_gap, target_backend_error
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.rl.play import closed_loop, eval_env_config, load_policy, rollout_motion
from asap.robot.model import ModelOptions
from asap.robot.spec import get_spec
from asap.sim.base import SimConfig
from envs.tracking.config import InitNoiseConfig, LoggedStartsConfig, TrackingEnvConfig
from envs.tracking.env import TrackingEnv

PAPER_COLUMNS = (("success_rate", "Succ"), ("E_g_mpjpe", "E_g-mpjpe"), ("E_mpjpe", "E_mpjpe"), ("E_acc", "E_acc"),
                 ("E_vel", "E_vel"))  # fmt: skip
"""Table IV's columns (metric key, header), in the paper's order; other metrics follow in a second table."""
COUNT_KEYS = ("episodes", "frames", "steps", "expected_steps")
"""Per-episode counts averaged like metrics but not reported as errors."""


# ---------------------------------------------------------------------------------------------- episodes
@dataclass
class EpisodeSet:
    """What the episodes of one (policy, motion, seed) gave."""

    episodes: list[dict[str, Any]]
    """Per episode: ``success``, ``steps``, ``expected_steps`` and the TrackingMetrics fields (absent when the
    episode failed within two steps)."""
    error_curve_sum: np.ndarray
    """(K+1,) sum over episodes of the mean body distance (mm) at frame k (frame 0: the start state)."""
    error_curve_count: np.ndarray
    """(K+1,) episodes that reached frame k."""
    joint_error_sum: np.ndarray
    """(J,) sum over episodes and frames 1..K of |q - q_ref| (rad)."""
    joint_error_frames: int = 0
    """Frames summed in ``joint_error_sum``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Target-specific facts (the DDS collection's summary, ...)."""
    rollout: Motion | None = None
    """The first episode's trajectory (frame 0 = the start state at motion time 0; the control rate), for
    ``asap eval --video``."""
    align: str = "none"
    """Where the episodes were scored against the reference: ``"none"`` (the clip in world coordinates: protocol
    targets start on it) or ``"start"`` (re-anchored at each episode's start: DDS, logs)."""


def episode_record(rollout: Motion, lib: MotionLib, variant: str, align: str, ok: bool | None = None) -> dict:
    """Metrics of one rollout (frame 0 = the start state, motion time 0) against clip 0 of ``lib``, plus its
    per-frame mean body distance (mm, ``"_curve"`` (K+1,)) and per-joint absolute error (rad, ``"_joint_abs"``
    (K, J), frames 1..K). ``ok``: the target's own verdict (reached the end, no failure), ANDed into ``success``."""
    rec: dict[str, Any] = {"steps": int(rollout.num_frames - 1)}
    ro = rollout.for_robot(variant)
    sim = rollout_body_positions(ro, variant)
    times = np.arange(ro.num_frames) / float(ro.fps)
    keep = np.arange(len(times)) <= motion_steps(float(lib.motion_lengths[0]), 1.0 / float(ro.fps))
    anchor = (ro.root_pos[0], ro.root_quat[0]) if align == "start" else None
    ref = reference_body_positions(lib, times[keep], anchor)
    rec["_curve"] = 1000 * np.linalg.norm(sim[keep] - ref, axis=-1).mean(-1)
    rec["_joint_abs"] = np.abs(ro.dof_pos[keep] - reference_dof_pos(lib, times[keep]))[1:]
    if int(keep.sum()) >= 3:
        m = compare_rollout(ro, lib, align=align, variant=variant)
        rec.update(m.as_dict())
        rec["success"] = bool(m.success) and (ok is None or bool(ok))
    else:
        rec["success"] = False
    return rec


def collect_episodes(
    records: list[dict], extra: dict[str, Any] | None = None, rollout: Motion | None = None, align: str = "none"
) -> EpisodeSet:
    """An :class:`EpisodeSet` from :func:`episode_record` results (their curves summed, the rest kept), with the
    first episode's ``rollout`` and the ``align`` mode they were scored with."""
    length = max(len(r["_curve"]) for r in records)
    cs, cc = np.zeros(length), np.zeros(length)
    j = records[0]["_joint_abs"].shape[-1]
    js, jf = np.zeros(j), 0
    eps = []
    for r in records:
        c = r["_curve"]
        cs[: len(c)] += c
        cc[: len(c)] += 1
        js += r["_joint_abs"].sum(0)
        jf += len(r["_joint_abs"])
        eps.append({k: v for k, v in r.items() if not k.startswith("_")})
    return EpisodeSet(eps, cs, cc, js, jf, extra or {}, rollout, align)


# ---------------------------------------------------------------------------------------------- policies
def load_eval_policy(path: str | Path) -> tuple[Any, str]:
    """``(policy, variant)``: an ONNX file loaded once (:class:`asap.contract.OnnxPolicy`, plain files allowed) or
    a checkpoint path, as :func:`asap.rl.play.load_policy` takes them, and the robot variant it runs."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"policy {p} does not exist")
    if p.suffix == ".onnx":
        from asap.contract import OnnxPolicy

        pol = OnnxPolicy(p, allow_plain=True)
        return pol, pol.contract.robot_variant
    ck = torch.load(str(p), map_location="cpu", weights_only=False)
    return p, (ck.get("infos") or {}).get("config", {}).get("variant", "g1_23dof")


def run_on_target(
    policy: Any, variant: str, motion: str | Path, backend: str = "mujoco", gap: Any = None, episodes: int = 1,
    seed: int = 0, init_noise: float = 0.0, threads: int = 1, on_step: Callable[[], None] | None = None,
    start_from: Sequence[str] = (),
) -> EpisodeSet:  # fmt: skip
    """``episodes`` closed-loop episodes of ``policy`` (from :func:`load_eval_policy`) on ``motion`` from phase 0 on a
    protocol target (``backend`` + the gap profile ``gap``: a config, a YAML path or None), seeded by ``seed``.

    ``init_noise`` scales the tracking task's initial-state noise (0: every episode starts on the reference);
    ``start_from``: logged episodes (files or folders, ``asap collect``'s ``motions/``) whose first frames, the
    states the robot runtime handed its policy, are the episodes' start states instead (drawn by ``seed``; see
    :mod:`envs.tracking.logged_starts`); ``on_step`` is called once per control step (progress).
    """
    lib = MotionLib(motion, spec=variant)
    act, facts = load_policy(policy, lib, variant=variant)

    def counted(obs: torch.Tensor) -> torch.Tensor:
        if on_step is not None:
            on_step()
        return act(obs)

    n = max(1, int(episodes))
    cfg = SimConfig(backend=backend, variant=facts["variant"], num_envs=n, threads=threads,
                    model=facts.get("physics") or ModelOptions())  # fmt: skip
    sim = GapSimulator(cfg, gap, seed=seed)
    env_cfg = eval_env_config(TrackingEnvConfig(obs_layout=facts["layout"], target_shaping=facts["shaping"]),
                              residual=False)  # fmt: skip
    env_cfg = replace(
        env_cfg,
        seed=int(seed),
        init_noise=InitNoiseConfig(level=float(init_noise)),
        logged_starts=LoggedStartsConfig(logs=list(start_from), ratio=1.0 if start_from else 0.0),
    )
    env = (TrainingStartEnv if init_noise > 0 or start_from else TrackingEnv)(env_cfg, sim, lib)
    try:
        res = closed_loop(env, counted, torch.zeros(n, dtype=torch.long), torch.zeros(n), record=True)
    finally:
        sim.close()
    records, rollouts = [], []
    for i in range(n):
        ro = rollout_motion(res, i, 1.0 / env.dt, sim.spec.joint_names)
        rec = episode_record(ro, lib, facts["variant"], "none", ok=bool(res.success[i]))
        rec["expected_steps"] = int(res.expected_steps[i])
        records.append(rec)
        rollouts.append(ro)
    return collect_episodes(records, {"target": sim.describe()}, rollouts[0], "none")


class TrainingStartEnv(TrackingEnv):
    """The tracking env whose evaluation resets keep the configured initial-state noise and logged starts
    (:class:`TrackingEnv` uses them only outside eval mode); everything else of eval mode stays: no observation
    noise, no curricula, no automatic resets, the failure rule."""

    def reset_to(self, motion_ids: torch.Tensor, start_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """See :meth:`TrackingEnv.reset_to` (with the initial-state noise of ``cfg.init_noise`` and the logged starts
        of ``cfg.logged_starts``)."""
        on, self.eval_mode = self.eval_mode, False
        try:
            return super().reset_to(motion_ids, start_times)
        finally:
            self.eval_mode = on


# ---------------------------------------------------------------------------------------------- over DDS
def evaluate_over_dds(
    policy: str | Path, motion: str | Path, out: str | Path, episodes: int, gap: str | Path | None,
    cfg: Any = None, virtual: bool = True, engine: str = "mujoco",
) -> dict[str, Any]:  # fmt: skip
    """Run ``episodes`` episodes of ``policy`` (ONNX) through the robot runtime on a virtual G1 over DDS with the gap
    profile ``gap`` (:func:`deploy.collect.collect` into ``out``; a finished collection, ``out/summary.json``, is
    reused) and score each logged episode against ``motion`` (:func:`asap.eval.compare.compare_rollout`, reference
    aligned at the start). An episode succeeds only if it also ran to the motion's end (no safety stop, no fall).
    ``cfg`` (a :class:`deploy.runtime.RuntimeConfig`) and ``virtual=False`` run them on a real G1 instead (the
    operator starts each episode with the remote; ``gap`` is then ignored). ``engine``: the virtual G1's physics.

    Returns :func:`asap.eval.metrics.mean_metrics` of the episodes plus ``completed`` (per episode),
    ``per_episode`` (each ``TrackingMetrics.as_dict()``), ``motions`` (the logged episodes' files) and ``gap``.
    Raises ``RuntimeError`` when the virtual G1 produced no episode.
    """
    from deploy.collect import collect, collection_request

    out = Path(out)
    summ = out / "summary.json"
    if summ.exists():
        col = json.loads(summ.read_text())
        asked = collection_request(policy, episodes, gap if virtual else None, virtual, engine)
        held = col.get("request")
        if held is not None and held != asked:
            diff = ", ".join(f"{k} {held.get(k)} (asked: {v})" for k, v in asked.items() if held.get(k) != v)
            raise ValueError(f"{out} holds a finished collection with other settings: {diff}; delete it or choose "
                             "another output folder to collect again")  # fmt: skip
        print(f"{out}: reusing its {len(col.get('motions', []))} finished episode(s) (delete it to collect again)")
    else:
        col = collect(policy, out, episodes=episodes, cfg=cfg, virtual=virtual, gap=gap if virtual else None,
                      engine=engine)  # fmt: skip
    metrics = [compare_rollout(p, motion, align="start") for p in col.get("motions", [])]
    if not metrics:
        raise RuntimeError(f"the virtual G1 produced no episodes; see {out / 'virtual_g1.log'}")
    completed = [bool(c) for c in col.get("completed", [True] * len(metrics))]
    metrics = [replace(m, success=m.success and c) for m, c in zip(metrics, completed, strict=True)]
    return {**mean_metrics(metrics), "completed": completed, "per_episode": [m.as_dict() for m in metrics],
            "motions": list(col.get("motions", [])), "gap": None if gap is None else str(gap)}  # fmt: skip


def run_over_dds(
    policy: str | Path,
    variant: str,
    motion: str | Path,
    out: str | Path,
    episodes: int,
    gap: str | Path | None,
    engine: str = "mujoco",
) -> EpisodeSet:
    """:func:`evaluate_over_dds` as an :class:`EpisodeSet` (per-episode curves from the logged episodes)."""
    from asap.contract import OnnxPolicy
    from asap.rl.export import clip_fingerprints

    if Path(policy).suffix != ".onnx":
        raise ValueError(f"--over-dds runs the robot runtime, which takes an exported policy.onnx, not {policy}")
    lib = MotionLib(motion, spec=variant)
    OnnxPolicy(policy).contract.check_motion(clip_fingerprints(lib)[0], where=str(policy), runtime=True)
    res = evaluate_over_dds(policy, motion, out, episodes, gap, engine=engine)
    rollouts = [Motion.load(path) for path in res["motions"]]
    records = [episode_record(ro, lib, variant, "start", ok=ok)
               for ro, ok in zip(rollouts, res["completed"], strict=True)]  # fmt: skip
    summary = {k: v for k, v in res.items() if k not in ("per_episode",)}
    return collect_episodes(records, {"target": {"backend": "virtual G1 over DDS", "gap": summary["gap"],
                                                 "engine": engine},
                                      "collection": summary}, rollouts[0], "start")  # fmt: skip


def logged_episode_set(log: str | Path, motion: str | Path, variant: str = "g1_23dof") -> EpisodeSet:
    """Score the episodes a robot logged (the *logs* target: an `asap collect` output folder, whose
    ``summary.json`` says which episodes ran to the end, or its ``motions`` folder, or Motion files) against
    ``motion``, reference aligned at each episode's start. Without ``summary.json`` an episode's success is the
    distance criterion alone. Raises ``FileNotFoundError`` when no logged episode is found."""
    from asap.delta.logs import gather_logs

    p = Path(log)
    summ = p / "summary.json"
    if summ.is_file():
        col = json.loads(summ.read_text())
        files = [Path(f) for f in col.get("motions", [])]
        done = col.get("completed", [None] * len(files))
        completed: list[bool | None] = [bool(c) for c in done] if isinstance(done, list) else [None] * len(files)
    else:
        files = gather_logs([str(p)])
        completed = [None] * len(files)
    if not files:
        raise FileNotFoundError(f"{p}: no logged episodes (an `asap collect` output folder or Motion files)")
    lib = MotionLib(motion, spec=variant)
    rollouts = [Motion.load(f) for f in files]
    records = [episode_record(ro, lib, variant, "start", ok=ok) for ro, ok in zip(rollouts, completed,
                                                                                  strict=True)]  # fmt: skip
    return collect_episodes(records, {"target": {"backend": "logs", "logs": str(p)}}, rollouts[0], "start")


def evaluate_logs(logs: Sequence[str | Path], motion: str | Path, out: str | Path, variant: str = "g1_23dof",
                  video: VideoConfig | None = None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """`asap eval --logs`: each folder of logged episodes (a real robot's `asap collect` runs, say before and after
    fine-tuning) scored against ``motion`` as one row; writes ``out/{metrics.json, report.md, report.png}`` like
    :func:`evaluate` (and with ``video`` each folder's first episode, :func:`render_videos`) and returns the
    metrics."""
    if video is not None:
        check_offscreen_gl()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = policy_labels(logs)
    name = Path(motion).stem
    results = {lab: {name: [logged_episode_set(log, motion, variant)]} for lab, log in zip(labels, logs, strict=True)}
    episodes = max(len(r[name][0].episodes) for r in results.values())
    report = metrics_report(results, dict(zip(labels, map(str, logs), strict=True)), [str(motion)],
                            {"over_dds": False, "backend": "logs", "gap": "unknown", "gap_file": None}, episodes, 1,
                            0.0)  # fmt: skip
    if video is not None:
        report["videos"] = render_videos(results, {name: motion}, dict.fromkeys(labels, variant), out / "videos",
                                         video, progress)  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(report_markdown(report))
    plot_report(results, out / "report.png", variant)
    report["files"] = {k: str(out / f) for k, f in (("metrics", "metrics.json"), ("report", "report.md"),
                                                    ("plot", "report.png"))}  # fmt: skip
    return report


def export_for_motion(path: str | Path, loaded: tuple[Any, str], motion: str | Path) -> Path:
    """The policy file to run on ``motion``: ``path`` itself, or — for an ONNX policy trained on several clips
    whose ``motion`` has its own export beside it (residual policies, :func:`asap.rl.export.export_every_clip`) —
    that clip's file. Anything else is left to the policy's own clip check (one-line error)."""
    pol, variant = loaded
    if Path(path).suffix != ".onnx" or len(pol.contract.clips) < 2:
        return Path(path)
    from asap.contract import ContractError
    from asap.rl.export import clip_export_paths, clip_fingerprints

    fp = clip_fingerprints(MotionLib(motion, spec=variant))[0]
    try:
        pol.contract.check_motion(fp, runtime=True)
        return Path(path)
    except ContractError:
        pass
    hits = [k for k, c in enumerate(pol.contract.clips) if fp.same_clip(c)]
    if not hits:
        return Path(path)
    own = clip_export_paths(path, [c.name for c in pol.contract.clips])[hits[0]]
    return own if own.is_file() else Path(path)


# ---------------------------------------------------------------------------------------------- videos
@dataclass
class VideoConfig:
    """How `asap eval --video` draws each policy x motion (:func:`asap.motion.render.render_ghost_video`)."""

    width: int = 640
    """Frame width (px, even)."""
    height: int = 480
    """Frame height (px, even)."""
    geoms: str = "mesh"
    """``mesh`` (Unitree's visual meshes) or ``collision`` (capsules; several times faster in software GL)."""


def file_safe(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``.``, ``_``, ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


def check_offscreen_gl() -> None:
    """Raise ``RuntimeError`` (one line) when no offscreen OpenGL context can be made (the renderer needs EGL or
    OSMesa), before an evaluation spends its time."""
    import mujoco

    from asap.motion.render import _ensure_offscreen_gl

    _ensure_offscreen_gl()
    try:
        ctx = mujoco.GLContext(8, 8)
        ctx.make_current()
        ctx.free()
    except Exception as e:  # noqa: BLE001 - any GL failure means: no offscreen rendering here
        raise RuntimeError(f"--video needs offscreen OpenGL (MUJOCO_GL=egl or osmesa): {e}") from e


def render_videos(
    results: dict[str, dict[str, list[EpisodeSet]]], motions: dict[str, str | Path], variants: dict[str, str],
    out: str | Path, cfg: VideoConfig | None = None, progress: bool = True,
) -> dict[str, dict[str, str]]:  # fmt: skip
    """Per policy label and motion name of ``results``, the first episode of seed 0 (:attr:`EpisodeSet.rollout`)
    with its reference (``motions[name]``, :func:`asap.eval.compare.aligned_reference` as the episodes were scored:
    re-anchored at the episode's start for DDS and logs) as a translucent ghost, one video frame per control step,
    to ``out/<label>_<motion>.mp4`` (file-safe names; replaced when present). ``variants``: each label's robot
    variant. Returns ``{label: {motion: path}}``."""
    import sys

    from asap.eval.compare import aligned_reference
    from asap.motion.render import render_ghost_video
    from asap.utils.progress import progress_bar

    cfg = cfg or VideoConfig()
    out = Path(out)
    jobs = [(label, name, sets[0]) for label, per_motion in results.items() for name, sets in per_motion.items()]
    videos: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    bar = progress_bar(jobs, desc="video", unit="video", disable=not progress, file=sys.stderr)
    for label, name, first in bar:
        if first.rollout is None:
            raise ValueError(f"{label} on {name}: no rollout kept for the video")
        stem = base = f"{file_safe(label)}_{file_safe(name)}"
        k = 1
        while stem in used:  # labels that differ only in unsafe characters
            k += 1
            stem = f"{base}-{k}"
        used.add(stem)
        bar.set_postfix_str(stem)
        variant = variants[label]
        ro = first.rollout.for_robot(variant)
        ref = aligned_reference(ro, MotionLib(motions[name], spec=variant), align=first.align)
        path = out / f"{stem}.mp4"
        render_ghost_video(ro, ref, path, width=cfg.width, height=cfg.height, overwrite=True,
                           spec=get_spec(variant), geoms=cfg.geoms, progress=progress)  # fmt: skip
        videos.setdefault(label, {})[name] = str(path)
    bar.close()
    return videos


# ---------------------------------------------------------------------------------------------- statistics
def episode_means(episodes: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means over episodes: ``success_rate`` over all of them, every other numeric field over those that have it
    (``None`` and missing values are skipped), plus ``episodes``."""
    out: dict[str, float] = {"success_rate": float(np.mean([bool(e["success"]) for e in episodes]))}
    keys: list[str] = []
    for e in episodes:
        keys += [k for k in e if k != "success" and k not in keys]
    for k in keys:
        vals = [float(e[k]) for e in episodes if isinstance(e.get(k), int | float) and e.get(k) is not None]
        if vals:
            out[k] = float(np.mean(vals))
    out["episodes"] = float(len(episodes))
    return out


def seed_stats(per_seed: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over seeds (population std; a metric some seed lacks is averaged over the
    others)."""
    keys: list[str] = []
    for s in per_seed:
        keys += [k for k in s if k not in keys]
    out = {}
    for k in keys:
        v = np.array([s[k] for s in per_seed if k in s], dtype=np.float64)
        out[k] = {"mean": float(v.mean()), "std": float(v.std())}
    return out


def policy_labels(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names of policy files: as many trailing path parts as needed, without the suffix."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    for k in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


# ---------------------------------------------------------------------------------------------- the stage
def evaluate(
    policies: Sequence[str | Path], motions: Sequence[str | Path], out: str | Path, target: str = "mujoco",
    gap: str | Path | None = None, episodes: int = 1, seeds: int = 1, init_noise: float = 0.0,
    over_dds: bool = False, threads: int = 1, progress: bool = True, video: VideoConfig | None = None,
    engine: str = "mujoco", start_from: Sequence[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """`asap eval`: every policy on every motion, ``episodes`` episodes x ``seeds`` seeds (seeds 0..K-1), on the
    protocol target ``target`` + ``gap`` or (``over_dds``) on the virtual G1 over DDS with ``gap`` and its physics
    ``engine`` (``mujoco``, or ``genesis``: an engine gap); writes
    ``out/{metrics.json, report.md, report.png}`` and returns the metrics (see module docstring). With ``video``:
    per policy and motion the first episode of seed 0 with its reference as a ghost, ``out/videos/*.mp4``
    (:func:`render_videos`; their paths in ``metrics["videos"]``). ``start_from``: protocol-target episodes start
    from the first frames of these logged episodes (the robot runtime's start after its blend and support release)
    instead of the reference state (:func:`run_on_target`)."""
    import sys

    from asap.utils.progress import progress_bar

    if not policies:
        raise ValueError("give at least one policy")
    if not motions:
        raise ValueError("give at least one motion (--motions)")
    if not over_dds and (why := target_backend_error(target)):
        raise ValueError(why)
    if engine != "mujoco" and not over_dds:
        raise ValueError(f"engine={engine} is the virtual G1's physics: add --over-dds (or use --target {engine})")
    if over_dds and init_noise > 0:
        raise ValueError("initial-state noise applies to protocol targets; the virtual G1 starts from its default pose")
    if over_dds and start_from:
        raise ValueError("--start-from applies to protocol targets; the virtual G1 starts from its own support release")
    if video is not None:
        check_offscreen_gl()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gap_cfg = resolve_gap(gap)
    gap_path = None if gap is None else str(_resolved(gap))
    loaded = [load_eval_policy(p) for p in policies]
    labels = policy_labels(policies)
    n, k_seeds = max(1, int(episodes)), max(1, int(seeds))
    run_steps = _run_steps(loaded, motions) if not over_dds else {}
    total = (sum(run_steps[v, str(m)] for _, v in loaded for m in motions) * n * k_seeds if not over_dds
             else len(policies) * len(motions) * k_seeds)  # fmt: skip
    planned = 0  # where the bar stands after the runs so far (episodes that fall end early)
    bar = progress_bar(total=total, desc="eval", unit="step" if not over_dds else "run", disable=not progress,
               file=sys.stderr)  # fmt: skip
    results: dict[str, dict[str, list[EpisodeSet]]] = {}
    try:
        for path, (pol, variant), label in zip(policies, loaded, labels, strict=True):
            per_motion: dict[str, list[EpisodeSet]] = {}
            for motion in motions:
                name = Path(motion).stem
                sets = []
                for seed in range(k_seeds):
                    bar.set_postfix_str(f"{label} {name} seed {seed}")
                    if over_dds:
                        d = out / "dds" / label.replace("/", "_") / name / f"seed{seed}"
                        own = export_for_motion(path, (pol, variant), motion)
                        sets.append(run_over_dds(own, variant, motion, d, n, gap_path, engine=engine))
                        bar.update(1)
                    else:
                        own = export_for_motion(path, (pol, variant), motion)
                        mpol, mvar = (pol, variant) if own == Path(path) else load_eval_policy(own)
                        sets.append(run_on_target(mpol, mvar, motion, target, gap_cfg, n, seed, init_noise,
                                                  threads, on_step=lambda: bar.update(n),
                                                  start_from=start_from))  # fmt: skip
                        planned += run_steps[variant, str(motion)] * n
                        bar.update(planned - bar.n)
                per_motion[name] = sets
            results[label] = per_motion
    finally:
        bar.close()
    where = f"virtual G1 over DDS ({engine})" if engine != "mujoco" else "virtual G1 over DDS"
    target_info = {"over_dds": over_dds, "backend": where if over_dds else target,
                   "gap": gap_cfg.name, "gap_file": gap_path}  # fmt: skip
    if start_from:
        target_info["start_from"] = [str(x) for x in start_from]
    first = next(iter(next(iter(results.values())).values()))[0]
    target_info.update({k: v for k, v in first.extra.get("target", {}).items() if k not in target_info})
    report = metrics_report(results, dict(zip(labels, map(str, policies), strict=True)), [str(m) for m in motions],
                            target_info, n, k_seeds, init_noise)  # fmt: skip
    if video is not None:
        report["videos"] = render_videos(results, {Path(m).stem: m for m in motions},
                                         {lab: v for lab, (_, v) in zip(labels, loaded, strict=True)},
                                         out / "videos", video, progress)  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(report_markdown(report))
    plot_report(results, out / "report.png", loaded[0][1])
    report["files"] = {k: str(out / f) for k, f in (("metrics", "metrics.json"), ("report", "report.md"),
                                                    ("plot", "report.png"))}  # fmt: skip
    return report


def _resolved(gap: str | Path) -> Path:
    from asap.paths import repo_path

    return repo_path(gap)


def _run_steps(loaded: list[tuple[Any, str]], motions: Sequence[str | Path]) -> dict[tuple[str, str], int]:
    """Control steps of one episode that completes, per (robot variant, motion) (for the progress bar)."""
    steps: dict[tuple[str, str], int] = {}
    for _, variant in loaded:
        for m in motions:
            if (variant, str(m)) not in steps:
                length = float(MotionLib(m, spec=variant).motion_lengths[0])
                steps[variant, str(m)] = int(motion_steps(length, get_spec(variant).control_dt))
    return steps


def metrics_report(
    results: dict[str, dict[str, list[EpisodeSet]]], paths: dict[str, str], motions: list[str],
    target: dict[str, Any], episodes: int, seeds: int, init_noise: float,
) -> dict[str, Any]:  # fmt: skip
    """The ``metrics.json`` content: per policy, mean ± std over seeds of the per-seed episode means (all motions),
    per motion the same plus each seed's means and episodes."""
    pol: dict[str, Any] = {}
    for label, per_motion in results.items():
        per_seed_all = [episode_means([e for sets in per_motion.values() for e in sets[s].episodes])
                        for s in range(seeds)]  # fmt: skip
        pm = {}
        for name, sets in per_motion.items():
            ps = [episode_means(s.episodes) for s in sets]
            pm[name] = {"metrics": seed_stats(ps), "per_seed": ps, "episodes": [s.episodes for s in sets]}
            coll = [s.extra["collection"] for s in sets if "collection" in s.extra]
            if coll:
                pm[name]["collections"] = coll
        pol[label] = {"path": paths[label], "metrics": seed_stats(per_seed_all), "per_seed": per_seed_all,
                      "motions": pm}  # fmt: skip
    return {"target": target, "episodes": episodes, "seeds": list(range(seeds)), "init_noise": init_noise,
            "motions": motions, "policies": pol}  # fmt: skip


def _cell(stat: dict[str, float] | None, key: str) -> str:
    if stat is None:
        return "–"
    m, s = stat["mean"], stat["std"]
    if key == "success_rate":
        return f"{100 * m:.1f}% ± {100 * s:.1f}%"
    if not (math.isfinite(m) and math.isfinite(s)):
        return "–"
    digits = 1 if abs(m) >= 10 else 2
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def report_markdown(report: dict[str, Any]) -> str:
    """``report.md``: Table IV (rows = policies, the paper's columns, mean ± std over seeds), the other metrics, and
    the same per motion."""
    t = report["target"]
    where = t["backend"] + (f" + gap {t['gap']}" if t.get("gap") else "")
    lines = [f"# Closed-loop evaluation on {where}", "",
             f"{report['episodes']} episode(s) x {len(report['seeds'])} seed(s) per policy and motion, from phase 0; "
             + ("" if t.get("over_dds") else f"initial-state noise level {report['init_noise']:g}; ")
             + "mean ± std over seeds. Motions: "
             + ", ".join(Path(m).name for m in report["motions"]) + ".", "",
             "Errors: E_g-mpjpe, E_mpjpe in mm; E_vel in mm/frame, E_acc in mm/frame²; angles in degrees.",
             ""]  # fmt: skip

    def tables(rows: dict[str, dict[str, dict[str, float]]], title: str) -> None:
        lines.extend([f"## {title}", "", "| Policy | " + " | ".join(h for _, h in PAPER_COLUMNS) + " |",
                      "|---" * (len(PAPER_COLUMNS) + 1) + "|"])  # fmt: skip
        for name, stats in rows.items():
            lines.append(f"| {name} | " + " | ".join(_cell(stats.get(k), k) for k, _ in PAPER_COLUMNS) + " |")
        paper = {k for k, _ in PAPER_COLUMNS}
        others: list[str] = []
        for stats in rows.values():
            others += [k for k in stats if k not in paper and k not in COUNT_KEYS and k not in others]
        if others:
            lines.extend(["", "| Policy | " + " | ".join(others) + " |", "|---" * (len(others) + 1) + "|"])
            for name, stats in rows.items():
                lines.append(f"| {name} | " + " | ".join(_cell(stats.get(k), k) for k in others) + " |")
        lines.append("")

    pols = report["policies"]
    tables({p: v["metrics"] for p, v in pols.items()}, "All motions (Table IV layout)")
    if len(report["motions"]) > 1:
        for m in next(iter(pols.values()))["motions"]:
            tables({p: v["motions"][m]["metrics"] for p, v in pols.items()}, f"Motion {m}")
    if report.get("videos"):
        lines.extend(["## Videos", "", "The first episode of seed 0, the reference as a translucent ghost.", ""])
        for label, per_motion in report["videos"].items():
            for m, path in per_motion.items():
                rel = f"videos/{Path(path).name}"
                lines.append(f"- {label} · {m}: [{rel}]({rel})")
        lines.append("")
    return "\n".join(lines)


def plot_report(results: dict[str, dict[str, list[EpisodeSet]]], path: str | Path, variant: str) -> Path:
    """``report.png``: mean body distance per frame (mm, over episodes and seeds; one line per policy and motion) and
    the mean absolute joint-angle error per joint (degrees, frames 1..K of every episode; bars per policy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = get_spec(variant).joint_names
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1.6]})
    many = len(next(iter(results.values()))) > 1
    width = 0.8 / len(results)
    x = np.arange(len(names))
    for i, (label, per_motion) in enumerate(results.items()):
        js, jf = np.zeros(len(names)), 0
        for motion, sets in per_motion.items():
            length = max(len(s.error_curve_sum) for s in sets)
            cs, cc = np.zeros(length), np.zeros(length)
            for s in sets:
                cs[: len(s.error_curve_sum)] += s.error_curve_sum
                cc[: len(s.error_curve_count)] += s.error_curve_count
                if len(s.joint_error_sum) == len(names):
                    js += s.joint_error_sum
                    jf += s.joint_error_frames
            curve = np.where(cc > 0, cs / np.maximum(cc, 1), np.nan)
            a1.plot(
                np.arange(length) * get_spec(variant).control_dt, curve, label=f"{label} · {motion}" if many else label
            )
        a2.bar(x + i * width, np.degrees(js / max(jf, 1)), width=width, label=label)
    a1.set_xlabel("time (s)")
    a1.set_ylabel("mean body distance (mm)")
    a1.set_title("tracking error over time (episodes alive at each frame)")
    a1.legend(fontsize=7)
    a2.set_xticks(x + 0.4 - width / 2, [n.replace("_joint", "") for n in names], rotation=90, fontsize=7)
    a2.set_ylabel("mean |q - q_ref| (deg)")
    a2.set_title("joint-angle error per joint")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
