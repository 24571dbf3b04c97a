"""``asap log``: look at rollout logs, attach recorded mocap, export them as delta-training Motion files.

- ``asap log show LOG_DIR [--out DIR] [--no-plots]``: one line per episode (RUN segment): mode sequence, faults
  (transitions to damping with their cause), duration, policy steps, completed, root source and mocap coverage;
  per episode three PNGs (joint tracking q vs q_target, measured torques against the effort limits, root
  trajectory), so bad episodes can be left out of the export.
- ``asap log attach-mocap LOG_DIR MOCAP.csv --format F``: :func:`deploy.mocap_csv.attach_mocap`.
- ``asap log export LOG_DIR --out DIR [--episodes 0,2 | --exclude 3]``: the Motion files ``asap collect`` writes
  at its end (:func:`export_motions`, which collect calls too).

Module-level imports are NumPy and the standard library only (``deploy.collect`` imports this module on the
robot); matplotlib and SciPy are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from deploy.modes import Mode

MODE_NAMES = {int(m): m.name for m in Mode}
"""Names of the log's ``mode`` integers (:class:`deploy.modes.Mode`)."""
RUN = int(Mode.RUN)
"""The RUN mode integer."""
SETUP = (int(Mode.RAMP), int(Mode.HOLD))
"""Modes an episode is set up in before its RUN (ramp to the default pose, hold, blend to the start pose)."""


def motion_file_name(meta: dict[str, Any]) -> str:
    """File name of a converted episode: ``<motion>_epNNN.npz`` (``meta`` of the Motion)."""
    return f"{meta.get('motion_name') or 'motion'}_ep{int(meta['episode']):03d}.npz"


def export_motions(
    log_dir: str | Path, out_dir: str | Path, keep: set[int] | None = None, drop: set[int] | None = None,
    root_source: str | None = None,
) -> tuple[list[Any], list[str]]:  # fmt: skip
    """Convert the log's RUN episodes (:func:`deploy.logger.log_to_motions`, root from ``root_source``: None = what
    the log's meta says) and save them as ``out_dir/<motion>_epNNN.npz``; ``keep``/``drop``: episode ids to keep
    only / to leave out. Returns (motions, paths). What ``asap collect`` does at its end and ``asap log export``
    does on demand."""
    from deploy.logger import log_to_motions

    motions = [
        m for m in log_to_motions(log_dir, root_source=root_source)
        if (keep is None or int(m.meta["episode"]) in keep) and int(m.meta["episode"]) not in (drop or set())
    ]  # fmt: skip
    out = Path(out_dir)
    paths = [str(m.save(out / motion_file_name(m.meta), overwrite=True)) for m in motions]
    return motions, paths


def episode_root(log: dict[str, Any], rows: np.ndarray) -> tuple[dict[str, Any], str]:
    """The root the conversion gives the episode at ``rows`` (arrays ``pos``, ``quat`` ...) and its source name:
    :func:`deploy.logger._episode_root` with the source the log's meta selects, so ``show`` plots what ``export``
    writes."""
    from deploy.logger import _episode_root

    meta = log["meta"]
    want = {"odometry": "odometry", "estimate": "estimate"}.get(str(meta.get("root_source")), "columns")
    root, root_meta = _episode_root(meta, log["steps"], rows, log.get("odometry") or {}, want)
    return root, str(root_meta["root_source"])


