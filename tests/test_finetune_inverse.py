"""The inverse of π^Δ (asap.delta.inverse): the inverse targets make the aligned simulator apply the wanted ones, so
it then moves as the plain simulator does under the wanted targets (`asap finetune method=inverse` end to end:
tests/test_finetune.py)."""

from __future__ import annotations

import pytest
import torch

from asap.delta.aligned import AlignedSimulator
from asap.delta.inverse import inverse_targets, residual_warning
from asap.delta.oracle import OracleDelta
from asap.sim.base import SimConfig, make_simulator
from tests.test_delta_core import ANKLE_WEAK, _targets  # the gap and target sequence of the oracle's tests


def test_inverse_targets_solve_the_aligned_step_and_reproduce_the_plain_simulator():
    """With the exact Δa of ankle Kp x0.65: the inverse targets converge to q' with q' + s Δa(q') = wanted (ankles only
    changed), and the aligned simulator stepped with them follows the plain simulator stepped with the wanted targets,
    where the aligned simulator stepped with the wanted targets themselves (the weak ankles) departs from it."""
    n = 2
    plain = make_simulator(SimConfig(num_envs=n, threads=1))
    oracle = OracleDelta(ANKLE_WEAK, joints="ankles")
    inverted = AlignedSimulator(make_simulator(SimConfig(num_envs=n, threads=1)), oracle)
    weak = AlignedSimulator(make_simulator(SimConfig(num_envs=n, threads=1)), oracle)
    spec = plain.spec
    ank = torch.tensor(["ankle" in name for name in spec.joint_names])
    for s in (plain, inverted, weak):
        s.reset()
    residual = {1: [], 8: []}
    err_inverted, err_weak = [], []
    changed = False
    for k in range(40):
        want = _targets(spec, k, n)
        for it in residual:
            q = inverse_targets(inverted, want, it)
            applied = q + inverted.meta.delta_scale * inverted.delta_for(q)[1]
            residual[it].append(float((applied - want).abs().max()))
        q = inverse_targets(inverted, want, 8)
        assert torch.equal(q[:, ~ank], want[:, ~ank])  # Δa acts on the ankles only
        changed = changed or not torch.equal(q[:, ank], want[:, ank])
        plain.step(targets=want)
        inverted.step(targets=q)
        weak.step(targets=want)
        qp = plain.get_joint_state()[0]
        err_inverted.append(float((inverted.get_joint_state()[0] - qp).abs().max()))
        err_weak.append(float((weak.get_joint_state()[0] - qp).abs().max()))
    # the fixed point converges (a contraction of 0.35 per iteration)
    assert changed and max(residual[8]) < 1e-3 < max(residual[1])
    print(
        f"inverse residual (1 / 8 iterations) {max(residual[1]):.1e} / {max(residual[8]):.1e} rad; off the "
        f"plain simulator: inverted {max(err_inverted):.1e}, weak {max(err_weak):.1e} rad"
    )
    assert max(err_weak) > 1e-2, "the weak ankles should move the robot measurably off the plain simulator"
    assert max(err_inverted) < 0.05 * max(err_weak), (max(err_inverted), max(err_weak))
    for s in (plain, inverted, weak):
        s.close()


def test_inverse_targets_refuse_zero_iterations():
    sim = AlignedSimulator(make_simulator(SimConfig(num_envs=1, threads=1)), OracleDelta(ANKLE_WEAK, joints="ankles"))
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        inverse_targets(sim, torch.zeros(1, 23), 0)
    sim.close()


def test_a_large_inverse_residual_is_reported_in_one_line():
    assert residual_warning(0.02, 2) is None
    msg = residual_warning(0.38, 2)
    assert msg is not None and "\n" not in msg and "0.38 rad after 2 iteration(s)" in msg and "sens" in msg
