"""Closed-loop rollouts of a tracking policy in simulation: evaluation from several start phases, and `asap play`.

Success (the paper's criterion): the robot follows the clip from its start to the end without tilting over
(|g_x| or |g_y| > 0.8) and without its mean body distance to the reference exceeding
:data:`asap.eval.metrics.FAIL_DISTANCE_M`. Errors per step, against the reference at the robot's own motion time
(:func:`asap.eval.metrics.body_position_errors`, averaged over the steps survived = frames 1..K of the rollout, as
:func:`asap.eval.metrics.tracking_metrics` does): E_g-mpjpe and E_mpjpe, reported in mm.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.config import from_dict
from asap.contract import ClipFingerprint, OnnxPolicy, check_clip
from asap.control import ACTION_ALIGNMENT, TargetShaping, motion_steps
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.robot.model import ModelOptions
from asap.sim.base import SimConfig, Simulator, make_simulator
from envs.tracking.config import DomainRandConfig, InitNoiseConfig, TrackingEnvConfig
from envs.tracking.env import TrackingEnv

ActFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class RolloutResult:
    """Outcome of a batch of closed-loop rollouts (one per env)."""

    motion_ids: np.ndarray
    """(N,) clip of each rollout."""
    start_times: np.ndarray
    """(N,) start time (s) of each rollout."""
    success: np.ndarray
    """(N,) reached the clip end without failing."""
    steps: np.ndarray
    """(N,) control steps survived (until the end or the failure)."""
    expected_steps: np.ndarray
    """(N,) steps from the start to the clip end."""
    mpjpe: np.ndarray
    """(N,) mean E_mpjpe over the survived steps (m)."""
    g_mpjpe: np.ndarray
    """(N,) mean E_g-mpjpe over the survived steps (m)."""
    per_step: dict[str, np.ndarray] = field(default_factory=dict)
    """(T, N) per-step arrays: mpjpe, g_mpjpe, alive."""
    trajectory: dict[str, np.ndarray] = field(default_factory=dict)
    """(T+1, N, ...) simulated root_pos, root_quat, dof_pos, and actions (T, N, J) (when recorded)."""

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (errors in mm)."""
        return {
            "success_rate": float(self.success.mean()),
            "success": bool(self.success.all()),
            "num_rollouts": int(len(self.success)),
            "steps_survived": self.steps.tolist(),
            "expected_steps": self.expected_steps.tolist(),
            "E_mpjpe_mm": float(1000 * self.mpjpe.mean()),
            "E_g_mpjpe_mm": float(1000 * self.g_mpjpe.mean()),
            "per_rollout": [
                {"motion_id": int(m), "start_s": float(s), "success": bool(ok), "steps": int(k),
                 "E_mpjpe_mm": float(1000 * e), "E_g_mpjpe_mm": float(1000 * g)}
                for m, s, ok, k, e, g in zip(self.motion_ids, self.start_times, self.success, self.steps,
                                             self.mpjpe, self.g_mpjpe, strict=True)
            ],
        }  # fmt: skip


def eval_env_config(base: TrackingEnvConfig | None = None, residual: bool | None = None) -> TrackingEnvConfig:
    """An env config for evaluation: the base config without domain randomisation or init noise."""
    cfg = base or TrackingEnvConfig()
    return replace(
        cfg,
        domain_rand=DomainRandConfig(),
        init_noise=InitNoiseConfig(),
        residual_actions=cfg.residual_actions if residual is None else residual,
    )


def closed_loop(
    env: TrackingEnv,
    act: ActFn,
    motion_ids: torch.Tensor,
    start_times: torch.Tensor,
    record: bool = False,
    max_steps: int | None = None,
) -> RolloutResult:
    """Run every env of ``env`` once from the given clips/start times until each ends (eval mode)."""
    with torch.no_grad():  # not inference_mode: the env's tensors stay usable outside afterwards
        return _closed_loop(env, act, motion_ids, start_times, record, max_steps)


