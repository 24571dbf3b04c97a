"""Human keypoints -> G1 Motion: proportions, stance pins, batched IK, floor fix, quality report.

Steps for one clip (:func:`retarget`):
1. Resample the human keypoints to the output rate; optionally start at the origin facing +x.
2. Fit proportions: every matched bone (keypoint -> its table parent) is rescaled to the G1's length in the zero
   pose ('segment'), or per group / uniformly by least squares; the root path is scaled by the leg ratio.
3. Floor and stance: each foot keypoint's resting height is mapped to the G1's flat-foot height; a foot keypoint is
   in contact while low and slow; contact runs are pinned (fixed x, y on the floor) and weighted up.
4. Batched Levenberg-Marquardt IK of all frames (:class:`asap.retarget.solver.G1Solver`), smooth in time, limits.
5. Floor fix: stance feet put on the floor, frames that would penetrate lifted; then the quality report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.config import to_dict
from asap.motion.motion import Motion
from asap.retarget.config import TABLES, RetargetConfig
from asap.retarget.human import HumanMotion
from asap.retarget.solver import G1Solver, Keypoints, get_solver
from asap.utils.rotations import axis_rotation_matrix, euler_zyx_to_quat, heading_from_left, quat_normalize


@dataclass
class Targets:
    """Everything the IK needs for one clip (output rate, G1 proportions, floor at z = 0)."""

    positions: np.ndarray
    """Target of each match (T, M, 3)."""
    weights: np.ndarray
    """Weight of each match per frame (T, M)."""
    contact: np.ndarray
    """Pinned foot keypoints (T, M) bool (False for non-foot matches)."""
    foot_contact: np.ndarray
    """Per foot of the table, (T, F) bool: any of its keypoints pinned."""
    scales: dict[str, float]
    """Scale applied to each matched bone (child keypoint name) and 'root'."""


@dataclass
class RetargetResult:
    """The retargeted motion with its quality report."""

    motion: Motion
    """G1 motion at the output rate."""
    report: dict[str, Any]
    """Quality figures (see :func:`quality_report`)."""
    targets: Targets | None = None
    """The IK targets (for inspection)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Solver diagnostics."""


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the True runs of a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def _clean(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """Fill False gaps shorter than min_frames inside contact, then drop True runs shorter than min_frames."""
    out = mask.copy()
    for a, b in _runs(~out):
        if a > 0 and b < len(out) and b - a < min_frames:
            out[a:b] = True
    for a, b in _runs(out):
        if b - a < min_frames:
            out[a:b] = False
    return out


def _lr_pairs(cfg: RetargetConfig) -> tuple[int, int] | None:
    """Indices of the matches on the left and right hip (used for the heading)."""
    left = [i for i, m in enumerate(cfg.matches) if "left_hip" in m.body]
    right = [i for i, m in enumerate(cfg.matches) if "right_hip" in m.body]
    return (left[0], right[0]) if left and right else None


def keypoint_index(human: HumanMotion, names: list[str]) -> list[int]:
    """Indices in ``human`` of a table's keypoints, through ``meta['keypoints']`` (keypoint -> joint, set by the
    BVH skeleton match) or by name; one-line ValueError naming the first missing keypoint and the tables."""
    kmap = human.meta.get("keypoints", {})
    have = {n: i for i, n in enumerate(human.names)}
    missing = [n for n in names if kmap.get(n, n) not in have]
    if missing:
        raise ValueError(
            f"{human.source}: the skeleton has no joint for keypoint {missing[0]!r} of the table"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; tables: {', '.join(TABLES)}; "
            "pass --table NAME, or a YAML table for these joint names with --table PATH"
        )
    return [have[kmap.get(n, n)] for n in names]


def build_targets(human: HumanMotion, cfg: RetargetConfig, solver: G1Solver, kp: Keypoints) -> Targets:
    """Steps 1-3 of the module docstring."""
    h = human.resample(cfg.fps)
    names = [m.human for m in cfg.matches]
    idx = keypoint_index(h, names)
    hp = h.positions[:, idx].copy()  # (T, M, 3)
    t_count, m_count = hp.shape[:2]
    root = names.index(cfg.root) if cfg.root in names else 0
    feet_kp = sorted({names.index(k) for f in cfg.feet for k in f.keypoints})
    # floor of the human: low percentile of the lowest foot keypoint
    if feet_kp:
        floor = float(np.percentile(hp[:, feet_kp, 2].min(1), 5))
    else:
        floor = float(hp[..., 2].min())
    hp[..., 2] -= floor
    lr = _lr_pairs(cfg)
    if cfg.normalize_start and lr is not None:
        n0 = min(5, t_count)
        yaw0 = float(np.mean(heading_from_left(hp[:n0, lr[0]] - hp[:n0, lr[1]])))
        origin = hp[0, root].copy()
        origin[2] = 0.0
        hp = (hp - origin) @ axis_rotation_matrix(2, -yaw0).T
    # --- proportions
    g1 = solver.zero_pose_points(kp).numpy()
    parent = [names.index(m.parent) if m.parent is not None else -1 for m in cfg.matches]
    ratio = np.ones(m_count)
    for i, p in enumerate(parent):
        if p < 0:
            continue
        lh = float(np.median(np.linalg.norm(hp[:, i] - hp[:, p], axis=-1)))
        lg = float(np.linalg.norm(g1[i] - g1[p]))
        ratio[i] = lg / lh if lh > 1e-6 else 1.0
    scale = ratio.copy()
    if cfg.scale_mode in ("group", "uniform"):
        groups = [m.group if cfg.scale_mode == "group" else "all" for m in cfg.matches]
        for grp in set(groups):
            sel = [i for i in range(m_count) if groups[i] == grp and parent[i] >= 0]
            if not sel:
                continue
            lh = np.array([np.median(np.linalg.norm(hp[:, i] - hp[:, parent[i]], axis=-1)) for i in sel])
            lg = np.array([np.linalg.norm(g1[i] - g1[parent[i]]) for i in sel])
            s = float((lh * lg).sum() / max((lh * lh).sum(), 1e-12))
            scale[sel] = s
    legs = [i for i, m in enumerate(cfg.matches) if m.group == "legs" and parent[i] >= 0]
    bones = legs or [i for i in range(m_count) if parent[i] >= 0]
    root_scale = float(np.mean(scale[bones])) if bones else 1.0
    order = sorted(range(m_count), key=lambda i: _depth(i, parent))
    frames = {fr.name: _human_frame(hp, names, fr.left, fr.up) for fr in cfg.frames}
    x = np.zeros_like(hp)
    for i in order:
        m = cfg.matches[i]
        if parent[i] < 0:
            x[:, i] = hp[:, i] * root_scale
        elif m.frame is not None:
            x[:, i] = x[:, parent[i]] + frames[m.frame] @ (g1[i] - g1[parent[i]])
        else:
            x[:, i] = x[:, parent[i]] + scale[i] * (hp[:, i] - hp[:, parent[i]])
    # --- floor: map each foot keypoint's resting height to the G1 flat-foot height
    weights = np.tile(np.array([m.weight for m in cfg.matches]), (t_count, 1))
    contact = np.zeros((t_count, m_count), dtype=bool)
    foot_contact = np.zeros((t_count, len(cfg.feet)), dtype=bool)
    if feet_kp:
        sole0 = _zero_pose_sole(solver)
        g1_flat = g1[:, 2] - sole0
        rest = np.percentile(x[:, feet_kp, 2], 5, axis=0)
        corr = g1_flat[feet_kp] - rest
        dz = float(np.mean(corr))
        x[..., 2] += dz
        x[:, feet_kp, 2] += (corr - dz)[None]
        dt = 1.0 / cfg.fps
        cc = cfg.contact
        for k in feet_kp:
            vel = np.gradient(x[:, k], dt, axis=0)
            speed = np.linalg.norm(vel, axis=-1)
            low = x[:, k, 2] - g1_flat[k] < cc.height
            mask = _clean(low & (speed < cc.speed), cc.min_frames)
            contact[:, k] = mask
            pinned = x[:, k].copy()
            corr_k = np.zeros((t_count, 3))
            for a, b in _runs(mask):
                target = np.array([*x[a:b, k, :2].mean(0), g1_flat[k]])
                corr_k[a:b] = target - x[a:b, k]
            # fade corrections into the neighbouring swing frames
            if mask.any() and cc.blend_frames > 0:
                inside = np.flatnonzero(mask)
                for t in np.flatnonzero(~mask):
                    j = inside[np.argmin(np.abs(inside - t))]
                    fade = max(0.0, 1.0 - abs(t - j) / (cc.blend_frames + 1))
                    corr_k[t] = fade * corr_k[j]
            pinned += corr_k
            pinned[:, 2] = np.maximum(pinned[:, 2], g1_flat[k] - 0.005)
            x[:, k] = pinned
            weights[mask, k] *= cc.weight
        for f, foot in enumerate(cfg.feet):
            ks = [names.index(k) for k in foot.keypoints]
            foot_contact[:, f] = contact[:, ks].any(1)
    scales = {names[i]: float(scale[i]) for i in range(m_count) if parent[i] >= 0}
    scales["root"] = root_scale
    return Targets(positions=x, weights=weights, contact=contact, foot_contact=foot_contact, scales=scales)


def _human_frame(hp: np.ndarray, names: list[str], left: list[str], up: list[str]) -> np.ndarray:
    """Rotation matrices (T, 3, 3) with columns forward, left, up from keypoints."""
    lv = hp[:, names.index(left[0])] - hp[:, names.index(left[1])]
    uv = hp[:, names.index(up[1])] - hp[:, names.index(up[0])]
    lv = lv / np.linalg.norm(lv, axis=-1, keepdims=True)
    uv = uv - (uv * lv).sum(-1, keepdims=True) * lv
    uv = uv / np.linalg.norm(uv, axis=-1, keepdims=True)
    fw = np.cross(lv, uv)
    return np.stack([fw, lv, uv], -1)


def _depth(i: int, parent: list[int]) -> int:
    d = 0
    while parent[i] >= 0:
        i = parent[i]
        d += 1
        if d > len(parent):
            raise ValueError("the match table's parents form a cycle")
    return d


def _zero_pose_sole(solver: G1Solver) -> float:
    """Lowest collision point of the G1 in the zero pose with the root at the origin."""
    x = torch.zeros(1, solver.nv, dtype=solver.dtype)
    rp, rq, dof = solver.unpack(x)
    pa, qa = solver.kin.forward_all(rp, rq, dof)
    return float(solver.point_heights(pa, qa).min())


def initial_guess(targets: np.ndarray, cfg: RetargetConfig, solver: G1Solver) -> torch.Tensor:
    """Root at the pelvis target, heading from the hips, default joint angles."""
    names = [m.human for m in cfg.matches]
    t_count = targets.shape[0]
    x0 = torch.zeros(t_count, solver.nv, dtype=solver.dtype)
    root = names.index(cfg.root) if cfg.root in names else 0
    x0[:, :3] = torch.as_tensor(targets[:, root])
    lr = _lr_pairs(cfg)
    if lr is not None:
        yaw = np.unwrap(heading_from_left(targets[:, lr[0]] - targets[:, lr[1]]))
        x0[:, 3] = torch.as_tensor(yaw)
    x0[:, 6:] = solver.default
    return x0


def floor_fix(
    x: torch.Tensor, solver: G1Solver, foot_contact: np.ndarray, feet: list[str], segments: list[tuple[int, int]]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Put stance feet on the floor (one shift per clip), then lift frames that penetrate it."""
    x = x.clone()
    mask = solver.foot_point_mask(feet)
    info = {}
    for a, b in segments:
        rp, rq, dof = solver.unpack(x[a:b])
        h = solver.point_heights(*solver.kin.forward_all(rp, rq, dof))  # (T, P)
        foot_low = torch.stack([torch.where(m, h, torch.inf).min(-1).values for m in mask], -1).numpy()
        fc = foot_contact[a:b]
        shift = -float(np.median(foot_low[fc])) if fc.any() else -float(h.min())
        x[a:b, 2] += shift
        low = h.min(-1).values.numpy() + shift
        pen = np.maximum(0.0, -low)
        if pen.max() > 0:
            from scipy.ndimage import gaussian_filter1d, maximum_filter1d

            lift = gaussian_filter1d(maximum_filter1d(pen, 9, mode="nearest"), 2.0, mode="nearest")
            lift = np.maximum(lift, pen)
            x[a:b, 2] += torch.as_tensor(lift, dtype=x.dtype)
        info = {"floor_shift_m": shift, "max_lift_m": float(pen.max())}
    return x, info


