"""`asap motion info|convert|render|view`: inspect, convert, resample, floor-fix and look at motion files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from asap.robot.spec import VARIANTS


def _read(args: argparse.Namespace, path: str):
    from asap.motion.formats import read_motion

    return read_motion(
        path, key=getattr(args, "key", None), fps=getattr(args, "input_fps", None),
        joint_order=getattr(args, "joint_order", None),
    )  # fmt: skip


def _spec(variant: str | None, motion):
    from asap.motion.formats._common import spec_for_joints
    from asap.robot.spec import get_spec

    return get_spec(variant) if variant else spec_for_joints(motion.joint_names)


def print_info(info: dict[str, Any], name: str = "") -> None:
    """Print the figures of :func:`asap.motion.ops.motion_info` for people."""
    fc = info["foot_clearance"]
    print(f"{name}: {info['robot']}, {info['frames']} frames at {info['fps']:g} fps, {info['length_s']:.3f} s")
    if info.get("layout"):
        check = info.get("joint_order_check")
        how = f" ({check})" if isinstance(check, str) else f" (checked by {check['method']})" if check else ""
        print(f"  layout       {info['layout']}, joint order {info['joint_order']}{how}")
    rh = info["root_height"]
    print(f"  root height  min {rh['min']:.3f}  median {rh['median']:.3f}  max {rh['max']:.3f} m")
    has = [k for k, v in info["has"].items() if v]
    if has:
        print(f"  carries      {', '.join(has)}")
    print(f"  {'joint':28s} {'min':>8} {'max':>8}   {'lower':>8} {'upper':>8}")
    for n, j in info["joints"].items():
        flag = "  <-- outside limits" if n in info["limit_violations"] else ""
        print(f"  {n:28s} {j['min']:8.3f} {j['max']:8.3f}   {j['limit_lower']:8.3f} {j['limit_upper']:8.3f}{flag}")
    if info["limit_violations"]:
        for n, v in info["limit_violations"].items():
            print(f"  limit violation: {n} by up to {v['max_excess_rad']:.4f} rad over {v['frames']} frames")
    else:
        print("  limit violations: none")
    cm = {k: {s: 100 * v for s, v in fc[k].items()} for k in ("lowest_sole", "stance_sole")}
    print(
        f"  foot clearance (lowest sole point, cm): min {cm['lowest_sole']['min']:.1f}  "
        f"median {cm['lowest_sole']['median']:.1f}  max {cm['lowest_sole']['max']:.1f}"
    )
    print(
        f"  stance-foot clearance ({fc['stance_frames']} stance frames, cm): min {cm['stance_sole']['min']:.1f}  "
        f"median {cm['stance_sole']['median']:.1f}  max {cm['stance_sole']['max']:.1f}"
    )
    if fc["penetration_frames"]:
        print(f"  ground penetration (> 1 mm) on {fc['penetration_frames']} frames")
    sp = info["support"]
    print(
        f"  balance: {sp['single_stance_frames']} single-stance frames; centre of mass outside the stance foot by up "
        f"to {100 * sp['com_outside_max_m']:.1f} cm, for at most {sp['longest_unsupported_s']:.2f} s in a row; "
        f"zero-moment point outside the feet by up to {100 * sp['zmp_outside_max_m']:.1f} cm, for at most "
        f"{sp['longest_zmp_outside_s']:.2f} s in a row"
    )


def _info(args: argparse.Namespace) -> int:
    from asap.motion.formats import detect_format
    from asap.motion.ops import motion_info

    motion = _read(args, args.file)
    spec = _spec(args.robot, motion)
    motion.for_robot(spec)  # one-line error on wrong joints
    info = motion_info(motion, spec)
    info["file"] = str(args.file)
    info["layout"] = detect_format(args.file)
    if info["layout"] == "motion":
        info["joint_order"] = "names in the file"
    else:
        info["joint_order"] = motion.meta.get("joint_order", "names in the file")
        if "joint_order_check" in motion.meta:
            info["joint_order_check"] = motion.meta["joint_order_check"]
    print_info(info, str(args.file))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(info, indent=1, default=str))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from asap.motion.formats import detect_format, write_motion
    from asap.motion.ops import fix_floor, resample, to_variant

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    fmt = args.to or ("mjlab" if args.mjlab else None)
    detect_format(out, for_writing=True)  # unknown extension: fail before any work
    motion = _read(args, args.input)
    if args.variant:
        motion = to_variant(motion, args.variant)
    spec = _spec(args.variant, motion)
    motion.validate(spec)
    if args.fps:
        motion = resample(motion, args.fps)
    if args.fix_floor:
        motion, shift = fix_floor(motion, spec, mode=args.fix_floor)
        lo, hi = 100 * shift.min(), 100 * shift.max()
        print(f"fix-floor ({args.fix_floor}): root z shifted by {lo:+.1f} .. {hi:+.1f} cm")
    meta = dict(motion.meta)
    meta.setdefault("converted_from", str(args.input))
    motion.meta = meta
    path = write_motion(
        motion, out, fmt=fmt, overwrite=args.overwrite, spec=args.variant or "g1_23dof",
        joint_order=args.out_joint_order,
    )  # fmt: skip
    print(f"wrote {path}: {motion.num_frames} frames at {motion.fps:g} fps, {len(motion.joint_names)} joints")
    return 0


def _render(args: argparse.Namespace) -> int:
    from asap.motion.render import render_motion

    motion = _read(args, args.file)
    out = args.out or str(Path(args.file).with_suffix(".mp4"))
    r = render_motion(
        motion, out, fps=args.fps, width=args.width, height=args.height, overwrite=args.overwrite,
        spec=_spec(args.robot, motion), geoms=args.geoms, pretty=args.pretty,
    )  # fmt: skip
    print(f"wrote {out}: {r['frames']} frames at {r['fps']:g} fps ({r['render_fps']:.1f} frames/s rendering)")
    return 0


def _view(args: argparse.Namespace) -> int:
    from asap.motion.render import view_motion

    motion = _read(args, args.file)
    view_motion(motion, spec=_spec(args.robot, motion), loop=not args.once, speed=args.speed)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    from asap.robot.spec import JOINT_ORDERS

    p.add_argument("--key", help="motion key inside a multi-motion pkl")
    p.add_argument("--input-fps", type=float, help="frame rate of a csv input (default 30)")
    p.add_argument(
        "--joint-order", choices=tuple(JOINT_ORDERS),
        help="order of the joint columns of a file without joint names (mjlab/BeyondMimic npz, csv, GMR pkl); "
        "default: found by forward kinematics against the file's body poses, else depth-first (unitree)",
    )  # fmt: skip
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap motion info|convert|render|view`."""
    from asap.motion.ops import FLOOR_MODES
    from asap.robot.spec import JOINT_ORDERS

    p = sub.add_parser("motion", help="motion files: info, convert, render, view")
    s = p.add_subparsers(dest="motion_cmd", required=True)

    i = s.add_parser("info", help="length, fps, joint ranges, limit violations and foot clearance of a motion")
    i.add_argument("file", help="motion file (.npz ours, mjlab or IsaacLab, .pkl ASAP or GMR, .csv G1)")
    i.add_argument("--json", help="also write the figures as JSON to this path")
    i.add_argument("--robot", choices=VARIANTS, help="robot variant (default: from the file's joints)")
    _common(i)
    i.set_defaults(func=_info)

    c = s.add_parser("convert", help="convert between formats (by extension), resample, fix the floor")
    c.add_argument("input", help="input motion (.npz ours, mjlab or IsaacLab, .pkl ASAP or GMR, .csv G1)")
    c.add_argument("output", help="output path; layout from the extension, or --to")
    c.add_argument("--fps", type=float, help="resample to this frame rate (lerp joints/positions, slerp root)")
    c.add_argument(
        "--fix-floor", nargs="?", const="frame", choices=FLOOR_MODES,
        help="shift root z only: 'frame' (default) puts the stance foot on the floor on every stance frame; "
        "'clip' applies one constant shift putting the clip's lowest sole point on z=0",
    )  # fmt: skip
    c.add_argument("--variant", choices=VARIANTS, help="reorder/select joints for this robot variant")
    c.add_argument(
        "--to", metavar="LAYOUT",
        help="output layout (default from the extension: .npz ours, .pkl ASAP, .csv G1): mjlab or isaaclab for "
        ".npz, gmr for .pkl (docs/motion.md lists them)",
    )  # fmt: skip
    c.add_argument("--mjlab", action="store_true", help="same as --to mjlab")
    c.add_argument(
        "--out-joint-order", choices=tuple(JOINT_ORDERS),
        help="joint (and body) order of an mjlab npz (unitree or isaaclab, e.g. for BeyondMimic in IsaacLab) or a csv",
    )  # fmt: skip
    c.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _common(c)
    c.set_defaults(func=_convert)

    r = s.add_parser("render", help="render a motion to mp4 offscreen (headless, CPU)")
    r.add_argument("file", help="motion file")
    r.add_argument("--out", help="output .mp4 (default: FILE with .mp4)")
    r.add_argument("--fps", type=float, help="video frame rate (default: the motion's)")
    r.add_argument("--width", type=int, default=640)
    r.add_argument("--height", type=int, default=480)
    r.add_argument("--geoms", choices=("mesh", "collision"), default="mesh", help="draw meshes or collision geoms")
    r.add_argument("--pretty", action="store_true", help="shadows and reflections (slow without a GPU)")
    r.add_argument("--robot", choices=VARIANTS, help="robot variant (default: from the file's joints)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing video")
    _common(r)
    r.set_defaults(func=_render)

    v = s.add_parser("view", help="play a motion in MuJoCo's interactive viewer (needs a display)")
    v.add_argument("file", help="motion file")
    v.add_argument("--speed", type=float, default=1.0, help="playback speed factor")
    v.add_argument("--once", action="store_true", help="play once instead of looping")
    v.add_argument("--robot", choices=VARIANTS, help="robot variant (default: from the file's joints)")
    _common(v)
    v.set_defaults(func=_view)