def _closed_loop(
    env: TrackingEnv,
    act: ActFn,
    motion_ids: torch.Tensor,
    start_times: torch.Tensor,
    record: bool,
    max_steps: int | None,
) -> RolloutResult:
    env.set_eval(True)
    obs = env.reset_to(motion_ids, start_times)
    n = env.num_envs
    lengths = env.motion_len.clone()
    expected = motion_steps(lengths, env.dt, start_times.to(lengths))
    limit = int(expected.max()) if max_steps is None else max_steps
    alive = torch.ones(n, dtype=torch.bool)
    failed = torch.zeros(n, dtype=torch.bool)
    steps = torch.zeros(n, dtype=torch.long)
    err_sum = {"mpjpe": torch.zeros(n), "g_mpjpe": torch.zeros(n)}
    per_step: dict[str, list[np.ndarray]] = {"mpjpe": [], "g_mpjpe": [], "alive": []}
    traj: dict[str, list[np.ndarray]] = {"root_pos": [], "root_quat": [], "dof_pos": [], "actions": []}

    def snap() -> None:
        root = env.sim.get_root_state().cpu()
        q, _ = env.sim.get_joint_state()
        traj["root_pos"].append(root[:, :3].numpy().copy())
        traj["root_quat"].append(root[:, 3:7].numpy().copy())
        traj["dof_pos"].append(q.cpu().numpy().copy())

    if record:
        snap()
    for _ in range(limit):
        a = act(obs["actor"])
        a = torch.as_tensor(a, dtype=torch.float32, device=env.device)
        obs, info = env.step(a)
        if record:
            traj["actions"].append(env.actions.cpu().numpy().copy())
            snap()
        err = env.tracking_errors()
        live = alive.clone()
        for k in err_sum:
            e = err[k].cpu()
            err_sum[k] += torch.where(live, e, torch.zeros_like(e))
            per_step[k].append(e.numpy().copy())
        per_step["alive"].append(live.numpy().copy())
        steps += live.long()
        term = info.terminated.cpu() & live
        failed |= term
        alive &= ~info.done.cpu()
        if not alive.any():
            break
    env.set_eval(False)
    denom = steps.clamp(min=1).float()
    return RolloutResult(
        motion_ids=motion_ids.cpu().numpy(),
        start_times=start_times.cpu().numpy(),
        success=(~failed & (steps >= expected.cpu())).numpy(),
        steps=steps.numpy(),
        expected_steps=expected.cpu().numpy(),
        mpjpe=(err_sum["mpjpe"] / denom).numpy(),
        g_mpjpe=(err_sum["g_mpjpe"] / denom).numpy(),
        per_step={k: np.stack(v) for k, v in per_step.items()} if per_step["alive"] else {},
        trajectory={k: np.stack(v) for k, v in traj.items() if v} if record else {},
    )


