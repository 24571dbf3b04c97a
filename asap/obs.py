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
    gravity: Array | None = None,
) -> dict[str, Array]:
    """Raw proprioceptive terms (what the robot itself measures).

    ``root_quat`` (N,4) wxyz is the base (IMU/pelvis) orientation; ``base_ang_vel`` (N,3) and ``base_lin_vel`` (N,3)
    are in the **base frame** (the IMU gyro is; a simulator's world-frame velocities go through
    :func:`world_to_base`); ``dof_pos``/``dof_vel`` (N,J) measured joints; ``default_dof_pos`` (J,) the default pose;
    ``last_action`` (N,J) the last clipped raw action; ``phase`` (N,) or (N,1) the motion phase t / length;
    ``gravity`` (N,3), optional, ``projected_gravity(root_quat)`` when the caller already has it.
    """
    ph = phase if phase.ndim == 2 else phase[:, None]
    out = {
        "actions": last_action,
        "base_ang_vel": base_ang_vel,
        "dof_pos": dof_pos - default_dof_pos,
        "dof_vel": dof_vel,
        "projected_gravity": projected_gravity(root_quat) if gravity is None else gravity,
        "ref_motion_phase": ph,
    }
    if base_lin_vel is not None:
        out["base_lin_vel"] = base_lin_vel
    return out


def world_to_base(root_quat: Array, v_world: Array) -> Array:
    """Express world-frame vectors (N,3) in the base frame of orientation ``root_quat`` (N,4) wxyz."""
    return quat_rotate_inverse(root_quat, v_world)


