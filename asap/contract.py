"""The policy contract: the ONNX metadata that training writes and the runtime, the virtual G1 and the logger read.

Metadata keys (ONNX ``metadata_props``; vectors are comma-separated lists of numbers or names):

=================== ==================================================================================
``joint_names``      policy joint order (J names, ``_joint`` suffix), the order of actions and obs terms
``default_joint_pos`` default pose (J, rad); joint target = default + action_scale * action
``kp`` / ``kd``      PD gains sent to the motors for the policy joints (J each)
``action_scale``     scale of the raw action (0.25 for ASAP)
``obs_layout``       observation layout registered in :mod:`asap.obs` (``asap_v1``)
``obs_dim``          width of the actor observation (380 for asap_v1 with 23 joints)
``history_length``   history steps of the layout (4)
``control_dt``       policy period in seconds (0.02)
``motion_name``      name of the tracked motion
``motion_length_s``  motion length in seconds; the phase is (k+1)*control_dt / motion_length_s
``robot_variant``    ``g1_23dof`` or ``g1_29dof`` (motors outside joint_names are held at their default)
``start_joint_pos``  optional: the motion's joint angles at phase 0 (J); the runtime blends to it before running
``clips``            optional: JSON list of the fingerprints (:class:`ClipFingerprint`) of every clip trained on
``clip_index``       optional: the entry of ``clips`` this file describes (motion_name/length, start pose, and
                     for a residual policy the joint table inside the graph)
``residual_actions`` optional: ``true`` when the graph adds its clip's joint table (valid for that clip only)
``sim_dt``           optional: physics step of training (s); ``control_dt = sim_dt * decimation``
``decimation``       optional: physics steps per policy step
``physics``          optional: JSON object of the training simulator's model options (``ModelOptions``)
``target_clamp``     optional: ``1`` when joint targets are clamped to the position limits (default 1)
``target_max_step``  optional: rate limit of joint targets, rad per control step, 0 = none (default 0.5); both
                     written by every export, so the runtime shapes targets as training did (:mod:`asap.control`)
=================== ==================================================================================

One definition serves both sides (NumPy only, no training code). The model has one input
(``(batch, obs_dim)`` float32) and one output (``(batch, J)``), batch dynamic or 1; :class:`OnnxPolicy` checks
this when it loads a file (the one loader of `asap play`, the runtime and the virtual G1's sim2sim).

Clip fingerprint (:func:`clip_fingerprint`): frames, fps and the SHA-256 of the clip's joint table ``dof_pos``
(T, J) in the robot variant's policy joint order, rounded to float32 (little-endian, ``-0.0`` written as
``0.0``). Every motion format of the project stores joint angles in float32 (npz, ASAP pkl, mjlab npz; the csv
with 9 significant digits, enough for a float32), so converting a clip between formats keeps its fingerprint.
A coarser rounding would not be more robust: values near a rounding boundary would flip under float noise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asap.control import TargetShaping, motion_steps
from asap.robot.spec import MOTOR_NAMES, VARIANTS, get_spec

REQUIRED_KEYS = (
    "joint_names", "default_joint_pos", "kp", "kd", "action_scale", "obs_layout", "obs_dim", "history_length",
    "control_dt", "motion_name", "motion_length_s", "robot_variant",
)  # fmt: skip
"""Metadata keys the runtime requires."""
OPTIONAL_KEYS = (
    "start_joint_pos", "clips", "clip_index", "residual_actions", "sim_dt", "decimation", "physics",
    *TargetShaping.METADATA_KEYS,
)  # fmt: skip
"""Metadata keys the runtime uses when present."""


class ContractError(ValueError):
    """The ONNX file or its metadata does not satisfy the policy contract."""


@dataclass(frozen=True)
class ClipFingerprint:
    """What identifies a motion clip for a policy: its frame count, frame rate and joint-table hash (see module)."""

    name: str
    """Clip name (informative only: a renamed file is the same clip)."""
    frames: int
    """Number of frames T."""
    fps: float
    """Frames per second (7 significant digits)."""
    sha256: str
    """Hex SHA-256 of the float32 joint table (T, J) in the variant's policy joint order."""

    def same_clip(self, other: ClipFingerprint) -> bool:
        """Same frames, fps (relative 1e-6) and joint-table hash; the names may differ."""
        return (
            self.frames == other.frames
            and self.sha256 == other.sha256
            and abs(self.fps - other.fps) <= 1e-6 * max(abs(self.fps), abs(other.fps))
        )

    def describe(self) -> str:
        """One-line description, e.g. ``'walk' (151 frames at 50 fps, sha256 1a2b3c4d5e6f)``."""
        return f"{self.name!r} ({self.frames} frames at {self.fps:g} fps, sha256 {self.sha256[:12]})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (inverse of :meth:`from_dict`)."""
        return {"name": self.name, "frames": self.frames, "fps": self.fps, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipFingerprint:
        """From :meth:`to_dict`'s dict; ``ValueError`` on missing or malformed fields."""
        try:
            fp = cls(name=str(d["name"]), frames=int(d["frames"]), fps=float(d["fps"]), sha256=str(d["sha256"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a clip fingerprint ({e!r}): {d!r}") from None
        if fp.frames < 1 or fp.fps <= 0 or len(fp.sha256) != 64:
            raise ValueError(f"not a clip fingerprint: {d!r}")
        return fp


def check_clip(
    motion: ClipFingerprint, allowed: tuple[ClipFingerprint, ...] | list[ClipFingerprint], where: str = "policy",
    also: tuple[ClipFingerprint, ...] | list[ClipFingerprint] = (),
) -> None:  # fmt: skip
    """Raise :class:`ContractError` (one line naming both clips) unless ``motion`` is one of the ``allowed`` clips.

    ``also``: further clips the policy knows (trained on, but valid only in their own export): named as a hint.
    Nothing to check (no ``allowed`` clips) passes.
    """
    if not allowed or any(motion.same_clip(c) for c in allowed):
        return
    known = [c for c in also if motion.same_clip(c)]
    hint = (
        f"the policy was trained on that clip too: use the file exported for {known[0].name!r}"
        if known
        else "give the clip it was trained on"
    )
    names = " or ".join(c.describe() for c in allowed)
    raise ContractError(f"{where} was trained for clip {names}, but the motion is clip {motion.describe()}; {hint}")


def clip_fingerprint(dof_pos: Any, fps: float, name: str = "") -> ClipFingerprint:
    """Fingerprint of a clip from its joint table ``dof_pos`` (T, J) rad, policy joint order, and its ``fps``.

    Any array-like works (NumPy, a CPU torch tensor); the table is rounded to float32 before hashing (see the
    module docstring). Raises ``ValueError`` on a table that is not 2-D or not finite.
    """
    q = np.asarray(dof_pos, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] < 1:
        raise ValueError(f"clip {name!r}: joint table must have shape (T, J), got {q.shape}")
    if not np.isfinite(q).all():
        raise ValueError(f"clip {name!r}: joint table holds NaN or inf")
    q32 = np.ascontiguousarray(q.astype("<f4") + np.float32(0.0))  # + 0.0 turns -0.0 into 0.0
    return ClipFingerprint(
        name=str(name), frames=int(q.shape[0]), fps=float(f"{float(fps):.7g}"),
        sha256=hashlib.sha256(q32.tobytes()).hexdigest(),
    )  # fmt: skip


def motion_fingerprint(motion: Any, variant: str, name: str | None = None) -> ClipFingerprint:
    """Fingerprint of an :class:`asap.motion.Motion` mapped to ``variant``'s joints (a ``Motion`` or a path).

    A path is read as our ``.npz`` with NumPy alone when it is one (the onboard runtime has no MuJoCo), else by
    :func:`asap.motion.formats.read_motion`; ``name`` defaults to the file stem, as in MotionLib.
    """
    if isinstance(motion, (str, Path)):
        from asap.motion.motion import Motion, MotionFormatError

        p = Path(motion)
        name = name if name is not None else p.stem
        try:
            motion = Motion.load(p) if p.suffix == ".npz" else None
        except MotionFormatError:
            motion = None
        if motion is None:
            from asap.motion.formats import read_motion

            motion = read_motion(p)
    m = motion.for_robot(variant)
    return clip_fingerprint(m.dof_pos, m.fps, name if name is not None else str(motion.meta.get("name", "")))


@dataclass(frozen=True)
class PolicyContract:
    """Everything the runtime needs to know about a policy, read from its ONNX metadata."""

    joint_names: tuple[str, ...]
    """Policy joint order."""
    default_joint_pos: np.ndarray
    """Default pose (J,)."""
    kp: np.ndarray
    """Motor Kp per policy joint (J,)."""
    kd: np.ndarray
    """Motor Kd per policy joint (J,)."""
    action_scale: float
    """Target = default + action_scale * action."""
    obs_layout: str
    """Observation layout name."""
    obs_dim: int
    """Actor observation width."""
    history_length: int
    """History steps."""
    control_dt: float
    """Policy period (s)."""
    motion_name: str
    """Tracked motion."""
    motion_length_s: float
    """Motion length (s)."""
    robot_variant: str
    """Robot variant."""
    start_joint_pos: np.ndarray | None = None
    """Optional (metadata ``start_joint_pos``): the motion's joint angles at phase 0 (J,). When present the
    controller blends from the held default pose to it before starting the policy, as the reference does."""
    clips: tuple[ClipFingerprint, ...] = ()
    """Optional (metadata ``clips``): fingerprints of every clip the policy was trained on (empty: unknown)."""
    clip_index: int = 0
    """Entry of ``clips`` that ``motion_name``, ``motion_length_s``, ``start_joint_pos`` (and a residual graph's
    joint table) belong to."""
    residual_actions: bool | None = None
    """Optional: the graph adds its clip's joint table, so it is valid for that clip only (None: unknown)."""
    sim_dt: float | None = None
    """Optional: physics step of the training simulator (s)."""
    decimation: int | None = None
    """Optional: physics steps per policy step in training (``control_dt = sim_dt * decimation``)."""
    physics: dict[str, Any] | None = field(default=None, compare=False)
    """Optional: the training simulator's model options (``asap.robot.model.ModelOptions`` as a dict)."""
    shaping: TargetShaping = field(default_factory=TargetShaping)
    """How actions become joint targets beyond ``default + action_scale * a`` (metadata ``target_clamp``,
    ``target_max_step``; files without them get the defaults, clamp and 0.5 rad/step)."""

    @classmethod
    def for_robot(
        cls, variant: str, layout: str, motion_name: str, motion_length_s: float,
        start_joint_pos: np.ndarray | None = None, clips: tuple[ClipFingerprint, ...] = (), clip_index: int = 0,
        residual_actions: bool | None = None, physics: dict[str, Any] | None = None,
        shaping: TargetShaping | None = None,
    ) -> PolicyContract:  # fmt: skip
        """A contract filled from the robot spec (gains, default pose, sim_dt, decimation) and the layout registry."""
        from asap.obs import get_layout

        rs = get_spec(variant)
        lay = get_layout(layout)
        return cls(
            joint_names=rs.joint_names, default_joint_pos=rs.default_pos.copy(), kp=rs.kp.copy(), kd=rs.kd.copy(),
            action_scale=rs.action_scale, obs_layout=layout, obs_dim=lay.dim("actor", rs.num_joints),
            history_length=lay.history_length, control_dt=rs.control_dt, motion_name=motion_name,
            motion_length_s=float(motion_length_s), robot_variant=variant,
            start_joint_pos=None if start_joint_pos is None else np.asarray(start_joint_pos, dtype=np.float64),
            clips=tuple(clips), clip_index=int(clip_index), residual_actions=residual_actions,
            sim_dt=rs.sim_dt, decimation=rs.decimation, physics=None if physics is None else dict(physics),
            shaping=shaping or TargetShaping(),
        )  # fmt: skip

    @property
    def clip(self) -> ClipFingerprint | None:
        """Fingerprint of this file's clip (``clips[clip_index]``), None when the metadata has none."""
        return self.clips[self.clip_index] if self.clips else None

    def check_motion(self, motion: ClipFingerprint, where: str = "policy", runtime: bool = False) -> None:
        """Raise :class:`ContractError` (one line naming both clips) unless ``motion`` is a clip this policy runs.

        A residual policy (or the runtime, which plays this file's clip length and start pose: ``runtime=True``)
        accepts only ``clip``; a non-residual policy accepts any clip it was trained on. A contract without
        fingerprints accepts everything (files exported before fingerprints existed).
        """
        own = self.clip
        if own is None:
            return
        strict = runtime or self.residual_actions is not False
        check_clip(motion, (own,) if strict else self.clips, where, also=self.clips)

    def check_physics(self, sim_dt: float, decimation: int, where: str = "policy") -> None:
        """Raise :class:`ContractError` unless the simulator's ``sim_dt`` (s) and ``decimation`` are the ones the
        policy was trained with (no-op when the metadata has none)."""
        if self.sim_dt is None or self.decimation is None:
            return
        if abs(self.sim_dt - sim_dt) > 1e-12 or self.decimation != decimation:
            raise ContractError(f"{where} was trained with sim_dt {self.sim_dt:g} s and decimation {self.decimation}, "
                                f"but this simulator steps {sim_dt:g} s x {decimation}")  # fmt: skip

    @property
    def num_joints(self) -> int:
        """J."""
        return len(self.joint_names)

    @property
    def motion_steps(self) -> int:
        """Policy steps of one run of the motion from its start (:func:`asap.control.motion_steps`)."""
        return motion_steps(self.motion_length_s, self.control_dt)

    @property
    def motor_index(self) -> np.ndarray:
        """DDS motor slot of each policy joint (J,)."""
        return np.array([MOTOR_NAMES.index(n) for n in self.joint_names], dtype=np.int64)

    def to_metadata(self) -> dict[str, str]:
        """The metadata strings of this contract (inverse of :meth:`from_metadata`)."""
        f = lambda a: ",".join(repr(float(x)) for x in a)  # noqa: E731
        return {
            "joint_names": ",".join(self.joint_names), "default_joint_pos": f(self.default_joint_pos),
            "kp": f(self.kp), "kd": f(self.kd), "action_scale": repr(float(self.action_scale)),
            "obs_layout": self.obs_layout, "obs_dim": str(int(self.obs_dim)),
            "history_length": str(int(self.history_length)), "control_dt": repr(float(self.control_dt)),
            "motion_name": self.motion_name, "motion_length_s": repr(float(self.motion_length_s)),
            "robot_variant": self.robot_variant,
            **({} if self.start_joint_pos is None else {"start_joint_pos": f(self.start_joint_pos)}),
            **self._optional_metadata(),
        }  # fmt: skip

    def _optional_metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.clips:
            out["clips"] = json.dumps([c.to_dict() for c in self.clips], separators=(",", ":"))
            out["clip_index"] = str(int(self.clip_index))
        if self.residual_actions is not None:
            out["residual_actions"] = "true" if self.residual_actions else "false"
        if self.sim_dt is not None:
            out["sim_dt"] = repr(float(self.sim_dt))
        if self.decimation is not None:
            out["decimation"] = str(int(self.decimation))
        if self.physics is not None:
            out["physics"] = json.dumps(self.physics, sort_keys=True, separators=(",", ":"))
        out.update(self.shaping.to_metadata())
        return out

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str = "policy") -> PolicyContract:
        """Parse and validate metadata strings."""
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ContractError(f"{where}: ONNX metadata lacks {missing} (required: {list(REQUIRED_KEYS)})")

        def vec(key: str) -> np.ndarray:
            try:
                return np.array([float(x) for x in meta[key].split(",") if x.strip()], dtype=np.float64)
            except ValueError as e:
                raise ContractError(f"{where}: metadata {key!r} is not a comma-separated list of numbers") from e

        def num(key: str, kind: type = float) -> float:
            try:
                return kind(float(meta[key])) if kind is int else float(meta[key])
            except ValueError as e:
                raise ContractError(f"{where}: metadata {key!r}={meta[key]!r} is not a number") from e

        names = tuple(n.strip() for n in meta["joint_names"].split(",") if n.strip())
        unknown = [n for n in names if n not in MOTOR_NAMES]
        if unknown:
            raise ContractError(f"{where}: unknown joint names {unknown}; the G1 has {list(MOTOR_NAMES)}")
        j = len(names)
        try:
            shaping = TargetShaping.from_metadata(meta, where)
        except ValueError as e:
            raise ContractError(str(e)) from None
        c = cls(
            joint_names=names, default_joint_pos=vec("default_joint_pos"), kp=vec("kp"), kd=vec("kd"),
            action_scale=num("action_scale"), obs_layout=meta["obs_layout"].strip(), obs_dim=int(num("obs_dim")),
            history_length=int(num("history_length")), control_dt=num("control_dt"),
            motion_name=meta["motion_name"].strip(), motion_length_s=num("motion_length_s"),
            robot_variant=meta["robot_variant"].strip(),
            start_joint_pos=vec("start_joint_pos") if "start_joint_pos" in meta else None,
            clips=_parse_clips(meta, where), clip_index=int(num("clip_index")) if "clip_index" in meta else 0,
            residual_actions=_parse_bool(meta, "residual_actions", where),
            sim_dt=num("sim_dt") if "sim_dt" in meta else None,
            decimation=int(num("decimation")) if "decimation" in meta else None,
            physics=_parse_json_object(meta, "physics", where), shaping=shaping,
        )  # fmt: skip
        for key in ("default_joint_pos", "kp", "kd", "start_joint_pos"):
            if getattr(c, key) is not None and getattr(c, key).shape != (j,):
                raise ContractError(f"{where}: metadata {key!r} has {getattr(c, key).size} values for {j} joints")
        spec = get_spec(c.robot_variant)  # raises on an unknown variant
        if set(names) != set(spec.joint_names):
            odd = sorted(set(names) ^ set(spec.joint_names))
            raise ContractError(f"{where}: metadata joint_names ({j} joints) are not robot variant {spec.name}'s "
                                f"{spec.num_joints} joints; they differ in {odd}")  # fmt: skip
        if not (0 < c.control_dt < 1):
            raise ContractError(f"{where}: control_dt {c.control_dt} s is not a plausible policy period")
        if c.motion_length_s <= 0:
            raise ContractError(f"{where}: motion_length_s must be > 0, got {c.motion_length_s}")
        if c.clips:
            if not 0 <= c.clip_index < len(c.clips):
                raise ContractError(f"{where}: metadata clip_index {c.clip_index} is outside clips "
                                    f"(0..{len(c.clips) - 1})")  # fmt: skip
            own = c.clips[c.clip_index]
            length = (own.frames - 1) / own.fps
            if abs(length - c.motion_length_s) > 1e-4:
                raise ContractError(f"{where}: motion_length_s {c.motion_length_s} s disagrees with its clip "
                                    f"{own.describe()} ({length:.6g} s)")  # fmt: skip
        if (c.sim_dt is None) != (c.decimation is None):
            raise ContractError(f"{where}: metadata needs both sim_dt and decimation, or neither")
        if c.sim_dt is not None and c.decimation is not None:
            if c.sim_dt <= 0 or c.decimation < 1 or abs(c.sim_dt * c.decimation - c.control_dt) > 1e-9:
                raise ContractError(f"{where}: sim_dt {c.sim_dt} s x decimation {c.decimation} is not control_dt "
                                    f"{c.control_dt} s")  # fmt: skip
        return c


def _parse_clips(meta: dict[str, str], where: str) -> tuple[ClipFingerprint, ...]:
    if "clips" not in meta:
        return ()
    try:
        raw = json.loads(meta["clips"])
        if not isinstance(raw, list) or not raw:
            raise ValueError("expected a non-empty JSON list")
        return tuple(ClipFingerprint.from_dict(d) for d in raw)
    except ValueError as e:
        raise ContractError(f"{where}: metadata 'clips' is not a list of clip fingerprints ({e})") from None


def _parse_bool(meta: dict[str, str], key: str, where: str) -> bool | None:
    if key not in meta:
        return None
    v = meta[key].strip().lower()
    if v not in ("true", "false"):
        raise ContractError(f"{where}: metadata {key!r}={meta[key]!r} is not 'true' or 'false'")
    return v == "true"


def _parse_json_object(meta: dict[str, str], key: str, where: str) -> dict[str, Any] | None:
    if key not in meta:
        return None
    try:
        d = json.loads(meta[key])
    except ValueError:
        d = None
    if not isinstance(d, dict):
        raise ContractError(f"{where}: metadata {key!r} is not a JSON object")
    return d


class OnnxPolicy:
    """An ONNX policy run with onnxruntime on the CPU, with its contract: the one loader of `asap play`, the robot
    runtime and the virtual G1's sim2sim.

    Loading checks the model's interface against the contract and raises :class:`ContractError` (one line naming
    the mismatch): exactly one float32 input of shape (batch, obs_dim), an action output of shape (batch, J) with J
    the robot variant's joint count, a batch dimension that is dynamic or 1, and a trial run on zero observations.
    Without our metadata (a plain model, e.g. the ASAP authors' released ones) ``layout`` and ``variant`` name the
    observation layout and the robot (defaults ``asap_v1`` / ``g1_23dof`` when ``allow_plain``); the contract is
    then filled from the spec (motion name/length unknown). With metadata, a ``layout``/``variant`` that
    disagrees with it is an error.
    """

    def __init__(
        self, path: str | Path, layout: str | None = None, variant: str | None = None, threads: int = 1,
        allow_plain: bool = False,
    ) -> None:  # fmt: skip
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"policy {self.path} does not exist")
        if self.path.suffix == ".pt":
            raise ContractError(f"{self.path} is a training checkpoint; this needs an exported policy: the run's "
                                f"policy.onnx, or `asap export {self.path}`")  # fmt: skip
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ContractError(f"{self.path}: cannot load ONNX model ({_first_line(e)})") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if any(k in meta for k in REQUIRED_KEYS):
            self.contract = PolicyContract.from_metadata(meta, str(self.path))
            self.has_metadata = True
            for what, asked, have in (("layout", layout, self.contract.obs_layout),
                                      ("variant", variant, self.contract.robot_variant)):  # fmt: skip
                if asked and asked != have:
                    raise ContractError(f"{self.path}: its metadata says {what} {have}, but {what} {asked} was given")
        elif allow_plain or layout or variant:
            self.contract = PolicyContract.for_robot(variant or "g1_23dof", layout or "asap_v1", "", 0.0)
            self.has_metadata = False
        else:
            raise ContractError(
                f"{self.path}: the ONNX metadata holds no policy contract (keys {list(REQUIRED_KEYS)}); use a policy "
                "exported by `asap pretrain`, or play a plain model with --layout and --variant"
            )
        self.input_name, self.output_name, self.fixed_batch = self._check_interface()

    def _check_interface(self) -> tuple[str, str, int | None]:
        c, p = self.contract, self.path
        want = f"layout {c.obs_layout} with {c.num_joints} joints ({c.robot_variant})"
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1:
            raise ContractError(f"{p}: the model has {len(ins)} inputs ({', '.join(i.name for i in ins)}); a policy "
                                f"takes exactly one, the actor observation (batch, {c.obs_dim}) of {want}")  # fmt: skip
        inp = ins[0]
        if inp.type != "tensor(float)":
            raise ContractError(f"{p}: input {inp.name!r} is {inp.type}; a policy takes float32 (tensor(float))")
        if len(inp.shape) != 2:
            raise ContractError(f"{p}: input {inp.name!r} has shape {_shape(inp.shape)}; a policy takes "
                                f"(batch, {c.obs_dim}) for {want}")  # fmt: skip
        batch, width = inp.shape
        if isinstance(width, int) and width != c.obs_dim:
            raise ContractError(f"{p}: input {inp.name!r} has width {width}, but {want} needs {c.obs_dim}")
        if isinstance(batch, int) and batch != 1:
            raise ContractError(f"{p}: input {inp.name!r} has a fixed batch of {batch}; a policy needs a dynamic "
                                "batch dimension or batch 1 (export with dynamic_axes)")  # fmt: skip
        named = [o for o in outs if o.name == "action"]
        if len(outs) != 1 and not named:
            names = ", ".join(o.name for o in outs)
            raise ContractError(f"{p}: the model has {len(outs)} outputs ({names}) and none is named 'action'; a "
                                f"policy has one output, the action (batch, {c.num_joints})")  # fmt: skip
        out = named[0] if named else outs[0]
        if len(out.shape) != 2:
            raise ContractError(f"{p}: output {out.name!r} has shape {_shape(out.shape)}; a policy outputs "
                                f"(batch, {c.num_joints}) for {c.robot_variant}")  # fmt: skip
        if isinstance(out.shape[1], int) and out.shape[1] != c.num_joints:
            hint = _variant_hint(out.shape[1], self)
            raise ContractError(f"{p}: output {out.name!r} has {out.shape[1]} actions, but robot variant "
                                f"{c.robot_variant} has {c.num_joints} joints{hint}")  # fmt: skip
        fixed = batch if isinstance(batch, int) else None
        n = 1 if fixed else 2  # a dynamic batch is tried with 2 rows
        try:
            y = self.session.run([out.name], {inp.name: np.zeros((n, c.obs_dim), dtype=np.float32)})[0]
        except Exception as e:  # onnxruntime raises its own exception types
            raise ContractError(f"{p}: the model fails on observations of shape ({n}, {c.obs_dim}) ({want}): "
                                f"{_first_line(e)}") from None  # fmt: skip
        if np.shape(y) != (n, c.num_joints):
            raise ContractError(f"{p}: the model maps observations ({n}, {c.obs_dim}) to shape {np.shape(y)}; a "
                                f"policy for {c.robot_variant} returns ({n}, {c.num_joints})")  # fmt: skip
        return inp.name, out.name, fixed

    def __call__(self, obs: Any) -> np.ndarray:
        """Raw actions: (obs_dim,) -> (J,), or (B, obs_dim) -> (B, J), float32 (a batch-1 model runs row by row).

        ``obs`` is any array-like on the CPU (NumPy, a CPU torch tensor).
        """
        x = np.asarray(obs, dtype=np.float32)
        if x.shape[-1:] != (self.contract.obs_dim,) or x.ndim > 2:
            raise ContractError(f"{self.path}: observation of shape {x.shape}; the policy takes "
                                f"({self.contract.obs_dim},) or (batch, {self.contract.obs_dim})")  # fmt: skip
        if x.ndim == 1:
            return self.session.run([self.output_name], {self.input_name: x.reshape(1, -1)})[0][0]
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            rows = [self.session.run([self.output_name], {self.input_name: x[i : i + 1]})[0] for i in range(len(x))]
            return np.concatenate(rows, axis=0)
        return self.session.run([self.output_name], {self.input_name: x})[0]


def _first_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return lines[0] if lines else type(e).__name__


def _shape(shape: list[Any]) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"


def _variant_hint(width: int, pol: OnnxPolicy) -> str:
    other = [v for v in VARIANTS if v != pol.contract.robot_variant and get_spec(v).num_joints == width]
    if not other:
        return ""
    if pol.has_metadata:
        return f" (a {other[0]} model with {pol.contract.robot_variant} metadata)"
    return f" (a {other[0]} policy? give variant {other[0]})"
