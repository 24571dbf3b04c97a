"""Failure-adaptive start sampling (BeyondMimic-style bins)."""

from __future__ import annotations

import torch

from envs.tracking.config import SamplingConfig
from envs.tracking.sampling import StartSampler


def _sampler(**kw) -> StartSampler:
    g = torch.Generator().manual_seed(0)
    return StartSampler(torch.tensor([2.0, 1.2]), SamplingConfig(bin_s=0.5, **kw), g)


def test_bins_and_uniform_before_failures():
    s = _sampler()
    assert s.num_bins.tolist() == [4, 3]
    p = s.probabilities()
    # uniform over motions, then over each motion's bins
    assert torch.allclose(p[0, :4], torch.full((4,), 0.125))
    assert torch.allclose(p[1, :3], torch.full((3,), 1 / 6))
    assert p[1, 3] == 0
    ids, t = s.sample(2000)
    assert set(ids.tolist()) == {0, 1}
    assert bool((t <= s.lengths[ids]).all()) and bool((t >= 0).all())


def test_failures_shift_starts_before_the_failure():
    s = _sampler(uniform_ratio=0.0, kernel_size=2, kernel_decay=0.5, ema=1.0)
    s.record_failures(torch.tensor([0, 0]), torch.tensor([1.7, 1.6]))  # bin 3 of motion 0
    s.commit()
    w = s.weights()
    assert w[0].tolist() == [0.0, 0.0, 1.0, 2.0]  # bin 3 gets 2, bin 2 gets 0.5 * 2
    p = s.probabilities()
    assert torch.isclose(p.sum(), torch.tensor(1.0))
    ids, t = s.sample(500)
    assert bool((ids == 0).all()) and bool((t >= 1.0).all())


def test_non_adaptive_and_fixed_start():
    s = _sampler(adaptive=False)
    s.record_failures(torch.tensor([0]), torch.tensor([0.1]))
    s.commit()
    assert torch.allclose(s.probabilities()[0, :4], torch.full((4,), 0.125))
    ids, t = s.sample(10, random_start=False)
    assert bool((t == 0).all())
