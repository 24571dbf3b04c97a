"""The sim-to-"real" alignment benchmark: OpenLoop, SysID, DeltaDynamics, DR and ASAP on the same logs and targets.

For each target and clip (asap-method.md section 6, Tables III-IV):

1. pretrain a tracking policy on the clip (`asap pretrain`, once per clip; ``--pretrain CLIP=DIR`` reuses a run);
2. collect ``--episodes`` episodes of it on the target: the virtual G1 over DDS through the robot runtime
   (`asap collect --virtual`), with the target's reality-gap profile and physics engine;
3. fit each model on those logs: `asap sysid` (CMA-ES), `asap train-dynamics` (DeltaDynamics), `asap train-delta`
   (ASAP's π^Δ); the Oracle of a known gap needs no fitting;
4. the open-loop table (Table III): `asap eval --open-loop` of the *held-out* episodes (the delta run's split) at
   0.25 / 0.5 / 1.0 s with the rows OpenLoop, SysID, DeltaDynamics, ASAP and Oracle (known gaps);
5. fine-tune the pretrained policy with each method (`asap finetune`: ``--dynamics``, ``--dynamics-model``,
   ``configs/finetune/dr.yaml``, ``--delta``; Oracle = fine-tuned against the gap's exact compensating Δa, or in
   the target engine itself for an engine gap);
6. the closed-loop table (Table IV): `asap eval` of every policy (Vanilla = the pretrained one) on the target's
   physics (protocol target: the same engine and gap law as the virtual G1), ``--episodes`` x ``--seeds`` (seeds
   draw the initial-state noise ``--init-noise``), mean ± std over seeds.

Targets: ``ankle_weak`` and ``hard`` (MuJoCo + configs/real_gap/*.yaml) and ``genesis`` (the Genesis engine with no
profile: an engine gap that no parameter list captures). Every step is a separate process (the `asap` CLI) writing
into ``--out``; a step whose output exists is skipped, so a killed run resumes where it stopped (trainings resume
from their newest checkpoint). ``--jobs N`` runs up to N independent steps at once (each process uses its own
simulator threads: on 2 cores, N > 1 only overlaps waiting). ``--quick`` shrinks every budget for a small check.
Writes ``--out/report.md`` (the tables, the goals) and ``--out/results.json``. Example::

    python scripts/bench_alignment.py --out run/bench_alignment --pretrain arm_wave=run/demo_full/pretrain
    python scripts/bench_alignment.py --out run/bench_alignment_quick --quick --targets ankle_weak --clips arm_wave
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asap.rl.checkpoints import latest_checkpoint

REPO = Path(__file__).resolve().parents[1]
TARGETS: dict[str, tuple[str, str | None]] = {
    "ankle_weak": ("mujoco", "configs/real_gap/ankle_weak.yaml"),
    "hard": ("mujoco", "configs/real_gap/hard.yaml"),
    "genesis": ("genesis", None),
}
"""Target name -> (physics engine, reality-gap profile)."""
CLIPS = {"arm_wave": "motions/builtin/arm_wave.npz", "kick": "motions/builtin/kick.npz"}
"""Built-in clips: the demo clip and a dynamic one."""
METHODS = ("SysID", "DeltaDynamics", "DR", "ASAP", "Oracle")
"""Fine-tuned policies of the closed-loop table (besides Vanilla, the pretrained policy)."""
OPENLOOP_ROWS = ("OpenLoop", "SysID", "DeltaDynamics", "ASAP", "Oracle")
CLOSED_ROWS = ("Vanilla", *METHODS)
COLUMNS = (("success_rate", "Success"), ("steps", "Steps"), ("E_g_mpjpe", "E_g-mpjpe"), ("E_mpjpe", "E_mpjpe"),
           ("E_acc", "E_acc"), ("E_vel", "E_vel"))  # fmt: skip
"""Closed-loop columns (key in `asap eval`'s summary, header); Steps: control steps an episode ran before it ended."""


@dataclass
class Job:
    """One step: a command run as its own process, finished when every file of ``done`` exists."""

    name: str
    """``target/clip/step`` (or ``pretrain/clip``)."""
    cmd: list[str]
    """argv of the process (the `asap` CLI)."""
    done: list[Path]
    """Files that exist once the step has finished."""
    deps: list[str] = field(default_factory=list)
    """Names of the steps that must finish first."""
    clean: Path | None = None
    """A folder to delete before (re)running the step (what a failed attempt left behind)."""

    def finished(self) -> bool:
        """Whether every output file exists."""
        return all(p.exists() for p in self.done)


def asap(*args: str) -> list[str]:
    """argv of an `asap` CLI call in this interpreter."""
    return [sys.executable, "-m", "asap.cli", *args]


@dataclass
class Budget:
    """Per-step budgets (full run, or ``--quick``)."""

    pretrain: list[str]
    collect_episodes: int
    sysid: list[str]
    dynamics: list[str]
    delta: list[str]
    finetune: list[str]
    eval_episodes: int

    @staticmethod
    def of(quick: bool, episodes: int, eval_episodes: int, finetune_s: float = 600.0) -> Budget:
        """The full budgets (pretraining: configs/pretrain/demo.yaml; fine-tunes of ``finetune_s`` seconds) or the
        quick ones (tens of seconds each)."""
        if quick:
            return Budget(["run.max_time_s=60", "num_envs=32"], min(episodes, 4), ["generations=2", "population=4"],
                          ["max_time_s=20", "num_envs=32"], ["run.max_time_s=20", "num_envs=32"],
                          ["max_time_s=20", "pretrain.num_envs=32"], min(eval_episodes, 2))  # fmt: skip
        return Budget([], episodes, [], [], [], [f"max_time_s={finetune_s:g}"], eval_episodes)


def anchor_paths(args: argparse.Namespace, cwd: Path) -> None:
    """Make the caller's paths (``--out``, clip files, ``--pretrain`` folders) absolute against ``cwd``, in place:
    the steps run in the checkout, where the shipped ``configs/`` and ``motions/`` are named from, not where the
    script was called."""
    args.out = str((cwd / args.out).resolve())
    args.clips = [c if c in CLIPS else str((cwd / c).resolve()) for c in args.clips]
    args.pretrain = [f"{k}={(cwd / v).resolve()}" for k, v in (s.split("=", 1) for s in args.pretrain)]


def plan(args: argparse.Namespace) -> tuple[list[Job], dict[str, Any]]:
    """Every step of the benchmark and the layout the report reads (``{target: {clip: paths}}``)."""
    out = Path(args.out)
    b = Budget.of(args.quick, args.episodes, args.eval_episodes, args.finetune_s)
    given = dict(s.split("=", 1) for s in args.pretrain)
    jobs: list[Job] = []
    layout: dict[str, Any] = {}
    for clip in args.clips:
        motion = str(REPO / CLIPS[clip]) if clip in CLIPS else clip
        name = Path(motion).stem
        pre = Path(given[name]) if name in given else out / "pretrain" / name
        pre_job = f"pretrain/{name}"
        if name not in given:
            cmd = asap("pretrain", "--config", "configs/pretrain/demo.yaml", "--out", str(pre), f"motion={motion}",
                       *b.pretrain)  # fmt: skip
            last = latest_checkpoint(pre)
            if last is not None:
                cmd += ["--resume", str(last)]
            jobs.append(Job(pre_job, cmd, [pre / "policy.onnx", pre / "metrics.json"]))
        for target in args.targets:
            engine, gap = TARGETS[target]
            t = out / target / name
            layout.setdefault(target, {})[name] = {"dir": str(t), "gap": gap, "engine": engine, "pretrain": str(pre)}
            deps = [] if name in given else [pre_job]
            logs = t / "collect" / "motions"
            gap_args = ["--gap", gap] if gap else []
            ck = f"{target}/{name}"
            cmd = asap("collect", "--policy", str(pre / "policy.onnx"), "--virtual", "--episodes",
                       str(b.collect_episodes), "--out", str(t / "collect"), *gap_args)  # fmt: skip
            if engine != "mujoco":
                cmd += ["--engine", engine]
            first = t / "collect" / "motions" / f"{name}_ep000.npz"  # a collection without episodes has failed
            jobs.append(Job(f"{ck}/collect", cmd, [t / "collect" / "summary.json", first], deps, clean=t / "collect"))
            col = [f"{ck}/collect"]
            jobs.append(Job(f"{ck}/sysid", asap("sysid", "--motions", str(logs), "--out", str(t / "sysid"),
                                                 *gap_args, *b.sysid), [t / "sysid" / "sysid.json"], col))  # fmt: skip
            jobs.append(Job(f"{ck}/dynamics", asap("train-dynamics", "--motions", str(logs), "--out",
                                                   str(t / "dynamics"), *gap_args, *b.dynamics),
                            [t / "dynamics" / "summary.json"], col))  # fmt: skip
            # an engine gap is not confined to the ankles: π^Δ drives all joints there (the paper's IsaacGym->Genesis)
            joints = ["env.joints=all"] if gap is None else []
            jobs.append(Job(f"{ck}/delta", asap("train-delta", "--config", "configs/delta/demo.yaml", "--motions",
                                                str(logs), "--out", str(t / "delta"), *gap_args, *joints, *b.delta),
                            [t / "delta" / "summary.json", t / "delta" / "delta.pt"], col))  # fmt: skip
            fits = [f"{ck}/sysid", f"{ck}/dynamics", f"{ck}/delta"]
            openloop = [
                "eval",
                "--open-loop",
                "@held_out",
                "--out",
                str(t / "openloop"),
                "--sysid",
                str(t / "sysid"),
                "--dynamics",
                str(t / "dynamics"),
                "--delta",
                str(t / "delta" / "delta.pt"),
                *gap_args,
                "--no-progress",
            ]  # replayed in the policy's training simulator (MuJoCo)
            jobs.append(Job(f"{ck}/openloop", asap(*openloop), [t / "openloop" / "metrics.json"], fits))
            start = latest_checkpoint(pre)
            start_arg = str(start) if start is not None else f"@newest:{pre}"
            finetune_from: dict[str, tuple[list[str], list[str], list[str]]] = {  # options, overrides, needs
                "SysID": (["--dynamics", str(t / "sysid" / "dynamics.yaml")], [], [f"{ck}/sysid"]),
                "DeltaDynamics": (["--dynamics-model", str(t / "dynamics" / "dynamics_model.pt")], [],
                                  [f"{ck}/dynamics"]),
                "DR": (["--config", "configs/finetune/dr.yaml"], [], []),
                "ASAP": (["--delta", str(t / "delta" / "delta.pt")], [], [f"{ck}/delta"]),
                # a known gap: its exact compensating Δa; an engine gap: fine-tuned in the target engine itself
                "Oracle": (["--delta", f"oracle:{gap}"], [], []) if gap else ([], [f"pretrain.sim={engine}"], []),
            }  # fmt: skip
            policies = {"Vanilla": pre / "policy.onnx"}
            for method in args.methods:  # in the order given: the first ones run first
                opts, overrides, needs = finetune_from[method]
                f = t / "finetune" / method
                cfg = [] if "--config" in opts else ["--config", "configs/finetune/demo.yaml"]
                cmd = asap("finetune", *cfg, *opts, "--checkpoint", start_arg, "--out", str(f))
                last = latest_checkpoint(f)
                if last is not None:
                    cmd += ["--resume", str(last)]
                cmd += [*overrides, *b.finetune]
                jobs.append(Job(f"{ck}/finetune/{method}", cmd, [f / "policy.onnx", f / "metrics.json"],
                                deps + needs))  # fmt: skip
                policies[method] = f / "policy.onnx"
            for method, policy in policies.items():
                e = t / "closed_loop" / method
                # a protocol target applies a gap profile to MuJoCo; an engine gap runs on the virtual G1 over DDS
                where = (["--target", engine, "--init-noise", str(args.init_noise)] if engine == "mujoco"
                         else ["--over-dds", "--engine", engine])  # fmt: skip
                cmd = asap(
                    "eval",
                    str(policy),
                    "--motions",
                    motion,
                    *where,
                    *gap_args,
                    "--episodes",
                    str(b.eval_episodes),
                    "--seeds",
                    str(args.seeds),
                    "--out",
                    str(e),
                    "--no-progress",
                )
                dep = deps if method == "Vanilla" else [f"{ck}/finetune/{method}"]
                jobs.append(Job(f"{ck}/eval/{method}", cmd, [e / "metrics.json"], dep))
    return jobs, layout


def resolve(cmd: list[str]) -> list[str]:
    """Fill the placeholders that depend on earlier steps' outputs: ``@held_out`` (the delta run's held-out
    episodes, or every episode when there are none) and ``@newest:DIR`` (a pretraining run's newest checkpoint)."""
    out: list[str] = []
    for i, a in enumerate(cmd):
        if a == "@held_out":
            t = Path(cmd[cmd.index("--out") + 1]).parent
            split = json.loads((t / "delta" / "split.json").read_text())
            names = split["held_out"] or split["train"]
            out += [str(t / "collect" / "motions" / f"{n}.npz") for n in names]
        elif a.startswith("@newest:"):
            last = latest_checkpoint(Path(a.removeprefix("@newest:")))
            if last is None:
                raise FileNotFoundError(f"no checkpoint in {a.removeprefix('@newest:')} (step {cmd[:4]}, arg {i})")
            out.append(str(last))
        else:
            out.append(a)
    return out


def run_jobs(jobs: list[Job], n: int, logs: Path, progress: bool = True) -> dict[str, str]:
    """Run the unfinished steps, at most ``n`` processes at once, each when the steps it needs have finished
    (a step whose dependency failed is not run). Each step's output goes to ``logs/<name>.log``.
    Returns ``{name: "done" | "skipped" | "failed (rc N)" | "not run (needs X)"}``."""
    from asap.utils.progress import progress_bar

    status: dict[str, str] = {j.name: "skipped" for j in jobs if j.finished()}
    pending = [j for j in jobs if j.name not in status]
    running: dict[str, tuple[subprocess.Popen, Job, float]] = {}
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    bar = progress_bar(total=len(jobs), initial=len(status), disable=not progress, desc="steps", unit="step")
    while pending or running:
        for j in list(pending):
            if len(running) >= n:
                break
            bad = [d for d in j.deps if d in status and status[d] not in ("done", "skipped")]
            if bad:
                status[j.name] = f"not run (needs {bad[0]})"
                pending.remove(j)
                bar.update()
                continue
            if all(status.get(d) in ("done", "skipped") for d in j.deps):
                if j.clean is not None and j.clean.exists():
                    shutil.rmtree(j.clean)
                log = logs / f"{j.name.replace('/', '__')}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                try:
                    cmd = resolve(j.cmd)
                except (OSError, KeyError, ValueError) as e:
                    status[j.name] = f"failed ({e})"
                    pending.remove(j)
                    bar.update()
                    continue
                with log.open("w") as fh:
                    fh.write(" ".join(cmd) + "\n\n")
                    fh.flush()
                    proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env)
                running[j.name] = (proc, j, time.time())
                pending.remove(j)
                bar.set_postfix_str(", ".join(running), refresh=True)
        for name, (proc, j, t0) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del running[name]
            status[name] = "done" if rc == 0 and j.finished() else f"failed (rc {rc}, see {logs})"
            bar.write(f"{name}: {status[name]} in {time.time() - t0:.0f} s")
            bar.update()
        time.sleep(1.0)
    bar.close()
    return status


