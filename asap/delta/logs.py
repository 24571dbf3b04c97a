"""Logged episodes for delta training and open-loop evaluation: find them, load and check them, and read what their
metadata records (the target shaping the runtime applied, the reality-gap profile the virtual G1 ran).

Shared by `asap train-delta` (:mod:`asap.delta.train`) and the open-loop evaluation (:mod:`asap.eval.openloop`);
imports nothing from either.
"""

from __future__ import annotations

import json
from pathlib import Path

from asap.control import TargetShaping
from asap.motion.motion import Motion, MotionFormatError
from asap.paths import repo_path


def write_split(out: Path, files: list[Path], train_idx: list[int], held_idx: list[int]) -> dict[str, list[str]]:
    """Write ``out/split.json``: which of ``files`` trained and which were held out, each named by its file stem, or by
    its path when two files share a stem (the same episode numbers from two collections, e.g. two ASAP rounds)."""
    stems = [f.stem for f in files]
    names = stems if len(set(stems)) == len(stems) else [str(f) for f in files]
    split = {"train": [names[i] for i in train_idx], "held_out": [names[i] for i in held_idx]}
    (out / "split.json").write_text(json.dumps(split, indent=1))
    return split


def gather_logs(items: list[str]) -> list[Path]:
    """Motion files named by ``items`` (files or folders of ``*.npz``), sorted; one-line errors for bad input."""
    files: list[Path] = []
    for it in items:
        p = Path(repo_path(it))
        if p.is_dir():
            files += sorted(p.rglob("*.npz"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such log file or folder (make logs with `asap collect`)")
    if not files:
        raise ValueError("no logged episodes given: pass --motions with `asap collect`'s motions folder or files")
    return files


def load_logs(files: list[Path]) -> tuple[list[Motion], TargetShaping | None]:
    """Load and check delta-training episodes: ``action`` present, the project's alignment (checked by
    :meth:`Motion.load`), the control rate; returns the motions and the shaping their metadata records (if any)."""
    motions, shapings = [], set()
    for f in files:
        m = Motion.load(f)
        if m.action is None:
            raise MotionFormatError(f"{f}: no 'action' array: delta training needs logs from `asap collect`")
        if "target_clamp" in m.meta:
            shapings.add(TargetShaping.from_metadata({k: str(m.meta[k]) for k in TargetShaping.METADATA_KEYS
                                                      if k in m.meta}, where=str(f)))  # fmt: skip
        motions.append(m)
    if len(shapings) > 1:
        raise ValueError(f"the logs were collected with different target shapings: {sorted(map(str, shapings))}")
    return motions, (shapings.pop() if shapings else None)


def replay_shaping(logged: TargetShaping | None, configured: TargetShaping | None) -> TargetShaping:
    """The target shaping to replay logs with: the configured one, else the one the logs record, else the default;
    raises ``ValueError`` when the logs record a different one than configured."""
    if logged is not None and configured is not None and logged != configured:
        raise ValueError(f"the logs record '{logged.describe()}' but the config says '{configured.describe()}': "
                         "set shaping.clamp / shaping.max_step to match")  # fmt: skip
    if configured is not None:
        return configured
    return logged if logged is not None else TargetShaping()


def logged_gap(motions: list[Motion]) -> str | None:
    """The reality-gap profile every log names (virtual-G1 logs record it in ``meta["gap"]``), or None when
    unknown, mixed or not a file here."""
    gaps = {m.meta.get("gap") for m in motions}
    g = gaps.pop() if len(gaps) == 1 else None
    return str(g) if g and Path(repo_path(str(g))).is_file() else None
