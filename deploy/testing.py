"""Small ONNX policies with a valid contract, for tests and benchmarks before a trained policy exists.

:func:`make_policy` exports a random torch MLP (obs_dim -> J) with the contract metadata; ``fault`` makes its
output go bad once the phase (the last observation entry of asap_v1) passes ``fault_phase``: ``"nan"`` (NaN
actions) or ``"huge"`` (actions of 60, i.e. targets ~15 rad away: beyond the joint limits).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from asap.obs import ObsBuilder, get_layout
from asap.robot.spec import get_spec
from deploy.contract import PolicyContract, write_metadata


def test_contract(variant: str = "g1_23dof", motion_length_s: float = 2.0, motion_name: str = "test_motion",
                  layout: str = "asap_v1") -> PolicyContract:  # fmt: skip
    """A contract with the spec's numbers for ``variant``."""
    rs = get_spec(variant)
    lay = get_layout(layout)
    dim = ObsBuilder(lay, num_joints=rs.num_joints, groups=("actor",)).dim("actor")
    return PolicyContract(
        joint_names=rs.joint_names, default_joint_pos=rs.default_pos, kp=rs.kp, kd=rs.kd,
        action_scale=rs.action_scale, obs_layout=lay.name, obs_dim=dim, history_length=lay.history_length,
        control_dt=rs.control_dt, motion_name=motion_name, motion_length_s=motion_length_s, robot_variant=rs.name,
    )  # fmt: skip


test_contract.__test__ = False  # not a pytest test

FIRST_TEST_DOMAIN = 2
"""Lowest DDS domain id handed to tests (0: the real robot, 1: the virtual G1's default)."""
LAST_TEST_DOMAIN = 232
"""Highest DDS domain id Cyclone accepts with its default port mapping (7400 + 250 * domain stays < 65536)."""
_SPAN = LAST_TEST_DOMAIN - FIRST_TEST_DOMAIN + 1
_DOMAIN_COUNTER = itertools.count()
_DOMAIN_START = os.getpid() * 37 % _SPAN


def next_test_domain() -> int:
    """A DDS domain id no earlier call in this process returned (for up to 231 calls), in 2..232.

    Every test module takes its domains here: one process keeps one participant per domain id for its lifetime
    (:func:`deploy.dds.participant`), so two tests on the same id would share a participant and each other's
    leftover readers and writers. Concurrent processes start at pid-dependent offsets, so they rarely meet.
    """
    n = next(_DOMAIN_COUNTER)
    if n >= _SPAN:
        raise RuntimeError(f"this process used all {_SPAN} test DDS domain ids; run the DDS tests in fewer processes")
    return FIRST_TEST_DOMAIN + (_DOMAIN_START + n) % _SPAN


def make_policy(
    path: str | Path, contract: PolicyContract | None = None, hidden: tuple[int, ...] = (64, 64),
    out_scale: float = 0.05, seed: int = 0, fault: str | None = None, fault_phase: float = 0.3,
) -> Path:  # fmt: skip
    """Export a random MLP policy with ``contract``'s metadata to ``path`` (see module docstring)."""
    import torch

    c = contract or test_contract()
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    width = c.obs_dim
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ELU()]
        width = h
    layers.append(torch.nn.Linear(width, c.num_joints))
    mlp = torch.nn.Sequential(*layers)
    with torch.no_grad():
        mlp[-1].weight.mul_(out_scale)
        mlp[-1].bias.zero_()

    class Policy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = mlp

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            a = self.mlp(obs)
            if fault is None:
                return a
            bad = obs[:, -1:] > fault_phase
            value = torch.full_like(a, float("nan") if fault == "nan" else 60.0)
            return torch.where(bad, value, a)

    if fault not in (None, "nan", "huge"):
        raise ValueError(f"fault must be None, 'nan' or 'huge', not {fault!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = Policy().eval()
    x = torch.zeros(1, c.obs_dim)
    torch.onnx.export(model, (x,), str(path), input_names=["actor_obs"], output_names=["action"],
                      dynamic_axes={"actor_obs": {0: "batch"}, "action": {0: "batch"}}, opset_version=17,
                      dynamo=False)  # fmt: skip
    write_metadata(path, c.to_metadata())
    return path


def reference_actions(path: str | Path, obs: np.ndarray) -> np.ndarray:
    """Run an exported policy on a batch of observations (for checks)."""
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: obs.astype(np.float32)})[0]
