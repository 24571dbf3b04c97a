"""Open-loop replay error (the paper's Table III): from logged states, replay the logged actions through a
simulator — plain ("OpenLoop"), with a learned delta model ("ASAP"), or with the closed-form oracle ("Oracle") —
and measure how far the simulated bodies drift from the logged ones over a horizon.

Every method runs through the same machinery: :class:`envs.delta.env.DeltaEnv` windows (logged state at the start,
logged actions shaped as the runtime shaped them) on a simulator that is wrapped by
:class:`asap.delta.aligned.AlignedSimulator` when a delta model is given. Metrics: :func:`asap.eval.metrics.
tracking_metrics` over the window's frames (start frame included), averaged over windows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from asap.control import TargetShaping
from asap.delta.aligned import AlignedSimulator
from asap.eval.metrics import mean_metrics, tracking_metrics
from asap.motion.motionlib import MotionLib
from asap.sim.base import Simulator
from envs.delta.config import DeltaEnvConfig
from envs.delta.env import DeltaEnv

METRIC_KEYS = ("E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc")
"""Reported metrics (mm, mm, mm/frame, mm/frame^2)."""


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
    (mm), "delta_abs": (J,) mean |Δa| per joint (action units; zeros without a model)}``.
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
    }


def openloop_report(
    logs: MotionLib, make_sim: Callable[[int], Simulator], shaping: TargetShaping, horizons_s: list[float],
    stride_s: float, methods: dict[str, Any | None],
) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """``{horizon: {method: replay(...)}}`` for every horizon and method (``None``: the plain simulator)."""
    return {
        f"{h:g}": {name: replay(logs, make_sim, shaping, h, stride_s, model) for name, model in methods.items()}
        for h in horizons_s
    }


def report_json(report: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """The JSON shape of ``openloop.json``: ``{horizon_s: {method: {E_g_mpjpe, E_mpjpe, E_vel, E_acc}}}``."""
    return {h: {m: dict(v["metrics"]) for m, v in row.items()} for h, row in report.items()}


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
