"""MotionLib: many reference clips on one device, queried in batch at arbitrary times.

On load, every clip is mapped to the robot's joint order (by name), its 27 tracked bodies are computed by
forward kinematics (:class:`asap.robot.kinematics.G1Kinematics`), and velocities are derived:

- body linear velocity: central differences (``np.gradient``) / dt, then a Gaussian filter (sigma 2 frames);
- body angular velocity: quaternion finite differences (central, one-sided at the ends), same filter;
- joint velocity: the measured ``dof_vel`` when the file has it, else a forward difference (last repeated);
- root velocity: the measured ``root_lin_vel`` / ``root_ang_vel`` when present, else the pelvis body's.

All frames of all clips live in flat tensors; a query for N envs is a handful of gathers, a lerp and a slerp
(no Python loop over envs). Times are clipped to ``[0, length]`` with ``length = (T - 1) / fps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from asap.motion.motion import Motion, MotionFormatError
from asap.robot.kinematics import shared_kinematics
from asap.robot.spec import RobotSpec, get_spec
from asap.utils.rotations import angular_velocity, slerp

VEL_FILTER_SIGMA = 2.0
"""Standard deviation (frames) of the Gaussian filter applied to body velocities."""

MotionSource = str | Path | Motion


@dataclass
class MotionState:
    """Reference state of N envs at one instant each (world frame, wxyz quaternions)."""

    root_pos: torch.Tensor
    """(N, 3) m."""
    root_quat: torch.Tensor
    """(N, 4) wxyz."""
    root_lin_vel: torch.Tensor
    """(N, 3) m/s, world frame."""
    root_ang_vel: torch.Tensor
    """(N, 3) rad/s, world frame."""
    dof_pos: torch.Tensor
    """(N, J) rad, robot joint order."""
    dof_vel: torch.Tensor
    """(N, J) rad/s."""
    body_pos: torch.Tensor
    """(N, B, 3) m, the spec's tracked bodies."""
    body_quat: torch.Tensor
    """(N, B, 4) wxyz."""
    body_lin_vel: torch.Tensor
    """(N, B, 3) m/s, world frame."""
    body_ang_vel: torch.Tensor
    """(N, B, 3) rad/s, world frame."""
    phase: torch.Tensor
    """(N,) time / length, in [0, 1]."""

    def to_dict(self) -> dict[str, torch.Tensor]:
        """The fields as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_LINEAR = ("root_pos", "root_lin_vel", "root_ang_vel", "dof_pos", "dof_vel", "body_pos", "body_lin_vel",
           "body_ang_vel")  # fmt: skip
"""Fields interpolated linearly between frames."""
_ROTATIONS = ("root_quat", "body_quat")
"""Fields interpolated by slerp."""


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest") if sigma > 0 else x


class MotionLib:
    """Reference clips for batched queries (see module docstring).

    ``motions``: one or many paths (any format :func:`asap.motion.formats.read_motion` knows, or a folder of
    them) or :class:`Motion` objects. ``spec``: robot variant whose joint order and 27 bodies are used.
    """

    def __init__(
        self,
        motions: MotionSource | Sequence[MotionSource],
        spec: RobotSpec | str = "g1_23dof",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        kinematics=None,
        vel_filter_sigma: float = VEL_FILTER_SIGMA,
    ) -> None:
        self.spec = get_spec(spec) if isinstance(spec, str) else spec
        self.device = torch.device(device)
        self.dtype = dtype
        clips = self._gather(motions)
        if not clips:
            raise MotionFormatError("MotionLib: no motions given")
        kin = kinematics or shared_kinematics(self.spec.name)
        self.body_names: tuple[str, ...] = tuple(kin.body_names)
        if self.body_names[0] != "pelvis":
            raise ValueError(f"the first tracked body must be the pelvis (root), got {self.body_names[0]}")
        self.joint_names: tuple[str, ...] = self.spec.joint_names
        self.motion_names: list[str] = []
        self.motions: list[Motion] = []
        """The clips as loaded, in the robot variant's joint order (for checks such as
        :func:`asap.motion.ops.floor_offset`)."""
        cols: dict[str, list[np.ndarray]] = {k: [] for k in (
            "root_pos", "root_quat", "root_lin_vel", "root_ang_vel", "dof_pos", "dof_vel",
            "body_pos", "body_quat", "body_lin_vel", "body_ang_vel", "action")}  # fmt: skip
        num_frames, fps, has_action = [], [], []
        for name, m in clips:
            try:
                m = m.for_robot(self.spec)
                m.check()
            except MotionFormatError as e:
                raise MotionFormatError(f"{name}: {e}") from None
            t, dt = m.num_frames, 1.0 / float(m.fps)
            root_quat = m.root_quat / np.linalg.norm(m.root_quat, axis=-1, keepdims=True)
            bp, bq = kin.forward_numpy(m.root_pos, root_quat, m.dof_pos)
            blv = _smooth(np.gradient(bp, dt, axis=0), vel_filter_sigma)
            bav = _smooth(angular_velocity(bq, dt), vel_filter_sigma)
            if m.dof_vel is not None:
                dv = m.dof_vel
            else:
                dv = np.diff(m.dof_pos, axis=0) / dt
                dv = np.concatenate([dv, dv[-1:]], axis=0)
            cols["root_pos"].append(m.root_pos)
            cols["root_quat"].append(root_quat)
            cols["root_lin_vel"].append(m.root_lin_vel if m.root_lin_vel is not None else blv[:, 0])
            cols["root_ang_vel"].append(m.root_ang_vel if m.root_ang_vel is not None else bav[:, 0])
            cols["dof_pos"].append(m.dof_pos)
            cols["dof_vel"].append(dv)
            cols["body_pos"].append(bp)
            cols["body_quat"].append(bq)
            cols["body_lin_vel"].append(blv)
            cols["body_ang_vel"].append(bav)
            has_action.append(m.action is not None)
            cols["action"].append(m.action if m.action is not None else np.zeros_like(m.dof_pos))
            self.motion_names.append(name)
            self.motions.append(m)
            num_frames.append(t)
            fps.append(float(m.fps))
        kw = {"device": self.device, "dtype": dtype}
        self._data = {k: torch.as_tensor(np.concatenate(v, axis=0), **kw) for k, v in cols.items()}
        f = self._data["root_pos"].shape[0]
        self._lin = torch.cat([self._data[k].reshape(f, -1) for k in _LINEAR], dim=1)
        """(F, D) every linearly interpolated field of every frame side by side (one gather per query)."""
        self._quat = torch.cat([self._data[k].reshape(f, -1) for k in _ROTATIONS], dim=1)
        """(F, 4 + 4B) root and body quaternions of every frame (one gather per query)."""
        self._lin_cols: dict[str, tuple[int, int]] = {}
        off = 0
        for k in _LINEAR:
            width = self._data[k][0].numel()
            self._lin_cols[k] = (off, off + width)
            off += width
        self.has_action = all(has_action)
        """True when every clip carries ``action`` (needed by :meth:`get_action`)."""
        self.motion_num_frames = torch.tensor(num_frames, device=self.device, dtype=torch.long)
        """(M,) frames per clip."""
        self.motion_fps = torch.tensor(fps, **kw)
        """(M,) frames per second per clip."""
        self.motion_lengths = (self.motion_num_frames - 1).to(dtype) / self.motion_fps
        """(M,) clip lengths (T - 1) / fps in seconds."""
        starts = np.concatenate([[0], np.cumsum(num_frames)[:-1]])
        self._start = torch.tensor(starts, device=self.device, dtype=torch.long)
        self._host: dict[str, np.ndarray] | None = None
        """Zero-copy NumPy views of the tables (CPU, float32): queries do their index and interpolation arithmetic
        in NumPy -- the same IEEE float32 operations as torch's at a fraction of the per-call cost -- and only the
        slerp (transcendental functions) in torch."""
        if self.device.type == "cpu" and dtype == torch.float32:
            self._host = {"lin": self._lin.numpy(), "quat": self._quat.numpy(), "length": self.motion_lengths.numpy(),
                          "frames": self.motion_num_frames.numpy(), "fps": self.motion_fps.numpy(),
                          "start": self._start.numpy()}  # fmt: skip

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _gather(motions: MotionSource | Sequence[MotionSource]) -> list[tuple[str, Motion]]:
        from asap.motion.formats import MOTION_SUFFIXES, read_motion

        items = [motions] if isinstance(motions, str | Path | Motion) else list(motions)
        out: list[tuple[str, Motion]] = []
        for it in items:
            if isinstance(it, Motion):
                out.append((str(it.meta.get("name", f"motion_{len(out)}")), it))
                continue
            p = Path(it)
            if p.is_dir():
                files = sorted(f for f in p.iterdir() if f.suffix in MOTION_SUFFIXES)
                if not files:
                    raise MotionFormatError(f"{p}: folder holds no motion files ({', '.join(MOTION_SUFFIXES)})")
                out.extend((f.stem, read_motion(f)) for f in files)
            else:
                out.append((p.stem, read_motion(p)))
        return out

    # ------------------------------------------------------------------ sizes
    @property
    def num_motions(self) -> int:
        """Number of clips M."""
        return int(self.motion_num_frames.shape[0])

    @property
    def num_bodies(self) -> int:
        """Number of tracked bodies B (27)."""
        return len(self.body_names)

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.joint_names)

    def get_motion_length(self, motion_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Lengths (s) of the given clips (all clips when None)."""
        return self.motion_lengths if motion_ids is None else self.motion_lengths[motion_ids]

    def get_phase(self, motion_ids: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """time / length, clipped to [0, 1]."""
        length = self.motion_lengths[motion_ids]
        return (torch.as_tensor(times, device=self.device, dtype=self.dtype) / length).clamp(0.0, 1.0)

    # ------------------------------------------------------------------ sampling
    def sample_motions(
        self, n: int, weights: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw n clip ids (uniform, or proportional to ``weights`` (M,))."""
        w = torch.ones(self.num_motions, device=self.device) if weights is None else weights.to(self.device)
        return torch.multinomial(w.float(), n, replacement=True, generator=generator)

    def sample_times(
        self, motion_ids: torch.Tensor, truncate: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform times in [0, length - truncate] (clipped at 0) for each id."""
        u = torch.rand(motion_ids.shape, device=self.device, dtype=self.dtype, generator=generator)
        return u * (self.motion_lengths[motion_ids] - truncate).clamp(min=0.0)

    # ------------------------------------------------------------------ queries
    def _frames(self, motion_ids: torch.Tensor, times: torch.Tensor):
        ids = torch.as_tensor(motion_ids, device=self.device, dtype=torch.long)
        t = torch.as_tensor(times, device=self.device, dtype=self.dtype)
        length = self.motion_lengths[ids]
        t = torch.minimum(t.clamp(min=0.0), length)
        n = self.motion_num_frames[ids]
        x = t * self.motion_fps[ids]
        f0 = torch.minimum(x.floor().long(), n - 1).clamp(min=0)
        f1 = torch.minimum(f0 + 1, n - 1)
        blend = (x - f0.to(self.dtype)).clamp(0.0, 1.0)
        start = self._start[ids]
        return start + f0, start + f1, blend, t / length

    def _frames_host(self, motion_ids: torch.Tensor, times: torch.Tensor):
        """:meth:`_frames` in NumPy (see :attr:`_host`): the same operations, the same values."""
        h = self._host
        assert h is not None
        ids = torch.as_tensor(motion_ids, dtype=torch.long).numpy()
        t = torch.as_tensor(times, dtype=self.dtype).numpy()
        length = h["length"][ids]
        t = np.minimum(np.maximum(t, np.float32(0.0)), length)
        n = h["frames"][ids]
        x = t * h["fps"][ids]
        f0 = np.maximum(np.minimum(np.floor(x).astype(np.int64), n - 1), 0)
        f1 = np.minimum(f0 + 1, n - 1)
        blend = np.minimum(np.maximum(x - f0.astype(np.float32), np.float32(0.0)), np.float32(1.0))
        start = h["start"][ids]
        return start + f0, start + f1, blend, t / length

    def get_state(
        self, motion_ids: torch.Tensor, times: torch.Tensor, offset: torch.Tensor | None = None
    ) -> MotionState:
        """Reference state of clip ``motion_ids[i]`` at ``times[i]`` (s) for each env i.

        Positions and velocities are interpolated linearly between the two nearest frames, rotations by slerp.
        ``offset`` (N, 3), optional, is added to root and body positions (e.g. env origins).
        """
        nq = self.num_bodies + 1
        if self._host is not None:
            g0, g1, wn, ph = self._frames_host(motion_ids, times)
            a, b = self._host["lin"][g0], self._host["lin"][g1]
            lin = self._split(torch.from_numpy(a + (b - a) * wn[:, None]))
            q0 = torch.from_numpy(self._host["quat"][g0]).view(-1, nq, 4)
            q1 = torch.from_numpy(self._host["quat"][g1]).view(-1, nq, 4)
            w, phase = torch.from_numpy(wn), torch.from_numpy(ph)
        else:
            g0, g1, w, phase = self._frames(motion_ids, times)
            a, b = self._lin[g0], self._lin[g1]
            lin = self._split(a + (b - a) * w[:, None])
            q0, q1 = self._quat[g0].view(-1, nq, 4), self._quat[g1].view(-1, nq, 4)
        root_pos, body_pos = lin["root_pos"], lin["body_pos"]
        if offset is not None:
            off = torch.as_tensor(offset, device=self.device, dtype=self.dtype)
            root_pos = root_pos + off
            body_pos = body_pos + off[:, None, :]
        # one slerp of root and body quaternions side by side (elementwise: the same values as two separate ones)
        quat = slerp(q0, q1, w[:, None].expand(-1, nq))
        return MotionState(
            root_pos=root_pos,
            root_quat=quat[:, 0],
            root_lin_vel=lin["root_lin_vel"],
            root_ang_vel=lin["root_ang_vel"],
            dof_pos=lin["dof_pos"],
            dof_vel=lin["dof_vel"],
            body_pos=body_pos,
            body_quat=quat[:, 1:],
            body_lin_vel=lin["body_lin_vel"],
            body_ang_vel=lin["body_ang_vel"],
            phase=phase.clamp(0.0, 1.0),
        )

    def _split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of (N, D) rows of :attr:`_lin` as the fields' shapes ((N, 3), (N, J), (N, B, 3))."""
        n = rows.shape[0]
        out = {}
        for k, (lo, hi) in self._lin_cols.items():
            x = rows[:, lo:hi]
            out[k] = x.view(n, self.num_bodies, 3) if k.startswith("body_") else x
        return out

    def frame_state(self, motion_ids: torch.Tensor, frames: torch.Tensor) -> MotionState:
        """State of clip ``motion_ids[i]`` exactly at frame ``frames[i]`` (clamped to the clip), no interpolation.

        For logged rollouts whose frames are control steps (the delta model replays them frame by frame).
        """
        m = motion_ids.to(self.device).long()
        f = torch.minimum(frames.to(self.device).long().clamp(min=0), self.motion_num_frames[m] - 1)
        g = self._start[m] + f
        lin = self._split(self._lin[g])
        quat = self._quat[g]
        return MotionState(
            root_pos=lin["root_pos"], root_quat=quat[:, :4], root_lin_vel=lin["root_lin_vel"],
            root_ang_vel=lin["root_ang_vel"], dof_pos=lin["dof_pos"], dof_vel=lin["dof_vel"],
            body_pos=lin["body_pos"], body_quat=quat[:, 4:].view(-1, self.num_bodies, 4),
            body_lin_vel=lin["body_lin_vel"], body_ang_vel=lin["body_ang_vel"],
            phase=(f.to(self.dtype) / (self.motion_num_frames[m] - 1).clamp(min=1)),
        )  # fmt: skip

    def frame_action(self, motion_ids: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Logged raw action (N, J) stored at frame ``frames[i]`` of clip ``motion_ids[i]`` (clamped to the clip)."""
        if not self.has_action:
            raise MotionFormatError("frame_action needs every clip to carry 'action' (logged rollouts)")
        m = motion_ids.to(self.device).long()
        f = torch.minimum(frames.to(self.device).long().clamp(min=0), self.motion_num_frames[m] - 1)
        return self._data["action"][self._start[m] + f]

    def get_action(self, motion_ids: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Recorded raw action (N, J) at the frame at or before each time (no interpolation)."""
        if not self.has_action:
            raise MotionFormatError("get_action needs every clip to carry 'action' (logged rollouts)")
        g0, _, _, _ = self._frames(motion_ids, times)
        return self._data["action"][g0]

    def frame_data(self, key: str, motion_id: int) -> torch.Tensor:
        """All frames (T, ...) of one precomputed array of one clip (``body_pos``, ``dof_vel``, ...)."""
        s = int(self._start[motion_id])
        return self._data[key][s : s + int(self.motion_num_frames[motion_id])]
