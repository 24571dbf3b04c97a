"""Build MuJoCo models of the G1 variants from Unitree's MJCF with ``mujoco.MjSpec``.

The build adds what the raw description lacks: the floor, PD actuators with the spec's gains and torque
limits, joint armature, a ``default`` keyframe standing on the floor, and the three extended bodies
(hands, head). The 23-DoF variant locks the six wrist joints (their links stay, welded to the elbows).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from asap.robot.assets import g1_mjcf_path
from asap.robot.spec import EXTENDED_BODIES, MOTOR_NAMES, RobotSpec, get_spec
from asap.utils.rotations import quat_rotate


@dataclass
class ModelOptions:
    """Physics options of a built model."""

    floor: bool = True
    """Add a ground plane at z = 0."""
    actuators: str = "position"
    """'position' (PD inside MuJoCo: tau = kp (q* - q) - kd qd, clipped), 'motor' (torque input) or 'none'."""
    joint_damping: float = 0.0
    """Passive joint damping (N m s/rad) on every hinge."""
    joint_frictionloss: float = 0.0
    """Dry joint friction (N m) on every hinge."""
    armature_scale: float = 1.0
    """Multiplier on the spec's armature."""
    floor_friction: float = 1.0
    """Sliding friction of the floor."""
    integrator: str = "implicitfast"
    """MuJoCo integrator: 'euler', 'implicitfast' or 'rk4'."""
    self_collision: bool = True
    """Keep collisions between robot links (excluding parent/child pairs)."""


_INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
    "rk4": mujoco.mjtIntegrator.mjINT_RK4,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
}


def _add_floor(spec: mujoco.MjSpec, friction: float) -> None:
    tex = spec.add_texture(
        name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.2, 0.3], width=512, height=512,
    )  # fmt: skip
    mat = spec.add_material(name="grid", texrepeat=[1, 1], reflectance=0.1)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    spec.add_texture(
        name="skybox", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.4, 0.6, 0.8], rgb2=[0, 0, 0], width=256, height=256,
    )  # fmt: skip
    spec.worldbody.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], material="grid",
        friction=[friction, 0.005, 0.0001], contype=1, conaffinity=1,
    )  # fmt: skip
    spec.worldbody.add_light(name="sun", pos=[0, 0, 4], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)


def _with_floating_base(urdf: str, source: Path) -> str:
    """The URDF text with a ``world`` link and a ``floating`` joint to its root link, unless it already has a
    ``world`` link (MuJoCo's URDF import welds the root link to the world otherwise)."""
    robot = ET.fromstring(urdf)
    links = {e.get("name") for e in robot.findall("link")}
    children = {c.get("link") for c in robot.findall("joint/child")}
    roots = sorted(links - children)
    if "world" in links:
        return urdf
    if len(roots) != 1:
        raise ValueError(f"{source}: a URDF needs exactly one root link, found {roots or 'none'}")
    ET.SubElement(robot, "link", name="world")
    joint = ET.SubElement(robot, "joint", name="floating_base_joint", type="floating")
    ET.SubElement(joint, "parent", link="world")
    ET.SubElement(joint, "child", link=roots[0])
    return ET.tostring(robot, encoding="unicode")


def load_description(path: str | Path) -> mujoco.MjSpec:
    """Parse a robot description, MJCF or URDF (by the ``.urdf`` suffix), into an ``MjSpec`` with a floating base.

    A URDF whose root link is the robot's base (no ``world`` link, the usual form) gets a floating joint from the
    world to that link; relative mesh paths resolve against the URDF's folder as with MJCF (use
    MuJoCo's ``<mujoco><compiler meshdir=.../></mujoco>`` element for a mesh folder). Raises ``ValueError`` when
    the root body has no free joint (a robot welded to the world cannot stand on the floor). Links without a joint
    stay bodies of their own, as in MJCF.
    """
    path = Path(path)
    if path.suffix.lower() == ".urdf":
        spec = mujoco.MjSpec.from_string(_with_floating_base(path.read_text(), path))
        spec.modelfiledir = f"{path.resolve().parent}/"
        spec.compiler.fusestatic = False  # MuJoCo's URDF default; it would fuse the locked wrists and added points
    else:
        spec = mujoco.MjSpec.from_file(str(path))
    if not any(j.type == mujoco.mjtJoint.mjJNT_FREE for j in spec.joints):
        raise ValueError(
            f"{path}: the robot has no floating base; give its root body a free joint "
            "(MJCF: <freejoint/>; URDF: no 'world' link, or a 'floating' joint from it)"
        )
    return spec