def episode_spans(steps: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(episode id, RUN rows (+ the row after, as :func:`deploy.logger.episodes`), span rows) per episode. The spans
    cut the log into consecutive, non-overlapping pieces: an episode's span starts with the ramp/hold/blend rows
    just before its RUN (the first episode's, at the log's start) and ends where the next episode's do, so it
    holds its own set-up, its run and what followed (the way back to the default pose, or damping after a fault)."""
    from deploy.logger import episodes

    eps = episodes(steps, RUN)
    n = len(steps.get("mode", []))
    mode = steps.get("mode", np.zeros(0))
    starts = []
    for k, (_, rows) in enumerate(eps):
        first = int(rows[0])
        floor = 0 if k == 0 else int(eps[k - 1][1][mode[eps[k - 1][1]] == RUN][-1]) + 1
        b = first
        while b > floor and int(mode[b - 1]) in SETUP:
            b -= 1
        if k > 0 and b == floor:  # straight from the last RUN: its first ramp is that episode's way back
            while b < first and int(mode[b]) == int(Mode.RAMP):
                b += 1
        starts.append(0 if k == 0 else b)
    ends = [*starts[1:], n]
    return [(e, rows, np.arange(starts[k], ends[k])) for k, (e, rows) in enumerate(eps)]  # Python 3.8: no zip(strict)


def is_fault(cause: str) -> bool:
    """Whether a transition to damping with this cause was a fault (a safety trip: fall, watchdog, bad action ...)
    rather than a planned stop (the runtime's exits, ``exit: ...``, and the operator's ``... requested by ...``)."""
    return not (cause.startswith("exit:") or " requested by " in cause)


def _mode_sequence(modes: np.ndarray) -> list[str]:
    seq: list[str] = []
    for m in modes:
        name = MODE_NAMES.get(int(m), str(int(m)))
        if not seq or seq[-1] != name:
            seq.append(name)
    return seq


def list_episodes(log: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per episode of a :func:`deploy.logger.read_log` result: ``episode``, ``modes`` (mode sequence
    over its span, :func:`episode_spans`), ``faults`` and ``stops`` (``"<time> s: <cause>"`` of the transitions to
    DAMPING in the span: safety trips, and planned exits or operator stops, :func:`is_fault`), ``duration_s``
    (the span), ``run_s`` (policy steps x control_dt), ``policy_steps``, ``completed``, ``root_source``,
    ``root_coverage`` (fraction of the RUN rows with a valid root)."""
    meta, s = log["meta"], log["steps"]
    dt = float(meta.get("control_dt", 0.02))
    need = int(meta.get("steps_per_motion", 0))
    out = []
    for e, rows, span in episode_spans(s):
        t0, t1 = float(s["time"][span[0]]), float(s["time"][span[-1]])
        damped = [ev for ev in log["events"]
                  if ev.get("to") == "DAMPING" and t0 - 1e-6 <= float(ev.get("time", -1)) <= t1 + dt]  # fmt: skip
        said = [(f"{float(ev['time']):.2f} s: {ev.get('cause', '')}", is_fault(ev.get("cause", ""))) for ev in damped]
        faults = [text for text, fault in said if fault]
        stops = [text for text, fault in said if not fault]
        run = int(np.count_nonzero(s["mode"][rows] == RUN))
        valid = s["root_valid"][rows].astype(bool) if "root_valid" in s else np.zeros(len(rows), bool)
        _, source = episode_root(log, rows)
        out.append({
            "episode": e, "modes": _mode_sequence(s["mode"][span]), "faults": faults, "stops": stops,
            "duration_s": round(t1 - t0 + dt, 3), "run_s": round(run * dt, 3), "policy_steps": run,
            "completed": bool(run >= need), "root_source": source,
            "root_coverage": round(float(valid.mean()) if len(valid) else 0.0, 3),
        })  # fmt: skip
    return out


def plot_episode(
    log: dict[str, Any], episode: int, rows: np.ndarray, span: np.ndarray, out_dir: str | Path
) -> list[Path]:
    """Write ``ep<NNN>_joints.png`` (q and q_target of the policy joints over the episode's ``span``, RUN shaded),
    ``ep<NNN>_torques.png`` (tau_est with +-effort limits) and ``ep<NNN>_root.png`` (the root the export gives the
    RUN ``rows``: x/y/z, top view, roll/pitch/yaw; its source in the title); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asap.robot.spec import get_spec
    from asap.utils.rotations import quat_normalize, quat_to_rpy

    meta, s = log["meta"], log["steps"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(meta["joint_names"])
    mi = np.asarray(meta["joint_motor_index"], dtype=np.int64)
    t = s["time"][span] - s["time"][span[0]]
    run = s["mode"][span] == RUN
    effort = get_spec(meta.get("robot") or "g1_23dof").motor_table()["effort"][mi]
    cols = 6
    rows_n = int(np.ceil(len(names) / cols))
    paths = []

    def shade(ax: Any) -> None:
        if run.any():
            ax.axvspan(t[run][0], t[run][-1], color="0.9", zorder=0)

    for kind in ("joints", "torques"):
        fig, axes = plt.subplots(rows_n, cols, figsize=(3.0 * cols, 1.9 * rows_n), sharex=True, squeeze=False)
        for j, name in enumerate(names):
            ax = axes.flat[j]
            shade(ax)
            m = int(mi[j])
            if kind == "joints":
                tgt = np.where(s["kp"][span, m] > 0, s["q_target"][span, m], np.nan)
                ax.plot(t, s["q"][span, m], lw=0.8, label="q")
                ax.plot(t, tgt, lw=0.8, ls="--", label="q_target")
            else:
                ax.plot(t, s["tau_est"][span, m], lw=0.8)
                for sign in (-1, 1):
                    ax.axhline(sign * effort[j], color="r", lw=0.5)
            ax.set_title(name.replace("_joint", ""), fontsize=7)
            ax.tick_params(labelsize=6)
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        unit = "rad" if kind == "joints" else "Nm"
        fig.suptitle(f"episode {episode}: {'q (solid) vs q_target (dashed)' if kind == 'joints' else 'tau_est'} "
                     f"[{unit}] over time [s]; RUN shaded", fontsize=9)  # fmt: skip
        fig.tight_layout()
        p = out / f"ep{episode:03d}_{kind}.png"
        fig.savefig(p, dpi=80)
        plt.close(fig)
        paths.append(p)
    root, source = episode_root(log, rows)
    tr = s["time"][rows] - s["time"][span[0]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    pos = np.asarray(root["pos"], dtype=float)
    for k, lab in enumerate("xyz"):
        axes[0].plot(tr, pos[:, k], label=lab)
    axes[0].set(xlabel="s", ylabel="m", title=f"root position ({source})")
    axes[0].legend(fontsize=7)
    axes[1].plot(pos[:, 0], pos[:, 1])
    axes[1].plot(pos[:1, 0], pos[:1, 1], "o")
    axes[1].set(xlabel="x [m]", ylabel="y [m]", title="top view (o: start)", aspect="equal")
    rpy = np.degrees(quat_to_rpy(quat_normalize(np.asarray(root["quat"], dtype=float))))
    for k, lab in enumerate(("roll", "pitch", "yaw")):
        axes[2].plot(tr, rpy[:, k], label=lab)
    axes[2].set(xlabel="s", ylabel="deg", title="root orientation")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"episode {episode}: root trajectory", fontsize=9)
    fig.tight_layout()
    p = out / f"ep{episode:03d}_root.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    paths.append(p)
    return paths


def show(log_dir: str | Path, out_dir: str | Path | None = None, plots: bool = True) -> list[dict[str, Any]]:
    """List the episodes of a log (:func:`list_episodes`) and, with ``plots``, write their PNGs to ``out_dir``
    (default ``LOG_DIR/plots``); each record gets ``plots`` (the paths)."""
    from deploy.logger import read_log

    log = read_log(log_dir)
    eps = list_episodes(log)
    if plots:
        spans = {e: (rows, span) for e, rows, span in episode_spans(log["steps"])}
        out = Path(out_dir) if out_dir is not None else Path(log_dir) / "plots"
        for rec in eps:
            rows, span = spans[rec["episode"]]
            rec["plots"] = [str(p) for p in plot_episode(log, rec["episode"], rows, span, out)]
    return eps


# ------------------------------------------------------------------------------------------------ CLI
def _ids(text: str | None) -> set[int] | None:
    if text is None:
        return None
    try:
        return {int(x) for x in text.split(",") if x.strip()}
    except ValueError as e:
        raise ValueError(f"episode list {text!r} must be comma-separated integers, e.g. 0,2,5") from e


def _show(args: argparse.Namespace) -> int:
    from deploy.logger import read_log

    meta = read_log(args.log_dir)["meta"]
    eps = show(args.log_dir, args.out, plots=not args.no_plots)
    if args.json:
        print(json.dumps(eps, indent=1))
        return 0
    src = meta.get("root_source") or "-"
    print(f"{args.log_dir}: motion {meta.get('motion_name')}, robot {meta.get('robot')}, root_source {src}, "
          f"{len(eps)} episode(s)")  # fmt: skip
    mc = meta.get("mocap")
    if isinstance(mc, dict) and "offset_s" in mc:
        print(f"  mocap {Path(str(mc.get('file', '?'))).name} ({mc.get('format')}): offset {mc['offset_s']:+.4f} s, "
              f"gyro residual {mc.get('gyro_vector_rms', float('nan')):.3f} rad/s, tilt "
              f"{mc.get('tilt_deg_median', float('nan')):.2f} deg")  # fmt: skip
    for r in eps:
        faults = "; ".join(r["faults"]) or "none"
        stops = f"  stopped: {'; '.join(r['stops'])}" if r["stops"] else ""
        # coverage: the share of RUN steps with a measured root (odometry, mocap); an estimate covers every step
        cover = "" if r["root_source"] == "estimate" else f" ({100 * r['root_coverage']:.0f} % of steps)"
        print(f"  ep {r['episode']:3d}  {r['duration_s']:6.2f} s  run {r['run_s']:5.2f} s  "
              f"{'completed' if r['completed'] else 'cut short'}  root {r['root_source']}{cover}  "
              f"{' > '.join(r['modes'])}  faults: {faults}{stops}")  # fmt: skip
        for p in r.get("plots", []):
            print(f"         {p}")
    return 0


def _export(args: argparse.Namespace) -> int:
    motions, paths = export_motions(args.log_dir, args.out, keep=_ids(args.episodes), drop=_ids(args.exclude),
                                    root_source=args.root_source)  # fmt: skip
    for m, p in zip(motions, paths):  # export_motions returns one path per motion
        print(f"  {p}  ({m.meta['policy_steps']} policy steps, root {m.meta['root_source']}"
              f"{'' if m.meta['completed'] else ', cut short'})")  # fmt: skip
    if not paths:
        from deploy.logger import episodes, read_log

        ids = [e for e, _ in episodes(read_log(args.log_dir)["steps"], RUN)]
        raise ValueError(f"nothing to export: the log's episodes are {ids}, and --episodes/--exclude leave none")
    print(f"[log export] {len(paths)} Motion file(s) in {args.out}")
    return 0


def _attach(args: argparse.Namespace) -> int:
    from asap.config import load_config
    from deploy.mocap_csv import MocapConfig, attach_mocap

    cfg = load_config(MocapConfig, args.config, args.override)
    for key in ("format", "rigid_body", "units", "up_axis"):
        v = getattr(args, key)
        if v is not None:
            setattr(cfg, key, v)
    r = attach_mocap(args.log_dir, args.mocap, cfg)
    print(f"[attach-mocap] offset {r['offset_s']:+.4f} s (mocap clock = log clock + offset; coarse "
          f"{r['coarse_offset_s']:+.3f} s, correlation {r['correlation']:.3f}); halves "
          f"{r['offset_first_half_s']:+.4f} / {r['offset_second_half_s']:+.4f} s"
          + (f", clock drift {r['drift_ppm']:+.0f} ppm fitted" if r["drift_used"] else ", no drift fit"))  # fmt: skip
    print(f"[attach-mocap] residual: |w| {r['speed_rms']:.3f} rad/s rms, gyro vector {r['gyro_vector_rms']:.3f} "
          f"rad/s rms, tilt {r['tilt_deg_median']:.2f} deg median / {r['tilt_deg_p95']:.2f} p95; "
          f"{r['steps_with_mocap']}/{r['steps']} steps with mocap")  # fmt: skip
    for e, c in r["episode_coverage"].items():
        if c < 1.0:
            print(f"[attach-mocap] episode {e}: mocap covers {100 * c:.0f} % of its steps (exported with the IMU "
                  "root unless fully covered)")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``asap log`` with ``show``, ``attach-mocap`` and ``export``."""
    from deploy.mocap_csv import FORMATS

    p = sub.add_parser("log", help="rollout logs: show episodes, attach recorded mocap, export Motion files")
    lsub = p.add_subparsers(dest="log_command", metavar="LOG_COMMAND", required=True)

    q = lsub.add_parser("show", help="list episodes (modes, faults, duration, root source) and plot each")
    q.add_argument("log_dir", help="rollout log directory (meta.json, chunk_*.npz)")
    q.add_argument("--out", default=None, help="folder of the PNGs (default LOG_DIR/plots)")
    q.add_argument("--no-plots", action="store_true", help="list only")
    q.add_argument("--json", action="store_true", help="print the episode records as JSON")
    q.set_defaults(func=_show)

    q = lsub.add_parser("attach-mocap", help="merge a recorded mocap export (own clock) into a log's root")
    q.add_argument("log_dir", help="rollout log directory")
    q.add_argument("mocap", help="mocap export (CSV/TSV)")
    q.add_argument("--format", default=None, choices=FORMATS, help="column layout (default: config's, plain)")
    q.add_argument("--rigid-body", default=None, help="pelvis rigid body name in a multi-body export")
    q.add_argument("--units", default=None, choices=["auto", "m", "mm"], help="position units (default auto)")
    q.add_argument("--up-axis", default=None, choices=["auto", "z", "y"], help="export's up axis (default auto)")
    q.add_argument("--config", default=None, help="mocap config YAML (configs/deploy/mocap.yaml)")
    q.add_argument("--override", nargs="*", default=[], help="config overrides, e.g. body_offset_pos=[0,0,-0.1]")
    q.set_defaults(func=_attach)

    q = lsub.add_parser("export", help="write the log's episodes as delta-training Motion files")
    q.add_argument("log_dir", help="rollout log directory")
    q.add_argument("--out", required=True, help="output folder of <motion>_epNNN.npz")
    q.add_argument("--episodes", default=None, help="only these episode ids, comma-separated")
    q.add_argument("--exclude", default=None, help="leave out these episode ids, comma-separated")
    q.add_argument(
        "--root-source",
        default=None,
        choices=["odometry", "estimate", "columns"],
        help="where the root comes from (default: the log's meta; columns = attached mocap/older logs)",
    )
    q.set_defaults(func=_export)
