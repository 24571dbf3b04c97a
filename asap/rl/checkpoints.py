"""The naming of training checkpoints: ``model_<iteration>.pt`` in a run folder (rsl-rl's convention).

Other files that start with ``model_`` (e.g. ``model_<it>_iterate.pt``, the last iterate kept beside an averaged
final checkpoint, :attr:`asap.rl.config.RunConfig.average_last`) are not numbered checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asap.rl.config import PretrainConfig


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


def load_training_checkpoint(path: str | Path) -> tuple[dict[str, Any], PretrainConfig]:
    """The contents of a ``model_*.pt`` of `asap pretrain` or `asap finetune` (rsl-rl's dict: ``actor_state_dict``,
    ``infos`` ...) and the tracking config stored in it. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` for a file that is not such a checkpoint (another file, a delta model's checkpoint)."""
    import torch

    from asap.config import from_dict
    from asap.rl.config import PretrainConfig

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} not found: give a model_*.pt of a training run (or its folder)")
    try:
        ck = torch.load(str(p), map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - torch.load raises whatever the unpickler meets in a non-checkpoint file
        ck = None
    infos = (ck.get("infos") or {}) if isinstance(ck, dict) else {}
    if not isinstance(ck, dict) or "config" not in infos or "actor_state_dict" not in ck:
        raise ValueError(f"{p}: not a checkpoint of `asap pretrain` or `asap finetune` (no tracking config in it)")
    try:
        return ck, from_dict(PretrainConfig, infos["config"])
    except (TypeError, ValueError) as e:  # a delta model's checkpoint: another config
        raise ValueError(f"{p}: not a checkpoint of `asap pretrain` or `asap finetune` ({e})") from None
