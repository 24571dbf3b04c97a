"""`asap robot ...`: fetch the G1 model, print the spec."""

from __future__ import annotations

import argparse
import json

from asap.robot.assets import fetch_g1_assets
from asap.robot.spec import VARIANTS, get_spec


def _fetch(args: argparse.Namespace) -> int:
    path = fetch_g1_assets(args.wheel, force=args.force)
    print(f"G1 model ready: {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    rs = get_spec(args.variant)
    rows = []
    for i, n in enumerate(rs.joint_names):
        rows.append({
            "joint": n, "motor": int(rs.motor_index[i]), "default": rs.default_pos[i], "kp": rs.kp[i],
            "kd": rs.kd[i], "effort": rs.effort_limit[i], "velocity": rs.velocity_limit[i],
            "lower": rs.pos_lower[i], "upper": rs.pos_upper[i],
        })  # fmt: skip
    print(f"{rs.name}: {rs.num_joints} joints, {rs.num_bodies} tracked bodies, dt {rs.sim_dt} x {rs.decimation}")
    print(f"{'i':>2} {'joint':28s} {'motor':>5} {'q0':>6} {'kp':>5} {'kd':>4} {'tau':>4} {'lower':>8} {'upper':>8}")
    for i, r in enumerate(rows):
        print(f"{i:2d} {r['joint']:28s} {r['motor']:5d} {r['default']:6.2f} {r['kp']:5.0f} {r['kd']:4.1f} "
              f"{r['effort']:4.0f} {r['lower']:8.4f} {r['upper']:8.4f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"variant": rs.name, "joints": rows, "bodies": list(rs.body_names)}, f, indent=1)
    return 0


def _check(args: argparse.Namespace) -> int:
    import mujoco

    from asap.robot.assets import g1_mjcf_path
    from asap.robot.model import build_model, lowest_point

    path = g1_mjcf_path(args.mjcf)
    for variant in [args.variant] if args.variant else VARIANTS:
        rs = get_spec(variant)
        model = build_model(rs, mjcf=path)
        data = mujoco.MjData(model)
        mujoco.mj_resetDataKeyframe(model, data, model.key("default").id)
        mujoco.mj_kinematics(model, data)
        print(f"{path}: variant {rs.name} builds: {model.nu} actuated joints, {model.nbody - 1} bodies, "
              f"mass {model.body_subtreemass[1]:.2f} kg")  # fmt: skip
        low = lowest_point(model, data)
        print(f"  default pose stands with the pelvis at z = {data.qpos[2]:.4f} m (lowest point {low:.4f} m)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `asap robot fetch|info|check`."""
    p = sub.add_parser("robot", help="the G1 model and spec")
    s = p.add_subparsers(dest="robot_cmd", required=True)
    f = s.add_parser("fetch", help="download Unitree's G1 MJCF (from the mjlab wheel) into the cache")
    f.add_argument("--wheel", help="use a local mjlab-1.6.0 wheel instead of PyPI")
    f.add_argument("--force", action="store_true", help="fetch again even if cached")
    f.set_defaults(func=_fetch)
    i = s.add_parser("info", help="print the joint table of a variant")
    i.add_argument("--variant", default="g1_23dof", choices=VARIANTS)
    i.add_argument("--json", help="also write the table as JSON to this path")
    i.set_defaults(func=_info)
    c = s.add_parser("check", help="build every variant from the cached G1 or your own MJCF/URDF and report them")
    c.add_argument("--mjcf", help="your model (MJCF or URDF); default: $ASAP_G1_MJCF or the cached G1")
    c.add_argument("--variant", choices=VARIANTS, help="check only this variant (default: all of them)")
    c.set_defaults(func=_check)
