"""Failure-adaptive sampling of (motion, start time) pairs, after BeyondMimic's bin scheme.

Each clip is cut into bins of ``bin_s`` seconds. Episodes that terminate (not time out) add a failure count to the
bin where they failed; every ``commit`` the counts enter a per-bin exponential average. A new start is drawn
either uniformly (share ``uniform_ratio``: a uniform clip, then a uniform time in it) or from the failure weights
spread over the ``kernel_size`` bins at and before each failure (geometric decay), so the robot restarts shortly
before the places where it falls.
"""

from __future__ import annotations

import math

import torch

from envs.tracking.config import SamplingConfig


class StartSampler:
    """Draws motion ids and start times for resetting envs; see module docstring."""

    def __init__(self, lengths: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> None:
        self.cfg = cfg
        self.lengths = lengths.detach().float().cpu()
        self.gen = generator
        self.num_motions = int(self.lengths.shape[0])
        nb = torch.clamp(torch.ceil(self.lengths / cfg.bin_s - 1e-6), min=1).long()
        self.num_bins = nb
        """(M,) bins per clip."""
        self.max_bins = int(nb.max())
        self.mask = torch.arange(self.max_bins)[None, :] < nb[:, None]
        """(M, Bmax) valid bins."""
        self.failures = torch.zeros(self.num_motions, self.max_bins)
        """(M, Bmax) exponential average of failures per bin per commit."""
        self._pending = torch.zeros(self.num_motions, self.max_bins)
        self._probs: tuple[tuple, torch.Tensor] | None = None

    def bin_of(self, motion_ids: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Bin index of each (motion, time)."""
        b = torch.floor(times.float().cpu() / self.cfg.bin_s).long()
        return torch.minimum(b.clamp(min=0), self.num_bins[motion_ids.cpu()] - 1)

    def record_failures(self, motion_ids: torch.Tensor, times: torch.Tensor) -> None:
        """Count failures of the given clips at the given motion times (s)."""
        if motion_ids.numel() == 0:
            return
        ids = motion_ids.cpu()
        flat = ids * self.max_bins + self.bin_of(ids, times)
        self._pending.view(-1).index_add_(0, flat, torch.ones(flat.shape[0]))

    def commit(self) -> None:
        """Fold the pending counts into the exponential average."""
        a = self.cfg.ema
        self.failures.mul_(1 - a).add_(a * self._pending)
        self._pending.zero_()

    def weights(self) -> torch.Tensor:
        """(M, Bmax) failure-driven start weights (zero on invalid bins; all zero before any failure)."""
        k = max(1, int(self.cfg.kernel_size))
        w = torch.zeros_like(self.failures)
        for i in range(k):
            # a failure in bin b also weights bin b - i
            shifted = torch.zeros_like(self.failures)
            if i == 0:
                shifted = self.failures.clone()
            else:
                shifted[:, :-i] = self.failures[:, i:]
            w += (self.cfg.kernel_decay**i) * shifted
        return w * self.mask

    def probabilities(self) -> torch.Tensor:
        """(M, Bmax) probability of starting in each bin (uniform part + failure part).

        Recomputed only when :attr:`failures` changed (any in-place write bumps its version counter: a commit, a
        checkpoint restore); the returned tensor must not be modified."""
        c = self.cfg
        key = (id(self.failures), self.failures._version, c.adaptive, c.uniform_ratio, c.kernel_size, c.kernel_decay)
        if self._probs is None or self._probs[0] != key:
            self._probs = (key, self._probabilities())
        return self._probs[1]

    def _probabilities(self) -> torch.Tensor:
        share = self.num_bins.float()[:, None].reciprocal() * self.mask / self.num_motions
        if not self.cfg.adaptive:
            return share
        w = self.weights()
        total = float(w.sum())
        if total <= 0:
            return share
        u = self.cfg.uniform_ratio
        return u * share + (1 - u) * w / total

    def sample(self, n: int, random_start: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` (motion id, start time) pairs (CPU tensors); time 0 when not ``random_start``."""
        if not random_start:
            ids = torch.randint(0, self.num_motions, (n,), generator=self.gen)
            return ids, torch.zeros(n)
        p = self.probabilities().reshape(-1)
        flat = torch.multinomial(p, n, replacement=True, generator=self.gen)
        ids = flat // self.max_bins
        b = flat % self.max_bins
        u = torch.rand(n, generator=self.gen)
        t = (b.float() + u) * self.cfg.bin_s
        return ids, torch.minimum(t, self.lengths[ids])

    def summary(self) -> dict[str, float]:
        """Scalars for logging: entropy of the start distribution relative to uniform, max bin probability."""
        p = self.probabilities()[self.mask]
        p = p / p.sum()
        ent = float(-(p * torch.log(p.clamp(min=1e-12))).sum())
        return {"start_entropy": ent / max(math.log(p.numel()), 1e-12) if p.numel() > 1 else 1.0,
                "start_pmax": float(p.max())}  # fmt: skip