def build_spec(
    variant: str | RobotSpec = "g1_23dof", mjcf: str | Path | None = None, options: ModelOptions | None = None
) -> mujoco.MjSpec:
    """Return an editable ``MjSpec`` of a G1 variant (see module docstring)."""
    rs = get_spec(variant) if isinstance(variant, str) else variant
    opt = options or ModelOptions()
    path = g1_mjcf_path(mjcf)
    spec = load_description(path)
    spec.option.timestep = rs.sim_dt
    spec.option.integrator = _INTEGRATORS[opt.integrator]
    spec.visual.global_.offwidth = 1920
    spec.visual.global_.offheight = 1080

    names = {j.name for j in spec.joints}
    missing = [n for n in rs.joint_names if n not in names]
    if missing:
        raise ValueError(f"{path}: the model lacks joints {missing} of variant {rs.name}")
    for name in MOTOR_NAMES:
        if name in names and name not in rs.joint_names:
            spec.delete(spec.joint(name))  # locked: the link stays, welded to its parent
    for ext in EXTENDED_BODIES:
        parent = spec.body(ext.parent)
        if parent is None:
            raise ValueError(f"{path}: no body {ext.parent!r} to attach {ext.name!r} to")
        if spec.body(ext.name) is None:
            body = parent.add_body(name=ext.name, pos=list(ext.offset))
            body.add_site(name=f"{ext.name}_site", size=[0.015, 0, 0], rgba=[1, 0.5, 0, 1], group=5)

    armature = rs.armature * opt.armature_scale
    for i, jname in enumerate(rs.joint_names):
        j = spec.joint(jname)
        j.armature = float(armature[i])
        j.damping = [opt.joint_damping, 0.0, 0.0]
        j.frictionloss = opt.joint_frictionloss
        j.range = [float(rs.pos_lower[i]), float(rs.pos_upper[i])]
        j.limited = mujoco.mjtLimited.mjLIMITED_TRUE
    if not opt.self_collision:
        for g in spec.geoms:
            if g.contype:
                g.contype = 2
                g.conaffinity = 1
    if opt.floor:
        _add_floor(spec, opt.floor_friction)
        if not opt.self_collision:
            spec.geom("floor").contype = 1
            spec.geom("floor").conaffinity = 2

    if opt.actuators != "none":
        for i, jname in enumerate(rs.joint_names):
            act = spec.add_actuator(name=jname.replace("_joint", ""), target=jname)
            act.trntype = mujoco.mjtTrn.mjTRN_JOINT
            eff = float(rs.effort_limit[i])
            act.forcerange = [-eff, eff]
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            if opt.actuators == "position":
                kp, kd = float(rs.kp[i]), float(rs.kd[i])
                act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
                act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
                act.gainprm[0] = kp
                act.biasprm[0:3] = [0.0, -kp, -kd]
            elif opt.actuators == "motor":
                act.gainprm[0] = 1.0
                act.ctrlrange = [-eff, eff]
                act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            else:
                raise ValueError(f"actuators must be 'position', 'motor' or 'none', not {opt.actuators!r}")
    return spec


def standing_height(model: mujoco.MjModel, joint_pos: np.ndarray, joint_names: tuple[str, ...]) -> float:
    """Root height that puts the lowest collision point of the robot on z = 0 for the given pose."""
    data = mujoco.MjData(model)
    data.qpos[:] = 0
    data.qpos[3] = 1.0
    for name, q in zip(joint_names, joint_pos, strict=True):
        data.qpos[model.joint(name).qposadr[0]] = q
    mujoco.mj_kinematics(model, data)
    return -lowest_point(model, data)


