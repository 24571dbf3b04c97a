"""Recorded motion capture: read a mocap CSV export, find its clock offset to a rollout log, resample it.

A mocap system records the robot's pelvis (a rigid body of markers) on its own clock. :func:`attach_mocap` merges
such a recording into a rollout log (:mod:`deploy.logger`) after the fact:

1. **Read** the export (:data:`FORMATS`; :func:`read_mocap`): time (s), position and orientation of one rigid
   body, converted to metres, a z-up world and wxyz quaternions, then moved from the rigid body's frame to the
   pelvis frame by the markers-to-body offset (``body_offset_pos``: the pelvis origin in the rigid body's frame, m;
   ``body_offset_quat``: the pelvis frame's orientation in it, wxyz). Occluded frames (empty or NaN cells) are
   gaps.
2. **Align clocks** (:func:`estimate_offset`): the model is ``t_mocap = t_log + offset``. The IMU's angular speed
   ``|gyro|`` (rad/s, from LowState, in the log) and the mocap's angular speed (from successive orientations) are
   the same physical signal whatever the frames, so the offset is the lag that maximises their normalised
   cross-correlation on a common grid (coarse, one grid step), refined to sub-millisecond by a bounded scalar
   minimisation of ``1 - correlation`` with the mocap signal interpolated at the shifted times. The same fit on
   each half of the log gives the clock drift; with ``fit_drift`` the clocks are related by
   ``t_mocap = offset_at_log_zero + rate * t_log`` through the two halves' offsets.
3. **Resample** (:func:`resample`) to the log's control steps: position (linear), orientation (slerp), world-frame
   linear velocity (Savitzky-Golay derivative of position) and angular velocity (from orientation differences).
   Steps outside the recording or inside a gap longer than ``max_gap_s`` keep ``root_valid = False``.
4. **Report** the residual: angular-speed and body-frame gyro residuals (rad/s), the tilt difference between
   the IMU's and the mocap's orientation (deg), the offsets fitted on each half of the log (clock drift), the
   coverage.

NumPy and SciPy only (no torch, MuJoCo or training code): it runs wherever the log is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asap.utils.rotations import (
    angular_velocity,
    axis_angle_to_quat,
    matrix_to_quat,
    projected_gravity,
    quat_mul,
    quat_normalize,
    quat_rotate,
    quat_rotate_inverse,
    slerp,
    xyzw_to_wxyz,
)

FORMATS = ("plain", "optitrack", "vicon", "qualisys")
"""Layouts :func:`read_mocap` reads (see each reader's docstring)."""
ROOT_KEYS = ("root_valid", "root_pos", "root_quat", "root_lin_vel", "root_ang_vel")
"""The log columns attach-mocap writes (see :mod:`deploy.logger`)."""
BACKUP_DIR = "pre_mocap"
"""Subfolder of a log holding the root columns as they were before the first attach (restored on re-attach)."""
REPORT_FILE = "mocap_report.json"
"""The alignment report written beside the log's meta.json."""
Y_UP_TO_Z_UP = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""World rotation from a right-handed y-up frame to z-up: (x, y, z)_y-up -> (z, x, y)_z-up (the y-up axis becomes
z, the horizontal axes keep their handedness; yaw in the log's world is arbitrary anyway)."""


@dataclass
class MocapConfig:
    """How to read a mocap export and align it (``asap log attach-mocap``; YAML: configs/deploy/mocap.yaml)."""

    format: str = "plain"
    """Column layout: plain, optitrack (Motive CSV), vicon (Nexus/Tracker CSV), qualisys (QTM 6D TSV/CSV)."""
    rigid_body: str | None = None
    """Name of the pelvis rigid body in exports holding several (None: the only one in the file)."""
    units: str = "auto"
    """Position units: m, mm, or auto (from the file's header or units row; plain: m)."""
    up_axis: str = "auto"
    """World up axis of the export: z, y, or auto (optitrack: y, as Motive exports by default; others: z)."""
    rotation_units: str = "auto"
    """vicon helical angles RX/RY/RZ: deg, rad, or auto (from the units row; deg when absent)."""
    matrix_order: str = "columns"
    """qualisys Rot[0..8]: 'columns' (R11, R21, R31, R12, ...) or 'rows'; a wrong choice shows as a large
    gyro_vector_rms in the report."""
    rate_hz: float | None = None
    """Frame rate for exports whose time is a frame number without a rate in the file (vicon)."""
    body_offset_pos: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Pelvis origin in the rigid body's frame (m, after unit conversion)."""
    body_offset_quat: list[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])
    """Pelvis frame orientation in the rigid body's frame (wxyz)."""
    max_offset_s: float | None = None
    """Search the clock offset within +-this many seconds (None: every lag with enough overlap)."""
    min_overlap_s: float = 2.0
    """Least overlap of log and recording (s) for a lag to count."""
    min_overlap_fraction: float = 0.5
    """Least overlap as a fraction of the shorter of log and recording (short overlaps correlate by chance)."""
    grid_hz: float = 200.0
    """Rate of the common grid of the coarse cross-correlation (its step bounds the coarse error)."""
    smooth_s: float = 0.02
    """Std of the Gaussian applied to both angular speeds before matching (s; same filter, so no lag)."""
    velocity_window_s: float = 0.05
    """Savitzky-Golay window of the mocap velocities (s)."""
    max_gap_s: float = 0.05
    """Longest gap in the recording (occlusion) bridged by interpolation (s); longer gaps leave steps invalid."""
    fit_drift: bool = True
    """Also fit a clock rate difference: offsets fitted on each half of the log, joined by a line in time (used
    when both lie within ``max_drift_s`` of the whole log's offset; otherwise one constant offset)."""
    max_drift_s: float = 0.05
    """Largest difference between a half's offset and the whole log's for the drift fit to be used (s)."""
    min_correlation: float = 0.8
    """Below this peak correlation the alignment is refused (wrong file, rigid body or a log without motion)."""


@dataclass
class MocapTrack:
    """A rigid body's recorded trajectory, on the mocap clock: z-up world, metres, wxyz, pelvis frame."""

    t: np.ndarray
    """(N,) s, increasing."""
    pos: np.ndarray
    """(N, 3) m, world; NaN rows are gaps."""
    quat: np.ndarray
    """(N, 4) wxyz, world <- body; NaN rows are gaps."""
    source: dict[str, Any] = field(default_factory=dict)
    """What the reader found in the file (format, rigid body, units, up axis, rate)."""

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: frames with a finite pose."""
        return np.isfinite(self.pos).all(1) & np.isfinite(self.quat).all(1)


# ------------------------------------------------------------------------------------------------ readers
def _rows(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = "\t" if first.count("\t") > first.count(",") else ","
    return [[c.strip() for c in r] for r in csv.reader(io.StringIO(text), delimiter=delim)]


def _num(cells: list[str]) -> np.ndarray:
    out = np.full(len(cells), np.nan)
    for i, c in enumerate(cells):
        try:
            out[i] = float(c)
        except ValueError:
            pass
    return out


def _table(rows: list[list[str]], start: int, cols: list[int]) -> np.ndarray:
    data = []
    for r in rows[start:]:
        if not any(r):
            continue
        data.append(_num([r[c] if c < len(r) else "" for c in cols]))
    if not data:
        raise ValueError("the mocap file has a header but no data rows")
    return np.asarray(data)


def _read_plain(rows: list[list[str]], cfg: MocapConfig) -> dict[str, Any]:
    """``time,x,y,z,qw,qx,qy,qz`` (header row with these names, any order; time in s, quaternion wxyz)."""
    names = ("time", "x", "y", "z", "qw", "qx", "qy", "qz")
    head = [c.lower() for c in rows[0]]
    missing = [n for n in names if n not in head]
    if missing:
        raise ValueError(f"plain mocap CSV needs a header with {','.join(names)}; missing {missing}")
    a = _table(rows, 1, [head.index(n) for n in names])
    return {"t": a[:, 0], "pos": a[:, 1:4], "quat": a[:, 4:8], "units": None, "up": None}


def _read_optitrack(rows: list[list[str]], cfg: MocapConfig) -> dict[str, Any]:
    """OptiTrack Motive CSV export with rigid bodies and ``Rotation Type: Quaternion``.

    Layout: a first line of ``key,value`` pairs (``Capture Frame Rate``, ``Rotation Type``, ``Length Units``, ...),
    then rows whose second cell is ``Type`` (``Rigid Body``, ``Marker``, ...) and ``Name``, a row naming each
    column's quantity (``Rotation``/``Position``), and the axis row starting ``Frame,Time (Seconds),X,Y,Z,W,...``.
    """
    header = {rows[0][i]: rows[0][i + 1] for i in range(0, len(rows[0]) - 1, 2)}
    if header.get("Rotation Type", "Quaternion").lower() != "quaternion":
        raise ValueError(f"Motive export with rotation type {header['Rotation Type']!r}: re-export with "
                         "Rotation Type = Quaternion")  # fmt: skip
    axis_i = next((i for i, r in enumerate(rows) if r[:1] == ["Frame"] and len(r) > 1 and r[1].startswith("Time")),
                  None)  # fmt: skip
    if axis_i is None:
        raise ValueError("not a Motive CSV export: no 'Frame,Time (Seconds),...' row (use --format plain?)")
    above = {r[1]: r for r in rows[:axis_i] if len(r) > 1 and r[1] in ("Type", "Name")}
    if "Type" not in above or "Name" not in above:
        raise ValueError("Motive CSV export without its Type/Name rows: export with the header enabled")
    kind_row = rows[axis_i - 1]
    axes = rows[axis_i]
    types, names = above["Type"], above["Name"]
    bodies = sorted({names[i] for i in range(2, len(names)) if i < len(types) and types[i] == "Rigid Body"})
    body = _pick_body(bodies, cfg.rigid_body)
    cols: dict[str, int] = {}
    for i in range(2, len(axes)):
        if i < len(types) and types[i] == "Rigid Body" and names[i] == body and i < len(kind_row):
            cols.setdefault(f"{kind_row[i]}:{axes[i]}", i)
    need = ["Rotation:X", "Rotation:Y", "Rotation:Z", "Rotation:W", "Position:X", "Position:Y", "Position:Z"]
    if any(k not in cols for k in need):
        raise ValueError(f"Motive rigid body {body!r} lacks quaternion/position columns (found {sorted(cols)})")
    a = _table(rows, axis_i + 1, [1] + [cols[k] for k in need])
    units = {"meters": "m", "millimeters": "mm", "centimeters": "cm"}.get(header.get("Length Units", "").lower())
    rate = _float_or_none(header.get("Export Frame Rate"))
    return {"t": a[:, 0], "pos": a[:, 5:8], "quat": xyzw_to_wxyz(a[:, 1:5]), "units": units, "up": "y",
            "body": body, "rate": rate}  # fmt: skip


def _read_vicon(rows: list[list[str]], cfg: MocapConfig) -> dict[str, Any]:
    """Vicon Nexus / Tracker CSV export of segments or objects.

    Layout: a section title (``Segments`` / ``Objects``), the frame rate alone on the next line, a row naming the
    subjects above their first column (``Subject:Segment`` or the object name), the header ``Frame,Sub Frame,RX,RY,
    RZ,TX,TY,TZ`` (rotation as a helical vector; some exports add ``QX,QY,QZ,QW``), a units row (``deg``/``rad``,
    ``mm``), then the data. Time = (frame - first frame) / rate (+ sub-frames when present).
    """
    head_i = next((i for i, r in enumerate(rows) if r[:2] == ["Frame", "Sub Frame"]), None)
    if head_i is None or head_i < 2:
        raise ValueError("not a Vicon CSV export: no 'Frame,Sub Frame,...' header (use --format plain?)")
    rate = cfg.rate_hz or _float_or_none(rows[head_i - 2][0] if rows[head_i - 2] else "")
    if not rate:
        raise ValueError("Vicon export without a frame rate line: pass --override rate_hz=<Hz>")
    names_row, head = rows[head_i - 1], rows[head_i]
    starts = [(i, n) for i, n in enumerate(names_row) if n]
    bodies = sorted({n for _, n in starts})
    body = _pick_body(bodies, cfg.rigid_body)
    first = next(i for i, n in starts if n == body)
    nxt = [i for i, _ in starts if i > first]
    end = nxt[0] if nxt else len(head)
    cols = {head[i]: i for i in range(first, end)}
    units_row = rows[head_i + 1] if len(rows) > head_i + 1 else []
    has_units = bool(units_row) and not np.isfinite(_num(units_row[:1])).all() and any(u for u in units_row[2:])
    if not all(k in cols for k in ("TX", "TY", "TZ")):
        raise ValueError(f"Vicon subject {body!r} has no TX/TY/TZ columns")
    data_i = head_i + (2 if has_units else 1)
    if all(k in cols for k in ("QX", "QY", "QZ", "QW")):
        a = _table(rows, data_i, [0, 1] + [cols[k] for k in ("TX", "TY", "TZ", "QX", "QY", "QZ", "QW")])
        quat = xyzw_to_wxyz(a[:, 5:9])
    elif all(k in cols for k in ("RX", "RY", "RZ")):
        a = _table(rows, data_i, [0, 1] + [cols[k] for k in ("TX", "TY", "TZ", "RX", "RY", "RZ")])
        ru = cfg.rotation_units
        if ru == "auto":
            ru = units_row[cols["RX"]].lower() if has_units and cols["RX"] < len(units_row) else "deg"
        rv = a[:, 5:8] * (math.pi / 180.0 if ru.startswith("deg") else 1.0)
        quat = axis_angle_to_quat(rv)
    else:
        raise ValueError(f"Vicon subject {body!r} has neither RX/RY/RZ nor QX/QY/QZ/QW columns")
    pu = units_row[cols["TX"]].lower() if has_units and cols["TX"] < len(units_row) else None
    sub = np.nan_to_num(a[:, 1])
    sub_n = max(1.0, float(np.nanmax(a[:, 1])) + 1.0) if np.isfinite(a[:, 1]).any() else 1.0
    frames = a[:, 0] + sub / sub_n
    frames = frames - frames[np.isfinite(frames)][0]
    return {"t": frames / rate, "pos": a[:, 2:5], "quat": quat, "units": pu, "up": "z", "body": body,
            "rate": rate}  # fmt: skip


def _read_qualisys(rows: list[list[str]], cfg: MocapConfig) -> dict[str, Any]:
    """Qualisys QTM 6D export (TSV or CSV) with the header.

    Layout: ``KEY<TAB>value`` lines (``FREQUENCY``, ``BODY_NAMES`` ...), then a column header with ``Frame``,
    ``Time`` and per body ``<name> X``/``Y``/``Z`` (or bare ``X``/``Y``/``Z`` for a single body), ``Roll``, ``Pitch``,
    ``Yaw``, ``Residual``, ``Rot[0]`` ... ``Rot[8]``; positions in mm. The rotation matrix (global <- local) is read
    from ``Rot[0..8]`` in ``matrix_order``; an empty or NaN pose is a gap.
    """
    header = {r[0]: r[1:] for r in rows if r and re.fullmatch(r"[A-Z_0-9]+", r[0] or "-")}
    head_i = next((i for i, r in enumerate(rows) if "Frame" in r and "Time" in r), None)
    if head_i is None:
        raise ValueError("not a QTM 6D export: no column header with Frame and Time (export with column headers)")
    head = rows[head_i]
    bodies = [b for b in header.get("BODY_NAMES", []) if b]
    body = _pick_body(bodies, cfg.rigid_body) if bodies else None
    xs = [i for i, h in enumerate(head) if h == "X" or h.endswith(" X")]
    if body is not None and f"{body} X" in head:
        x0 = head.index(f"{body} X")
    elif len(bodies) <= 1 and xs:
        x0 = xs[0]
    else:
        raise ValueError(f"QTM export: no position columns for body {body!r}")
    rot0 = next(i for i in range(x0, len(head)) if head[i] == "Rot[0]")
    a = _table(rows, head_i + 1, [head.index("Time"), x0, x0 + 1, x0 + 2] + list(range(rot0, rot0 + 9)))
    m = a[:, 4:13].reshape(-1, 3, 3)
    if cfg.matrix_order == "columns":
        m = np.swapaxes(m, 1, 2)
    elif cfg.matrix_order != "rows":
        raise ValueError(f"matrix_order must be 'columns' or 'rows', not {cfg.matrix_order!r}")
    ok = np.isfinite(m).all((1, 2))
    ok[ok] = np.abs(np.linalg.det(m[ok]) - 1.0) < 0.1  # some exports write zeros for a body they lost
    quat = np.full((len(a), 4), np.nan)
    if ok.any():
        quat[ok] = matrix_to_quat(m[ok])
    rate = _float_or_none((header.get("FREQUENCY") or [""])[0])
    return {"t": a[:, 0], "pos": a[:, 1:4], "quat": quat, "units": "mm", "up": "z", "body": body, "rate": rate}


_READERS = {"plain": _read_plain, "optitrack": _read_optitrack, "vicon": _read_vicon, "qualisys": _read_qualisys}


def _float_or_none(s: str | None) -> float | None:
    try:
        return float(s) if s else None
    except ValueError:
        return None


def _pick_body(bodies: list[str], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in bodies:
            raise ValueError(f"rigid body {wanted!r} not in the export (it has {bodies}); fix --rigid-body")
        return wanted
    if len(bodies) != 1:
        raise ValueError(f"the export holds {len(bodies)} rigid bodies {bodies}: name the pelvis with --rigid-body")
    return bodies[0]


def read_mocap(path: str | Path, cfg: MocapConfig | None = None) -> MocapTrack:
    """Read a mocap export as a :class:`MocapTrack` (see the module docstring for the conversions).

    Raises ValueError naming the fix for an unknown format, a layout that does not match, several rigid bodies
    without ``rigid_body``, or unknown units.
    """
    cfg = cfg or MocapConfig()
    p = Path(path)
    if cfg.format not in _READERS:
        raise ValueError(f"unknown mocap format {cfg.format!r}: use one of {', '.join(FORMATS)}")
    if not p.exists():
        raise FileNotFoundError(f"mocap file {p} does not exist")
    r = _READERS[cfg.format](_rows(p), cfg)
    units = cfg.units if cfg.units != "auto" else (r["units"] or "m")
    scale = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}.get(units)
    if scale is None:
        raise ValueError(f"unknown position units {units!r}: set units to m or mm")
    up = cfg.up_axis if cfg.up_axis != "auto" else (r["up"] or "z")
    t, pos, quat = np.asarray(r["t"], float), np.asarray(r["pos"], float) * scale, np.asarray(r["quat"], float)
    if up == "y":
        w = matrix_to_quat(Y_UP_TO_Z_UP)
        pos = pos @ Y_UP_TO_Z_UP.T
        quat = quat_mul(np.broadcast_to(w, quat.shape), quat)
    elif up != "z":
        raise ValueError(f"up_axis must be z, y or auto, not {up!r}")
    bad = ~(np.isfinite(pos).all(1) & np.isfinite(quat).all(1)) | (np.linalg.norm(np.nan_to_num(quat), axis=1) < 0.5)
    pos[bad], quat[bad] = np.nan, np.nan
    quat[~bad] = quat_normalize(quat[~bad])
    off_q = quat_normalize(np.asarray(cfg.body_offset_quat, float))
    off_p = np.asarray(cfg.body_offset_pos, float)
    pos[~bad] = pos[~bad] + quat_rotate(quat[~bad], np.broadcast_to(off_p, pos[~bad].shape))
    quat[~bad] = quat_mul(quat[~bad], np.broadcast_to(off_q, quat[~bad].shape))
    keep = np.isfinite(t)
    t, pos, quat = t[keep], pos[keep], quat[keep]
    order = np.argsort(t, kind="stable")
    t, pos, quat = t[order], pos[order], quat[order]
    if len(t) < 10 or not (np.diff(t) > 0).all():
        raise ValueError(f"{p}: fewer than 10 frames or repeated time stamps")
    src = {"format": cfg.format, "rigid_body": r.get("body"), "units": units, "up_axis": up, "rate_hz": r.get("rate")}
    return MocapTrack(t=t, pos=pos, quat=quat, source=src)


# ------------------------------------------------------------------------------------------------ signals
@dataclass
class UniformTrack:
    """A :class:`MocapTrack` on a uniform grid with velocities (what :func:`resample` interpolates)."""

    t0: float
    """Mocap time of sample 0 (s)."""
    dt: float
    """Grid step (s): the recording's median frame interval."""
    pos: np.ndarray
    """(M, 3) m."""
    quat: np.ndarray
    """(M, 4) wxyz."""
    lin_vel: np.ndarray
    """(M, 3) m/s, world."""
    ang_vel: np.ndarray
    """(M, 3) rad/s, world."""
    valid: np.ndarray
    """(M,) bool: no gap longer than max_gap_s around the sample."""


def uniform_track(track: MocapTrack, cfg: MocapConfig) -> UniformTrack:
    """Put ``track`` on a uniform grid at its median rate (gaps <= max_gap_s bridged) and differentiate it."""
    from scipy.signal import savgol_filter

    ok = track.valid
    tv, pv, qv = track.t[ok], track.pos[ok], track.quat[ok]
    if len(tv) < 10:
        raise ValueError("the mocap recording has fewer than 10 valid frames")
    dt = float(np.median(np.diff(track.t)))
    n = int(math.floor((tv[-1] - tv[0]) / dt + 1e-9)) + 1
    tg = tv[0] + dt * np.arange(n)
    j = np.clip(np.searchsorted(tv, tg, side="right") - 1, 0, len(tv) - 2)
    span = tv[j + 1] - tv[j]
    frac = np.clip((tg - tv[j]) / span, 0.0, 1.0)
    valid = span <= cfg.max_gap_s + 0.5 * dt
    pos = pv[j] + frac[:, None] * (pv[j + 1] - pv[j])
    quat = slerp(qv[j], qv[j + 1], frac)
    win = max(5, int(round(cfg.velocity_window_s / dt)) | 1)
    if n > win:
        lin = savgol_filter(pos, win, 2, deriv=1, delta=dt, axis=0)
        ang = savgol_filter(angular_velocity(quat, dt), win, 2, axis=0)
    else:
        lin = np.gradient(pos, dt, axis=0)
        ang = angular_velocity(quat, dt)
    # a sample whose filter window reaches into a gap is not trusted either
    bad = np.convolve(~valid, np.ones(win), mode="same") > 0
    return UniformTrack(t0=float(tg[0]), dt=dt, pos=pos, quat=quat, lin_vel=lin, ang_vel=ang, valid=~bad)


def resample(u: UniformTrack, t_mocap: np.ndarray) -> dict[str, np.ndarray]:
    """The log's root columns (:data:`ROOT_KEYS`) at mocap times ``t_mocap`` (N,): linear interpolation of
    position and velocities, slerp of orientation; ``root_valid`` False outside the grid or next to a gap."""
    x = (np.asarray(t_mocap, float) - u.t0) / u.dt
    m = len(u.pos)
    inside = (x >= 0) & (x <= m - 1)
    i = np.clip(np.floor(x).astype(np.int64), 0, m - 2)
    f = np.clip(x - i, 0.0, 1.0)
    valid = inside & u.valid[i] & u.valid[i + 1]

    def lerp(a: np.ndarray) -> np.ndarray:
        return a[i] + f[:, None] * (a[i + 1] - a[i])

    return {
        "root_valid": valid,
        "root_pos": lerp(u.pos),
        "root_quat": slerp(u.quat[i], u.quat[i + 1], f),
        "root_lin_vel": lerp(u.lin_vel),
        "root_ang_vel": lerp(u.ang_vel),
    }


@dataclass
class OffsetFit:
    """Result of :func:`estimate_offset` (``t_mocap = t_log + offset_s``)."""

    offset_s: float
    """Refined clock offset (s)."""
    coarse_offset_s: float
    """Offset at the cross-correlation peak on the grid (s)."""
    correlation: float
    """Pearson correlation of the two angular speeds at the refined offset."""
    peak_correlation: float
    """Normalised cross-correlation at the coarse peak."""
    overlap_s: float
    """Overlap of log and recording at the offset (s)."""


def _grid_signal(t: np.ndarray, v: np.ndarray, ok: np.ndarray, t0: float, dt: float, n: int, sigma: float):  # noqa: ANN202
    """``v`` (N,) sampled at ``t`` on the grid t0 + k dt (k < n), Gaussian-smoothed; mask of grid points covered."""
    from scipy.ndimage import gaussian_filter1d

    tg = t0 + dt * np.arange(n)
    g = np.interp(tg, t[ok], v[ok])
    # a grid point is covered when a valid sample lies within one grid step
    idx = np.clip(np.searchsorted(t[ok], tg), 1, ok.sum() - 1)
    near = np.minimum(np.abs(t[ok][idx] - tg), np.abs(t[ok][idx - 1] - tg)) <= max(dt, np.median(np.diff(t)))
    mask = near & (tg >= t[ok][0]) & (tg <= t[ok][-1])
    g = gaussian_filter1d(g, sigma / dt, mode="nearest") if sigma > 0 else g
    return g, mask


def _masked_ncc(a: np.ndarray, ma: np.ndarray, b: np.ndarray, mb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of b[i + lag] with a[i] over the overlap of both masks, for every lag (via FFT).
    Returns (ncc, overlap count), indexed by lag + len(a) - 1."""
    from scipy.signal import correlate

    a, b = np.where(ma, a, 0.0), np.where(mb, b, 0.0)
    fa, fb = ma.astype(float), mb.astype(float)

    def c(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return correlate(y, x, mode="full", method="fft")

    n = np.rint(c(fa, fb))
    sa, sb, sab = c(a, fb), c(fa, b), c(a, b)
    saa, sbb = c(a * a, fb), c(fa, b * b)
    nn = np.maximum(n, 1.0)
    cov = sab - sa * sb / nn
    va, vb = saa - sa * sa / nn, sbb - sb * sb / nn
    ncc = cov / np.sqrt(np.maximum(va * vb, 1e-30))
    return np.where(n > 2, ncc, -1.0), n


def estimate_offset(
    t_log: np.ndarray, gyro: np.ndarray, u: UniformTrack, cfg: MocapConfig, log_ok: np.ndarray | None = None
) -> OffsetFit:
    """Clock offset (``t_mocap = t_log + offset``) matching the IMU's angular speed ``|gyro|`` (gyro (N, 3) rad/s
    at log times ``t_log`` (N,) s) with the mocap's (see the module docstring). Raises ValueError when the
    overlap is too short or the best correlation is below ``min_correlation``."""
    from scipy.optimize import minimize_scalar

    dt = 1.0 / cfg.grid_hz
    ok = np.isfinite(gyro).all(1) if log_ok is None else log_ok & np.isfinite(gyro).all(1)
    speed_log = np.linalg.norm(np.nan_to_num(gyro), axis=1)
    na = int((t_log[ok][-1] - t_log[ok][0]) / dt) + 1
    a, ma = _grid_signal(t_log, speed_log, ok, float(t_log[ok][0]), dt, na, cfg.smooth_s)
    tm = u.t0 + u.dt * np.arange(len(u.pos))
    speed_m = np.linalg.norm(u.ang_vel, axis=1)
    nb = int((tm[-1] - tm[0]) / dt) + 1
    b, mb = _grid_signal(tm, speed_m, u.valid, float(tm[0]), dt, nb, cfg.smooth_s)
    ncc, count = _masked_ncc(a, ma, b, mb)
    lags = np.arange(-(na - 1), nb)
    offsets = float(tm[0]) - float(t_log[ok][0]) + lags * dt
    shorter = min(ma.sum(), mb.sum())
    allowed = count >= min(max(cfg.min_overlap_s / dt, cfg.min_overlap_fraction * shorter), 0.8 * ma.sum())
    if cfg.max_offset_s is not None:
        allowed &= np.abs(offsets) <= cfg.max_offset_s
    if not allowed.any():
        raise ValueError("the log and the mocap recording overlap for no allowed offset: check max_offset_s, or "
                         "that the recording covers the log")  # fmt: skip
    k = int(np.argmax(np.where(allowed, ncc, -np.inf)))
    coarse = float(offsets[k])
    ta = float(t_log[ok][0]) + dt * np.arange(na)
    tb0 = float(tm[0])

    def corr(off: float) -> float:
        x = (ta + off - tb0) / dt
        sel = ma & (x >= 0) & (x <= nb - 1)
        if sel.sum() < 3:
            return 0.0
        xi = x[sel]
        i = np.clip(np.floor(xi).astype(int), 0, nb - 2)
        f = xi - i
        sel_b = mb[i] & mb[i + 1]
        bv = b[i] + f * (b[i + 1] - b[i])
        av = a[sel]
        av, bv = av[sel_b], bv[sel_b]
        if len(av) < 3 or av.std() == 0 or bv.std() == 0:
            return 0.0
        return float(np.corrcoef(av, bv)[0, 1])

    res = minimize_scalar(lambda o: 1.0 - corr(o), bounds=(coarse - 2 * dt, coarse + 2 * dt), method="bounded",
                          options={"xatol": 1e-6})  # fmt: skip
    off = float(res.x)
    r = corr(off)
    if r < cfg.min_correlation:
        raise ValueError(f"mocap and IMU angular speeds correlate at best {r:.2f} (< {cfg.min_correlation}): wrong "
                         "file or rigid body, or a log without rotation; check --format/--rigid-body")  # fmt: skip
    overlap = float(np.count_nonzero(ma & ((ta + off) >= tm[0]) & ((ta + off) <= tm[-1])) * dt)
    return OffsetFit(offset_s=off, coarse_offset_s=coarse, correlation=r, peak_correlation=float(ncc[k]),
                     overlap_s=overlap)  # fmt: skip


# ------------------------------------------------------------------------------------------------ the log
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else float("nan")


def residual_report(steps: dict[str, np.ndarray], root: dict[str, np.ndarray]) -> dict[str, float]:
    """Residuals of the aligned mocap against the log's IMU, on the steps with mocap.

    ``speed_rms``: RMS of |gyro| - |mocap angular velocity| (rad/s); ``gyro_vector_rms``: RMS norm of gyro -
    (mocap angular velocity in the mocap body frame) (rad/s: large when the markers-to-body rotation or the
    export's rotation convention is wrong); ``tilt_deg_median``/``tilt_deg_p95``: angle between the gravity
    directions of the IMU and mocap orientations (deg; yaw is not compared: the IMU's yaw is arbitrary)."""
    v = root["root_valid"]
    gyro = steps["imu_gyro"][v].astype(float)
    wq = root["root_quat"][v]
    w_world = root["root_ang_vel"][v]
    w_body = quat_rotate_inverse(wq, w_world)
    gi = projected_gravity(quat_normalize(steps["imu_quat"][v].astype(float)))
    gm = projected_gravity(wq)
    tilt = np.degrees(np.arccos(np.clip((gi * gm).sum(1), -1.0, 1.0)))
    return {
        "speed_rms": _rms(np.linalg.norm(gyro, axis=1) - np.linalg.norm(w_world, axis=1)),
        "gyro_vector_rms": _rms(np.linalg.norm(gyro - w_body, axis=1)),
        "tilt_deg_median": float(np.median(tilt)) if tilt.size else float("nan"),
        "tilt_deg_p95": float(np.percentile(tilt, 95)) if tilt.size else float("nan"),
    }


def _chunks(log_dir: Path) -> list[Path]:
    from deploy.logger import CHUNK_PREFIX

    return sorted(log_dir.glob(f"{CHUNK_PREFIX}*.npz"))


def attach_mocap(log_dir: str | Path, mocap_path: str | Path, cfg: MocapConfig | None = None) -> dict[str, Any]:
    """Merge a recorded mocap export into the rollout log at ``log_dir`` (see the module docstring).

    Rewrites the root columns (:data:`ROOT_KEYS`) of every chunk in place (atomically per chunk; the columns as
    they were before the first attach are kept in ``pre_mocap/`` and restored first on a re-attach), sets
    ``meta["root_source"] = "mocap"`` and ``meta["mocap"]`` (the report), and writes ``mocap_report.json``.
    Returns the report: offset, correlations, residuals, per-episode coverage.
    """
    from deploy.logger import episodes, read_log, write_npz_atomic, write_text_atomic

    cfg = cfg or MocapConfig()
    d = Path(log_dir)
    log = read_log(d)
    s = log["steps"]
    if not s or len(s.get("time", [])) < 10:
        raise ValueError(f"{d}: the log holds fewer than 10 control steps")
    track = read_mocap(mocap_path, cfg)
    u = uniform_track(track, cfg)
    t = s["time"].astype(float)
    gyro = s["imu_gyro"].astype(float)
    fit = estimate_offset(t, gyro, u, cfg)
    # clock drift: the offset fitted on each half of the log, placed at the time its information comes from (the
    # half's times weighted by the squared rate of change of the smoothed angular speed)
    from scipy.ndimage import gaussian_filter1d

    speed = gaussian_filter1d(np.linalg.norm(np.nan_to_num(gyro), axis=1), cfg.smooth_s / max(np.median(np.diff(t)),
                              1e-6), mode="nearest")  # fmt: skip
    weight = np.gradient(speed, t) ** 2 + 1e-12
    halves, centres = [], []
    mid = t[0] + 0.5 * (t[-1] - t[0])
    for sel in (t <= mid, t > mid):
        centres.append(float(np.average(t[sel], weights=weight[sel])))
        try:
            h = MocapConfig(**{**asdict(cfg), "max_offset_s": None})
            halves.append(estimate_offset(t, gyro, u, h, log_ok=sel).offset_s)
        except ValueError:
            halves.append(float("nan"))
    a, b = fit.offset_s, 0.0
    drift_ok = bool(np.isfinite(halves).all()) and max(abs(h - fit.offset_s) for h in halves) <= cfg.max_drift_s
    if drift_ok:
        b = (halves[1] - halves[0]) / (centres[1] - centres[0])
        a = halves[0] - b * centres[0]
    if cfg.fit_drift and drift_ok:
        clock = {"offset_at_log_zero_s": a, "rate": 1.0 + b, "drift_used": True}
    else:
        clock = {"offset_at_log_zero_s": fit.offset_s, "rate": 1.0, "drift_used": False}
    # t_mocap = offset_at_log_zero + rate * t_log
    root = resample(u, clock["offset_at_log_zero_s"] + clock["rate"] * t)
    report: dict[str, Any] = {
        "file": str(Path(mocap_path).resolve()), **track.source, **{k: getattr(fit, k) for k in asdict(fit)},
        "offset_first_half_s": halves[0], "offset_second_half_s": halves[1],
        "drift_ppm": b * 1e6 if drift_ok else None, **clock,
        "steps": int(len(t)), "steps_with_mocap": int(root["root_valid"].sum()),
        **residual_report(s, root),
        "body_offset_pos": list(cfg.body_offset_pos), "body_offset_quat": list(cfg.body_offset_quat),
    }  # fmt: skip
    cover = {}
    for e, rows in episodes(s):
        cover[str(e)] = float(root["root_valid"][rows].mean())
    report["episode_coverage"] = cover
    # rewrite the chunks: rows outside the recording keep (or get back) their pre-mocap columns
    backup = d / BACKUP_DIR
    backup.mkdir(exist_ok=True)
    row = 0
    for p in _chunks(d):
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            continue  # read_log skipped it too
        n = len(data["time"])
        bp = backup / p.name
        if bp.exists():
            with np.load(bp, allow_pickle=False) as z:
                orig = {k: z[k] for k in z.files}
        else:
            orig = {k: data[k] for k in ROOT_KEYS}
            write_npz_atomic(bp, orig)
        v = root["root_valid"][row : row + n]
        for k in ROOT_KEYS:
            col = orig[k].copy()
            if k == "root_valid":
                col = v.copy()
            else:
                col[v] = root[k][row : row + n][v].astype(col.dtype)
            data[k] = col
        write_npz_atomic(p, data)
        row += n
    meta = dict(log["meta"])
    meta["root_source"] = "mocap"
    meta["mocap"] = report
    write_text_atomic(d / "meta.json", json.dumps(meta, indent=1, default=_json))
    write_text_atomic(d / REPORT_FILE, json.dumps(report, indent=1, default=_json))
    return report


def _json(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
