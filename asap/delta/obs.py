"""The delta model's observation: what π^Δ(s, a) sees, built by one function for open-loop training, fine-tuning,
evaluation and ``asap play --delta``.

Timing: the observation of control step k holds the state s_k *and the action a_k applied during step k* (the
reference's closed loop shows the delta model the policy action one step late; here it never does), and the action
a_{k-1} applied during the step before: a command latency of one control step (``hard``'s 20 ms) makes the robot
apply a_{k-1} during step k, which no function of (s_k, a_k) can reproduce. After a reset without history the previous
action is the applied one (no change). Terms, in alphabetical order (asap-method.md section 5.2, with
``actions``/``actions_open_loop`` renamed):

==================== ===== ===============================================================
term                  dim   meaning
==================== ===== ===============================================================
applied_action        J     action applied this step, (q* - default) / action_scale
base_ang_vel          3     pelvis angular velocity, pelvis frame, rad/s
base_lin_vel          3     pelvis linear velocity, pelvis frame, m/s
base_pos_z            1     pelvis height, m
dof_pos               J     q - default, rad
dof_vel               J     joint velocity, rad/s
feet_contact_force    6     left/right ankle-roll contact force, world frame, x 0.01 (N / 100)
last_action           J     action applied the step before, same units as applied_action
last_delta            J     the model's own previous Δa (full J, zeros on joints it does not drive)
projected_gravity     3     gravity direction in the pelvis frame
==================== ===== ===============================================================

The critic adds ``dif_local_rigid_body_pos`` and ``local_ref_rigid_body_pos`` (27 x 3 each, :func:`asap.obs.
privileged_terms`) against the *logged* bodies. No phase: the model must not depend on the clip.
"""

from __future__ import annotations

import torch

from asap.obs import privileged_terms, world_to_base
from asap.utils.rotations import projected_gravity

FEET_FORCE_SCALE = 0.01
"""Scale of the contact-force term (asap-method.md section 5.2)."""
DELTA_OBS_VERSION = "delta_v2"
"""Name of the layout built here, stored in the metadata of every delta model trained on it."""
OBS_VERSIONS: dict[str, tuple[str, ...]] = {
    "delta_v1": ("applied_action", "base_ang_vel", "base_lin_vel", "base_pos_z", "dof_pos", "dof_vel",
                 "feet_contact_force", "last_delta", "projected_gravity"),
    DELTA_OBS_VERSION: ("applied_action", "base_ang_vel", "base_lin_vel", "base_pos_z", "dof_pos", "dof_vel",
                        "feet_contact_force", "last_action", "last_delta", "projected_gravity"),
}  # fmt: skip
"""Terms each layout's network reads. Only the newest is built; a model of an older layout reads its own terms out
of it (:func:`input_columns`), so ``delta_v1`` models (no ``last_action``) keep working."""
TERM_WIDTHS: dict[str, int | None] = {"applied_action": None, "base_ang_vel": 3, "base_lin_vel": 3, "base_pos_z": 1,
                                      "dof_pos": None, "dof_vel": None, "feet_contact_force": 6, "last_action": None,
                                      "last_delta": None, "projected_gravity": 3}  # fmt: skip
"""Width of each term (None: one column per joint)."""


def actor_terms(num_joints: int) -> list[tuple[str, int]]:
    """``(term, width)`` of the actor observation in order; total 5 J + 16 (131 for 23 joints)."""
    return [(t, num_joints if TERM_WIDTHS[t] is None else int(TERM_WIDTHS[t])) for t in OBS_VERSIONS[DELTA_OBS_VERSION]]


def actor_dim(num_joints: int) -> int:
    """Width of the actor observation."""
    return sum(d for _, d in actor_terms(num_joints))


def critic_dim(num_joints: int, num_bodies: int = 27) -> int:
    """Width of the critic observation (actor terms + two body-position blocks)."""
    return actor_dim(num_joints) + 2 * 3 * num_bodies


def term_slice(term: str, num_joints: int) -> slice:
    """Columns of ``term`` in the actor observation."""
    off = 0
    for name, d in actor_terms(num_joints):
        if name == term:
            return slice(off, off + d)
        off += d
    raise KeyError(f"delta observation has no term {term!r}")


