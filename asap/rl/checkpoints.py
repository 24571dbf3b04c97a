"""The naming of training checkpoints: ``model_<iteration>.pt`` in a run folder (rsl-rl's convention).

Other files that start with ``model_`` (e.g. ``model_<it>_iterate.pt``, the last iterate kept beside an averaged
final checkpoint, :attr:`asap.rl.config.RunConfig.average_last`) are not numbered checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path


def numbered_checkpoints(run: Path) -> dict[Path, int]:
    """``model_<iteration>.pt`` files in ``run`` with their iteration, oldest first (empty when there are none)."""
    found = {p: int(p.stem[6:]) for p in Path(run).glob("model_*.pt") if p.stem[6:].isdigit()}
    return dict(sorted(found.items(), key=lambda kv: kv[1]))


def latest_checkpoint(run: Path) -> Path | None:
    """The highest-numbered ``model_<iteration>.pt`` in ``run`` (None when there is none)."""
    cks = numbered_checkpoints(run)
    return next(reversed(cks)) if cks else None


def check_fresh_run(out: Path, resume: str | Path | None) -> None:
    """Refuse to start a training run in ``out`` when it already holds another run's checkpoints (its
    ``policy.onnx``, config and metrics would be overwritten and its checkpoints mixed with the new ones), unless it
    resumes from a checkpoint in ``out`` itself. Raises ``FileExistsError`` naming both ways out."""
    held = latest_checkpoint(out)
    if held is None or (resume and Path(resume).resolve().parent == Path(out).resolve()):
        return
    raise FileExistsError(f"{out} already holds a training run ({held.name}): continue it with --resume {held}, or "
                          "give another output folder (--out)")  # fmt: skip


def resolve_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is not a folder; for a run folder its final checkpoint: the one its ``metrics.json``
    names (a finished run), else its highest-numbered ``model_<iteration>.pt``. So ``--checkpoint run/demo/pretrain``
    needs no iteration number. Raises ``FileNotFoundError`` for a folder without checkpoints."""
    p = Path(path)
    if not p.is_dir():
        return p
    metrics = p / "metrics.json"
    if metrics.is_file():
        named = json.loads(metrics.read_text()).get("checkpoint")
        if named and (p / Path(named).name).is_file():  # stored as the training's own path: relative to its cwd
            return p / Path(named).name
    latest = latest_checkpoint(p)
    if latest is None:
        raise FileNotFoundError(f"{p} holds no checkpoint (model_<iteration>.pt): give a training run's folder or file")
    return latest
