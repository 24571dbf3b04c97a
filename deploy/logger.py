"""Rollout logs: chunked, crash-safe files written by the runtime, and their conversion to Motion files.

A log is a directory::

    meta.json           written once at start (policy contract, joint/motor names, config)
    events.jsonl        one JSON line per state transition (time, from, to, cause), flushed and fsynced
    chunk_00000.npz ... one file per chunk of control steps, written to a temporary name and renamed
    odom_00000.npz ...  the odometry stream's samples (:data:`deploy.odometry.SAMPLE_KEYS`), when one is recorded

A chunk is written when it is full, whenever an episode ends, when the controller damps, and at exit, so a
killed process leaves every finished episode readable (at most the steps since the last flush are lost).

Per control step (50 Hz) the arrays hold: ``time`` (s, monotonic since start), ``wall``, ``tick``, ``mode``
(:class:`deploy.controller.Mode`), ``episode``, ``run_step``, ``phase``, ``period`` (measured policy period),
``q``/``dq``/``tau_est`` (29 motors, wire order), ``imu_quat`` (wxyz), ``imu_gyro``, ``imu_acc``, ``action`` (J,
raw policy output; 0 outside RUN), ``obs`` (actor observation; 0 outside RUN), ``q_target``/``kp``/``kd`` (29, as
sent), ``state_wall`` (UNIX time at which the state arrived), ``root_valid``, ``root_pos``, ``root_quat`` (wxyz),
``root_lin_vel``, ``root_ang_vel`` (world frame: the newest odometry sample at the step, for a look during the run;
the conversion interpolates the stream itself, or takes these columns when a recorded mocap file was attached).
:func:`control_row` builds a row; the runtime logs one at every policy step, after the step: the state the policy
saw and the action it computed from it.

``meta["root_source"]`` says where the root of the converted Motions comes from (:func:`log_to_motions`):
``odometry`` (the stream, interpolated to the steps' state times), ``estimate`` (proprioception,
:mod:`deploy.root_estimate`), ``mocap`` (columns written by a mocap attach); logs from before the stream keep their
columns (``simulator`` / ``mocap`` / ``imu_only``).
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

CHUNK_PREFIX = "chunk_"
ODOM_PREFIX = "odom_"


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file, then a rename)."""
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
        write_text_atomic(self.dir / "meta.json", json.dumps(meta, indent=1, default=_json_default))
        self.chunk_steps = int(chunk_steps)
        self._buf: dict[str, np.ndarray] = {}
        self._n = 0
        self._chunk = 0
        self._events = open(self.dir / "events.jsonl", "a", buffering=1)  # noqa: SIM115 - kept open for the run
        self.steps_written = 0
        self._samples: list[dict[str, Any]] = []
        self._sample_chunk = 0

    def log_samples(self, rows: list[dict[str, Any]]) -> None:
        """Append odometry samples (dicts of :data:`deploy.odometry.SAMPLE_KEYS`); written with the next flush."""
        self._samples.extend(rows)

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
        """Write the buffered steps (if any) as the next chunk file, and the buffered odometry samples."""
        if self._samples:
            rows, self._samples = self._samples, []
            arrays = {k: np.asarray([r[k] for r in rows], dtype=np.float64) for k in rows[0]}
            write_npz_atomic(self.dir / f"{ODOM_PREFIX}{self._sample_chunk:05d}.npz", arrays)
            self._sample_chunk += 1
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
    period: float = math.nan, compute: float = math.nan, state_wall: float = math.nan,
) -> dict[str, Any]:  # fmt: skip
    """One log row (see the module docstring) of a policy step.

    ``elapsed`` s since the start; ``state`` the controller's :class:`deploy.controller.RobotState` (29 motors);
    ``info`` its policy-step record (mode, phase, run_step, episode, ``action`` (J,) raw policy output, ``obs``);
    ``command`` the :class:`deploy.controller.Command` sent (None: nothing sent); ``root`` the newest root sample
    (attributes or keys ``pos``, ``quat`` wxyz, ``lin_vel``, ``ang_vel``; world frame) or None; ``state_wall`` the
    UNIX time the state arrived (the time the stream is interpolated to).
    """
    z29 = np.zeros(len(state.q))
    obs = info.obs if info.obs.size else np.zeros(obs_dim, np.float32)
    c = command
    m = SimpleNamespace(**root) if isinstance(root, dict) else root
    return {
        "time": elapsed, "wall": time.time(), "tick": np.uint32(state.tick), "mode": np.int8(info.mode),
        "episode": np.int32(info.episode), "run_step": np.int32(info.run_step), "phase": info.phase,
        "period": period, "compute": compute, "state_wall": float(state_wall),
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


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (.npz) crash-safely: a temporary file, fsync, then an atomic rename."""
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_log(directory: str | Path) -> dict[str, Any]:
    """Read a log directory: ``{"meta": dict, "events": list, "steps": {key: array}, "odometry": {key: array}}``
    (``odometry``: the recorded samples, :data:`deploy.odometry.SAMPLE_KEYS`; empty when none were recorded).

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
    skipped: list[str] = []
    steps = _read_chunks(d, CHUNK_PREFIX, skipped)
    odometry = _read_chunks(d, ODOM_PREFIX, skipped)
    return {"meta": meta, "events": events, "steps": steps, "skipped": skipped, "odometry": odometry}


def _read_chunks(d: Path, prefix: str, skipped: list[str]) -> dict[str, np.ndarray]:
    """The ``prefix*.npz`` chunks of log folder ``d`` joined per field in file order; an unreadable chunk (a crash
    while writing it) is left out whole and its name appended to ``skipped``."""
    parts: dict[str, list[np.ndarray]] = {}
    for p in sorted(d.glob(f"{prefix}*.npz")):
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            skipped.append(p.name)
            continue
        for k, v in data.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


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


ROOT_CHOICES = ("odometry", "estimate", "columns")
"""What :func:`log_to_motions` can take the root from (None: what the log's meta says)."""


def _episode_root(
    meta: dict[str, Any], s: dict[str, np.ndarray], rows: np.ndarray, odom: dict[str, np.ndarray], want: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The root of one episode's rows from the source ``want`` (see :func:`log_to_motions`): arrays ``pos``,
    ``quat``, ``lin_vel``, ``ang_vel`` (None: derive from the poses) and the Motion meta entries that describe it."""
    if want == "odometry":
        if odom and "state_wall" in s:
            from deploy.odometry import interpolate_root, sample_times

            times, clock = sample_times(odom)
            r = interpolate_root(times, odom, s["state_wall"][rows].astype(np.float64))
            if r["valid"].all():
                lin_ok = bool(np.abs(odom["lin_vel"]).max() > 0)  # many bridges leave the twist empty
                arrays = {"pos": r["pos"], "quat": r["quat"], "lin_vel": r["lin_vel"] if lin_ok else None,
                          "ang_vel": r["ang_vel"] if lin_ok else None}  # fmt: skip
                return arrays, {"root_source": "odometry", "root_topic": meta.get("root_topic"), "root_clock": clock}
        print(f"[log] episode rows {int(rows[0])}-{int(rows[-1])}: no odometry covers them; root estimated from "
              "the IMU and leg kinematics instead", flush=True)  # fmt: skip
        want = "estimate"
    if want == "columns" and "root_valid" in s and bool(np.all(s["root_valid"][rows])):
        source = meta.get("root_source")
        if source not in ("mocap", "simulator"):
            source = "simulator" if meta.get("virtual") else "mocap"  # logs from before the odometry stream
        return ({"pos": s["root_pos"][rows], "quat": s["root_quat"][rows], "lin_vel": s["root_lin_vel"][rows],
                 "ang_vel": s["root_ang_vel"][rows]}, {"root_source": source})  # fmt: skip
    from deploy.root_estimate import estimate_root

    gyro = s["imu_gyro"][rows] if "imu_gyro" in s else np.zeros((len(rows), 3))
    e = estimate_root(s["q"][rows], s["imu_quat"][rows], gyro, float(meta["control_dt"]))
    return ({"pos": e["pos"], "quat": e["quat"], "lin_vel": e["lin_vel"],
             "ang_vel": e["ang_vel"] if "imu_gyro" in s else None}, {"root_source": "estimate"})  # fmt: skip


def log_to_motions(directory: str | Path, min_frames: int = 2, root_source: str | None = None) -> list[Any]:
    """Convert each RUN episode of a log into an :class:`asap.motion.Motion` with ``action``.

    Frame f holds the state measured at control step f and, as ``action[f]``, the raw policy output computed from
    it and applied until step f+1 (:data:`asap.control.ACTION_ALIGNMENT`, the convention of every Motion with
    ``action``; ``asap play`` writes the same). The frame after the last policy step is kept with action 0, so a
    clip of K policy steps has K+1 frames.

    The root comes from ``root_source`` (one of :data:`ROOT_CHOICES`; None: the log's ``meta["root_source"]``):
    ``odometry``, the recorded stream interpolated to each step's state time (``state_wall``; slerp for the
    orientation); ``estimate``, the proprioceptive estimate (:mod:`deploy.root_estimate`); ``columns``, the
    logged root columns (a mocap file attached to the log, or logs from before the stream). An episode the chosen
    source does not cover falls back to the estimate (said on stdout). ``meta["root_source"]`` of each Motion names
    what it got (the names of :data:`asap.root_source.ROOT_TRUST`). ``meta`` also carries the policy contract's
    target shaping (``target_clamp``, ``target_max_step``) and clip fingerprints when the log has them.
    """
    from asap.control import ACTION_ALIGNMENT
    from asap.motion.motion import Motion  # the converter is not part of the onboard runtime

    if root_source is not None and root_source not in ROOT_CHOICES:
        raise ValueError(f"unknown root source {root_source!r}; choose one of {list(ROOT_CHOICES)}")
    log = read_log(directory)
    meta, s = log["meta"], log["steps"]
    want = root_source or {"odometry": "odometry", "estimate": "estimate"}.get(str(meta.get("root_source")), "columns")
    names = tuple(meta["joint_names"])
    motor_index = np.asarray(meta["joint_motor_index"], dtype=np.int64)
    out = []
    for e, rows in episodes(s):
        if len(rows) < min_frames:
            continue
        run = s["mode"][rows] == 3
        act = np.zeros((len(rows), len(names)))
        act[run] = s["action"][rows][run]  # row f: the state the policy saw and the action it computed from it
        root, root_meta = _episode_root(meta, s, rows, log["odometry"], want)
        root_pos, root_quat, lin, ang = root["pos"], root["quat"], root["lin_vel"], root["ang_vel"]
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
                **root_meta,
                "robot": meta.get("robot"),
                "action_alignment": ACTION_ALIGNMENT,
                "completed": bool(run.sum() >= int(meta.get("steps_per_motion", 0))),
                # how the runtime turned these actions into targets, and which clip the policy tracked: a replay
                # (the delta model's open-loop task) must shape the logged actions the same way
                **{
                    k: meta[k]
                    for k in ("target_clamp", "target_max_step", "clips", "clip_index", "excitation_std")
                    if k in meta
                },
                "gap": meta.get("gap"),
                "policy_steps": int(run.sum()),
            },
        )
        out.append(m)
    return out
