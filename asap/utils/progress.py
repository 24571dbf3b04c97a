"""Progress bars (tqdm) that stay readable in logs."""

from __future__ import annotations

import sys
from typing import Any

LOG_INTERVAL_S = 30.0
"""Seconds between a bar's updates when stderr is not a terminal (a log file, a pipe)."""


def progress_bar(*args: Any, **kwargs: Any) -> Any:
    """``tqdm(*args, **kwargs)`` on stderr; when stderr is not a terminal the bar redraws at most every
    :data:`LOG_INTERVAL_S` seconds, so that a log holds a few lines instead of one per update."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    stream = kwargs["file"]
    if not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
    return tqdm(*args, **kwargs)