# ---------------------------------------------------------------------------------------------- report
def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def closed_loop_row(path: Path) -> dict[str, dict[str, float]] | None:
    """``{metric: {mean, std}}`` of the one policy and clip of an `asap eval` metrics.json, or None."""
    m = _read(path)
    if m is None:
        return None
    (policy,) = m["policies"].values()
    return policy["metrics"]


def collect_results(layout: dict[str, Any]) -> dict[str, Any]:
    """Open- and closed-loop tables of every finished cell of ``layout``."""
    res: dict[str, Any] = {}
    for target, clips in layout.items():
        for clip, c in clips.items():
            t = Path(c["dir"])
            cell: dict[str, Any] = {"gap": c["gap"], "engine": c["engine"]}
            cell["openloop"] = _read(t / "openloop" / "metrics.json")
            cell["closed_loop"] = {m: closed_loop_row(t / "closed_loop" / m / "metrics.json") for m in CLOSED_ROWS}
            col = _read(t / "collect" / "summary.json")
            cell["episodes"] = None if col is None else len(col.get("motions", []))
            res.setdefault(target, {})[clip] = cell
    return res


def goals(cell: dict[str, Any], target: str) -> list[tuple[str, bool | None]]:
    """The issue's goals for one cell: (statement, met? / None when not measured)."""
    out: list[tuple[str, bool | None]] = []
    ol = (cell.get("openloop") or {}).get("1")
    if ol and "ASAP" in ol:
        a, o = ol["ASAP"]["E_g_mpjpe"], ol["OpenLoop"]["E_g_mpjpe"]
        out.append((f"open loop 1.0 s: ASAP E_g-mpjpe >= 50% below OpenLoop ({a:.1f} vs {o:.1f} mm)", a <= 0.5 * o))
        if target == "genesis":
            others = {k: v["E_g_mpjpe"] for k, v in ol.items() if k in ("SysID", "DeltaDynamics")}
            out.append(("open loop 1.0 s: ASAP lowest of the learned/identified methods on the engine gap",
                        all(a <= v for v in others.values()) if others else None))  # fmt: skip
    else:
        out.append(("open loop 1.0 s: ASAP >= 50% below OpenLoop", None))
    cl = cell.get("closed_loop") or {}
    asap_row, vanilla = cl.get("ASAP"), cl.get("Vanilla")
    if asap_row:
        s = asap_row["success_rate"]["mean"]
        out.append((f"closed loop: ASAP 100% success ({100 * s:.0f}%)", s >= 1.0))
    else:
        out.append(("closed loop: ASAP 100% success", None))
    if asap_row and vanilla:
        a, v = asap_row["E_g_mpjpe"]["mean"], vanilla["E_g_mpjpe"]["mean"]
        text = f"closed loop: ASAP E_g-mpjpe >= 20% below Vanilla ({a:.1f} vs {v:.1f} mm)"
        sa, sv = ((r.get("steps") or {}).get("mean") for r in (asap_row, vanilla))
        shorter = sa is not None and sv is not None and sa < sv
        if shorter:  # errors are counted until an episode ends: an earlier fall is not better tracking
            text += f"; not comparable: ASAP's episodes end sooner ({sa:.0f} vs {sv:.0f} steps)"
        out.append((text, a <= 0.8 * v and not shorter))
    return out


