"""One state read per control step for the task envs: the backend's fused read when it has one."""

from __future__ import annotations

from asap.sim.base import Simulator
from asap.sim.state import SimState, read_state


def has_fused_read(sim: Simulator) -> bool:
    """True when ``sim``'s own class defines ``read_state()`` (one pass over the batch, e.g. the MuJoCo backend).

    Checked on the class, not the instance, so a wrapper that forwards unknown attributes to an inner simulator
    (and may override its ``get_*`` reads) keeps the protocol path."""
    return callable(getattr(type(sim), "read_state", None))


def read_sim_state(sim: Simulator, fused: bool) -> SimState:
    """:func:`asap.sim.state.read_state` of ``sim``, through the backend's fused read when ``fused``."""
    return sim.read_state() if fused else read_state(sim)  # type: ignore[attr-defined]
