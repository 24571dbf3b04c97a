"""How well π^Δ models carry over to another policy's logs: each model's Δa against the oracle's, joint by joint.

For every logged episode (Motion files with ``action``, e.g. a fine-tuned policy's `asap collect` output) the
logged states are fed frame by frame through the delta observation (:func:`asap.delta.obs.actor_obs`, the target
shaping the logs record, each model's own previous Δa as ``last_delta``) and every model's Δa is compared with the
closed-form oracle of the known gap on the joints the model drives: least-squares slope, correlation, R², the
mean step-to-step change of Δa (its roughness in time) and the *sensitivity* d(Δa_j)/d(a_j), the median over the
logged frames of how Δa changes with the applied action of its own joint (finite difference). The aligned simulator
applies ``a + Δa`` (times the action scale), so its response to the policy's command is 1 + sensitivity: the oracle
of ankle Kp x0.65 has −0.35 (a weaker ankle answers 0.65 of a command); a model near −1 makes the aligned simulator
deaf to the command (it applies a target set by the state alone), and no fine-tuning can steer those joints there
(docs/delta.md, "Fine-tuning through the inverse of π^Δ"). Foot
contact forces are not logged and enter as zeros (they reach only ``obs_scope=full`` models). Prints one table;
``--json`` writes it. The open-loop replay errors of the same models come from `asap eval --open-loop`.

``--returns N`` also scores each model on the delta task itself (:class:`envs.delta.env.DeltaEnv`, the default
reward table, Δa on every joint): the mean return of the same N random 1-s windows of the logs with zero Δa, the
oracle's Δa and each model's, with the per-term sums. A model far below the oracle there is an optimisation
shortfall (the reward does tell the oracle apart); one level with it but far off in the table above is a reward
that does not.

    python scripts/bench_delta_transfer.py --logs run/demo_avg/collect_r2/motions \\
        --gap configs/real_gap/ankle_weak.yaml --delta run/demo_avg/delta/delta.pt D2/delta.pt --returns 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from asap.control import TargetShaping, shape_targets
from asap.delta import obs as dobs
from asap.delta.logs import gather_logs, load_logs, replay_shaping
from asap.delta.oracle import ORACLE_PREFIX, load_delta
from asap.motion.motion import Motion
from asap.robot.spec import get_spec

SENSITIVITY_STEP = 0.1
"""Policy units the applied action of one joint is nudged by to measure d(Δa)/d(a) by a finite difference."""

LOGGED = ("root_pos", "root_quat", "root_lin_vel", "root_ang_vel", "dof_pos", "dof_vel", "action")
"""The logged arrays the delta observation is built from."""


def model_vs_oracle(motions: list[Motion], model_spec: str, gap: str, shaping: TargetShaping
                    ) -> list[dict[str, float]]:  # fmt: skip
    """Per driven joint of ``model_spec``: ``{"joint", "slope", "corr", "r2", "oracle_abs", "model_abs",
    "oracle_step", "model_step"}``, over the logged ``motions`` replayed with the target ``shaping`` the runtime
    applied. ``*_abs``: mean |Δa|; ``*_step``: mean |Δa_k − Δa_{k−1}| between consecutive steps of an episode (how
    rough the correction is in time; a model much rougher than the oracle shakes the simulator it aligns)."""
    model = load_delta(model_spec)
    oracle = load_delta(ORACLE_PREFIX + gap)
    spec = get_spec(model.meta.variant)
    default = torch.as_tensor(spec.default_pos, dtype=torch.float32)
    lo, hi = (torch.as_tensor(x, dtype=torch.float32) for x in (spec.pos_lower, spec.pos_upper))
    idx = model.meta.joint_index()
    learned, exact, ends = [], [], []
    sens, sens_exact = [], []  # d(Δa_j)/d(a_j): Δa's change with the applied action of its own joint
    applied = dobs.term_slice("applied_action", spec.num_joints).start + idx
    for m in motions:
        f = {k: torch.as_tensor(np.asarray(getattr(m, k)), dtype=torch.float32) for k in LOGGED}
        prev, last = None, torch.zeros(1, spec.num_joints)
        for k in range(f["action"].shape[0]):
            target = shape_targets(f["action"][k : k + 1], prev, default, spec.action_scale, lo, hi, shaping)[2]
            before = target if prev is None else prev
            prev = target
            o = dobs.actor_obs(f["root_pos"][k : k + 1], f["root_quat"][k : k + 1], f["root_lin_vel"][k : k + 1],
                               f["root_ang_vel"][k : k + 1], f["dof_pos"][k : k + 1], f["dof_vel"][k : k + 1],
                               torch.zeros(1, 2, 3), default, (target - default) / spec.action_scale,
                               (before - default) / spec.action_scale, last)  # fmt: skip
            now = oracle(o)[0, idx]
            last = model(o)
            nudged = o.repeat(len(idx), 1)
            nudged[torch.arange(len(idx)), applied] += SENSITIVITY_STEP
            sens.append(((model(nudged)[:, idx].diagonal() - last[0, idx]) / SENSITIVITY_STEP).numpy())
            sens_exact.append(((oracle(nudged)[:, idx].diagonal() - now) / SENSITIVITY_STEP).numpy())
            learned.append(last[0, idx].numpy())
            exact.append(now.numpy())
        ends.append(len(learned))
    a, b = np.asarray(learned), np.asarray(exact)
    inside = np.ones(len(a) - 1, dtype=bool)  # consecutive steps of one episode
    inside[np.asarray(ends[:-1], dtype=np.int64) - 1] = False  # the step from one episode into the next
    da, db = np.abs(np.diff(a, axis=0))[inside], np.abs(np.diff(b, axis=0))[inside]
    rows = []
    for j, name in enumerate(model.meta.joints):
        x, y = a[:, j], b[:, j]
        rows.append({"joint": name, "slope": float(x @ y / (y @ y)), "corr": float(np.corrcoef(x, y)[0, 1]),
                     "r2": float(1 - ((x - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()),
                     "oracle_abs": float(np.abs(y).mean()), "model_abs": float(np.abs(x).mean()),
                     "oracle_step": float(db[:, j].mean()), "model_step": float(da[:, j].mean()),
                     "oracle_sensitivity": float(np.median(np.asarray(sens_exact)[:, j])),
                     "model_sensitivity": float(np.median(np.asarray(sens)[:, j]))})  # fmt: skip
    return rows


def task_returns(motions: list[Motion], shaping: TargetShaping, specs: dict[str, str | None], windows: int,
                 seed: int = 3, threads: int = 2) -> dict[str, dict[str, float]]:  # fmt: skip
    """``{name: {"return": mean, term: mean sum, ...}}`` over the same ``windows`` random 1-s windows of ``motions``
    replayed in the delta task with each delta spec's Δa (``None``: zero Δa)."""
    from asap.motion.motionlib import MotionLib
    from asap.sim.base import SimConfig, make_simulator
    from envs.delta.config import DeltaEnvConfig
    from envs.delta.env import DeltaEnv

    logs = MotionLib(motions)
    sim = make_simulator(SimConfig(num_envs=windows, threads=threads))
    out: dict[str, dict[str, float]] = {}
    try:
        env = DeltaEnv(DeltaEnvConfig(window_s=1.0, joints="all", seed=seed), sim, logs, shaping)
        env.eval_mode = True
        m, f0 = env.sample_windows(windows)
        for name, spec in specs.items():
            model = None if spec is None else load_delta(spec)
            env.reset_to(m, f0)
            total, terms = torch.zeros(windows), {}
            for _ in range(env.window):
                obs = env.get_observations()["actor"]  # every column (obs_scope full)
                _, info = env.step(torch.zeros(windows, env.num_actions) if model is None else model(obs))
                total += info.reward
                for t, v in info.terms.items():
                    terms[t] = terms.get(t, 0.0) + float(v.mean())
            out[name] = {"return": float(total.mean()), **terms}
    finally:
        sim.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", nargs="+", required=True, help="logged episodes (files or folders)")
    ap.add_argument("--gap", required=True, help="the gap profile the logs came from (configs/real_gap/*.yaml)")
    ap.add_argument("--delta", nargs="+", required=True, help="delta.pt files to compare")
    ap.add_argument("--json", default="", help="also write the rows here")
    ap.add_argument("--returns", type=int, default=0, metavar="N",
                    help="also score zero, the oracle and each model on N 1-s windows of the delta task")  # fmt: skip
    args = ap.parse_args(argv)
    files = gather_logs(args.logs)
    motions, logged_shaping = load_logs(files)  # once for every model
    shaping = replay_shaping(logged_shaping, None)  # the shaping the logs record (the runtime's), else the default
    out = {}
    print(f"{len(files)} episode(s); Δa of each model against the oracle of {args.gap}, per driven joint")
    print(f"{'model':40s} {'joint':26s} {'slope':>6s} {'corr':>6s} {'R2':>7s} {'|oracle|':>8s} {'|model|':>8s} "
          f"{'|dOracle|':>9s} {'|dModel|':>8s} {'sens oracle':>11s} {'sens model':>10s}")  # fmt: skip
    for d in args.delta:
        out[d] = model_vs_oracle(motions, d, args.gap, shaping)
        for r in out[d]:
            print(f"{d[-40:]:40s} {r['joint']:26s} {r['slope']:6.2f} {r['corr']:6.2f} {r['r2']:7.2f} "
                  f"{r['oracle_abs']:8.3f} {r['model_abs']:8.3f} "
                  f"{r['oracle_step']:9.3f} {r['model_step']:8.3f} {r['oracle_sensitivity']:11.2f} "
                  f"{r['model_sensitivity']:10.2f}")  # fmt: skip
    if args.returns:
        specs = {"zero Δa": None, "oracle": ORACLE_PREFIX + args.gap, **{d: d for d in args.delta}}
        ret = task_returns(motions, shaping, specs, args.returns)
        print(f"\ndelta-task return over {args.returns} windows of 1 s (and the largest terms)")
        for name, r in ret.items():
            terms = sorted(((t, v) for t, v in r.items() if t != "return"), key=lambda kv: -abs(kv[1]))
            top = ", ".join(f"{t} {v:.3g}" for t, v in terms[:5])
            print(f"{name[-40:]:40s} {r['return']:7.3f}   {top}")
        out["returns"] = ret  # type: ignore[assignment]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
