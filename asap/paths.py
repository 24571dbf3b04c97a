"""Where the project's own files live, so commands work from any working directory."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source checkout: configs/ and motions/ live here."""


def repo_path(p: str | Path) -> Path:
    """``p`` as given when it exists (or is absolute); otherwise relative to the source checkout, so that shipped
    configs naming ``configs/...`` or ``motions/...`` work from any working directory."""
    q = Path(p)
    if q.exists() or q.is_absolute():
        return q
    r = REPO_ROOT / q
    return r if r.exists() else q