def quality_report(
    x: torch.Tensor, targets: Targets, solver: G1Solver, kp: Keypoints, cfg: RetargetConfig, shift: float = 0.0
) -> dict[str, Any]:
    """Figures of one clip.

    keypoint error (mm): distance of each tracked G1 point to its target (after the floor shift);
    joint-limit violations: (frame, joint) pairs outside the limits; foot skate (m/s): horizontal speed of the
    G1 point of each pinned foot keypoint between consecutive frames in which it is pinned and its foot touches
    the floor (lowest sole point < 2 cm);
    ground penetration (mm): deepest collision point below z = 0; stance foot height (mm): mean lowest sole
    point of feet in contact (0 = on the floor).
    """
    feet = [f.body for f in cfg.feet]
    names = [m.human for m in cfg.matches]
    fps = cfg.fps
    with torch.no_grad():
        pts, pos_all, quat_all = solver.fk(x, kp)
        tgt = torch.as_tensor(targets.positions).clone()
        tgt[..., 2] += shift
        err = (pts - tgt).norm(dim=-1).numpy() * 1000.0
        h = solver.point_heights(pos_all, quat_all)
        low_all = h.min(-1).values.numpy()
        mask = solver.foot_point_mask(feet)
        foot_low = torch.stack([torch.where(m, h, torch.inf).min(-1).values for m in mask], -1).numpy()
        pts_np = pts.numpy()
    dof = x[:, 6:].numpy()
    lo, hi = solver.spec.pos_lower, solver.spec.pos_upper
    excess = np.maximum(lo - dof, dof - hi)
    on_floor = foot_low < 0.02
    skate_list = []
    for f, foot in enumerate(cfg.feet):
        for k in [names.index(n) for n in foot.keypoints]:
            sel = targets.contact[:, k] & on_floor[:, f]
            sel = sel[1:] & sel[:-1]  # both ends of a frame step in contact
            speed = np.linalg.norm(np.diff(pts_np[:, k, :2], axis=0), axis=-1) * fps
            skate_list.append(speed[sel])
    skate = np.concatenate(skate_list) if skate_list else np.zeros(0)
    in_contact = targets.foot_contact & on_floor
    stance_low = foot_low[targets.foot_contact]
    return {
        "frames": int(x.shape[0]),
        "fps": float(fps),
        "duration_s": float((x.shape[0] - 1) / fps),
        "keypoint_error_mean_mm": float(err.mean()),
        "keypoint_error_max_mm": float(err.max()),
        "joint_limit_violations": int((excess > 1e-6).sum()),
        "joint_limit_max_excess_rad": float(max(0.0, excess.max())),
        "contact_frames": int(in_contact.sum()),
        "foot_skate_mean_mps": float(skate.mean()) if skate.size else 0.0,
        "foot_skate_max_mps": float(skate.max()) if skate.size else 0.0,
        "ground_penetration_max_mm": float(max(0.0, -low_all.min()) * 1000.0),
        "stance_foot_height_mean_mm": float(stance_low.mean() * 1000.0) if stance_low.size else 0.0,
    }


