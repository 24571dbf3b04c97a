"""Simulator protocol and backends (MuJoCo on CPU by default; Genesis optional)."""

from asap.sim.base import (
    BACKEND_PACKAGES,
    BACKENDS,
    DYNAMICS_BODIES,
    ROOT_STATE_DIM,
    BodyState,
    DynamicsParams,
    SimConfig,
    Simulator,
    SimulatorUnavailable,
    as_env_ids,
    available_backends,
    make_simulator,
)

__all__ = [
    "BACKEND_PACKAGES",
    "BACKENDS",
    "DYNAMICS_BODIES",
    "ROOT_STATE_DIM",
    "BodyState",
    "DynamicsParams",
    "SimConfig",
    "Simulator",
    "SimulatorUnavailable",
    "as_env_ids",
    "available_backends",
    "make_simulator",
]
