"""Shared fixtures: robot models and paths to the optional real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_CASES = SHARED_DATA.parent / "cases"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test when it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_cases() -> Path:
    """../shared/cases (other tools' files with known right answers), or skip the test when it is absent."""
    if not SHARED_CASES.exists():
        pytest.skip("../shared/cases not present")
    return SHARED_CASES


@pytest.fixture(scope="session")
def g1_model():
    """Compiled 23-DoF G1 model (position actuators, floor)."""
    from asap.robot.model import build_model

    return build_model("g1_23dof")