def retarget(human: HumanMotion, cfg: RetargetConfig, solver: G1Solver | None = None) -> RetargetResult:
    """Retarget one human clip to the G1 (see module docstring)."""
    return retarget_many([human], cfg, solver)[0]


def retarget_many(
    humans: list[HumanMotion], cfg: RetargetConfig, solver: G1Solver | None = None
) -> list[RetargetResult]:
    """Retarget several clips with the same table in one batched solve (all frames of all clips at once)."""
    solver = solver or get_solver(cfg.robot)
    t_start = time.perf_counter()
    kp = solver.keypoints([m.body for m in cfg.matches], [m.offset for m in cfg.matches])
    tg = [build_targets(h, cfg, solver, kp) for h in humans]
    lengths = [t.positions.shape[0] for t in tg]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    segments = [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(tg))]
    pos = np.concatenate([t.positions for t in tg])
    w = np.concatenate([t.weights for t in tg])
    x0 = torch.cat([initial_guess(t.positions, cfg, solver) for t in tg])
    with torch.no_grad():
        x, diag = solver.solve(
            torch.as_tensor(pos, dtype=solver.dtype), torch.as_tensor(w, dtype=solver.dtype), x0, kp, cfg.solver,
            segments,
        )  # fmt: skip
    feet = [f.body for f in cfg.feet]
    elapsed = time.perf_counter() - t_start
    results = []
    for (a, b), t, human in zip(segments, tg, humans, strict=True):
        xi = x[a:b]
        info: dict[str, float] = {"floor_shift_m": 0.0}
        with torch.no_grad():
            if cfg.contact.fix_floor and feet:
                xi, info = floor_fix(xi, solver, t.foot_contact, feet, [(0, b - a)])
            report = quality_report(xi, t, solver, kp, cfg, info.get("floor_shift_m", 0.0))
        report["source"] = human.source
        report["solve_time_s"] = elapsed * (b - a) / max(1, len(pos))
        motion = to_motion(xi, solver, cfg, human, t, report)
        results.append(RetargetResult(motion=motion, report=report, targets=t, extra=dict(diag, **info)))
    return results


