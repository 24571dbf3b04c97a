"""Open-loop replay error (the paper's Table III): from logged states, replay the logged actions through a
simulator — plain ("OpenLoop"), with a learned delta model ("ASAP"), or with the closed-form oracle ("Oracle") —
and measure how far the simulated bodies drift from the logged ones over a horizon.

Every method runs through the same machinery: :class:`envs.delta.env.DeltaEnv` windows (logged state at the start,
logged actions shaped as the runtime shaped them) on a simulator that is wrapped by
:class:`asap.delta.aligned.AlignedSimulator` when a delta model is given. Metrics: :func:`asap.eval.metrics.
tracking_metrics` over the window's frames (start frame included), averaged over windows.

:func:`openloop_eval` is the whole evaluation from log files (``asap eval --open-loop`` and `asap train-delta`'s
report): the OpenLoop / ASAP / Oracle rows plus any extra named :data:`ReplayFn` (the place for baselines that are
not a Δa model, such as a SysID-identified simulator or a learned dynamics correction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.control import TargetShaping
from asap.delta.aligned import AlignedSimulator
from asap.delta.logs import gather_logs, load_logs, logged_gap, replay_shaping
from asap.eval.metrics import mean_metrics, tracking_metrics
from asap.motion.motionlib import MotionLib
from asap.paths import repo_path
from asap.robot.model import ModelOptions
from asap.robot.spec import get_spec
from asap.sim.base import SimConfig, Simulator, make_simulator
from envs.delta.config import DeltaEnvConfig
from envs.delta.env import DeltaEnv

METRIC_KEYS = ("E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc")
"""Reported metrics (mm, mm, mm/frame, mm/frame^2)."""

ReplayFn = Callable[[MotionLib, Callable[[int], Simulator], TargetShaping, float, float], dict[str, Any]]
"""One row of the open-loop table as a function ``(logs, make_sim, shaping, horizon_s, stride_s) -> result`` with
:func:`replay`'s result keys (``metrics``, ``windows``, ``error_curve``, ``delta_abs``); ``make_sim(n)`` builds the
evaluation's simulator for n windows. A Δa model's row is ``partial(replay, model=model)``."""

EVAL_FILES = ("metrics.json", "report.md", "openloop.png")
"""Files :func:`openloop_eval` writes by default: the JSON table, the Markdown table and the plot."""


def report_windows(logs: MotionLib, steps: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(motion ids, start frames) of every full ``steps``-step window starting every ``stride`` frames."""
    ids, starts = [], []
    for m, t in enumerate(logs.motion_num_frames.tolist()):
        for f0 in range(0, max(int(t) - 1 - steps, -1) + 1, max(1, stride)):
            ids.append(m)
            starts.append(f0)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.long)