def start_grid(lengths: torch.Tensor, phases: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(motion ids, start times) for ``phases`` evenly spaced start phases in [0, 1) of every clip."""
    m = lengths.shape[0]
    ids = torch.arange(m).repeat_interleave(phases)
    frac = torch.arange(phases, dtype=torch.float32).repeat(m) / phases
    return ids, frac * lengths.cpu()[ids].float()


def rollout_motion(result: RolloutResult, env_index: int, fps: float, joint_names: tuple[str, ...]) -> Motion:
    """The simulated trajectory of one rollout (up to its last survived step) as a Motion with actions.

    Frame f holds the state after f steps and the action computed from it (:data:`asap.control.ACTION_ALIGNMENT`);
    the last frame's action is 0.
    """
    tr = result.trajectory
    k = int(result.steps[env_index]) + 1
    act = np.zeros((k, len(joint_names)))
    act[: k - 1] = tr["actions"][: k - 1, env_index]
    return Motion(
        fps=fps, joint_names=joint_names, root_pos=tr["root_pos"][:k, env_index].astype(np.float64),
        root_quat=tr["root_quat"][:k, env_index].astype(np.float64), dof_pos=tr["dof_pos"][:k, env_index].astype(
            np.float64), action=act, meta={"source": "asap play", "action_alignment": ACTION_ALIGNMENT},
    )  # fmt: skip


def load_policy(
    path: str | Path | OnnxPolicy, motion_lib: MotionLib, motion_id: int = 0, layout: str | None = None,
    variant: str | None = None,
) -> tuple[ActFn, dict[str, Any]]:  # fmt: skip
    """An action function (ASAP action convention) for a checkpoint (.pt) or an ONNX file, plus facts about it.

    Refuses (:class:`asap.contract.ContractError`, one line naming both clips) a clip ``motion_id`` of
    ``motion_lib`` that is not one the policy was trained for (its fingerprint, :mod:`asap.contract`).
    """
    from asap.rl.export import clip_fingerprints

    fp = clip_fingerprints(motion_lib)[motion_id]
    if isinstance(path, OnnxPolicy) or Path(path).suffix == ".onnx":
        pol = path if isinstance(path, OnnxPolicy) else OnnxPolicy(path, layout, variant, allow_plain=True)
        c = pol.contract
        c.check_motion(fp, where=str(pol.path))
        c.check_physics(motion_lib.spec.sim_dt, motion_lib.spec.decimation, where=str(pol.path))

        def act(obs: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(pol(obs.detach().cpu().numpy()))

        physics = None if c.physics is None else from_dict(ModelOptions, c.physics)
        return act, {"kind": "onnx", "contract": c, "has_metadata": pol.has_metadata, "variant": c.robot_variant,
                     "layout": c.obs_layout, "shaping": c.shaping, "physics": physics}  # fmt: skip
    from asap.rl.export import policy_from_checkpoint

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"policy {p} does not exist")
    ref = motion_lib.frame_data("dof_pos", motion_id).cpu().numpy()
    tp, infos = policy_from_checkpoint(p, ref_dof_pos=ref)
    check_clip(fp, [ClipFingerprint.from_dict(d) for d in infos.get("clips", [])], where=str(p))
    cfg = infos["config"]
    return tp, {"kind": "checkpoint", "config": cfg, "variant": cfg.variant, "layout": cfg.env.obs_layout,
                "physics": cfg.physics, "shaping": cfg.env.target_shaping}  # fmt: skip


def play(
    policy: str | Path,
    motion: str | Path,
    out_dir: str | Path = "run/play",
    json_path: str | Path | None = None,
    video: bool = True,
    layout: str | None = None,
    variant: str | None = None,
    start_phases: int = 1,
    sim: str = "mujoco",
    physics: ModelOptions | None = None,
    threads: int = 1,
    shaping: TargetShaping | None = None,
    wrap_sim: Callable[[Simulator], Simulator] | None = None,
) -> dict[str, Any]:
    """`asap play`: run ``policy`` on ``motion`` closed loop; write errors (csv), a video and optionally a JSON.

    ``wrap_sim`` wraps the simulator before the rollout (``asap play --delta`` passes the aligned simulator, so the
    policy runs against the frozen delta model exactly as fine-tuning trained it).

    Joint targets are shaped as the policy was trained (its contract or checkpoint config) unless ``shaping``
    says otherwise (a what-if: scripts/bench_shaping.py).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v = variant or "g1_23dof"
    pol: str | Path | OnnxPolicy = policy
    if Path(policy).suffix == ".onnx":
        pol = OnnxPolicy(policy, layout=layout, variant=variant, allow_plain=True)
        v = pol.contract.robot_variant
    else:
        ck = torch.load(str(policy), map_location="cpu", weights_only=False)
        v = variant or (ck.get("infos") or {}).get("config", {}).get("variant", v)
    lib = MotionLib(motion, spec=v)
    act, facts = load_policy(pol, lib, layout=layout, variant=v)
    v = facts["variant"]
    phys = physics or facts.get("physics") or ModelOptions()
    n = max(1, int(start_phases))
    simulator = make_simulator(SimConfig(backend=sim, variant=v, num_envs=n, threads=threads, model=phys))
    if wrap_sim is not None:
        simulator = wrap_sim(simulator)
    shaping = shaping or facts["shaping"]
    env_cfg = eval_env_config(TrackingEnvConfig(obs_layout=facts["layout"], target_shaping=shaping), residual=False)
    env = TrackingEnv(env_cfg, simulator, lib)
    ids, starts = start_grid(lib.motion_lengths[:1], n)
    res = closed_loop(env, act, ids, starts, record=True)
    summary = res.summary()
    summary.update({"policy": str(policy), "motion": str(motion), "motion_name": lib.motion_names[0],
                    "motion_length_s": float(lib.motion_lengths[0]), "policy_kind": facts["kind"],
                    "robot_variant": v, "obs_layout": facts["layout"],
                    "target_shaping": shaping.describe(),
                    "policy_target_shaping": facts["shaping"].describe()})  # fmt: skip
    # per-step error table of rollout 0
    ps = res.per_step
    rows = ["step,time_s,alive,E_mpjpe_mm,E_g_mpjpe_mm"]
    for k in range(ps["alive"].shape[0]):
        rows.append(f"{k + 1},{(k + 1) * env.dt:.3f},{int(ps['alive'][k, 0])},"
                    f"{1000 * ps['mpjpe'][k, 0]:.2f},{1000 * ps['g_mpjpe'][k, 0]:.2f}")  # fmt: skip
    (out / "errors.csv").write_text("\n".join(rows) + "\n")
    traj = rollout_motion(res, 0, 1.0 / env.dt, simulator.spec.joint_names)
    traj.save(out / "rollout.npz", overwrite=True)
    summary["errors_csv"] = str(out / "errors.csv")
    summary["rollout"] = str(out / "rollout.npz")
    if video:
        try:
            from asap.motion.render import render_motion

            render_motion(traj, out / "play.mp4", overwrite=True, progress=False)
            summary["video"] = str(out / "play.mp4")
        except Exception as e:  # rendering needs EGL/OSMesa; errors must not lose the metrics
            summary["video_error"] = f"{type(e).__name__}: {e}"
    simulator.close()
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(summary, indent=2))
    return summary
