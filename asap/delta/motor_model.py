"""A motor-local π^Δ network: every driven motor's Δa from that motor's own signals only.

An actuator gap (weaker Kp, a torque scale, friction in one joint) acts motor by motor: the oracle of such a gap
(:mod:`asap.delta.oracle`) computes each joint's Δa from that joint's target, position and velocity. A network that
sees the whole state can also fit the logs through correlations between motors that hold only for the logged
policy (when the left ankle does this, the right one does that), and those do not carry over to the states a
fine-tuned policy visits. :class:`MotorLocalModel` rules them out by construction: one small MLP, shared by the
K driven motors, maps (motor's applied action, position, velocity, last Δa, one-hot of the motor) to that motor's
Δa. It reads the ``driven`` observation scope (:data:`asap.delta.obs.OBS_SCOPES`): columns laid out term by term,
K columns per term (``applied_action`` of every driven motor, then ``dof_pos`` ..., :data:`asap.delta.obs.
DRIVEN_TERMS`).

It is an rsl-rl ``MLPModel`` whose ``mlp`` is replaced, so PPO, the observation normaliser, the Gaussian head,
checkpoints and the ONNX/frozen export work unchanged (``class_name`` :data:`MOTOR_LOCAL_CLASS`).
"""

from __future__ import annotations

import torch
from rsl_rl.models import MLPModel
from rsl_rl.modules import MLP
from tensordict import TensorDict
from torch import nn

MOTOR_LOCAL_CLASS = "asap.delta.motor_model:MotorLocalModel"
"""rsl-rl ``class_name`` of the motor-local actor (stored in ``delta.pt``'s ``actor_cfg``)."""


class PerMotorMLP(nn.Module):
    """(N, F K) term-major features of K motors -> (N, K): one MLP shared by the motors, applied to each motor's
    F features plus its one-hot (input F + K, output 1)."""

    def __init__(self, num_motors: int, features: int, hidden_dims: list[int] | tuple[int, ...], activation: str):
        super().__init__()
        self.num_motors = int(num_motors)
        self.features = int(features)
        self.shared = MLP(self.features + self.num_motors, 1, list(hidden_dims), activation)
        self.register_buffer("one_hot", torch.eye(self.num_motors), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        per_motor = x.reshape(n, self.features, self.num_motors).transpose(1, 2)  # (N, K, F)
        ids = self.one_hot.to(x.dtype).expand(n, -1, -1)  # (N, K, K)
        return self.shared(torch.cat([per_motor, ids], dim=-1)).squeeze(-1)


class MotorLocalModel(MLPModel):
    """rsl-rl model (actor) with a :class:`PerMotorMLP` in place of the plain MLP.

    Raises ``ValueError`` when the observation width is not a whole number of features per output motor (use the
    ``driven`` observation scope).
    """

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        hidden_dims: tuple[int, ...] | list[int] = (64, 64),
        activation: str = "elu",
        obs_normalization: bool = False,
        distribution_cfg: dict | None = None,
    ) -> None:
        super().__init__(obs, obs_groups, obs_set, output_dim, hidden_dims, activation, obs_normalization,
                         distribution_cfg)  # fmt: skip
        out = self.distribution.input_dim if self.distribution is not None else output_dim
        if out != output_dim or self.obs_dim % output_dim:
            raise ValueError(f"a motor-local delta model needs {output_dim} motors x features inputs and one output "
                             f"per motor, got {self.obs_dim} inputs: train it with env.obs_scope=driven")  # fmt: skip
        self.mlp = PerMotorMLP(output_dim, self.obs_dim // output_dim, hidden_dims, activation)