def report_markdown(results: dict[str, Any], status: dict[str, str], args: argparse.Namespace) -> str:
    """Table III and Table IV per target and clip, the goals, and the steps that did not finish."""
    lines = ["# Sim-to-\"real\" alignment benchmark", "",
             f"`python scripts/bench_alignment.py {' '.join(sys.argv[1:])}`", "",
             f"Closed loop: {args.eval_episodes if not args.quick else min(args.eval_episodes, 2)} episode(s) x "
             f"{args.seeds} seed(s) per policy (protocol targets: initial-state noise level {args.init_noise}), "
             "mean ± std over seeds; "
             "errors in mm (E_vel mm/frame, E_acc mm/frame²).", ""]  # fmt: skip
    for target, clips in results.items():
        for clip, cell in clips.items():
            where = f"{target} ({cell['engine']}, gap {Path(cell['gap']).stem if cell['gap'] else 'none'})"
            lines += [f"## {where}, clip {clip}", "", f"Logs: {cell['episodes']} episode(s) of the pretrained policy.",
                      "", "Open loop (held-out episodes; Table III), E_g-mpjpe / E_mpjpe:", "",
                      "| horizon (s) | " + " | ".join(OPENLOOP_ROWS) + " |",
                      "|---" * (len(OPENLOOP_ROWS) + 1) + "|"]  # fmt: skip
            for h, row in (cell["openloop"] or {}).items():
                cells = [f"{row[m]['E_g_mpjpe']:.1f} / {row[m]['E_mpjpe']:.1f}" if m in row else "-"
                         for m in OPENLOOP_ROWS]  # fmt: skip
                lines.append(f"| {h} | " + " | ".join(cells) + " |")
            how = (
                "the protocol target (MuJoCo + the gap profile), with initial-state noise"
                if cell["engine"] == "mujoco"
                else f"the virtual G1 over DDS on {cell['engine']} (from its default pose, no initial-state noise)"
            )
            lines += [
                "",
                f"Closed loop on {how} (Table IV):",
                "",
                "| policy | " + " | ".join(h for _, h in COLUMNS) + " |",
                "|---" * (len(COLUMNS) + 1) + "|",
            ]
            for m in CLOSED_ROWS:
                row = cell["closed_loop"].get(m)
                if row is None:
                    lines.append(f"| {m} | " + " | ".join("-" for _ in COLUMNS) + " |")
                    continue
                cells = []
                for key, _ in COLUMNS:
                    st = row.get(key)
                    k = 100.0 if key == "success_rate" else 1.0
                    cells.append("-" if st is None else f"{k * st['mean']:.1f} ± {k * st['std']:.1f}")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines += ["", "Goals:", ""]
            for text, ok in goals(cell, target):
                mark = "not measured" if ok is None else ("met" if ok else "**missed**")
                lines.append(f"- {text}: {mark}")
            lines.append("")
    bad = {k: v for k, v in status.items() if v not in ("done", "skipped")}
    if bad:
        lines += ["## Steps that did not finish", ""] + [f"- `{k}`: {v}" for k, v in sorted(bad.items())] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="run/bench_alignment", help="result folder (shared by every step; resumable)")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), help="built-in clip names or Motion files")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS),
                    help="fine-tuned methods of the closed-loop table, in the order they run (none: only the logs, "
                    "the fits, the open-loop table and the pretrained policy's closed loop)")  # fmt: skip
    ap.add_argument("--pretrain", nargs="*", default=[], metavar="CLIP=DIR", help="reuse a pretraining run per clip")
    ap.add_argument("--episodes", type=int, default=16, help="logged episodes per target and clip (default 16)")
    ap.add_argument("--eval-episodes", type=int, default=4, help="closed-loop episodes per seed (default 4)")
    ap.add_argument("--finetune-s", type=float, default=600.0, help="seconds per fine-tune (default 600)")
    ap.add_argument("--seeds", type=int, default=3, help="closed-loop seeds (default 3)")
    ap.add_argument("--init-noise", type=float, default=0.3, help="closed-loop initial-state noise level")
    ap.add_argument("--jobs", type=int, default=1, help="steps run at once as separate processes (default 1)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets everywhere: checks that the chain runs")
    ap.add_argument("--report-only", action="store_true", help="only rebuild report.md from finished steps")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    anchor_paths(args, Path.cwd())
    os.chdir(REPO)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs, layout = plan(args)
    if args.report_only:
        status = {j.name: "done" if j.finished() else "not run" for j in jobs}
    else:
        print(f"{len(jobs)} steps, {sum(not j.finished() for j in jobs)} to run, {args.jobs} at a time; logs in "
              f"{out / 'logs'}", flush=True)  # fmt: skip
        status = run_jobs(jobs, max(1, args.jobs), out / "logs", progress=not args.no_progress)
    results = collect_results(layout)
    (out / "results.json").write_text(json.dumps({"results": results, "status": status}, indent=1))
    md = report_markdown(results, status, args)
    (out / "report.md").write_text(md)
    print(md)
    return 0 if all(s in ("done", "skipped") for s in status.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
