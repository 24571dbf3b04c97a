"""Policies as deployable modules: checkpoint -> torch module -> ONNX with the deploy contract in its metadata.

The deploy contract (ONNX ``metadata_props``, defined in :mod:`asap.contract`) is what the robot runtime, the
virtual G1 and the logger configure themselves from. The graph has one input ``actor_obs`` (batch, obs_dim) and
one output ``action`` (batch, J), with a dynamic batch dimension. The action follows ASAP's convention: joint
target = default_joint_pos + action_scale * action. A policy trained with residual actions carries its clip's
reference joint angles inside the graph (looked up by the phase term of the observation), so the output convention
is unchanged and the file is valid for that clip only: every export names its clip and lists the fingerprints of
all clips trained on, and a multi-clip run exports one file per clip (:func:`export_every_clip`). Files are loaded
with :class:`asap.contract.OnnxPolicy`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asap.contract import REQUIRED_KEYS, ClipFingerprint, PolicyContract, clip_fingerprint
from asap.obs import get_layout
from asap.robot.spec import get_spec

CONTRACT_KEYS = REQUIRED_KEYS
"""Metadata keys of the deploy contract (defined once, in asap.contract)."""
INPUT_NAME = "actor_obs"
"""ONNX input name."""
OUTPUT_NAME = "action"
"""ONNX output name."""


class TrackingPolicy(nn.Module):
    """Deterministic actor: ``action = mlp(actor_obs)`` (+ reference joint angles by phase when residual), clipped.

    ``ref_action`` (T, J), optional: the reference's joint angles in action units, ``(q_ref - default) / scale``,
    at the clip's T frames; the phase (obs column ``phase_index``) picks and blends two frames.
    """

    def __init__(
        self, mlp: nn.Module, ref_action: torch.Tensor | None = None, phase_index: int = -1, clip: float = 100.0
    ) -> None:
        super().__init__()
        self.mlp = mlp
        self.residual = ref_action is not None
        self.phase_index = int(phase_index)
        """Column of the phase in the observation (non-negative)."""
        self.clip = float(clip)
        table = ref_action if ref_action is not None else torch.zeros(2, 1)
        if table.shape[0] < 2:
            table = torch.cat([table, table], dim=0)
        self.register_buffer("ref_action", table.to(torch.float32).contiguous())
        self.num_frames = int(table.shape[0])

    def forward(self, actor_obs: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim) -> (B, J)."""
        a = self.mlp(actor_obs)
        if self.residual:
            t = self.num_frames
            x = actor_obs[:, self.phase_index].clamp(0.0, 1.0) * float(t - 1)
            i0 = torch.floor(x).clamp(0, t - 2)
            w = (x - i0).unsqueeze(1)
            i0 = i0.to(torch.long)
            r0 = torch.index_select(self.ref_action, 0, i0)
            r1 = torch.index_select(self.ref_action, 0, i0 + 1)
            a = a + r0 + (r1 - r0) * w
        return a.clamp(-self.clip, self.clip)


def actor_module(
    train_cfg: dict[str, Any], actor_state: dict[str, torch.Tensor], obs_dim: int, num_actions: int
) -> nn.Module:
    """The deterministic actor (normaliser + MLP + mean head) of an rsl-rl checkpoint as a plain module.

    ``train_cfg["actor"]`` is the rsl-rl actor config; ``actor_state`` its state dict; (B, obs_dim) -> (B, num_actions).
    Used for tracking policies and delta models alike.
    """
    return _actor_mlp(train_cfg, actor_state, obs_dim, num_actions)


