"""Observation builders shared by the training envs and the robot runtime.

An observation is assembled from *terms*: plain arrays of shape (N, d), one per name (``dof_pos``,
``base_ang_vel``, ...). Callers compute the raw terms from whatever state they have (a simulator batch in
torch, or one ``LowState`` message in NumPy) with the helpers below, then an :class:`ObsBuilder` applies the
layout's noise and scales, concatenates each group's terms in alphabetical key order, inserts the history
block, clips, and finally pushes the current step's terms into its history buffer.

Layout ``asap_v1`` is the reference's ``deepmimic_a2c_nolinvel_LARGEnoise_history`` (actor 380-D, critic 557-D
for 23 joints):

- every term is ``(raw + U(-n, n)) * scale`` (noise before scaling);
- the history block holds the previous 4 steps' noisy, scaled terms, newest first, keys in alphabetical order,
  zeroed on reset and updated *after* the observation is built (it never contains the current step);
- the whole vector is clipped to +-100.

Everything here is array-agnostic (NumPy or torch, like :mod:`asap.utils.rotations`), so the deploy runtime
imports this module with NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asap.utils.rotations import _is_torch, projected_gravity, quat_rotate_inverse, yaw_quat

Array = Any  # np.ndarray | torch.Tensor

NUM_TRACKED_BODIES = 27
"""Tracked points per robot (24 links + 3 extended bodies)."""
OBS_CLIP = 100.0
"""Observations are clipped to +-OBS_CLIP."""

HISTORY_PREFIX = "history_"
"""A group term named ``history_<x>`` is the flattened history of the layout's ``history[<x>]`` keys."""


# --------------------------------------------------------------------------------------------------------------
# Raw terms (pure functions of state)
# --------------------------------------------------------------------------------------------------------------


def term_dims(num_joints: int, num_bodies: int = NUM_TRACKED_BODIES) -> dict[str, int]:
    """Width of every known term for a robot with ``num_joints`` policy joints."""
    return {
        "actions": num_joints,
        "base_ang_vel": 3,
        "base_lin_vel": 3,
        "dif_local_rigid_body_pos": 3 * num_bodies,
        "dof_pos": num_joints,
        "dof_vel": num_joints,
        "local_ref_rigid_body_pos": 3 * num_bodies,
        "projected_gravity": 3,
        "ref_motion_phase": 1,
    }


def proprio_terms(
    root_quat: Array,
    base_ang_vel: Array,
    dof_pos: Array,
    dof_vel: Array,
    default_dof_pos: Array,
    last_action: Array,
    phase: Array,
    base_lin_vel: Array | None = None,
) -> dict[str, Array]:
    """Raw proprioceptive terms (what the robot itself measures).

    ``root_quat`` (N,4) wxyz is the base (IMU/pelvis) orientation; ``base_ang_vel`` (N,3) and ``base_lin_vel`` (N,3)
    are in the **base frame** (the IMU gyro is; a simulator's world-frame velocities go through
    :func:`world_to_base`); ``dof_pos``/``dof_vel`` (N,J) measured joints; ``default_dof_pos`` (J,) the default pose;
    ``last_action`` (N,J) the last clipped raw action; ``phase`` (N,) or (N,1) the motion phase t / length.
    """
    ph = phase if phase.ndim == 2 else phase[:, None]
    out = {
        "actions": last_action,
        "base_ang_vel": base_ang_vel,
        "dof_pos": dof_pos - default_dof_pos,
        "dof_vel": dof_vel,
        "projected_gravity": projected_gravity(root_quat),
        "ref_motion_phase": ph,
    }
    if base_lin_vel is not None:
        out["base_lin_vel"] = base_lin_vel
    return out


def world_to_base(root_quat: Array, v_world: Array) -> Array:
    """Express world-frame vectors (N,3) in the base frame of orientation ``root_quat`` (N,4) wxyz."""
    return quat_rotate_inverse(root_quat, v_world)


