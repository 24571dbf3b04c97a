"""The frozen delta action model π^Δ(s, a) and the one rule that applies its output.

Δa scaling (decided once, stored in every model's metadata as ``delta_scale``): Δa is in *policy-action units*, so
the corrected joint target is ``q* + delta_scale * Δa`` with ``delta_scale = spec.action_scale`` (0.25): the same
units as the logged action it corrects (the reference's open-loop training applies ``0.25 (a + Δa)``; its
fine-tuning adds Δa unscaled — asap-method.md section 5.3 — which this single function rules out).

Δa acts on all joints or a subset (``joints``: ``all`` or ``ankles`` = the 4-DoF ankle model used on hardware);
the network outputs ``len(joints)`` values, expanded to the robot's J joints with zeros elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asap.delta.obs import DELTA_OBS_VERSION, OBS_SCOPES, OBS_VERSIONS, actor_dim, input_columns
from asap.robot.spec import get_spec, resolve_joints


@dataclass(frozen=True)
class DeltaMeta:
    """What a delta model is, stored beside its weights."""

    variant: str
    """Robot variant (``g1_23dof`` / ``g1_29dof``)."""
    joints: tuple[str, ...]
    """Joints Δa drives, policy order; the network outputs one value per joint here."""
    delta_scale: float
    """Radians of joint-target change per unit of Δa (= the spec's action scale)."""
    clip: float = 100.0
    """Δa is clipped to +-clip (action units) before it is applied."""
    obs_version: str = DELTA_OBS_VERSION
    """Observation layout the model reads (:mod:`asap.delta.obs`)."""
    gain: float = 1.0
    """Scalar calibrated after training (:func:`asap.delta.calibrate.calibrate_gain`): the model's Δa is the network's
    output times this, so every user of :class:`DeltaModel` (open-loop report, fine-tuning, play) applies it."""
    obs_scope: str = "full"
    """Which columns of the actor observation the network reads (:data:`asap.delta.obs.OBS_SCOPES`)."""
    joint_gain: tuple[float, ...] = ()
    """Per driven joint (in :attr:`joints`' order), a multiplier on Δa after :attr:`gain`, fitted by the group
    calibration (:func:`asap.delta.calibrate.calibrate_joint_gains`); empty: 1 on every joint."""

    def __post_init__(self) -> None:
        if self.obs_scope not in OBS_SCOPES:  # every way a meta is made: for_variant, from_dict, direct
            raise ValueError(f"unknown delta observation scope {self.obs_scope!r}: use one of {list(OBS_SCOPES)}")
        if self.joint_gain and len(self.joint_gain) != len(self.joints):
            raise ValueError(f"joint_gain has {len(self.joint_gain)} values for {len(self.joints)} driven joints")

    @staticmethod
    def for_variant(
        variant: str, joints: str | list[str] | tuple[str, ...] = "all", obs_scope: str = "full"
    ) -> DeltaMeta:
        """The project's scaling for ``variant``: ``delta_scale = spec.action_scale``. Raises ``ValueError`` for an
        unknown joint set or observation scope."""
        return DeltaMeta(variant=variant, joints=resolve_joints(variant, joints),
                         delta_scale=float(get_spec(variant).action_scale), obs_scope=obs_scope)  # fmt: skip

    def input_columns(self) -> torch.Tensor:
        """(D,) columns of the (N, 5J+16) actor observation that the network reads (:attr:`obs_scope`)."""
        return input_columns(get_spec(self.variant).num_joints, self.obs_scope, self.joint_index(), self.obs_version)

    def joint_index(self) -> torch.Tensor:
        """(len(joints),) positions of :attr:`joints` among the variant's policy joints."""
        names = get_spec(self.variant).joint_names
        return torch.tensor([names.index(j) for j in self.joints], dtype=torch.long)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = asdict(self)
        d["joints"] = list(self.joints)
        d["joint_gain"] = list(self.joint_gain)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DeltaMeta:
        """Inverse of :meth:`to_dict`; refuses an observation layout not in :data:`asap.delta.obs.OBS_VERSIONS` in one
        line."""
        if d.get("obs_version") not in OBS_VERSIONS:
            raise ValueError(f"delta model reads observation {d.get('obs_version')!r}, this asap reads "
                             f"{list(OBS_VERSIONS)}: retrain it with `asap train-delta`")  # fmt: skip
        return DeltaMeta(variant=d["variant"], joints=tuple(d["joints"]), delta_scale=float(d["delta_scale"]),
                         clip=float(d.get("clip", 100.0)), obs_version=d["obs_version"],
                         gain=float(d.get("gain", 1.0)), obs_scope=str(d.get("obs_scope", "full")),
                         joint_gain=tuple(float(x) for x in d.get("joint_gain", ())))  # fmt: skip


def expand_delta(meta: DeltaMeta, delta_sub: torch.Tensor, num_joints: int) -> torch.Tensor:
    """(N, len(joints)) network output -> (N, J) Δa with zeros on the joints the model does not drive, clipped."""
    full = torch.zeros(delta_sub.shape[0], num_joints, device=delta_sub.device, dtype=delta_sub.dtype)
    full[:, meta.joint_index().to(delta_sub.device)] = delta_sub.clamp(-meta.clip, meta.clip)
    return full


def apply_delta(targets: torch.Tensor, delta: torch.Tensor, delta_scale: float) -> torch.Tensor:
    """The one rule: corrected joint targets ``targets + delta_scale * delta`` ((N, J) rad, (N, J) action units)."""
    return targets + delta_scale * delta


class DeltaModel:
    """A frozen, deterministic π^Δ: actor observation (N, 5J+16) -> full Δa (N, J) in action units (the network's
    output times ``meta.gain`` and, per driven joint, ``meta.joint_gain``)."""

    def __init__(self, net: nn.Module, meta: DeltaMeta) -> None:
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.meta = meta
        self.num_joints = get_spec(meta.variant).num_joints
        self.obs_dim = actor_dim(self.num_joints)
        whole = meta.obs_scope == "full" and meta.obs_version == DELTA_OBS_VERSION
        self.columns: torch.Tensor | None = None if whole else meta.input_columns()
        """Columns of the observation the network reads (None: all of them)."""
        self.scale: torch.Tensor | float = (torch.tensor(meta.joint_gain, dtype=torch.float32) * meta.gain
                                            if meta.joint_gain else float(meta.gain))  # fmt: skip
        """What the network's output is multiplied by: ``gain`` times ``joint_gain`` per driven joint."""

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Δa (N, J) for an actor observation (N, obs_dim) (the network reads ``meta.obs_scope``'s columns)."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"delta model expects {self.obs_dim}-D observations, got {obs.shape[-1]}")
        x = obs if self.columns is None else obs[:, self.columns]
        return expand_delta(self.meta, self.net(x) * self.scale, self.num_joints)

    def to(self, device: torch.device | str) -> DeltaModel:
        """Move the network (and the observation columns it reads) to ``device``."""
        self.net = self.net.to(device)
        if self.columns is not None:
            self.columns = self.columns.to(device)
        if isinstance(self.scale, torch.Tensor):
            self.scale = self.scale.to(device)
        return self

    @staticmethod
    def load(path: str | Path) -> DeltaModel:
        """Load ``delta.pt`` written by `asap train-delta` (or :func:`save_delta`). One-line errors for other files."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such delta model; make one with `asap train-delta`")
        ck = torch.load(str(p), map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or "delta_meta" not in ck:
            raise ValueError(f"{p}: not a delta model (no delta_meta); make one with `asap train-delta`")
        meta = DeltaMeta.from_dict(ck["delta_meta"])
        from asap.rl.export import actor_module

        net = actor_module({"actor": ck["actor_cfg"]}, ck["actor_state_dict"], ck["obs_dim"], len(meta.joints))
        return DeltaModel(net, meta)


def save_delta(path: str | Path, meta: DeltaMeta, actor_cfg: dict[str, Any], actor_state: dict[str, Any],
               extra: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write ``delta.pt``: the rsl-rl actor weights, its config, the network's input width and :class:`DeltaMeta`."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"delta_meta": meta.to_dict(), "actor_cfg": actor_cfg, "actor_state_dict": actor_state,
                "obs_dim": int(meta.input_columns().numel()), **(extra or {})}, str(out))  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta.to_dict(), indent=1))
    return out
