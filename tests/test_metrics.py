"""Tracking metrics on hand-computed trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from asap.eval.metrics import mean_metrics, tracking_metrics


def test_metrics_hand_computed():
    t = np.arange(10, dtype=float)
    ref = np.zeros((10, 3, 3))
    ref[:, :, 0] = t[:, None] * 0.01  # everything moves 1 cm per frame in x
    sim = ref.copy()
    sim[:, :, 2] += 0.02  # a constant 2 cm offset of the whole body: global error only
    m = tracking_metrics(sim, ref)
    assert m.E_g_mpjpe == pytest.approx(20.0) and m.E_mpjpe == pytest.approx(0.0, abs=1e-9)
    assert m.E_vel == pytest.approx(0.0, abs=1e-9) and m.E_acc == pytest.approx(0.0, abs=1e-9) and m.success
    sim2 = ref.copy()
    sim2[:, 1, 1] += 0.004 * t  # body 1 drifts 4 mm per frame in y
    m2 = tracking_metrics(sim2, ref)
    assert m2.E_vel == pytest.approx(4.0 / 3)  # one of three bodies off by 4 mm/frame
    assert m2.E_acc == pytest.approx(0.0, abs=1e-9)
    assert m2.E_mpjpe == pytest.approx(1000 * np.mean(0.004 * t) / 3)


def test_failure_and_errors():
    ref = np.zeros((5, 2, 3))
    sim = ref.copy()
    sim[3:, :, 0] = 0.6
    m = tracking_metrics(sim, ref)
    assert not m.success
    agg = mean_metrics([m, tracking_metrics(ref, ref)])
    assert agg["success_rate"] == 0.5
    with pytest.raises(ValueError, match="both"):
        tracking_metrics(np.zeros((5, 2, 3)), np.zeros((5, 3, 3)))
    with pytest.raises(ValueError, match="at least 3"):
        tracking_metrics(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))
