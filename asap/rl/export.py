"""Policies as deployable modules: checkpoint -> torch module -> ONNX with the deploy contract in its metadata.

The deploy contract (ONNX ``metadata_props``; vectors are comma-separated strings) is what the robot runtime, the
virtual G1 and the logger configure themselves from: ``joint_names``, ``default_joint_pos``, ``kp``, ``kd``,
``action_scale``, ``obs_layout``, ``obs_dim``, ``history_length``, ``control_dt``, ``motion_name``,
``motion_length_s``, ``robot_variant``. The graph has one input ``actor_obs`` (batch, obs_dim) and one output
``action`` (batch, J), with a dynamic batch dimension. The action follows ASAP's convention: joint target =
default_joint_pos + action_scale * action. A policy trained with residual actions carries its reference joint
angles inside the graph (looked up by the phase term of the observation), so the output convention is unchanged.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asap.contract import REQUIRED_KEYS, PolicyContract
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
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    a = dict(train_cfg["actor"])
    a.pop("class_name", None)
    obs = TensorDict({"actor": torch.zeros(1, obs_dim)}, batch_size=[1])
    model = MLPModel(obs, {"actor": ["actor"]}, "actor", num_actions, **a)
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
    from asap.config import from_dict
    from asap.rl.config import PretrainConfig, rsl_train_cfg

    ck = torch.load(str(path), map_location="cpu", weights_only=False)
    infos = ck.get("infos") or {}
    if "config" not in infos:
        raise ValueError(f"{path}: not an `asap pretrain` checkpoint (no config in infos)")
    cfg = from_dict(PretrainConfig, infos["config"])
    rs = get_spec(cfg.variant)
    lay = get_layout(cfg.env.obs_layout)
    obs_dim = lay.dim("actor", rs.num_joints)
    mlp = _actor_mlp(rsl_train_cfg(cfg), ck["actor_state_dict"], obs_dim, rs.num_joints)
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


class OnnxPolicy:
    """An ONNX policy of an asap layout run with onnxruntime (ours, or a batch-1 model of the reference).

    Without our metadata, ``layout`` and ``variant`` name the observation layout and the robot; the contract is
    then filled from the spec (motion name/length unknown).
    """

    def __init__(self, path: str | Path, layout: str | None = None, variant: str | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if all(k in meta for k in CONTRACT_KEYS):
            self.contract = PolicyContract.from_metadata(meta)
            if layout and layout != self.contract.obs_layout:
                raise ValueError(f"{path}: metadata says layout {self.contract.obs_layout}, --layout says {layout}")
            self.has_metadata = True
        else:
            self.contract = PolicyContract.for_robot(variant or "g1_23dof", layout or "asap_v1", "", 0.0)
            self.has_metadata = False
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        width = inp.shape[1] if len(inp.shape) == 2 else None
        if isinstance(width, int) and width != self.contract.obs_dim:
            raise ValueError(
                f"{path}: input {inp.name} has width {width}, layout {self.contract.obs_layout} needs "
                f"{self.contract.obs_dim}"
            )
        b = inp.shape[0]
        self.fixed_batch = b if isinstance(b, int) else None

    def __call__(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, obs_dim) -> (B, J) float32 actions (row by row for fixed batch-1 models)."""
        x = obs.detach().cpu().numpy() if torch.is_tensor(obs) else np.asarray(obs)
        x = x.astype(np.float32, copy=False)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            rows = [self.session.run([self.output_name], {self.input_name: x[i : i + 1]})[0] for i in range(len(x))]
            return np.concatenate(rows, axis=0)
        return self.session.run([self.output_name], {self.input_name: x})[0]