def replay(
    logs: MotionLib, make_sim: Callable[[int], Simulator], shaping: TargetShaping, horizon_s: float, stride_s: float,
    model: Any | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Replay every window of ``horizon_s`` of ``logs`` (through ``model``'s Δa when given).

    Returns ``{"metrics": {E_*: mean}, "windows": n, "error_curve": (steps+1,) mean global body error per step
    (mm), "delta_abs": (J,) mean |Δa| per joint (action units; zeros without a model), "window_metrics": {E_*: (n,)
    list, one value per window in :func:`report_windows` order}}`` (the per-window values let a caller that
    replays several candidate simulators in one batch, e.g. `asap sysid`, score each).
    Raises ``ValueError`` when no episode is long enough for one window.
    """
    dt = 1.0 / float(logs.motion_fps[0])
    steps = max(2, int(round(horizon_s / dt)))
    m, f0 = report_windows(logs, steps, max(1, int(round(stride_s / dt))))
    if m.numel() == 0:
        raise ValueError(f"no logged episode is longer than {horizon_s} s: collect longer episodes")
    sim = make_sim(int(m.numel()))
    if model is not None:
        sim = AlignedSimulator(sim, model)
    env = DeltaEnv(DeltaEnvConfig(window_s=steps * dt), sim, logs, shaping)
    env.eval_mode = True
    env.reset_to(m, f0)
    pos = [sim.get_body_state().pos.cpu().numpy()]
    ref = [logs.frame_state(m, f0).body_pos.cpu().numpy()]
    delta_abs = np.zeros(sim.num_joints)
    zero = torch.zeros(env.num_envs, env.num_actions)
    for k in range(steps):
        env.step(zero)
        pos.append(sim.get_body_state().pos.cpu().numpy())
        ref.append(logs.frame_state(m, f0 + k + 1).body_pos.cpu().numpy())
        if model is not None:
            delta_abs += sim.last_delta.abs().mean(dim=0).cpu().numpy() / steps
    sim.close()
    p, r = np.stack(pos, axis=1), np.stack(ref, axis=1)  # (N, steps+1, B, 3)
    per = [tracking_metrics(p[i], r[i]) for i in range(p.shape[0])]
    mean = mean_metrics(per)
    return {
        "metrics": {k: mean[k] for k in METRIC_KEYS},
        "windows": int(p.shape[0]),
        "error_curve": (1000 * np.linalg.norm(p - r, axis=-1).mean(axis=(0, 2))).tolist(),
        "delta_abs": delta_abs.tolist(),
        "window_metrics": {k: [float(getattr(m, k)) for m in per] for k in METRIC_KEYS},
    }


def openloop_report(
    logs: MotionLib, make_sim: Callable[[int], Simulator], shaping: TargetShaping, horizons_s: Sequence[float],
    stride_s: float, methods: Mapping[str, Any | None], replays: Mapping[str, ReplayFn] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """``{horizon: {method: replay(...)}}`` for every horizon and method (a Δa model, or ``None``: the plain
    simulator), then the extra rows ``replays`` (name -> :data:`ReplayFn`) in their order."""
    clash = set(methods) & set(replays or {})
    if clash:
        raise ValueError(f"method names given twice: {sorted(clash)}")
    rows: dict[str, ReplayFn] = {name: partial(replay, model=model) for name, model in methods.items()}
    rows.update(replays or {})
    return {f"{h:g}": {name: fn(logs, make_sim, shaping, h, stride_s) for name, fn in rows.items()} for h in horizons_s}


def openloop_eval(
    logs: list[str],
    out: str | Path,
    delta: str | None = None,
    gap: str | None = None,
    horizons: Sequence[float] = (0.25, 0.5, 1.0),
    sim: str = "mujoco",
    variant: str = "g1_23dof",
    shaping: TargetShaping | None = None,
    stride_s: float = 0.25,
    physics: ModelOptions | None = None,
    threads: int = 2,
    device: str = "cpu",
    methods: Mapping[str, ReplayFn] | None = None,
    title: str | None = None,
    files: tuple[str, str, str] = EVAL_FILES,
) -> dict[str, Any]:
    """Open-loop replay error of logged episodes (Table III): OpenLoop, ASAP and Oracle rows, written to ``out``.

    ``logs``: log files or folders of them (`asap collect` output, with ``action``). Rows: ``OpenLoop`` (the
    plain ``sim``); ``ASAP`` when ``delta`` names a ``delta.pt`` (:func:`asap.delta.oracle.load_delta`; a
    ``oracle:<gap.yaml>`` spec makes the row ``Oracle`` instead); ``Oracle`` for ``gap`` (a reality-gap profile),
    or for the profile every log records in ``meta["gap"]`` when ``gap`` is None; then every extra row of
    ``methods`` (name -> :data:`ReplayFn`). ``shaping``: the runtime's target shaping (default: what the logs
    record; they must agree). ``physics``: the replay simulator's model options (the policy's training physics).
    Writes ``files`` in ``out``: the JSON table ``{horizon_s: {method: {E_g_mpjpe, E_mpjpe, E_vel, E_acc}}}``
    (mm, mm/frame, mm/frame^2), the Markdown table (:func:`report_markdown`) and the plot (:func:`plot_report`).
    Returns ``{"metrics": that JSON table, "report": the full report (per-step error curves, mean |Δa|),
    "episodes": n, "gap": the profile of the Oracle row or None, "files": {"json", "markdown", "plot"}: paths}``.
    """
    from asap.delta.oracle import ORACLE_PREFIX, OracleDelta, load_delta
    from deploy.gap import load_gap

    motions, logged_shaping = load_logs(gather_logs(list(logs)))
    shaping = replay_shaping(logged_shaping, shaping)
    rows: dict[str, Any | None] = {"OpenLoop": None}
    if delta:
        rows["Oracle" if str(delta).startswith(ORACLE_PREFIX) else "ASAP"] = load_delta(str(delta), variant)
    gap = gap or logged_gap(motions)
    if gap and "Oracle" not in rows:
        rows["Oracle"] = OracleDelta(load_gap(repo_path(gap)), variant)
    lib = MotionLib(motions, spec=variant, device=device)
    opts = physics or ModelOptions()

    def make_sim(n: int) -> Simulator:
        return make_simulator(SimConfig(backend=sim, variant=variant, num_envs=n, threads=threads, device=device,
                                        model=opts))  # fmt: skip

    rep = openloop_report(lib, make_sim, shaping, list(horizons), stride_s, rows, methods)
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    paths = {k: o / name for k, name in zip(("json", "markdown", "plot"), files, strict=True)}
    table = report_json(rep)
    paths["json"].write_text(json.dumps(table, indent=1))
    paths["markdown"].write_text(report_markdown(rep, title or f"Open-loop replay error on {len(motions)} episode(s)"))
    plot_report(rep, get_spec(variant).joint_names, str(paths["plot"]))
    return {"metrics": table, "report": rep, "episodes": len(motions), "gap": gap or None,
            "files": {k: str(v) for k, v in paths.items()}}  # fmt: skip


def report_json(report: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """The JSON shape of ``openloop.json``: ``{horizon_s: {method: {E_g_mpjpe, E_mpjpe, E_vel, E_acc}}}``."""
    return {h: {m: dict(v["metrics"]) for m, v in row.items()} for h, row in report.items()}


def summary_line(table: dict[str, dict[str, dict[str, float]]], horizon: str, windows: int | None = None) -> str:
    """One line ``"<method> <E_g-mpjpe>, ... (<windows> window(s))"`` (mm) of an open-loop JSON table
    (:func:`report_json` shape) at ``horizon`` (a key of ``table``); ``windows``: how many windows the means are
    over (:func:`window_counts`; left out when None)."""
    line = ", ".join(f"{m} {v['E_g_mpjpe']:.1f}" for m, v in table[horizon].items())
    return line if windows is None else f"{line} ({windows} window(s))"


def window_counts(report: dict[str, dict[str, dict[str, Any]]]) -> dict[str, int]:
    """Windows per horizon of a full open-loop report (:func:`openloop_eval`'s ``report``; every method replays the
    same windows)."""
    return {h: int(next(iter(row.values()))["windows"]) for h, row in report.items()}


def report_markdown(report: dict[str, dict[str, dict[str, Any]]], title: str) -> str:
    """Table III layout: one row per horizon and method, the four metrics, and the change against OpenLoop."""
    lines = [f"# {title}", "", "| horizon (s) | method | windows | E_g-mpjpe (mm) | E_mpjpe (mm) | E_vel (mm/frame) | "
             "E_acc (mm/frame²) | E_g-mpjpe vs OpenLoop |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for h, row in report.items():
        base = row.get("OpenLoop", {}).get("metrics", {}).get("E_g_mpjpe")
        for name, v in row.items():
            mt = v["metrics"]
            rel = f"{100 * (mt['E_g_mpjpe'] / base - 1):+.0f}%" if base and name != "OpenLoop" else ""
            lines.append(f"| {h} | {name} | {v['windows']} | {mt['E_g_mpjpe']:.1f} | {mt['E_mpjpe']:.1f} | "
                         f"{mt['E_vel']:.2f} | {mt['E_acc']:.2f} | {rel} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, dict[str, dict[str, Any]]], joint_names: tuple[str, ...], path: str) -> str:
    """Two panels: per-joint mean |Δa| (every method with a model) and body error over the longest window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = max(report, key=float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.5))
    x = np.arange(len(joint_names))
    with_model = [n for n, v in report[h].items() if np.any(np.asarray(v["delta_abs"]) != 0)]
    w = 0.8 / max(1, len(with_model))
    for i, name in enumerate(with_model):
        a1.bar(x + i * w, report[h][name]["delta_abs"], width=w, label=name)
    a1.set_xticks(x + 0.4 - w / 2, [n.replace("_joint", "") for n in joint_names], rotation=90, fontsize=7)
    a1.set_ylabel("mean |Δa| (action units)")
    a1.set_title(f"Δa per joint, {h} s windows")
    if with_model:
        a1.legend()
    for name, v in report[h].items():
        curve = np.asarray(v["error_curve"])
        a2.plot(np.arange(len(curve)) * 0.02, curve, label=name)
    a2.set_xlabel("time in window (s)")
    a2.set_ylabel("mean body position error (mm)")
    a2.set_title("open-loop replay error")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
