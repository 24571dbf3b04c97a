"""Start states the robot was really in when its policy started, read from logged episodes.

On the robot (and the virtual G1) a policy never starts on the reference state: the runtime blends the joints to
the clip's first pose with its own PD law, holds them, and the support is released as the policy starts
(``deploy/collect.py``). Under a reality gap that PD law does not hold the pose the simulator would (weak ankles sag
~0.1 rad on the demo's ``ankle_weak`` virtual G1), and a policy trained only from reference states can fall from
there even without the gap. The first frame of every logged RUN segment (``asap collect``) is exactly that state:
:class:`LoggedStarts` keeps them, and :class:`envs.tracking.env.TrackingEnv` starts a share of its training resets
from them (``TrackingEnvConfig.logged_starts``), at time 0 of the clip each one ran, with the previous joint target
the runtime held (the clip's first pose), not the sagged measured one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from asap.delta.logs import gather_logs
from asap.motion.motion import Motion, MotionFormatError


class LoggedStarts:
    """K logged start states of the clips of a motion library.

    Attributes (torch, on ``device``): ``motion_ids`` (K,) long, the clip of the library each started; ``root_state``
    (K, 13): pelvis position (m, world), orientation (wxyz), linear and angular velocity (world, m/s and rad/s);
    ``dof_pos``, ``dof_vel`` (K, J) in the library's (policy) joint order, rad and rad/s.

    Raises ``FileNotFoundError`` / ``ValueError`` / ``MotionFormatError`` in one line naming the file and the fix:
    no logs, a log without velocities, another joint order, or a clip the library does not hold.
    """

    def __init__(self, items: Sequence[str], motion_names: Sequence[str], joint_names: Sequence[str],
                 device: torch.device | str = "cpu") -> None:  # fmt: skip
        files = gather_logs(list(items))
        names = list(motion_names)
        ids, roots, qs, qds = [], [], [], []
        for f in files:
            m = Motion.load(f)
            ids.append(self._clip_of(f, m, names))
            if tuple(m.joint_names) != tuple(joint_names):
                raise ValueError(f"{f}: joint order {tuple(m.joint_names)[:3]}... is not the policy's: log with the "
                                 "same robot variant as the training")  # fmt: skip
            if m.dof_vel is None or m.root_lin_vel is None or m.root_ang_vel is None:
                raise MotionFormatError(f"{f}: no velocities: logged starts need `asap collect`'s episodes")
            roots.append(np.concatenate([m.root_pos[0], m.root_quat[0], m.root_lin_vel[0], m.root_ang_vel[0]]))
            qs.append(m.dof_pos[0])
            qds.append(m.dof_vel[0])
        f32 = {"dtype": torch.float32, "device": device}
        self.motion_ids = torch.tensor(ids, dtype=torch.long, device=device)
        self.root_state = torch.as_tensor(np.stack(roots), **f32)
        self.dof_pos = torch.as_tensor(np.stack(qs), **f32)
        self.dof_vel = torch.as_tensor(np.stack(qds), **f32)

    @staticmethod
    def _clip_of(path: Path, m: Motion, names: list[str]) -> int:
        clip = m.meta.get("motion_name")
        if clip is None and len(names) == 1:
            return 0
        if clip not in names:
            raise ValueError(f"{path}: logged clip {clip!r} is not among the training motions {names}: pass logs of "
                             "these clips in logged_starts.logs")  # fmt: skip
        return names.index(str(clip))

    def __len__(self) -> int:
        """Number of start states K."""
        return int(self.motion_ids.shape[0])

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n,) indices of start states drawn uniformly with replacement (``generator`` on the CPU)."""
        return torch.randint(len(self), (n,), generator=generator).to(self.motion_ids.device)