OBS_SCOPES = ("full", "driven")
"""What the network of π^Δ reads from the actor observation: ``full`` every term above (the paper's π^Δ(s, a));
``driven`` only ``applied_action``, ``dof_pos``, ``dof_vel``, ``last_action`` and ``last_delta`` of the joints Δa
drives (5 x the driven joints' count: 20 for the ankles). An actuator gap is a function of each motor's own
targets, position and velocity (the oracle's closed form, :mod:`asap.delta.oracle`), so the narrow input cannot
latch onto how the logged policy moved its body (falling, leaning) and carries over to the states a fine-tuned
policy visits."""
DRIVEN_TERMS = ("applied_action", "dof_pos", "dof_vel", "last_action", "last_delta")
"""Terms a ``driven`` scope keeps, each at the driven joints' columns (those of its layout, in this order)."""


def input_columns(num_joints: int, scope: str, joint_index: torch.Tensor,
                  version: str = DELTA_OBS_VERSION) -> torch.Tensor:  # fmt: skip
    """(D,) long: the columns of the (N, :func:`actor_dim`) actor observation that the network of a model with
    ``scope`` and observation layout ``version`` reads.

    ``joint_index``: (K,) positions of the driven joints among the J policy joints. Raises ``ValueError`` (one
    line) for a scope not in :data:`OBS_SCOPES` or a layout not in :data:`OBS_VERSIONS`.
    """
    if version not in OBS_VERSIONS:
        raise ValueError(f"unknown delta observation layout {version!r} (this asap reads {list(OBS_VERSIONS)}): "
                         "retrain the model with `asap train-delta`")  # fmt: skip
    terms = OBS_VERSIONS[version]
    if scope == "full":
        return torch.cat([torch.arange(sl.start, sl.stop) for sl in (term_slice(t, num_joints) for t in terms)])
    if scope == "driven":
        idx = joint_index.to(torch.long).cpu()
        return torch.cat([term_slice(t, num_joints).start + idx for t in DRIVEN_TERMS if t in terms])
    raise ValueError(f"unknown delta observation scope {scope!r}: use one of {list(OBS_SCOPES)}")


def actor_obs(
    root_pos: torch.Tensor, root_quat: torch.Tensor, root_lin_vel: torch.Tensor, root_ang_vel: torch.Tensor,
    q: torch.Tensor, qd: torch.Tensor, feet_force: torch.Tensor, default_pos: torch.Tensor,
    applied_action: torch.Tensor, last_action: torch.Tensor, last_delta: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """(N, 5J+16) actor observation from world-frame simulator state (see module table).

    ``root_*``: (N,3) / (N,4) wxyz / (N,3) / (N,3) world frame; ``q``, ``qd`` (N,J); ``feet_force`` (N,2,3);
    ``default_pos`` (J,); ``applied_action`` (N,J) the action applied during this step; ``last_action`` (N,J) the
    action applied during the step before; ``last_delta`` (N,J).
    """
    n = q.shape[0]
    parts = {
        "applied_action": applied_action,
        "base_ang_vel": world_to_base(root_quat, root_ang_vel),
        "base_lin_vel": world_to_base(root_quat, root_lin_vel),
        "base_pos_z": root_pos[:, 2:3],
        "dof_pos": q - default_pos,
        "dof_vel": qd,
        "feet_contact_force": feet_force.reshape(n, 6) * FEET_FORCE_SCALE,
        "last_action": last_action,
        "last_delta": last_delta,
        "projected_gravity": projected_gravity(root_quat),
    }
    return torch.cat([parts[name] for name, _ in actor_terms(q.shape[1])], dim=-1)


def critic_obs(
    actor: torch.Tensor, root_pos: torch.Tensor, root_quat: torch.Tensor, body_pos: torch.Tensor,
    ref_body_pos: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """(N, 5J+16+162) critic observation: the actor's plus the bodies against the logged bodies ``ref_body_pos``."""
    p = privileged_terms(root_pos, root_quat, body_pos, ref_body_pos)
    return torch.cat([actor, p["dif_local_rigid_body_pos"], p["local_ref_rigid_body_pos"]], dim=-1)
