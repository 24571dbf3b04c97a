"""Retargeting human motion (BVH, AMASS/SMPL, built-in clips) to the G1: ``asap retarget``.

Main entry points: :func:`load_source` (any source -> :class:`HumanMotion`), :func:`retarget` /
:func:`retarget_many` (-> :class:`RetargetResult` with a G1 :class:`asap.motion.Motion` and a quality report),
:func:`load_table` (the correspondence table in configs/retarget/*.yaml).
"""

from asap.retarget.builtin import CLIPS as BUILTIN_CLIPS
from asap.retarget.builtin import builtin_clip
from asap.retarget.bvh import BvhClip, BvhFormatError, load_bvh, load_bvh_human, parse_bvh
from asap.retarget.config import RetargetConfig, load_table
from asap.retarget.human import HumanMotion, HumanMotionError
from asap.retarget.pipeline import RetargetResult, format_report, retarget, retarget_many
from asap.retarget.smpl import BodyModelError, SmplFormatError, load_smpl_human, load_smpl_npz
from asap.retarget.sources import load_source, table_for

__all__ = [
    "BUILTIN_CLIPS", "BodyModelError", "BvhClip", "BvhFormatError", "HumanMotion", "HumanMotionError",
    "RetargetConfig", "RetargetResult", "SmplFormatError", "builtin_clip", "format_report", "load_bvh",
    "load_bvh_human", "load_smpl_human", "load_smpl_npz", "load_source", "load_table", "parse_bvh", "retarget",
    "retarget_many", "table_for",
]  # fmt: skip
