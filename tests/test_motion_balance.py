"""The balance figures of a clip: the point-mass zero-moment point and its distance outside the feet."""

from __future__ import annotations

import numpy as np
import pytest

from asap.motion.ops import GRAVITY, _outside_hull, _zero_moment_point


def test_zero_moment_point_of_a_swaying_centre_of_mass():
    """c_y = A sin(wt) at height h over the floor: zmp_y = c_y + h w² A sin(wt) / g (the point-mass model)."""
    fps, a, w, h = 200.0, 0.05, 2 * np.pi * 0.5, 0.7
    t = np.arange(800) / fps
    com = np.stack([0 * t, a * np.sin(w * t), h + 0 * t], -1)
    zmp = _zero_moment_point(com, np.zeros_like(t), fps)
    mid = slice(100, 700)  # away from the ends, where the smoothing holds the path still
    expect = a * np.sin(w * t) * (1 + h * w**2 / GRAVITY)
    # the 0.04-s smoothing damps a 0.5-Hz sway by 0.8% (exp(-w²σ²/2))
    assert np.abs(zmp[mid, 1] - expect[mid]).max() < 1e-3 and np.abs(zmp[:, 0]).max() == 0.0


def test_zero_moment_point_is_undefined_in_flight():
    fps = 50.0
    t = np.arange(50) / fps
    z = 0.7 + 2.0 * t - 0.5 * GRAVITY * t**2  # ballistic: the vertical acceleration is -g
    zmp = _zero_moment_point(np.stack([0 * t, 0 * t, z], -1), np.zeros_like(t), fps)
    assert np.isnan(zmp[10:40]).all()


@pytest.mark.parametrize(("p", "expect"), [((0.0, 0.0), 0.0), ((0.15, 0.0), 0.05), ((0.0, -0.3), 0.25),
                                           ((0.1, 0.05), 0.0)])  # fmt: skip
def test_distance_outside_the_support_polygon(p, expect):
    sole = np.array([[-0.1, -0.05], [-0.1, 0.05], [0.1, 0.05], [0.1, -0.05]])
    assert _outside_hull(sole, np.array(p)) == pytest.approx(expect, abs=1e-12)
