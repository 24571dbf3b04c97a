"""The DeltaDynamics baseline (asap-method.md section 6): a learned residual of the next state, added to the
training simulator's state after every control step — the gap modelled as a state correction instead of ASAP's
action correction Δa.

**State** (:func:`read_state_vector`, (N, 13 + 2J)): the root state of the simulator protocol (pelvis position m,
quaternion wxyz, linear and angular velocity m/s, rad/s, all world frame) followed by q (J, rad) and q̇ (J, rad/s)
in policy order. No body positions: the simulator recomputes them from this state.

**Residual** (:data:`RESIDUAL_TERMS`, (N, 12 + 2J)): the correction of a simulated next state ŝ toward the real
one, with every root quantity in the *heading frame* of ŝ (world frame turned by the pelvis yaw), so that the same
motion facing another way gets the same residual: root position (m), root orientation as a rotation vector r (the
rotation exp(r) is applied on the world side, r in the heading frame; see :func:`rot_exp`), root linear and angular
velocity, then joint positions and velocities. :func:`apply_residual` adds a residual to a state and
:func:`state_difference` is its exact inverse (the residual that takes one state to another).

**Model input** (:data:`FEATURE_TERMS`, (N, 10 + 3J)): the state *before* the step and the action applied over it,
without the heading (yaw) and the horizontal position: pelvis height, projected gravity (pelvis frame), root linear
and angular velocity (heading frame), q, q̇ and the applied joint target in policy-action units
``(q* - default) / action_scale`` (as the delta observation has it, :mod:`asap.delta.obs`).

**Injection** (:class:`DeltaDynamicsSimulator`): any :class:`asap.sim.base.Simulator` plus a frozen
:class:`DeltaDynamicsModel`. Per ``step(targets)``: read s_k and a_k, step the wrapped simulator to ŝ_{k+1}, and write
``apply_residual(ŝ_{k+1}, model(s_k, a_k))`` back with ``set_root_state`` / ``set_joint_state`` (not ``reset``, which
would also refill the action-delay queue with the default pose and drop the solver warm start mid-episode). Envs
whose residual is exactly zero are not written, so a zero model leaves the simulator bit-for-bit unchanged. The
joint torques and foot contact forces of the step are read before the write and answered for the corrected envs
until their next write (the backend reads zeros right after a state write, which would blank the torque and
slippage terms of the tracking rewards). Open-loop training, its report and ``asap finetune --dynamics-model`` all
step through this one wrapper, like :class:`asap.delta.aligned.AlignedSimulator` for Δa.

**Loss** (:func:`rollout_loss`): the normalised squared error of every corrected state against the logged next
state, averaged over *all* K steps of a window (the reference overwrote its loss each step and so trained only the
last one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asap.robot.spec import get_spec
from asap.sim.base import Simulator, as_env_ids
from asap.utils.rotations import (
    projected_gravity,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_rotate,
    quat_rotate_inverse,
    yaw_quat,
)

STATE_VERSION = "dyn_v1"
"""Version of the state, residual and feature layouts below; stored in every model, checked on load."""

ROOT_DIM = 13
"""Root part of the state vector: pos (3), quat wxyz (4), linear velocity (3), angular velocity (3), world frame."""

RESIDUAL_TERMS: tuple[tuple[str, int | None], ...] = (
    ("root_pos", 3),
    ("root_rot", 3),
    ("root_lin_vel", 3),
    ("root_ang_vel", 3),
    ("dof_pos", None),
    ("dof_vel", None),
)
"""Residual layout: (name, width; None = J). Root terms in the heading frame of the corrected state (m, rad, m/s,
rad/s); joint terms in rad, rad/s."""

FEATURE_TERMS: tuple[tuple[str, int | None], ...] = (
    ("root_height", 1),
    ("projected_gravity", 3),
    ("root_lin_vel", 3),
    ("root_ang_vel", 3),
    ("dof_pos", None),
    ("dof_vel", None),
    ("action", None),
)
"""Model input layout: (name, width; None = J). Pelvis height (m), gravity in the pelvis frame, root velocities in
the heading frame, q, q̇, applied action (policy-action units)."""

ROT_LOG_MIN_W = 0.1
""":func:`rot_log` divides by the quaternion's w, floored here (angles beyond ~169° are compressed)."""