def to_motion(
    x: torch.Tensor, solver: G1Solver, cfg: RetargetConfig, human: HumanMotion, targets: Targets, report: dict
) -> Motion:
    """Pack a solution as a :class:`Motion` (root quaternion wxyz, continuous sign)."""
    with torch.no_grad():
        q = quat_normalize(euler_zyx_to_quat(x[:, 3:6])).numpy()
    # keep neighbouring quaternions in the same hemisphere
    flip = np.cumprod(np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0))
    q[1:] *= flip[:, None]
    if q[0, 0] < 0:
        q = -q
    meta = {
        "source": human.source,
        "source_meta": human.meta,
        "retarget": {
            "method": "batched Levenberg-Marquardt IK on keypoints (asap.retarget)",
            "config": to_dict(cfg),
            "scales": targets.scales,
            "report": {k: v for k, v in report.items() if k != "source"},
        },
        "units": "m, rad",
    }
    return Motion(
        fps=float(cfg.fps), joint_names=solver.spec.joint_names, body_names=solver.spec.body_names,
        root_pos=x[:, :3].numpy().copy(), root_quat=q, dof_pos=x[:, 6:].numpy().copy(), meta=meta,
    )  # fmt: skip


def format_report(report: dict[str, Any], name: str = "") -> str:
    """One-line human-readable quality summary."""
    return (
        f"{name or report.get('source', '')}: {report['frames']} frames @ {report['fps']:.0f} fps | keypoint err "
        f"mean {report['keypoint_error_mean_mm']:.1f} mm, max {report['keypoint_error_max_mm']:.1f} mm | limit "
        f"violations {report['joint_limit_violations']} | skate {report['foot_skate_mean_mps']:.3f} m/s "
        f"(max {report['foot_skate_max_mps']:.3f}) over {report['contact_frames']} contact frames | penetration "
        f"{report['ground_penetration_max_mm']:.1f} mm | stance foot height "
        f"{report['stance_foot_height_mean_mm']:.1f} mm"
    )


def save_result(result: RetargetResult, path: str | Path, overwrite: bool = False) -> Path:
    """Validate and write the motion file."""
    robot = result.motion.meta.get("retarget", {}).get("config", {}).get("robot", "g1_23dof")
    result.motion.validate(robot)
    return result.motion.save(path, overwrite=overwrite)