@dataclass(frozen=True)
class CollisionPoints:
    """The robot's collision geoms as spheres in body frames: one lowest-point routine for every stage.

    A geom's lowest point in any pose is the lowest of its points' spheres: ``z(point) - radius``. Exact for
    spheres (centre), capsules (two segment ends), boxes (eight corners, radius 0); cylinders are 16 rim points
    (at most 2% of the radius too high); other shapes (meshes, ellipsoids) are their bounding sphere (conservative).
    """

    geom: np.ndarray
    """(P,) MuJoCo geom id of each point."""
    body: np.ndarray
    """(P,) MuJoCo body id the point moves with."""
    local: np.ndarray
    """(P, 3) point in its body's frame (m)."""
    radius: np.ndarray
    """(P,) sphere radius around the point (m)."""

    def heights(self, body_pos: Any, body_quat: Any, first_body: int = 0) -> Any:
        """(..., P) lowest z of each point's sphere, for body poses ``(..., nb, 3)`` and ``(..., nb, 4)`` wxyz.

        Index ``b - first_body`` of the body arrays holds MuJoCo body ``b`` (1 when the arrays omit the world
        body). NumPy arrays or torch tensors (the result is of the same kind; differentiable in torch).
        """
        idx = self.body - first_body
        local, radius = self.local, self.radius
        if type(body_pos).__module__.startswith("torch"):
            import torch

            local = torch.as_tensor(local, dtype=body_pos.dtype, device=body_pos.device)
            radius = torch.as_tensor(radius, dtype=body_pos.dtype, device=body_pos.device)
            idx = torch.as_tensor(idx, device=body_pos.device)
        bp, bq = body_pos[..., idx, :], body_quat[..., idx, :]
        return (bp + quat_rotate(bq, local))[..., 2] - radius

    def select(self, mask: np.ndarray) -> CollisionPoints:
        """The points where ``mask`` (P,) is True."""
        return CollisionPoints(self.geom[mask], self.body[mask], self.local[mask], self.radius[mask])


def collision_points(model: mujoco.MjModel, geoms: np.ndarray | None = None) -> CollisionPoints:
    """:class:`CollisionPoints` of the given geoms (default: every collision geom not on the world body)."""
    if geoms is None:
        geoms = np.array([g for g in range(model.ngeom) if model.geom_bodyid[g] != 0
                          and (model.geom_contype[g] != 0 or model.geom_conaffinity[g] != 0)])  # fmt: skip
    gid, body, local, radius = [], [], [], []
    for g in np.asarray(geoms, dtype=np.int64):
        size, t = model.geom_size[g], model.geom_type[g]
        if t == mujoco.mjtGeom.mjGEOM_SPHERE:
            pts, r = np.zeros((1, 3)), size[0]
        elif t == mujoco.mjtGeom.mjGEOM_CAPSULE:
            pts, r = np.array([[0.0, 0.0, -size[1]], [0.0, 0.0, size[1]]]), size[0]
        elif t == mujoco.mjtGeom.mjGEOM_BOX:
            pts, r = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * size[:3], 0.0
        elif t == mujoco.mjtGeom.mjGEOM_CYLINDER:
            ang = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
            ring = np.stack([size[0] * np.cos(ang), size[0] * np.sin(ang), np.zeros(16)], -1)
            pts, r = np.concatenate([ring - [0, 0, size[1]], ring + [0, 0, size[1]]]), 0.0
        else:
            pts, r = np.zeros((1, 3)), float(model.geom_rbound[g])
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, model.geom_quat[g])
        pts = pts @ rot.reshape(3, 3).T + model.geom_pos[g]  # geom frame -> body frame
        gid += [int(g)] * len(pts)
        body += [int(model.geom_bodyid[g])] * len(pts)
        local.append(pts)
        radius += [float(r)] * len(pts)
    return CollisionPoints(
        np.array(gid, dtype=np.int64), np.array(body, dtype=np.int64),
        np.concatenate(local) if local else np.zeros((0, 3)), np.array(radius, dtype=np.float64),
    )  # fmt: skip


def lowest_point(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Lowest z (m) of any robot collision geom in the current kinematics of ``data`` (:class:`CollisionPoints`)."""
    return float(collision_points(model).heights(data.xpos, data.xquat).min())


def build_model(
    variant: str | RobotSpec = "g1_23dof", mjcf: str | Path | None = None, options: ModelOptions | None = None
) -> mujoco.MjModel:
    """Compile a G1 variant and add a ``default`` keyframe: default pose, standing on the floor."""
    rs = get_spec(variant) if isinstance(variant, str) else variant
    spec = build_spec(rs, mjcf, options)
    model = spec.compile()
    z = standing_height(model, rs.default_pos, rs.joint_names)
    qpos = np.zeros(model.nq)
    qpos[2] = z
    qpos[3] = 1.0
    for name, q in zip(rs.joint_names, rs.default_pos, strict=True):
        qpos[model.joint(name).qposadr[0]] = q
    key = spec.add_key(name="default", qpos=qpos.tolist())
    if model.nu:
        position = (options or ModelOptions()).actuators == "position"
        key.ctrl = (rs.default_pos if position else np.zeros(model.nu)).tolist()
    return spec.compile()