def privileged_terms(
    root_pos: Array, root_quat: Array, body_pos: Array, ref_body_pos: Array, heading: Array | None = None
) -> dict[str, Array]:
    """Raw privileged (critic) body terms.

    ``root_pos`` (N,3), ``root_quat`` (N,4) wxyz: the robot's root; ``body_pos`` (N,B,3) the robot's tracked points;
    ``ref_body_pos`` (N,B,3) the reference's. Both results are in the robot's heading (yaw-only) frame and
    flattened to (N, 3B): ``dif_local_rigid_body_pos`` = ref - current, ``local_ref_rigid_body_pos`` = ref - root.
    ``heading`` (N,4), optional: ``yaw_quat(root_quat)`` when the caller has it (of the same array kind as the
    positions; the rest is plain arithmetic, so NumPy float32 and torch float32 give the same values).
    """
    n, b = body_pos.shape[0], body_pos.shape[1]
    hq = yaw_quat(root_quat) if heading is None else heading
    # both vector sets rotated in one call (elementwise: the same values as two calls)
    if _is_torch(hq):
        import torch

        vecs = torch.cat([ref_body_pos - body_pos, ref_body_pos - root_pos[:, None, :]], dim=1)
        hq_b = hq[:, None, :].expand(n, 2 * b, 4)
    else:
        vecs = np.concatenate([ref_body_pos - body_pos, ref_body_pos - root_pos[:, None, :]], axis=1)
        hq_b = np.broadcast_to(hq[:, None, :], (n, 2 * b, 4))
    rot = quat_rotate_inverse(hq_b, vecs)
    return {
        "dif_local_rigid_body_pos": rot[:, :b].reshape(n, 3 * b),
        "local_ref_rigid_body_pos": rot[:, b:].reshape(n, 3 * b),
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

    def tensor(self, x: np.ndarray) -> Array:
        """A constant (index or float32 table) on the backend's device."""
        if self.kind == "torch":
            return self.torch.as_tensor(x, device=self.device)
        return x

    def take(self, x: Array, index: Array, axis: int) -> Array:
        """Entries of ``x`` at ``index`` along ``axis`` (``index`` 1-D), or of 1-D ``x`` at an N-D ``index``."""
        if self.kind == "torch":
            return x[index] if x.ndim == 1 else x.index_select(axis, index)
        return x[index] if x.ndim == 1 else np.take(x, index, axis=axis)


# --------------------------------------------------------------------------------------------------------------
# History and builder
# --------------------------------------------------------------------------------------------------------------


@dataclass
class HistoryBuffer:
    """Per-env ring of the last ``length`` processed (noisy, scaled) values of some terms, newest first.

    Stored as one (N, length, D) array (D = the terms' widths side by side, in ``terms`` order): a step is one
    shift and one write, and a history block is one gather.
    """

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
    """Term -> (N, length, d) view of the ring; index 0 = the previous step."""

    def __post_init__(self) -> None:
        self.cols: dict[str, tuple[int, int]] = {}
        off = 0
        for t in self.terms:
            self.cols[t] = (off, off + self.dims[t])
            off += self.dims[t]
        self.width = off
        """D: the width of one step of every term."""
        self.ring = self.backend.zeros(self.num_envs, self.length, self.width)
        """(N, length, D) every term's history side by side."""
        self.data = {t: self.ring[:, :, lo:hi] for t, (lo, hi) in self.cols.items()}
        self._flat_index: dict[tuple[str, ...], Array] = {}

    def reset(self, env_ids: Array | None = None) -> None:
        """Zero the history of ``env_ids`` (all envs when None)."""
        if env_ids is None:
            self.ring[:] = 0
        else:
            self.ring[env_ids] = 0

    def push(self, values: dict[str, Array]) -> None:
        """Shift every term's history by one step and insert ``values[term]`` (N, d) as the newest entry."""
        self.push_flat(self.backend.cat([values[t] for t in self.terms]) if self.terms else None)

    def push_flat(self, row: Array | None) -> None:
        """:meth:`push` of the terms' values side by side, (N, D) in ``terms`` order."""
        if row is None:
            return
        if self.length > 1:
            older = self.ring[:, :-1]
            self.ring[:, 1:] = older.clone() if self.backend.kind == "torch" else older.copy()
        self.ring[:, 0] = row

    def flat(self, terms: tuple[str, ...]) -> Array:
        """(N, length * sum(d)) block: for each term (in the given order) its frames, newest first."""
        index = self._flat_index.get(terms)
        if index is None:
            cols = [step * self.width + c for t in terms for step in range(self.length) for c in range(*self.cols[t])]
            index = self._flat_index[terms] = self.backend.tensor(np.asarray(cols, dtype=np.int64))
        return self.backend.take(self.ring.reshape(self.num_envs, -1), index, axis=1)


class _Processing:
    """How :meth:`ObsBuilder.process` turns a fixed list of raw terms into one (N, D) array at one noise level.

    The noisy terms' uniform samples are drawn as one array, in term order (the same draws as one call per term),
    scaled by each element's half-width and spread onto the terms' columns by one gather; columns without noise
    receive -0.0, which leaves every value (and the sign of a zero) as it is. The scale is one row multiply (a
    factor 1 leaves a value unchanged).
    """

    def __init__(self, builder: ObsBuilder, terms: tuple[str, ...]) -> None:
        xp, n, lay = builder.xp, builder.num_envs, builder.layout
        self.terms = terms
        self.cols: dict[str, tuple[int, int]] = {}
        off = 0
        for t in terms:
            self.cols[t] = (off, off + builder.dims[t])
            off += builder.dims[t]
        width = off
        half, index, drawn = [], np.full((n, width), -1, dtype=np.int64), 0
        for t in terms:
            h = lay.noise.get(t, 0.0) * builder.noise_level
            if h > 0:
                lo, hi = self.cols[t]
                size = n * (hi - lo)
                index[:, lo:hi] = drawn + np.arange(size).reshape(n, hi - lo)
                half.append(np.full(size, h, dtype=np.float64).astype(np.float32))
                drawn += size
        index[index < 0] = drawn
        self.num_draws = drawn
        self.half = xp.tensor(np.concatenate(half)) if half else None
        self.index = xp.tensor(index)
        self.minus_zero = xp.tensor(np.array([-0.0], dtype=np.float32))
        scale = np.concatenate([np.full(builder.dims[t], lay.scales.get(t, 1.0)) for t in terms]) if terms else None
        self.scale = None if scale is None or np.all(scale == 1.0) else xp.tensor(scale.astype(np.float32))


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
        self._required = self.required_terms()
        self._plans: dict[str, tuple[tuple[str, ...], list[tuple[str, Any]]]] = {}
        for g in self.groups:
            base = tuple(t for t in self.layout.group_terms(g) if not t.startswith(HISTORY_PREFIX))
            pieces: list[tuple[str, Any]] = []
            for t in self.layout.group_terms(g):
                if t.startswith(HISTORY_PREFIX):
                    pieces.append(("history", tuple(sorted(self.layout.history[t[len(HISTORY_PREFIX) :]]))))
                elif pieces and pieces[-1][0] == "terms":
                    pieces[-1] = ("terms", (pieces[-1][1][0], pieces[-1][1][1] + 1))
                else:
                    i = base.index(t)
                    pieces.append(("terms", (i, i + 1)))
            self._plans[g] = (base, pieces)
        self._processing: dict[tuple[tuple[str, ...], float], _Processing] = {}

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

    def _plan(self, terms: tuple[str, ...]) -> _Processing:
        key = (terms, self.noise_level)
        plan = self._processing.get(key)
        if plan is None:
            plan = self._processing[key] = _Processing(self, terms)
        return plan

    def _process_flat(self, raw: dict[str, Array], terms: tuple[str, ...]) -> tuple[Array, _Processing]:
        """(N, D) noisy, scaled ``terms`` side by side (see :class:`_Processing`) and the plan of their columns."""
        plan = self._plan(terms)
        xs = []
        for t in terms:
            x = self.xp.asarray(raw[t])
            if x.shape != (self.num_envs, self.dims[t]):
                raise ValueError(f"term {t!r} must have shape {(self.num_envs, self.dims[t])}, got {tuple(x.shape)}")
            xs.append(x)
        out = self.xp.cat(xs)
        if plan.num_draws:
            noise = plan.half * self.xp.uniform((plan.num_draws,))
            out = out + self.xp.take(self.xp.cat([noise, plan.minus_zero]), plan.index, axis=0)
        if plan.scale is not None:
            out = out * plan.scale
        return out, plan

    def process(self, raw: dict[str, Array], terms: tuple[str, ...] | None = None) -> dict[str, Array]:
        """Noisy, scaled copies of ``terms`` (default: all of ``raw``): ``(raw + U(-n, n)*level) * scale``."""
        terms = terms if terms is not None else tuple(raw)
        out, plan = self._process_flat(raw, terms)
        return {t: out[:, lo:hi] for t, (lo, hi) in plan.cols.items()}

    def build(self, raw: dict[str, Array], update_history: bool = True) -> dict[str, Array]:
        """Every selected group ``{group: (N, dim)}`` from raw terms; then push this step into the history.

        Each group draws its own noise sample (as the reference does); the history stores a third sample.
        """
        missing = [t for t in self._required if t not in raw]
        if missing:
            raise KeyError(f"missing observation terms {missing}")
        out = {}
        for g in self.groups:
            base, pieces = self._plans[g]
            proc, plan = self._process_flat(raw, base)
            parts = []
            for kind, what in pieces:
                if kind == "history":
                    parts.append(self.history.flat(what))
                else:
                    parts.append(proc[:, plan.cols[base[what[0]]][0] : plan.cols[base[what[1] - 1]][1]])
            out[g] = self.xp.clip(self.xp.cat(parts), self.layout.clip)
        if update_history and self.history.terms:
            self.history.push_flat(self._process_flat(raw, self.history.terms)[0])
        return out
