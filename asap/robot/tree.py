"""The G1's kinematic tree read from its MJCF with the standard library, and NumPy forward kinematics over it.

For the onboard side, which has neither torch nor MuJoCo (:mod:`asap.robot.kinematics` needs both): the root
estimate of :mod:`deploy.root_estimate` runs FK of the legs on the robot computer. The tree is read from the same
MJCF the simulator compiles (:func:`asap.robot.assets.g1_mjcf_path`), so both agree (``tests/test_root_estimate.py``
checks every body against :class:`asap.robot.kinematics.G1Kinematics`).

Supported MJCF subset: bodies with ``pos`` and ``quat`` (no ``euler``/``axisangle``), hinge joints with ``axis``
(default ``0 0 1``) and ``pos``, capsule/sphere collision geoms given by ``fromto`` or ``pos`` with ``size`` (the
radius, possibly from a default class). Anything else raises ``ValueError`` naming the element.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from asap.utils.rotations import quat_from_axis_angle, quat_mul, quat_rotate


@dataclass(frozen=True)
class TreeBody:
    """One body of the tree, relative to its parent."""

    name: str
    parent: int
    """Index of the parent body in :attr:`KinematicTree.bodies` (-1: the floating base)."""
    pos: np.ndarray
    """(3,) offset in the parent frame (m)."""
    quat: np.ndarray
    """(4,) wxyz rotation relative to the parent."""
    joint: str | None
    """Name of the hinge that moves it (None: welded)."""
    axis: np.ndarray
    """(3,) hinge axis in the body frame."""
    anchor: np.ndarray
    """(3,) hinge position in the body frame."""
    points: np.ndarray
    """(P, 4) collision points in the body frame: x, y, z (m) and radius (m) -- capsule ends, sphere centres."""


class KinematicTree:
    """Bodies of an MJCF below its floating base, in document (depth-first) order, with NumPy FK."""

    def __init__(self, bodies: list[TreeBody]) -> None:
        self.bodies = bodies
        self.names = tuple(b.name for b in bodies)
        self.index = {n: i for i, n in enumerate(self.names)}

    def chain(self, body: str) -> list[int]:
        """Indices from the base to ``body`` (inclusive)."""
        if body not in self.index:
            raise KeyError(f"no body {body!r} in the tree; bodies: {list(self.names)}")
        out = [self.index[body]]
        while self.bodies[out[-1]].parent >= 0:
            out.append(self.bodies[out[-1]].parent)
        return out[::-1]

    def forward(
        self, root_pos: np.ndarray, root_quat: np.ndarray, joints: dict[str, np.ndarray], bodies: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """World positions (..., B, 3) and orientations (..., B, 4) wxyz of ``bodies``.

        ``root_pos`` (..., 3), ``root_quat`` (..., 4) wxyz: the floating base; ``joints`` name -> angles (...,) rad
        (a hinge missing from it stays at 0).
        """
        root_pos = np.asarray(root_pos, dtype=np.float64)
        root_quat = np.asarray(root_quat, dtype=np.float64)
        cache_: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def pose(i: int) -> tuple[np.ndarray, np.ndarray]:
            if i in cache_:
                return cache_[i]
            b = self.bodies[i]
            if b.parent < 0:
                pp, pq = root_pos, root_quat
            else:
                pp, pq = pose(b.parent)
            p = pp + quat_rotate(pq, np.broadcast_to(b.pos, pp.shape))
            q = quat_mul(pq, np.broadcast_to(b.quat, pq.shape))
            if b.joint is not None and b.joint in joints:
                ang = np.asarray(joints[b.joint], dtype=np.float64)
                rot = quat_from_axis_angle(np.broadcast_to(b.axis, (*ang.shape, 3)), ang)
                a = np.broadcast_to(b.anchor, p.shape)
                p = p + quat_rotate(q, a)
                q = quat_mul(q, rot)
                p = p - quat_rotate(q, a)
            cache_[i] = (p, q)
            return p, q

        out = [pose(self.index[n]) if n in self.index else self._missing(n) for n in bodies]
        return np.stack([o[0] for o in out], axis=-2), np.stack([o[1] for o in out], axis=-2)

    def _missing(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        raise KeyError(f"no body {name!r} in the tree; bodies: {list(self.names)}")


def _floats(el: ET.Element, attr: str, default: list[float]) -> np.ndarray:
    v = el.get(attr)
    return np.array(default if v is None else [float(x) for x in v.split()], dtype=np.float64)


def _geom_defaults(root: ET.Element) -> dict[str, dict[str, str]]:
    """Geom attributes per default class, inherited from the enclosing classes."""
    out: dict[str, dict[str, str]] = {}

    def walk(d: ET.Element, inherited: dict[str, str]) -> None:
        attrs = dict(inherited)
        g = d.find("geom")
        if g is not None:
            attrs.update(g.attrib)
        out[d.get("class", "main")] = attrs
        for c in d.findall("default"):
            walk(c, attrs)

    for top in root.findall("default"):
        walk(top, {})
    return out


def parse_tree(path: str | Path) -> KinematicTree:
    """The tree below the floating base of the MJCF at ``path`` (see the module docstring for what is supported)."""
    p = Path(path)
    if p.suffix.lower() == ".urdf":
        raise ValueError(f"{p}: the onboard kinematics read MJCF only; point ASAP_G1_MJCF to an MJCF of the robot")
    root = ET.parse(p).getroot()
    for d in root.iter("default"):
        j = d.find("joint")
        if j is not None and ({"axis", "pos", "type"} & set(j.attrib)):
            raise ValueError(f"{p}: joint defaults that set axis/pos/type are not supported (class {d.get('class')})")
    gdef = _geom_defaults(root)
    world = root.find("worldbody")
    if world is None:
        raise ValueError(f"{p}: no <worldbody>")
    base = next((b for b in world.iter("body") if b.find("freejoint") is not None
                 or any(j.get("type") == "free" for j in b.findall("joint"))), None)  # fmt: skip
    if base is None:
        raise ValueError(f"{p}: no body with a free joint (the floating base)")
    bodies: list[TreeBody] = []

    def add(el: ET.Element, parent: int, cls: str | None) -> None:
        name = el.get("name", f"body{len(bodies)}")
        for bad in ("euler", "axisangle", "xyaxes", "zaxis"):
            if el.get(bad) is not None:
                raise ValueError(f"{p}: body {name} uses {bad}=; only pos/quat are supported")
        cls = el.get("childclass", cls)
        hinges = [j for j in el.findall("joint") if j.get("type", "hinge") == "hinge"]
        if len(hinges) > 1:
            raise ValueError(f"{p}: body {name} has more than one hinge")
        pts = []
        for g in el.findall("geom"):
            attrs = {**gdef.get(g.get("class", cls or "main"), {}), **g.attrib}
            if attrs.get("contype", "1") == "0" and attrs.get("conaffinity", "1") == "0":
                continue  # visual only
            gtype = attrs.get("type", "sphere")
            if gtype not in ("capsule", "sphere") or "size" not in attrs:
                continue
            r = float(attrs["size"].split()[0])
            if "fromto" in attrs:
                ft = [float(x) for x in attrs["fromto"].split()]
                pts += [[*ft[:3], r], [*ft[3:], r]]
            elif gtype == "sphere":
                pts.append([*(float(x) for x in attrs.get("pos", "0 0 0").split()), r])
        idx = len(bodies)
        h = hinges[0] if hinges else None
        bodies.append(TreeBody(
            name=name, parent=parent, pos=_floats(el, "pos", [0, 0, 0]), quat=_floats(el, "quat", [1, 0, 0, 0]),
            joint=None if h is None else h.get("name"),
            axis=np.zeros(3) if h is None else _floats(h, "axis", [0, 0, 1]),
            anchor=np.zeros(3) if h is None else _floats(h, "pos", [0, 0, 0]),
            points=np.asarray(pts, dtype=np.float64).reshape(-1, 4),
        ))  # fmt: skip
        if h is not None:
            n = np.linalg.norm(bodies[-1].axis)
            bodies[-1].axis[:] = bodies[-1].axis / n
        for c in el.findall("body"):
            add(c, idx, cls)

    # the base itself is the origin of FK: its own offset is the root pose
    bodies.append(TreeBody(base.get("name", "base"), -1, np.zeros(3), np.array([1.0, 0, 0, 0]), None, np.zeros(3),
                           np.zeros(3), np.zeros((0, 4))))  # fmt: skip
    cls0 = base.get("childclass")
    for c in base.findall("body"):
        add(c, 0, cls0)
    return KinematicTree(bodies)


@lru_cache(maxsize=None)  # functools.cache: Python >= 3.9 (the robot runtime runs on 3.8)
def g1_tree(path: str | None = None) -> KinematicTree:
    """The tree of the G1 MJCF the simulator uses (:func:`asap.robot.assets.g1_mjcf_path`), parsed once."""
    from asap.robot.assets import g1_mjcf_path

    return parse_tree(g1_mjcf_path(path))
