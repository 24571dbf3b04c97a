"""The naming of training checkpoints: ``model_<iteration>.pt`` in a run folder (rsl-rl's convention).

Other files that start with ``model_`` (e.g. ``model_<it>_iterate.pt``, the last iterate kept beside an averaged
final checkpoint, :attr:`asap.rl.config.RunConfig.average_last`) are not numbered checkpoints.
"""

from __future__ import annotations

from pathlib import Path


def numbered_checkpoints(run: Path) -> dict[Path, int]:
    """``model_<iteration>.pt`` files in ``run`` with their iteration, oldest first (empty when there are none)."""
    found = {p: int(p.stem[6:]) for p in Path(run).glob("model_*.pt") if p.stem[6:].isdigit()}
    return dict(sorted(found.items(), key=lambda kv: kv[1]))


def latest_checkpoint(run: Path) -> Path | None:
    """The highest-numbered ``model_<iteration>.pt`` in ``run`` (None when there is none)."""
    cks = numbered_checkpoints(run)
    return next(reversed(cks)) if cks else None