def privileged_terms(root_pos: Array, root_quat: Array, body_pos: Array, ref_body_pos: Array) -> dict[str, Array]:
    """Raw privileged (critic) body terms.

    ``root_pos`` (N,3), ``root_quat`` (N,4) wxyz: the robot's root; ``body_pos`` (N,B,3) the robot's tracked points;
    ``ref_body_pos`` (N,B,3) the reference's. Both results are in the robot's heading (yaw-only) frame and
    flattened to (N, 3B): ``dif_local_rigid_body_pos`` = ref - current, ``local_ref_rigid_body_pos`` = ref - root.
    """
    n, b = body_pos.shape[0], body_pos.shape[1]
    hq = yaw_quat(root_quat)
    hq_b = hq[:, None, :].expand(n, b, 4) if _is_torch(hq) else np.broadcast_to(hq[:, None, :], (n, b, 4))
    dif = quat_rotate_inverse(hq_b, ref_body_pos - body_pos)
    loc = quat_rotate_inverse(hq_b, ref_body_pos - root_pos[:, None, :])
    return {
        "dif_local_rigid_body_pos": dif.reshape(n, 3 * b),
        "local_ref_rigid_body_pos": loc.reshape(n, 3 * b),
    }


# --------------------------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObsLayout:
    """A named observation layout: which terms each group holds, their scales, noise and history."""

    name: str
    """Registry name (stored in the ONNX metadata as ``obs_layout``)."""
    groups: dict[str, tuple[str, ...]]
    """Group name -> its terms (``history_<x>`` = the history block ``<x>``); concatenated in sorted order."""
    history: dict[str, tuple[str, ...]]
    """History block name -> the terms it keeps (stored in sorted order)."""
    history_length: int
    """Past steps kept per history term."""
    scales: dict[str, float]
    """Per-term scale applied after the noise (default 1)."""
    noise: dict[str, float]
    """Per-term half-width of the uniform noise added before scaling (default 0)."""
    clip: float = OBS_CLIP
    """Final clip of every group vector."""
    num_bodies: int = NUM_TRACKED_BODIES
    """Tracked points used by the body terms."""

    def group_terms(self, group: str) -> tuple[str, ...]:
        """Terms of ``group`` in concatenation (alphabetical) order."""
        return tuple(sorted(self.groups[group]))

    def history_terms(self) -> tuple[str, ...]:
        """All terms any history block keeps (sorted)."""
        return tuple(sorted({t for ts in self.history.values() for t in ts}))

    def raw_terms(self, group: str | None = None) -> tuple[str, ...]:
        """Raw terms needed to build ``group`` (or every group), including those of its history blocks."""
        groups = [group] if group else list(self.groups)
        need: set[str] = set()
        for g in groups:
            for t in self.groups[g]:
                if t.startswith(HISTORY_PREFIX):
                    need.update(self.history[t[len(HISTORY_PREFIX) :]])
                else:
                    need.add(t)
        return tuple(sorted(need))

    def table(self, group: str, num_joints: int) -> list[tuple[str, int, int]]:
        """(term, offset, dim) of every block of ``group``; history blocks as one row each."""
        dims = term_dims(num_joints, self.num_bodies)
        rows, off = [], 0
        for t in self.group_terms(group):
            if t.startswith(HISTORY_PREFIX):
                d = self.history_length * sum(dims[k] for k in self.history[t[len(HISTORY_PREFIX) :]])
            else:
                d = dims[t]
            rows.append((t, off, d))
            off += d
        return rows

    def history_table(self, group: str, num_joints: int) -> list[tuple[str, int, int]]:
        """(term, absolute offset, dim = history_length * term dim) inside ``group``'s history block(s)."""
        dims = term_dims(num_joints, self.num_bodies)
        rows = []
        for t, off, _ in self.table(group, num_joints):
            if not t.startswith(HISTORY_PREFIX):
                continue
            for k in sorted(self.history[t[len(HISTORY_PREFIX) :]]):
                d = self.history_length * dims[k]
                rows.append((k, off, d))
                off += d
        return rows

    def dim(self, group: str, num_joints: int) -> int:
        """Width of ``group`` for ``num_joints`` joints."""
        return sum(d for _, _, d in self.table(group, num_joints))

    def to_dict(self, num_joints: int) -> dict[str, Any]:
        """JSON-friendly description with offsets (for metadata and docs)."""
        return {
            "name": self.name,
            "history_length": self.history_length,
            "groups": {
                g: {
                    "dim": self.dim(g, num_joints),
                    "terms": [{"term": t, "offset": o, "dim": d} for t, o, d in self.table(g, num_joints)],
                    "history": [{"term": t, "offset": o, "dim": d} for t, o, d in self.history_table(g, num_joints)],
                }
                for g in self.groups
            },
            "scales": dict(self.scales),
            "noise": dict(self.noise),
        }


_ACTOR_HIST = ("actions", "base_ang_vel", "dof_pos", "dof_vel", "projected_gravity", "ref_motion_phase")

