"""Where a logged episode's root (pelvis pose and velocity) came from, and what it can be trusted for.

The one table of the project: the log conversion (:func:`deploy.logger.log_to_motions`) names the source in
``Motion.meta["root_source"]``; the delta training (:mod:`envs.delta.env`) weights its reward terms by what that
source can be trusted for. Pure Python, importable on the robot.

Quantities:

- ``orientation``: the root's orientation and angular velocity (every source has an IMU or better);
- ``joints``: joint positions and velocities (the encoders; every source);
- ``relative_position``: body positions relative to the root (forward kinematics of trusted joints and orientation);
- ``linear_velocity``: the root's linear velocity in the world;
- ``global_position``: the root's position in the world (and with it every body's).
"""

from __future__ import annotations

QUANTITIES = ("orientation", "joints", "relative_position", "linear_velocity", "global_position")
"""What a root source may be trusted for (see the module docstring)."""

_ALWAYS = frozenset({"orientation", "joints", "relative_position"})

ROOT_TRUST: dict[str, frozenset[str]] = {
    "simulator": _ALWAYS | {"linear_velocity", "global_position"},  # the virtual G1's ground truth (older logs)
    "odometry": _ALWAYS | {"linear_velocity", "global_position"},  # nav_msgs/Odometry streamed during the run
    "mocap": _ALWAYS | {"linear_velocity", "global_position"},  # a recorded mocap file attached to the log
    # leg kinematics + IMU (deploy.root_estimate): its velocity errs by ~0.2 m/s RMS on the demo's falling episodes,
    # and trusting it measured worse there (held-out 1 s E_g-mpjpe on ground-truth logs 38.0 mm against 33.2 mm)
    "estimate": _ALWAYS,
    "imu_only": _ALWAYS,  # IMU orientation at a placeholder height (logs converted before the estimate existed)
}
"""Root source -> the quantities it can be trusted for."""

DEFAULT_SOURCE = "simulator"
"""The source assumed for a Motion without ``meta["root_source"]`` (simulator rollouts, e.g. `asap play`)."""


def trusted(source: str | None, quantity: str) -> bool:
    """Whether a root from ``source`` (None: :data:`DEFAULT_SOURCE`) can be trusted for ``quantity``.

    Raises ``ValueError`` for an unknown source or quantity.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; known: {list(QUANTITIES)}")
    s = DEFAULT_SOURCE if source is None else str(source)
    if s not in ROOT_TRUST:
        raise ValueError(f"unknown root source {s!r} in a Motion's meta; known: {sorted(ROOT_TRUST)}")
    return quantity in ROOT_TRUST[s]
