"""Rollout logs: chunked, crash-safe files written by the runtime, and their conversion to Motion files.

A log is a directory::

    meta.json           written once at start (policy contract, joint/motor names, config)
    events.jsonl        one JSON line per state transition (time, from, to, cause), flushed and fsynced
    chunk_00000.npz ... one file per chunk of control steps, written to a temporary name and renamed

A chunk is written when it is full, whenever an episode ends, when the controller damps, and at exit, so a
killed process leaves every finished episode readable (at most the steps since the last flush are lost).

Per control step (50 Hz) the arrays hold: ``time`` (s, monotonic since start), ``wall``, ``tick``, ``mode``
(:class:`deploy.controller.Mode`), ``episode``, ``run_step``, ``phase``, ``period`` (measured policy period),
``q``/``dq``/``tau_est`` (29 motors, wire order), ``imu_quat`` (wxyz), ``imu_gyro``, ``imu_acc``, ``action`` (J,
raw policy output; 0 outside RUN), ``obs`` (actor observation; 0 outside RUN), ``q_target``/``kp``/``kd`` (29, as
sent), ``root_valid``, ``root_pos``, ``root_quat`` (wxyz), ``root_lin_vel``, ``root_ang_vel`` (world frame, from the
mocap topic: simulator ground truth on the virtual G1). :func:`control_row` builds a row; the runtime logs one at
every policy step, after the step: the state the policy saw and the action it computed from it.
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_PREFIX = "chunk_"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RolloutLogger:
    """Buffers per-step rows and writes them as chunks (see module docstring)."""

    def __init__(self, directory: str | Path, meta: dict[str, Any], chunk_steps: int = 250) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.dir.glob(f"{CHUNK_PREFIX}*.npz"))
        if existing:
            raise FileExistsError(f"{self.dir} already holds a log; choose a new directory")
        _atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=1, default=_json_default))
        self.chunk_steps = int(chunk_steps)
        self._buf: dict[str, np.ndarray] = {}
        self._n = 0
        self._chunk = 0
        self._events = open(self.dir / "events.jsonl", "a", buffering=1)  # noqa: SIM115 - kept open for the run
        self.steps_written = 0

    def log(self, row: dict[str, Any]) -> None:
        """Append one control step (same keys and shapes every call)."""
        if not self._buf:
            for k, v in row.items():
                a = np.asarray(v)
                self._buf[k] = np.zeros((self.chunk_steps, *a.shape), dtype=a.dtype)
        for k, v in row.items():
            self._buf[k][self._n] = v
        self._n += 1
        if self._n >= self.chunk_steps:
            self.flush()

    def event(self, record: dict[str, Any]) -> None:
        """Append one event line and push it to disk."""
        self._events.write(json.dumps(record, default=_json_default) + "\n")
        self._events.flush()
        os.fsync(self._events.fileno())

    def flush(self) -> None:
        """Write the buffered steps (if any) as the next chunk file."""
        if self._n == 0:
            return
        path = self.dir / f"{CHUNK_PREFIX}{self._chunk:05d}.npz"
        tmp = self.dir / f".{path.stem}.tmp.npz"
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v[: self._n] for k, v in self._buf.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.steps_written += self._n
        self._chunk += 1
        self._n = 0

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        if not self._events.closed:
            self._events.close()


def control_row(
    elapsed: float, state: Any, info: Any, command: Any, root: Any, num_joints: int, obs_dim: int,
    period: float = math.nan, compute: float = math.nan,
) -> dict[str, Any]:  # fmt: skip
    """One log row (see the module docstring) of a policy step.

    ``elapsed`` s since the start; ``state`` the controller's :class:`deploy.controller.RobotState` (29 motors);
    ``info`` its policy-step record (mode, phase, run_step, episode, ``action`` (J,) raw policy output, ``obs``);
    ``command`` the :class:`deploy.controller.Command` sent (None: nothing sent); ``root`` the mocap/ground-truth
    root (``pos``, ``quat`` wxyz, ``lin_vel``, ``ang_vel``; world frame) or None.
    """
    z29 = np.zeros(len(state.q))
    obs = info.obs if info.obs.size else np.zeros(obs_dim, np.float32)
    c, m = command, root
    return {
        "time": elapsed, "wall": time.time(), "tick": np.uint32(state.tick), "mode": np.int8(info.mode),
        "episode": np.int32(info.episode), "run_step": np.int32(info.run_step), "phase": info.phase,
        "period": period, "compute": compute,
        "q": state.q.astype(np.float32), "dq": state.dq.astype(np.float32),
        "tau_est": state.tau_est.astype(np.float32), "imu_quat": state.quat.astype(np.float32),
        "imu_gyro": state.gyro.astype(np.float32), "imu_acc": state.acc.astype(np.float32),
        "action": np.asarray(info.action if info.action.size == num_joints else np.zeros(num_joints), np.float32),
        "obs": np.asarray(obs, dtype=np.float32),
        "q_target": (c.q if c else z29).astype(np.float32), "kp": (c.kp if c else z29).astype(np.float32),
        "kd": (c.kd if c else z29).astype(np.float32),
        "root_valid": m is not None,
        "root_pos": np.asarray(m.pos if m else np.zeros(3), dtype=np.float64),
        "root_quat": np.asarray(m.quat if m else [1.0, 0, 0, 0], dtype=np.float64),
        "root_lin_vel": np.asarray(m.lin_vel if m else np.zeros(3), dtype=np.float64),
        "root_ang_vel": np.asarray(m.ang_vel if m else np.zeros(3), dtype=np.float64),
    }  # fmt: skip


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_log(directory: str | Path) -> dict[str, Any]:
    """Read a log directory: ``{"meta": dict, "events": list, "steps": {key: array}}``.

    Unreadable chunks (e.g. cut by a crash during the rename-less part of a write) are skipped with their names
    listed under ``"skipped"``; a trailing partial line in events.jsonl is ignored.
    """
    d = Path(directory)
    if not (d / "meta.json").exists():
        raise FileNotFoundError(f"{d} is not a rollout log (no meta.json)")
    meta = json.loads((d / "meta.json").read_text())
    events = []
    if (d / "events.jsonl").exists():
        for line in (d / "events.jsonl").read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    parts: dict[str, list[np.ndarray]] = {}
    skipped = []
    for p in sorted(d.glob(f"{CHUNK_PREFIX}*.npz")):
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            skipped.append(p.name)
            continue
        for k, v in data.items():
            parts.setdefault(k, []).append(v)
    steps = {k: np.concatenate(v) for k, v in parts.items()}
    return {"meta": meta, "events": events, "steps": steps, "skipped": skipped}


def episodes(steps: dict[str, np.ndarray], run_mode: int = 3) -> list[tuple[int, np.ndarray]]:
    """(episode id, row indices) of every RUN segment, plus the first row after it when it exists."""
    if "mode" not in steps or len(steps["mode"]) == 0:
        return []
    mode, ep = steps["mode"], steps["episode"]
    out = []
    for e in np.unique(ep[mode == run_mode]):
        rows = np.nonzero((mode == run_mode) & (ep == e))[0]
        last = rows[-1]
        if last + 1 < len(mode):
            rows = np.append(rows, last + 1)
        out.append((int(e), rows))
    return out


def log_to_motions(directory: str | Path, min_frames: int = 2) -> list[Any]:
    """Convert each RUN episode of a log into an :class:`asap.motion.Motion` with ``action``.

    Frame f holds the state measured at control step f and, as ``action[f]``, the raw policy output computed from
    it and applied until step f+1 (:data:`asap.control.ACTION_ALIGNMENT`, the convention of every Motion with
    ``action``; ``asap play`` writes the same). The frame after the last policy step is kept with action 0, so a
    clip of K policy steps has K+1 frames. Root pose/velocity come from the mocap/ground-truth topic; without it
    the root is the IMU orientation at a fixed height and ``meta["root_source"]`` says so (``simulator``: the
    virtual G1's ground truth; ``mocap``: a motion-capture stream; ``imu_only``). ``meta`` also carries the policy
    contract's target shaping (``target_clamp``, ``target_max_step``) and clip fingerprints when the log has them.
    """
    from asap.control import ACTION_ALIGNMENT
    from asap.motion.motion import Motion  # the converter is not part of the onboard runtime

    log = read_log(directory)
    meta, s = log["meta"], log["steps"]
    names = tuple(meta["joint_names"])
    motor_index = np.asarray(meta["joint_motor_index"], dtype=np.int64)
    out = []
    for e, rows in episodes(s):
        if len(rows) < min_frames:
            continue
        run = s["mode"][rows] == 3
        act = np.zeros((len(rows), len(names)))
        act[run] = s["action"][rows][run]  # row f: the state the policy saw and the action it computed from it
        valid = bool(np.all(s["root_valid"][rows]))
        if valid:
            root_pos, root_quat = s["root_pos"][rows], s["root_quat"][rows]
            lin, ang = s["root_lin_vel"][rows], s["root_ang_vel"][rows]
            source = "simulator" if meta.get("virtual") else "mocap"  # the virtual G1 publishes its ground truth
        else:
            q = s["imu_quat"][rows].astype(np.float64)
            root_quat = q / np.linalg.norm(q, axis=-1, keepdims=True)
            root_pos = np.tile([0.0, 0.0, 0.79], (len(rows), 1))
            lin = ang = None
            source = "imu_only"
        m = Motion(
            fps=round(1.0 / float(meta["control_dt"]), 6),
            joint_names=names,
            root_pos=np.asarray(root_pos, dtype=np.float64),
            root_quat=np.asarray(root_quat, dtype=np.float64),
            dof_pos=s["q"][rows][:, motor_index].astype(np.float64),
            action=act,
            dof_vel=s["dq"][rows][:, motor_index].astype(np.float64),
            root_lin_vel=None if lin is None else np.asarray(lin, dtype=np.float64),
            root_ang_vel=None if ang is None else np.asarray(ang, dtype=np.float64),
            meta={
                "source": "asap collect",
                "log": str(directory),
                "episode": e,
                "motion_name": meta.get("motion_name"),
                "policy": meta.get("policy"),
                "root_source": source,
                "robot": meta.get("robot"),
                "action_alignment": ACTION_ALIGNMENT,
                "completed": bool(run.sum() >= int(meta.get("steps_per_motion", 0))),
                # how the runtime turned these actions into targets, and which clip the policy tracked: a replay
                # (the delta model's open-loop task) must shape the logged actions the same way
                **{k: meta[k] for k in ("target_clamp", "target_max_step", "clips", "clip_index") if k in meta},
                "gap": meta.get("gap"),
                "policy_steps": int(run.sum()),
            },
        )
        out.append(m)
    return out