ASAP_V1 = ObsLayout(
    name="asap_v1",
    groups={
        "actor": (
            "actions",
            "base_ang_vel",
            "dof_pos",
            "dof_vel",
            "history_actor",
            "projected_gravity",
            "ref_motion_phase",
        ),
        "critic": (
            "actions",
            "base_ang_vel",
            "base_lin_vel",
            "dif_local_rigid_body_pos",
            "dof_pos",
            "dof_vel",
            "history_critic",
            "local_ref_rigid_body_pos",
            "projected_gravity",
            "ref_motion_phase",
        ),
    },  # fmt: skip
    history={"actor": _ACTOR_HIST, "critic": tuple(sorted((*_ACTOR_HIST, "base_lin_vel")))},
    history_length=4,
    scales={"base_lin_vel": 2.0, "base_ang_vel": 0.25, "dof_vel": 0.05},
    noise={"base_ang_vel": 0.3, "projected_gravity": 0.2, "dof_pos": 0.01, "dof_vel": 1.0},
)
"""ASAP's actor 380 / critic 557 layout (asap-method.md section 4 and 10)."""

LAYOUTS: dict[str, ObsLayout] = {ASAP_V1.name: ASAP_V1}
"""Registry of known layouts by name."""


def get_layout(name: str) -> ObsLayout:
    """The layout registered under ``name``."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown observation layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


# --------------------------------------------------------------------------------------------------------------
# Array backend shim
# --------------------------------------------------------------------------------------------------------------


class _Backend:
    """The few array operations the builder needs, for NumPy or torch."""

    def __init__(self, kind: str, device: Any = None, seed: int | None = None) -> None:
        if kind not in ("numpy", "torch"):
            raise ValueError(f"backend must be 'numpy' or 'torch', got {kind!r}")
        self.kind = kind
        self.device = device
        if kind == "torch":
            import torch

            self.torch = torch
            self.gen = torch.Generator(device=device or "cpu")
            if seed is None:
                self.gen.seed()
            else:
                self.gen.manual_seed(seed)
        else:
            self.rng = np.random.default_rng(seed)

    def zeros(self, *shape: int) -> Array:
        if self.kind == "torch":
            return self.torch.zeros(*shape, dtype=self.torch.float32, device=self.device)
        return np.zeros(shape, dtype=np.float32)

    def uniform(self, shape: tuple[int, ...]) -> Array:
        """Samples of U(-1, 1)."""
        if self.kind == "torch":
            u = self.torch.rand(shape, generator=self.gen, device=self.device, dtype=self.torch.float32)
            return 2.0 * u - 1.0
        return self.rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)

    def asarray(self, x: Array) -> Array:
        if self.kind == "torch":
            if _is_torch(x):
                return x.to(device=self.device, dtype=self.torch.float32)
            return self.torch.as_tensor(np.asarray(x), dtype=self.torch.float32, device=self.device)
        if _is_torch(x):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.float32)

    def cat(self, xs: list[Array]) -> Array:
        if self.kind == "torch":
            return self.torch.cat(xs, dim=-1)
        return np.concatenate(xs, axis=-1)

    def clip(self, x: Array, c: float) -> Array:
        return x.clamp(-c, c) if self.kind == "torch" else np.clip(x, -c, c)


# --------------------------------------------------------------------------------------------------------------
# History and builder
# --------------------------------------------------------------------------------------------------------------


@dataclass
class HistoryBuffer:
    """Per-env ring of the last ``length`` processed (noisy, scaled) values of some terms, newest first."""

    terms: tuple[str, ...]
    """Terms kept (sorted)."""
    dims: dict[str, int]
    """Width of each term."""
    num_envs: int
    """Batch size N."""
    length: int
    """Steps kept per term."""
    backend: _Backend
    """Array backend."""
    data: dict[str, Array] = field(default_factory=dict)
    """Term -> (N, length, d) array; index 0 = the previous step."""

    def __post_init__(self) -> None:
        self.data = {t: self.backend.zeros(self.num_envs, self.length, self.dims[t]) for t in self.terms}

    def reset(self, env_ids: Array | None = None) -> None:
        """Zero the history of ``env_ids`` (all envs when None)."""
        for buf in self.data.values():
            if env_ids is None:
                buf[:] = 0
            else:
                buf[env_ids] = 0

    def push(self, values: dict[str, Array]) -> None:
        """Shift every term's history by one step and insert ``values[term]`` (N, d) as the newest entry."""
        for t in self.terms:
            buf = self.data[t]
            if self.length > 1:
                buf[:, 1:] = buf[:, :-1].clone() if self.backend.kind == "torch" else buf[:, :-1].copy()
            buf[:, 0] = values[t]

    def flat(self, terms: tuple[str, ...]) -> Array:
        """(N, length * sum(d)) block: for each term (in the given order) its frames, newest first."""
        return self.backend.cat([self.data[t].reshape(self.num_envs, -1) for t in terms])


