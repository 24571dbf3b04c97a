"""Motion files, the batched MotionLib, importers and exporters."""

from asap.motion.motion import Motion, MotionFormatError, load_motion

__all__ = ["Motion", "MotionFormatError", "load_motion"]
