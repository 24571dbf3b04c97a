"""Gain calibration of a trained delta model: one scalar on Δa, fitted by open-loop replay of the training logs.

PPO leaves π^Δ's output short of the correction the logs call for (on the demo's ankle_weak logs the learned ankle Δa
was about half the closed-form oracle's, correlation 0.8, although the reward peaks at the full correction;
docs/delta.md, "Gain calibration"). A single gain g on the frozen model's output is a one-dimensional fit that needs
no knowledge of the gap: replay the *training* episodes' windows through the aligned simulator with ``g * Δa`` for
each g of a grid and keep the g with the lowest E_g-mpjpe at the longest report horizon. The held-out episodes stay
out of it, so the open-loop report still measures generalisation. ``g`` is stored in the model's metadata
(:attr:`asap.delta.model.DeltaMeta.gain`) and applied by :class:`asap.delta.model.DeltaModel` itself, so the report,
fine-tuning and ``asap play --delta`` all use the calibrated model.

When PPO leaves different joints short by different amounts (on the ``hard`` logs the Δa of a π^Δ on every joint
had 0.07-0.5 of the oracle's size, least on the ankle pitches; docs/BENCHMARKS.md), one scalar cannot repair it.
:func:`calibrate_joint_gains` then fits one multiplier per *joint group* (a joint and its mirror: ``left_knee`` and
``right_knee`` are one group) by the same replay, one group at a time (coordinate descent, one or more passes), and
stores them per joint (:attr:`asap.delta.model.DeltaMeta.joint_gain`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from asap.control import TargetShaping
from asap.delta.model import DeltaModel
from asap.eval.openloop import replay
from asap.motion.motionlib import MotionLib
from asap.sim.base import Simulator


def calibrate_gain(
    model: DeltaModel, logs: MotionLib, make_sim: Callable[[int], Simulator], shaping: TargetShaping,
    gains: Sequence[float], horizon_s: float = 1.0, stride_s: float = 0.5, max_gain: float = 4.0,
    metric: str = "E_g_mpjpe",
) -> tuple[float, dict[float, float]]:  # fmt: skip
    """The gain of ``gains`` with the lowest open-loop ``metric`` (mm; ``E_mpjpe`` for logs whose root has no
    trustworthy global position) over ``logs``' windows of ``horizon_s`` (starting every ``stride_s``), and the
    error of each gain ``{gain: mm}``. When the best gain is the grid's largest, gains 1.25x further up are tried
    while they improve (up to ``max_gain``). ``model``'s own gain is replaced, not multiplied. Raises ``ValueError``
    for an empty grid or logs without a window of ``horizon_s``."""
    if not gains:
        raise ValueError("gain calibration needs at least one gain")
    errors: dict[float, float] = {}

    def score(g: float) -> None:
        candidate = DeltaModel(model.net, replace(model.meta, gain=g))
        rep = replay(logs, make_sim, shaping, horizon_s, stride_s, candidate)
        errors[g] = float(rep["metrics"][metric])

    for g in gains:
        score(float(g))
    best = min(errors, key=lambda g: errors[g])
    step = 1.25
    while best == max(errors) and best * step <= max_gain:  # the optimum lies past the grid: extend it upwards
        score(best * step)
        best = min(errors, key=lambda g: errors[g])
    return best, errors


JOINT_GROUPINGS = ("mirror", "joint")
"""How the joint calibration groups joints: a joint with its mirror (one multiplier for both), or each alone."""


def joint_groups(joints: Sequence[str], grouping: str = "mirror") -> dict[str, list[int]]:
    """Driven joints grouped for the calibration, in order: ``mirror``: ``{name without left_/right_: [positions in
    joints]}``; ``joint``: ``{name: [position]}``. Raises ``ValueError`` for another grouping."""
    if grouping not in JOINT_GROUPINGS:
        raise ValueError(f"joint grouping must be one of {JOINT_GROUPINGS}, got {grouping!r}")
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(joints):
        key = name if grouping == "joint" else name.removeprefix("left_").removeprefix("right_")
        groups.setdefault(key, []).append(i)
    return groups


def calibrate_joint_gains(
    model: DeltaModel, logs: MotionLib, make_sim: Callable[[int], Simulator], shaping: TargetShaping,
    factors: Sequence[float], horizon_s: float = 1.0, stride_s: float = 0.5, metric: str = "E_g_mpjpe",
    sweeps: int = 1, grouping: str = "mirror",
) -> tuple[tuple[float, ...], list[dict[str, float | str]]]:  # fmt: skip
    """Per driven joint, the multiplier on ``model``'s Δa (on top of its scalar gain) that lowers the open-loop
    ``metric`` (mm) over ``logs``' windows, fitted group by group (:func:`joint_groups` with ``grouping``): for
    each group, each factor of ``factors`` times the group's current multiplier is tried and the best kept when it
    improves on the current error; ``sweeps`` passes over the groups (a sweep that keeps nothing ends it). Starts from
    ``model.meta.joint_gain`` (or 1). Returns the multipliers (one per driven joint, the order of
    ``model.meta.joints``) and every try ``{"group", "factor", "error_mm"}`` (the first: the start, group ``""``).
    Raises ``ValueError`` for no factors or sweeps."""
    if not factors or sweeps < 1:
        raise ValueError("joint-group calibration needs at least one factor and one sweep")
    gains = list(model.meta.joint_gain or (1.0,) * len(model.meta.joints))

    def score(g: list[float]) -> float:
        candidate = DeltaModel(model.net, replace(model.meta, joint_gain=tuple(g)))
        return float(replay(logs, make_sim, shaping, horizon_s, stride_s, candidate)["metrics"][metric])

    groups = joint_groups(model.meta.joints, grouping)
    best = score(gains)
    tries: list[dict[str, float | str]] = [{"group": "", "factor": 1.0, "error_mm": best}]
    for _ in range(sweeps):
        start = best
        for name, idx in groups.items():
            chosen = 1.0
            for f in factors:
                trial = [g * f if i in idx else g for i, g in enumerate(gains)]
                err = score(trial)
                tries.append({"group": name, "factor": float(f), "error_mm": err})
                if err < best:
                    best, chosen = err, float(f)
            gains = [g * chosen if i in idx else g for i, g in enumerate(gains)]
        if best >= start:
            break
    return tuple(float(g) for g in gains), tries
