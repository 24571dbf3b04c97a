"""The G1 as Genesis loads it: one preparation for the Genesis simulator backend and the virtual G1's Genesis engine.

The robot is an ``MjSpec`` from :func:`asap.robot.model.build_spec` (with whatever edits the caller made: torque
actuators, a reality gap's added mass...), without a floor. Genesis only simulates here, so geoms that take part in
no collision and every mesh are removed; the rest goes to Genesis as MJCF text, on a Genesis ground plane. The
physics step and integrator are the spec's own (``option.timestep``, ``option.integrator``), so both users step
the same model the MuJoCo side compiles. The compiled MuJoCo "twin" of that text is returned for facts Genesis
does not expose the same way (standing height, nominal joint damping, total mass).

NumPy and MuJoCo only at import time (``deploy`` imports this module); ``genesis`` (which brings torch) is imported
by :func:`import_genesis` when a scene is built. Importing genesis takes ~20 s; the first scene build compiles
kernels (~2-3 min on 2 CPU cores, cached in ``~/.cache/genesis`` and ``~/.cache/quadrants``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mujoco

AVAILABLE = importlib.util.find_spec("genesis") is not None
"""Whether ``genesis-world`` is installed (checked without importing it)."""

INSTALL_HINT = "pip install 'asap-g1[genesis]' (genesis-world==1.4.5)"
"""How a user gets Genesis (for the callers' one-line errors)."""

_INTEGRATORS = {
    int(mujoco.mjtIntegrator.mjINT_EULER): "Euler",
    int(mujoco.mjtIntegrator.mjINT_IMPLICITFAST): "implicitfast",
}
"""MuJoCo integrator -> Genesis integrator name; any other (rk4, implicit) runs as implicitfast."""


def flushes_denormals() -> bool:
    """Whether this thread's floating-point unit flushes float32 denormals to zero (the x86 FTZ/DAZ flags)."""
    import torch

    return bool(torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0)


@contextlib.contextmanager
def keep_denormal_mode() -> Iterator[None]:
    """Restore the calling thread's denormal mode on exit: Genesis' initialisation and first scene build switch
    flush-to-zero on for the process's main thread and leave it on, which changes the last bits of every later
    float computation there (torch, NumPy and MuJoCo threads started afterwards), so that the same rollout gave
    other numbers in a process that had built a Genesis scene before."""
    import torch

    before = flushes_denormals()
    try:
        yield
    finally:
        if flushes_denormals() != before:
            torch.set_flush_denormal(before)


def import_genesis(backend: str = "cpu") -> Any:
    """Import genesis and run ``gs.init`` once per process (``backend``: 'cpu', 'gpu', 'cuda', 'vulkan', 'metal').

    The caller checks :data:`AVAILABLE` first and raises its own error; a second call with another backend keeps
    the first one (Genesis initialises once per process).
    """
    import genesis as gs

    if not getattr(gs, "_initialized", False):
        with keep_denormal_mode():
            gs.init(backend=getattr(gs, backend), logging_level="warning", precision="32")
    return gs


def genesis_mjcf(spec: mujoco.MjSpec) -> tuple[str, mujoco.MjModel]:
    """MJCF text of ``spec`` for Genesis (collision geoms only, no meshes) and its compiled MuJoCo twin.

    Edits ``spec`` in place. The spec must have no floor (Genesis adds its own plane).
    """
    for geom in list(spec.geoms):
        if geom.contype == 0 and geom.conaffinity == 0:
            spec.delete(geom)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    twin = spec.compile()
    return spec.to_xml(), twin


@dataclass
class GenesisScene:
    """A built Genesis scene holding one G1 (see :func:`build_genesis_scene`)."""

    scene: Any
    """The ``gs.Scene`` (built)."""
    robot: Any
    """The G1 entity."""
    plane: Any
    """The ground plane entity (None without a floor)."""
    twin: mujoco.MjModel
    """The compiled MuJoCo model of the same MJCF text."""
    dt: float
    """Physics step (s), the spec's ``option.timestep``."""


def build_genesis_scene(
    gs: Any,
    spec: mujoco.MjSpec,
    *,
    n_envs: int | None = None,
    self_collision: bool = True,
    floor_friction: float | None = 1.0,
    batched_params: bool = False,
) -> GenesisScene:
    """Build a Genesis scene of the G1 in ``spec`` (no floor in it; edited in place, see :func:`genesis_mjcf`).

    ``n_envs``: parallel envs (None: one un-batched env). ``floor_friction``: a ground plane with this friction
    (None: no floor). ``batched_params``: per-env dof and link parameters (for per-env dynamics). One substep per
    ``dt``, the spec's integrator (Euler or implicitfast).
    """
    xml, twin = genesis_mjcf(spec)
    dt = float(twin.opt.timestep)
    integrator = getattr(gs.integrator, _INTEGRATORS.get(int(twin.opt.integrator), "implicitfast"))
    scene = gs.Scene(
        sim_options=gs.options.SimOptions(dt=dt, substeps=1),
        rigid_options=gs.options.RigidOptions(
            integrator=integrator,
            enable_self_collision=self_collision,
            batch_dofs_info=batched_params,
            batch_links_info=batched_params,
        ),
        show_viewer=False,
    )
    plane = scene.add_entity(gs.morphs.Plane()) if floor_friction is not None else None
    robot = scene.add_entity(gs.morphs.MJCF(file=xml))
    print(f"[genesis] building the scene ({n_envs or 1} env(s)); a fresh kernel cache compiles first: 1-2 min on a CPU",
          file=sys.stderr, flush=True)  # fmt: skip
    with keep_denormal_mode():
        if n_envs is None:
            scene.build()
        else:
            scene.build(n_envs=n_envs)
    if plane is not None:
        plane.set_friction(float(floor_friction))
    return GenesisScene(scene=scene, robot=robot, plane=plane, twin=twin, dt=dt)
