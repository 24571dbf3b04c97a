"""`asap retarget SOURCE`: human motion (BVH, AMASS/SMPL, built-in clips) -> G1 motion files + quality report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_OUT = "run/retarget"
"""Output folder when -o is not given."""


def _out_path(source: str, out: str | None, many: bool) -> Path:
    stem = source.split(":", 1)[1] if source.startswith("builtin:") else Path(source).stem
    if out is None:
        return Path(DEFAULT_OUT) / f"{stem}.npz"
    o = Path(out)
    if many or o.is_dir() or o.suffix != ".npz":
        return o / f"{stem}.npz"
    return o


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from asap.retarget.config import RetargetConfig, load_table
    from asap.retarget.pipeline import format_report, keypoint_index, retarget_many, save_result
    from asap.retarget.solver import get_solver
    from asap.retarget.sources import expand_sources, load_source, table_for
    from asap.utils.progress import progress_bar

    sources = expand_sources(args.source, args.format)
    many = len(sources) > 1 or args.source == "builtin:all" or Path(args.source).is_dir()
    units: str | float = args.units
    try:
        units = float(args.units)
    except ValueError:
        pass
    # refuse early when outputs exist
    outs = {s: _out_path(s, args.output, many) for s in sources}
    if not args.overwrite:
        existing = [str(p) for p in outs.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{existing[0]} exists ({len(existing)} outputs do); pass --overwrite to replace")
    solver = get_solver(args.robot)
    reports: list[dict] = []
    failed: list[dict[str, str]] = []
    bar = progress_bar(total=len(sources), desc="retarget", unit="clip", disable=not many, file=sys.stderr)
    pending: dict[str, list] = {}
    tables: dict[str, RetargetConfig] = {}

    def table_cfg(table: str) -> RetargetConfig:
        if table not in tables:
            tables[table] = load_table(table, [f"robot={args.robot}", *args.set])
        return tables[table]

    def fail(src: str, e: Exception) -> None:
        """Folder mode: note the failure and go on (one clip never stops the others); one clip: raise."""
        if not many:
            raise e
        msg = (str(e).splitlines() or [""])[0] or type(e).__name__
        failed.append({"source": src, "error": msg})
        tqdm.write(f"failed: {msg if msg.startswith(src) else src + ': ' + msg}", file=sys.stderr)
        bar.update(1)

    def flush(table: str) -> None:
        batch = pending.pop(table, [])
        if not batch:
            return
        cfg = table_cfg(table)
        try:
            done = list(zip(batch, retarget_many([h for _, h in batch], cfg, solver), strict=True))
        except Exception:
            if len(batch) == 1 and not many:
                raise
            done = []  # find the clip that failed: solve them one by one
            for item in batch:
                try:
                    done.append((item, retarget_many([item[1]], cfg, solver)[0]))
                except Exception as e:
                    fail(item[0], e)
        for (src, _), res in done:
            try:
                path = save_result(res, outs[src], overwrite=args.overwrite)
            except Exception as e:
                fail(src, e)
                continue
            res.report["output"] = str(path)
            reports.append(res.report)
            tqdm.write(format_report(res.report, src.removeprefix("builtin:") if many else src), file=sys.stdout)
            bar.update(1)

    for src in sources:
        try:
            human = load_source(src, args.format, args.body_model, units=units, up=args.up, table=args.table)
            table = args.table or table_for(human)
            keypoint_index(human, [m.human for m in table_cfg(table).matches])  # a missing keypoint: now
        except Exception as e:
            fail(src, e)
            continue
        pending.setdefault(table, []).append((src, human))
        if len(pending[table]) >= args.batch:
            flush(table)
    for table in list(pending):
        flush(table)
    bar.close()
    if not many and reports:
        print(f"wrote {reports[0]['output']}")
    elif many:
        print(f"wrote {len(reports)} motion(s) to {Path(args.output or DEFAULT_OUT)}; {len(failed)} failed")
    if failed:
        print(f"failed ({len(failed)} of {len(sources)}):", file=sys.stderr)
        for f in failed:
            said = f["error"].startswith(f["source"])  # most messages start with the file already
            print(f"  {f['error'] if said else f['source'] + ': ' + f['error']}", file=sys.stderr)
    if args.json:
        summary = {}
        if reports:
            for k in ("keypoint_error_mean_mm", "foot_skate_mean_mps", "ground_penetration_max_mm"):
                summary[k] = float(sum(r[k] for r in reports) / len(reports))
            summary["keypoint_error_max_mm"] = max(r["keypoint_error_max_mm"] for r in reports)
            summary["joint_limit_violations"] = sum(r["joint_limit_violations"] for r in reports)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"clips": reports, "failed": failed, "summary": summary}, f, indent=1)
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap retarget`."""
    p = sub.add_parser(
        "retarget",
        help="retarget human motion (BVH, AMASS/SMPL npz, built-in clips) to the G1",
        description="Retarget human motion to the G1 and print a quality report per clip. SOURCE is a .bvh or "
        "SMPL .npz file, a folder of them, builtin:NAME (squat, arm_wave, side_step, kick, balance) or builtin:all.",
    )
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("-o", "--output", help=f"output .npz (one clip) or folder (several); default {DEFAULT_OUT}/")
    p.add_argument("--format", choices=("bvh", "smpl", "builtin"), help="source format (default: from the name)")
    p.add_argument("--body-model", help="folder with the licensed SMPL / SMPL-H / SMPL-X model files (SMPL input)")
    p.add_argument("--robot", default="g1_23dof", choices=("g1_23dof", "g1_29dof"))
    p.add_argument(
        "--table", help="correspondence table: builtin, bvh_cmu, bvh_lafan, smpl or a YAML path (default: from the "
        "source; BVH skeletons by family, configs/retarget/bvh_skeletons.yaml)",
    )  # fmt: skip
    p.add_argument(
        "--units", default="auto",
        help="BVH units: auto (from the skeleton's height along the up axis), m, cm, mm, inch, cmu or metres per unit",
    )  # fmt: skip
    p.add_argument(
        "--up", default="auto", choices=("auto", "y", "z"),
        help="BVH up axis (default: from the rest skeleton; a file standing another way is refused)",
    )  # fmt: skip
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. solver.iterations=20"
    )
    p.add_argument("--batch", type=int, default=8, help="clips solved together in one batch")
    p.add_argument("--json", help="also write the quality figures as JSON to this path")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run)