def _actor_mlp(train_cfg: dict[str, Any], actor_state: dict[str, torch.Tensor], obs_dim: int, num_actions: int):
    from rsl_rl.utils import resolve_callable
    from tensordict import TensorDict

    a = dict(train_cfg["actor"])
    model_class = resolve_callable(a.pop("class_name", "MLPModel"))  # MLPModel, or a delta model's own class
    obs = TensorDict({"actor": torch.zeros(1, obs_dim)}, batch_size=[1])
    model = model_class(obs, {"actor": ["actor"]}, "actor", num_actions, **a)
    model.load_state_dict(actor_state)
    model.eval()
    onnx_like = model.as_onnx(verbose=False)  # normaliser + MLP + deterministic head, plain tensors in/out
    return copy.deepcopy(onnx_like).eval()


def policy_from_checkpoint(
    path: str | Path, ref_dof_pos: np.ndarray | torch.Tensor | None = None
) -> tuple[TrackingPolicy, dict[str, Any]]:
    """Load ``model_*.pt`` written by `asap pretrain` as a :class:`TrackingPolicy` plus the checkpoint's infos.

    ``ref_dof_pos`` (T, J) are the joint angles of the clip the policy will track; needed (and only used) when the
    policy was trained with residual actions.
    """
    from asap.rl.checkpoints import load_training_checkpoint

    ck, cfg = load_training_checkpoint(path)
    infos = ck["infos"]
    rs = get_spec(cfg.variant)
    mlp = checkpoint_actor(ck, cfg)
    table = None
    if cfg.env.residual_actions:
        if ref_dof_pos is None:
            raise ValueError("this policy uses residual actions: give the reference joint angles of its clip")
        q = torch.as_tensor(np.asarray(ref_dof_pos), dtype=torch.float32)
        table = (q - torch.as_tensor(rs.default_pos, dtype=torch.float32)) / rs.action_scale
    phase_index = _phase_index(cfg.env.obs_layout, rs.num_joints)
    pol = TrackingPolicy(mlp, table, phase_index=phase_index, clip=rs.action_clip).eval()
    return pol, {**infos, "config": cfg}


def _phase_index(layout: str, num_joints: int) -> int:
    for term, off, dim in get_layout(layout).table("actor", num_joints):
        if term == "ref_motion_phase":
            return off + dim - 1
    raise ValueError(f"layout {layout} has no ref_motion_phase term in its actor group")