def _width(terms: tuple[tuple[str, int | None], ...], num_joints: int) -> int:
    return sum(num_joints if w is None else w for _, w in terms)


def state_dim(num_joints: int) -> int:
    """Width of the state vector: 13 + 2J."""
    return ROOT_DIM + 2 * num_joints


def residual_dim(num_joints: int) -> int:
    """Width of the residual: 12 + 2J."""
    return _width(RESIDUAL_TERMS, num_joints)


def feature_dim(num_joints: int) -> int:
    """Width of the model input: 10 + 3J."""
    return _width(FEATURE_TERMS, num_joints)


def term_slices(terms: tuple[tuple[str, int | None], ...], num_joints: int) -> dict[str, tuple[int, int]]:
    """``{name: (start, stop)}`` of each term of a layout for J joints."""
    out, i = {}, 0
    for name, w in terms:
        n = num_joints if w is None else w
        out[name] = (i, i + n)
        i += n
    return out


# ------------------------------------------------------------------------------------------------ state vectors
def pack_state(root: torch.Tensor, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
    """(N, 13 + 2J) state vector from the (N, 13) root state and (N, J) q, q̇."""
    return torch.cat([root, q, qd], dim=-1)


def unpack_state(state: torch.Tensor, num_joints: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack_state`: (root (…, 13), q (…, J), q̇ (…, J))."""
    j = num_joints
    return state[..., :ROOT_DIM], state[..., ROOT_DIM : ROOT_DIM + j], state[..., ROOT_DIM + j : ROOT_DIM + 2 * j]


def read_state_vector(sim: Simulator) -> torch.Tensor:
    """(N, 13 + 2J) current state of every env of ``sim``."""
    q, qd = sim.get_joint_state()
    return pack_state(sim.get_root_state(), q, qd)


def motion_state_vector(s: Any) -> torch.Tensor:
    """(N, 13 + 2J) state vector of a :class:`asap.motion.motionlib.MotionState` (a logged frame)."""
    root = torch.cat([s.root_pos, s.root_quat, s.root_lin_vel, s.root_ang_vel], dim=-1)
    return pack_state(root, s.dof_pos, s.dof_vel)


# ------------------------------------------------------------------------------------------------ rotations
def rot_exp(r: torch.Tensor) -> torch.Tensor:
    """Quaternion (…, 4) of a small rotation vector r (…, 3): ``normalize(1, r/2)``, a rotation by 2·atan(|r|/2)
    about r (equal to the rotation vector r to third order: 0.08% short at 0.1 rad). Smooth at r = 0, where the exact
    exponential map's gradient is not, so a zero-initialised model trains."""
    return quat_normalize(torch.cat([torch.ones_like(r[..., :1]), 0.5 * r], dim=-1))


def rot_log(q: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rot_exp`: ``2 v / w`` of q (…, 4) taken with w >= 0 (w floored at :data:`ROT_LOG_MIN_W`)."""
    sign = torch.where(q[..., :1] < 0, -1.0, 1.0)
    q = q * sign
    return 2.0 * q[..., 1:4] / q[..., :1].clamp(min=ROT_LOG_MIN_W)


# ------------------------------------------------------------------------------------------------ residuals
def state_difference(target: torch.Tensor, base: torch.Tensor, num_joints: int) -> torch.Tensor:
    """The residual (…, 12 + 2J) that takes state ``base`` to state ``target`` (both (…, 13 + 2J)); root terms in
    the heading frame of ``base``. ``apply_residual(base, state_difference(target, base))`` is ``target``."""
    rb, qb, qdb = unpack_state(base, num_joints)
    rt, qt, qdt = unpack_state(target, num_joints)
    h = yaw_quat(rb[..., 3:7])
    rot = rot_log(quat_mul(rt[..., 3:7], quat_conj(rb[..., 3:7])))
    parts = [rt[..., 0:3] - rb[..., 0:3], rot, rt[..., 7:10] - rb[..., 7:10], rt[..., 10:13] - rb[..., 10:13]]
    return torch.cat([*(quat_rotate_inverse(h, p) for p in parts), qt - qb, qdt - qdb], dim=-1)


def apply_residual(base: torch.Tensor, residual: torch.Tensor, num_joints: int) -> torch.Tensor:
    """``base`` (…, 13 + 2J) corrected by ``residual`` (…, 12 + 2J) (root terms in the heading frame of ``base``):
    positions, velocities and joints are added, the orientation becomes ``rot_exp(r_world) ⊗ quat``."""
    rb, qb, qdb = unpack_state(base, num_joints)
    h = yaw_quat(rb[..., 3:7])
    dp, dr, dv, dw = (quat_rotate(h, residual[..., i : i + 3]) for i in (0, 3, 6, 9))
    quat = quat_normalize(quat_mul(rot_exp(dr), rb[..., 3:7]))
    root = torch.cat([rb[..., 0:3] + dp, quat, rb[..., 7:10] + dv, rb[..., 10:13] + dw], dim=-1)
    j = num_joints
    return pack_state(root, qb + residual[..., 12 : 12 + j], qdb + residual[..., 12 + j : 12 + 2 * j])


def features(state: torch.Tensor, action: torch.Tensor, num_joints: int) -> torch.Tensor:
    """Model input (…, 10 + 3J) (:data:`FEATURE_TERMS`) of a state (…, 13 + 2J) and the applied action (…, J)."""
    root, q, qd = unpack_state(state, num_joints)
    quat = root[..., 3:7]
    h = yaw_quat(quat)
    return torch.cat([root[..., 2:3], projected_gravity(quat), quat_rotate_inverse(h, root[..., 7:10]),
                      quat_rotate_inverse(h, root[..., 10:13]), q, qd, action], dim=-1)  # fmt: skip


def rollout_loss(
    corrected: torch.Tensor, logged: torch.Tensor, scale: torch.Tensor, num_joints: int
) -> torch.Tensor:  # fmt: skip
    """K-step loss of one batch of windows: the mean over all K steps, windows and residual dimensions of the squared
    error ``state_difference(logged_k, corrected_k) / scale``.

    ``corrected`` (K, B, 13 + 2J): simulator state plus the model's residual after each step; ``logged`` (K, B,
    13 + 2J): the logged next states; ``scale`` (12 + 2J,): the residual normalisation (per-dimension spread of the
    one-step residuals), or (K, 1, 12 + 2J): one per step. Every step contributes 1/K of the loss."""
    err = state_difference(logged, corrected, num_joints) / scale
    return err.square().mean()


# ------------------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class DeltaDynamicsMeta:
    """What a DeltaDynamics model is, stored beside its weights (``dynamics_model.json``)."""

    variant: str
    """Robot variant (``g1_23dof`` / ``g1_29dof``)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the MLP (ReLU), the reference's in→256→256→out."""
    bound: float = 10.0
    """Largest residual per step, in units of ``out_scale`` (the one-step residual spread): the output is
    ``out_scale * bound * tanh(mlp / bound)``, linear near zero; 0 = unbounded."""
    state_version: str = STATE_VERSION
    """Layout of state, residual and input (:data:`STATE_VERSION`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the layouts spelled out for the reader."""
        j = get_spec(self.variant).num_joints
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        d["state_layout"] = {
            "state": "root pos (3, m), quat wxyz (4), lin vel (3, m/s), ang vel (3, rad/s), world frame; q (J, rad); "
            "qd (J, rad/s); policy joint order",
            "residual": {k: list(v) for k, v in term_slices(RESIDUAL_TERMS, j).items()},
            "residual_frame": "root terms in the heading (yaw) frame of the simulated next state",
            "features": {k: list(v) for k, v in term_slices(FEATURE_TERMS, j).items()},
            "action_units": "policy action: (joint target - default) / action_scale",
        }
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DeltaDynamicsMeta:
        """Inverse of :meth:`to_dict`; refuses another layout in one line."""
        if d.get("state_version") != STATE_VERSION:
            raise ValueError(f"dynamics model has state layout {d.get('state_version')!r}, this asap uses "
                             f"{STATE_VERSION!r}: retrain it with `asap train-dynamics`")  # fmt: skip
        return DeltaDynamicsMeta(variant=d["variant"], hidden_dims=tuple(int(x) for x in d["hidden_dims"]),
                                 bound=float(d["bound"]), state_version=d["state_version"])  # fmt: skip


class DeltaDynamicsModel(nn.Module):
    """MLP residual of the next state: features (N, 10 + 3J) -> residual (N, 12 + 2J) in physical units.

    ``residual = out_scale * b * tanh(mlp((x - in_mean) / in_std) / b)`` with b = ``meta.bound`` (no tanh when 0): at
    most b one-step spreads per step, so an input far outside the training data cannot teleport the robot; the
    normalisation is stored as buffers (saved with the weights). The last layer starts at zero, so an untrained model
    is the plain simulator."""

    def __init__(self, meta: DeltaDynamicsMeta) -> None:
        super().__init__()
        self.meta = meta
        self.num_joints = get_spec(meta.variant).num_joints
        f, d = feature_dim(self.num_joints), residual_dim(self.num_joints)
        self.register_buffer("in_mean", torch.zeros(f))
        self.register_buffer("in_std", torch.ones(f))
        self.register_buffer("out_scale", torch.ones(d))
        layers: list[nn.Module] = []
        width = f
        for h in meta.hidden_dims:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, d)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*layers, last)

    def set_normalisation(self, in_mean: torch.Tensor, in_std: torch.Tensor, out_scale: torch.Tensor) -> None:
        """Input mean/std (F,) and output scale (D,) (physical units per unit of network output)."""
        self.in_mean.copy_(in_mean)
        self.in_std.copy_(in_std)
        self.out_scale.copy_(out_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual (N, 12 + 2J) of features x (N, 10 + 3J)."""
        y = self.mlp((x - self.in_mean) / self.in_std)
        b = self.meta.bound
        return (b * torch.tanh(y / b) if b > 0 else y) * self.out_scale

    def normalisation(self) -> dict[str, list[float]]:
        """The normalisation as lists (for the metadata JSON)."""
        return {k: getattr(self, k).tolist() for k in ("in_mean", "in_std", "out_scale")}

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``path`` (weights, meta, ``extra``) and ``path.json`` (meta, layouts, normalisation, ``extra``)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"dynamics_meta": asdict(self.meta), "state_dict": self.state_dict(), **(extra or {})}, str(out))
        info = {**self.meta.to_dict(), "normalisation": self.normalisation(), **(extra or {})}
        out.with_suffix(".json").write_text(json.dumps(info, indent=1, default=str))
        return out

    @staticmethod
    def load(path: str | Path) -> DeltaDynamicsModel:
        """Load a ``dynamics_model.pt`` (frozen, eval mode). One-line errors for other files."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such dynamics model; make one with `asap train-dynamics`")
        ck = torch.load(str(p), map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or "dynamics_meta" not in ck:
            raise ValueError(f"{p}: not a dynamics model (no dynamics_meta); make one with `asap train-dynamics`")
        model = DeltaDynamicsModel(DeltaDynamicsMeta.from_dict(ck["dynamics_meta"]))
        model.load_state_dict(ck["state_dict"])
        return model.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------ injection
class DeltaDynamicsSimulator:
    """``sim`` with ``model``'s residual added to the state after every joint-target step (see module docstring);
    every other call goes to ``sim``."""

    def __init__(self, sim: Simulator, model: DeltaDynamicsModel) -> None:
        if model.meta.variant != sim.cfg.variant:
            raise ValueError(f"dynamics model is for {model.meta.variant}, the simulator runs {sim.cfg.variant}")
        self.sim = sim
        self.model = model.to(sim.device)
        n, j = sim.num_envs, sim.num_joints
        self.default_pos = torch.as_tensor(sim.spec.default_pos, dtype=torch.float32, device=sim.device)
        self.action_scale = float(sim.spec.action_scale)
        self.last_state = torch.zeros(n, state_dim(j), device=sim.device)
        """(N, 13 + 2J) the state before the last step (the model's input with :attr:`last_action`)."""
        self.last_action = torch.zeros(n, j, device=sim.device)
        """(N, J) the action applied over the last step (policy-action units)."""
        self.last_sim_state = torch.zeros(n, state_dim(j), device=sim.device)
        """(N, 13 + 2J) the wrapped simulator's state after the last step, before the correction."""
        self.last_residual = torch.zeros(n, residual_dim(j), device=sim.device)
        """(N, 12 + 2J) the residual added in the last step."""
        self._tau = torch.zeros(n, j, device=sim.device)
        self._feet = torch.zeros(n, 2, 3, device=sim.device)
        self._held = torch.zeros(n, dtype=torch.bool, device=sim.device)  # envs answering the cached readouts
        self.residual_abs_sum = torch.zeros(residual_dim(j), device=sim.device)
        """Sum over steps of the mean |residual| over envs, per residual dimension (for :meth:`mean_abs_residual`)."""
        self.steps = 0
        """Steps taken with joint targets."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    @torch.no_grad()
    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """One control step of the wrapped simulator, then the residual written into its state (module docstring).
        Torque commands and "hold" steps pass through uncorrected (the model's input needs joint targets)."""
        self._held[:] = False
        if targets is None:
            self.sim.step(targets=None, torques=torques)
            return
        j = self.sim.num_joints
        targets = targets.to(self.sim.device, torch.float32)
        state, action = read_state_vector(self.sim), (targets - self.default_pos) / self.action_scale
        self.sim.step(targets=targets)
        nxt = read_state_vector(self.sim)
        r = self.model(features(state, action, j))
        self.last_state, self.last_action, self.last_sim_state, self.last_residual = state, action, nxt, r
        self.residual_abs_sum += r.abs().mean(dim=0)
        self.steps += 1
        ids = (r != 0).any(dim=1).nonzero().flatten()
        if ids.numel() == 0:
            return
        self._tau = self.sim.get_applied_torques().clone()
        self._feet = self.sim.get_foot_contact_forces().clone()
        root, q, qd = unpack_state(apply_residual(nxt[ids], r[ids], j), j)
        self.sim.set_root_state(ids, root)
        self.sim.set_joint_state(ids, q, qd)
        self._held[ids] = True

    def mean_abs_residual(self) -> dict[str, float]:
        """Mean |residual| per residual term (its own units) over every step and env so far."""
        mean = self.residual_abs_sum / max(1, self.steps)
        sl = term_slices(RESIDUAL_TERMS, self.sim.num_joints)
        return {k: float(mean[a:b].mean()) for k, (a, b) in sl.items()}

    def get_applied_torques(self) -> torch.Tensor:
        """(N, J) torques of the last substep (for corrected envs: read before the state write)."""
        tau = self.sim.get_applied_torques()
        return torch.where(self._held[:, None], self._tau, tau)

    def get_foot_contact_forces(self) -> torch.Tensor:
        """(N, 2, 3) foot contact forces of the last substep (for corrected envs: read before the state write)."""
        f = self.sim.get_foot_contact_forces()
        return torch.where(self._held[:, None, None], self._feet, f)

    def _release(self, env_ids: torch.Tensor | Sequence[int] | None) -> None:
        self._held[as_env_ids(env_ids, self.sim.num_envs).to(self.sim.device)] = False

    def set_root_state(self, env_ids: torch.Tensor | Sequence[int] | None, root_state: torch.Tensor) -> None:
        """Write root states (the envs' readouts become the wrapped simulator's again)."""
        self.sim.set_root_state(env_ids, root_state)
        self._release(env_ids)

    def set_joint_state(self, env_ids: torch.Tensor | Sequence[int] | None, q: torch.Tensor, qd: torch.Tensor) -> None:
        """Write joint states (the envs' readouts become the wrapped simulator's again)."""
        self.sim.set_joint_state(env_ids, q, qd)
        self._release(env_ids)

    def reset(
        self,
        env_ids: torch.Tensor | Sequence[int] | None = None,
        root_state: torch.Tensor | None = None,
        q: torch.Tensor | None = None,
        qd: torch.Tensor | None = None,
    ) -> None:
        """Reset the wrapped envs (their readouts become the wrapped simulator's again)."""
        self.sim.reset(env_ids, root_state=root_state, q=q, qd=qd)
        self._release(env_ids)


def load_dynamics_model(path: str | Path, variant: str | None = None) -> DeltaDynamicsModel:
    """A frozen :class:`DeltaDynamicsModel` from ``dynamics_model.pt``; refuses another robot variant."""
    model = DeltaDynamicsModel.load(path)
    if variant is not None and model.meta.variant != variant:
        raise ValueError(f"{path}: dynamics model is for {model.meta.variant}, not {variant}")
    return model
