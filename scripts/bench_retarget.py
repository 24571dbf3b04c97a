"""Retargeting speed: frames per second per CPU core for a batch of clips.

Clips: the five built-in ones (plus the CMU BVH clip from ../shared/data when present, plus --bvh files).
Torch runs on one thread, so CPU seconds are core-seconds; the figure is output frames (50 fps) per CPU
second of the whole retarget (targets, IK, floor fix, report), after a warm-up run. The solver model is
built once (about a second) and excluded, as in a batch job.

    python scripts/bench_retarget.py [--repeat 3] [--batch 8] [--bvh FILE ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (the best is reported)")
    ap.add_argument("--batch", type=int, default=8, help="clips per batched solve")
    ap.add_argument("--bvh", nargs="*", default=[], help="extra BVH files to include")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. solver.iterations=10")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from asap.retarget import load_source, load_table, retarget_many, table_for
    from asap.retarget.builtin import CLIPS
    from asap.retarget.solver import get_solver

    sources = [f"builtin:{n}" for n in CLIPS]
    cmu = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu" / "131_01.bvh"
    if cmu.exists():
        sources.append(str(cmu))
    sources += args.bvh
    t0 = time.perf_counter()
    solver = get_solver("g1_23dof")
    build_s = time.perf_counter() - t0
    humans = [load_source(s) for s in sources]
    groups: dict[str, list] = {}
    for h in humans:
        groups.setdefault(table_for(h), []).append(h)

    def run() -> tuple[int, float, float, list[dict]]:
        frames, reports = 0, []
        w0, c0 = time.perf_counter(), time.process_time()
        for table, hs in groups.items():
            cfg = load_table(table, args.set)
            for i in range(0, len(hs), args.batch):
                for r in retarget_many(hs[i : i + args.batch], cfg, solver):
                    frames += r.motion.num_frames
                    reports.append(r.report)
        return frames, time.perf_counter() - w0, time.process_time() - c0, reports

    run()  # warm-up
    best = None
    for _ in range(args.repeat):
        res = run()
        if best is None or res[2] < best[2]:
            best = res
    frames, wall, cpu, reports = best
    src_frames = sum(h.num_frames for h in humans)
    fps_core = frames / cpu
    print(f"clips: {len(humans)} ({', '.join(Path(s).name for s in sources)})")
    print(f"output frames (50 fps): {frames}; source frames: {src_frames}; model build {build_s:.2f} s (once)")
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s on 1 thread")
    print(f"retarget speed: {fps_core:.0f} output frames/s per CPU core ({src_frames / cpu:.0f} source frames/s)")
    for s, r in zip(sources, reports, strict=False):
        print(
            f"  {Path(s).name:18s} err {r['keypoint_error_mean_mm']:5.1f} mm  "
            f"skate {r['foot_skate_mean_mps']:.3f} m/s  penetration {r['ground_penetration_max_mm']:.1f} mm"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({
            "clips": len(humans), "output_frames": frames, "source_frames": src_frames, "wall_s": wall,
            "cpu_s": cpu, "fps_per_core": fps_core, "source_fps_per_core": src_frames / cpu,
        }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