def export_onnx(policy: TrackingPolicy, contract: PolicyContract, path: str | Path, opset: int = 17) -> Path:
    """Write ``policy`` as ONNX (input ``actor_obs``, output ``action``, dynamic batch) with the contract metadata."""
    import onnx

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    policy = policy.eval().to("cpu")
    dummy = torch.zeros(1, contract.obs_dim)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for this small graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            policy, (dummy,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    model = onnx.load(str(out))
    del model.metadata_props[:]
    for k, v in contract.to_metadata().items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def clip_fingerprints(lib: Any) -> tuple[ClipFingerprint, ...]:
    """Fingerprints (:func:`asap.contract.clip_fingerprint`) of every clip of a :class:`~asap.motion.MotionLib`."""
    return tuple(
        clip_fingerprint(lib.frame_data("dof_pos", k).cpu().numpy(), float(lib.motion_fps[k]), lib.motion_names[k])
        for k in range(lib.num_motions)
    )


def export_tracking_policy(mlp: nn.Module, cfg: Any, lib: Any, path: str | Path, motion_id: int = 0) -> Path:
    """ONNX of a tracking actor ``mlp`` ((B, obs_dim) -> (B, J)) trained with ``cfg`` (``PretrainConfig``) for clip
    ``motion_id`` of ``lib``.

    The contract names this clip (name, length, start pose; a residual policy's graph carries its joint table),
    lists the fingerprints of every clip of ``lib`` (``clips``, ``clip_index``) and the training physics (spec
    sim_dt and decimation, ``cfg.physics``), so `asap play` and `asap deploy` can refuse another clip.
    """
    rs = get_spec(cfg.variant)
    layout = cfg.env.obs_layout
    q = lib.frame_data("dof_pos", motion_id).detach().cpu().float()
    table = None
    if cfg.env.residual_actions:
        table = (q - torch.as_tensor(rs.default_pos, dtype=torch.float32)) / rs.action_scale
    pol = TrackingPolicy(mlp, table, _phase_index(layout, rs.num_joints), rs.action_clip)
    contract = PolicyContract.for_robot(
        cfg.variant, layout, lib.motion_names[motion_id], float(lib.motion_lengths[motion_id]),
        start_joint_pos=q[0].double().numpy(), clips=clip_fingerprints(lib), clip_index=motion_id,
        residual_actions=bool(cfg.env.residual_actions), physics=dataclasses.asdict(cfg.physics),
        shaping=cfg.env.target_shaping,
    )  # fmt: skip
    return export_onnx(pol, contract, path)


def clip_export_paths(path: str | Path, motion_names: list[str]) -> list[Path]:
    """Where :func:`export_every_clip` writes: ``path`` alone for one clip, else ``<stem>_<clip name>.onnx`` per clip
    beside it (names made file-safe and unique)."""
    p = Path(path)
    if len(motion_names) == 1:
        return [p]
    out: list[Path] = []
    for k, name in enumerate(motion_names):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or f"clip{k}"
        q = p.with_name(f"{p.stem}_{safe}{p.suffix}")
        out.append(q.with_name(f"{p.stem}_{k}_{safe}{p.suffix}") if q in out or q == p else q)
    return out


def export_every_clip(mlp: nn.Module, cfg: Any, lib: Any, path: str | Path) -> list[Path]:
    """Export for every clip of ``lib``: ``path`` is the first clip's file; with several clips each clip also gets
    its own file (:func:`clip_export_paths`), each with its clip's contract and (residual policies) joint table,
    all listing every clip's fingerprint. Returns the file of each clip, in clip order."""
    first = export_tracking_policy(mlp, cfg, lib, path, 0)
    if lib.num_motions == 1:
        return [first]
    paths = clip_export_paths(path, list(lib.motion_names))
    return [export_tracking_policy(mlp, cfg, lib, p, k) for k, p in enumerate(paths)]


def checkpoint_actor(ck: dict[str, Any], cfg: Any) -> nn.Module:
    """The deterministic tracking actor (B, obs_dim) -> (B, J) of a loaded training checkpoint ``ck`` trained with
    ``cfg`` (:func:`asap.rl.checkpoints.load_training_checkpoint`), without the residual joint table."""
    from asap.rl.config import rsl_train_cfg

    rs = get_spec(cfg.variant)
    obs_dim = get_layout(cfg.env.obs_layout).dim("actor", rs.num_joints)
    return _actor_mlp(rsl_train_cfg(cfg), ck["actor_state_dict"], obs_dim, rs.num_joints)


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None) -> list[Path]:
    """Export a training checkpoint (``model_*.pt`` of `asap pretrain` or `asap finetune`, or a run folder: its final
    checkpoint) as the deployable ONNX that training writes at its end (:func:`export_every_clip`: one file per clip,
    the deploy contract in its metadata), e.g. a checkpoint that a sweep (`asap eval run/X/model_*.pt ...`) found
    better than the run's last.

    ``out``: the ONNX path (default: ``<checkpoint stem>.onnx`` beside the checkpoint). The clips are read from the
    checkpoint's config (absolute paths or shipped names). Returns the files written; raises ``FileNotFoundError``
    for a missing checkpoint or clip and ``ValueError`` for a file that is not a training checkpoint.
    """
    from asap.motion.motionlib import MotionLib
    from asap.rl.checkpoints import load_training_checkpoint, resolve_checkpoint
    from asap.rl.runner import motion_sources

    ck_path = resolve_checkpoint(checkpoint)
    ck, cfg = load_training_checkpoint(ck_path)
    lib = MotionLib(motion_sources(cfg.motion), spec=cfg.variant)
    return export_every_clip(checkpoint_actor(ck, cfg), cfg, lib, Path(out) if out else ck_path.with_suffix(".onnx"))
