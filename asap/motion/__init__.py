"""Motion files, the batched MotionLib, importers and exporters.

``Motion``/``load_motion`` (the file format) load eagerly; ``MotionLib``, ``MotionState``, ``read_motion`` and
``write_motion`` are imported on first use (they pull in torch and MuJoCo).
"""

from __future__ import annotations

from typing import Any

from asap.motion.motion import Motion, MotionFormatError, load_motion

__all__ = ["Motion", "MotionFormatError", "load_motion", "MotionLib", "MotionState", "read_motion", "write_motion"]

_LAZY = {
    "MotionLib": "asap.motion.motionlib",
    "MotionState": "asap.motion.motionlib",
    "read_motion": "asap.motion.formats",
    "write_motion": "asap.motion.formats",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'asap.motion' has no attribute {name!r}")