class ObsBuilder:
    """Builds every group of a layout for a batch of N envs, with its history buffer.

    Usage per control step: ``obs = builder.build(terms)`` (returns ``{group: (N, dim)}`` and then records the
    step in the history); ``builder.reset(env_ids)`` after an env resets, before its first ``build``.
    """

    def __init__(
        self,
        layout: str | ObsLayout = "asap_v1",
        num_envs: int = 1,
        num_joints: int = 23,
        backend: str = "numpy",
        device: Any = None,
        noise_level: float = 0.0,
        groups: tuple[str, ...] | None = None,
        seed: int | None = None,
    ) -> None:
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.num_envs = num_envs
        self.num_joints = num_joints
        self.noise_level = float(noise_level)
        """Multiplier on the layout's noise table (0 = deterministic, 1 = training noise)."""
        self.groups = tuple(groups) if groups else tuple(self.layout.groups)
        self.xp = _Backend(backend, device, seed)
        self.dims = term_dims(num_joints, self.layout.num_bodies)
        hist_blocks = {t[len(HISTORY_PREFIX) :] for g in self.groups for t in self.layout.groups[g]
                       if t.startswith(HISTORY_PREFIX)}  # fmt: skip
        hist_terms = tuple(sorted({k for b in hist_blocks for k in self.layout.history[b]}))
        self.history = HistoryBuffer(hist_terms, self.dims, num_envs, self.layout.history_length, self.xp)

    def dim(self, group: str) -> int:
        """Width of ``group``."""
        return self.layout.dim(group, self.num_joints)

    def required_terms(self) -> tuple[str, ...]:
        """Raw terms :meth:`build` needs for the selected groups."""
        need: set[str] = set()
        for g in self.groups:
            need.update(self.layout.raw_terms(g))
        return tuple(sorted(need))

    def reset(self, env_ids: Array | None = None) -> None:
        """Zero the history of ``env_ids`` (all when None)."""
        self.history.reset(env_ids)

    def process(self, raw: dict[str, Array], terms: tuple[str, ...] | None = None) -> dict[str, Array]:
        """Noisy, scaled copies of ``terms`` (default: all of ``raw``): ``(raw + U(-n, n)*level) * scale``."""
        out = {}
        for t in terms if terms is not None else tuple(raw):
            x = self.xp.asarray(raw[t])
            if x.shape != (self.num_envs, self.dims[t]):
                raise ValueError(f"term {t!r} must have shape {(self.num_envs, self.dims[t])}, got {tuple(x.shape)}")
            n = self.layout.noise.get(t, 0.0) * self.noise_level
            if n > 0:
                x = x + n * self.xp.uniform(tuple(x.shape))
            s = self.layout.scales.get(t, 1.0)
            out[t] = x * s if s != 1.0 else x
        return out

    def build(self, raw: dict[str, Array], update_history: bool = True) -> dict[str, Array]:
        """Every selected group ``{group: (N, dim)}`` from raw terms; then push this step into the history.

        Each group draws its own noise sample (as the reference does); the history stores a third sample.
        """
        missing = [t for t in self.required_terms() if t not in raw]
        if missing:
            raise KeyError(f"missing observation terms {missing}")
        out = {}
        for g in self.groups:
            base = [t for t in self.layout.group_terms(g) if not t.startswith(HISTORY_PREFIX)]
            proc = self.process(raw, tuple(base))
            parts = []
            for t in self.layout.group_terms(g):
                if t.startswith(HISTORY_PREFIX):
                    keys = tuple(sorted(self.layout.history[t[len(HISTORY_PREFIX) :]]))
                    parts.append(self.history.flat(keys))
                else:
                    parts.append(proc[t])
            out[g] = self.xp.clip(self.xp.cat(parts), self.layout.clip)
        if update_history and self.history.terms:
            self.history.push(self.process(raw, self.history.terms))
        return out
