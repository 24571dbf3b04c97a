"""One piece of code per job: no two modules of the project define a top-level class of the same name.

Two classes with one name (two ``StepInfo``, two ``OnnxPolicy``) were either one job written twice (merge them)
or two jobs under one vague name (name each for what it is).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_class_names_are_unique():
    where: dict[str, list[str]] = defaultdict(list)
    for package in ("asap", "envs", "deploy"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef):
                    where[node.name].append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    twice = {name: places for name, places in where.items() if len(places) > 1}
    assert not twice, f"classes defined more than once: {twice}"
    assert "StepInfo" not in where  # TrackingStepResult (env step) and PolicyStepRecord (runtime step) are two jobs
    assert {"TrackingStepResult", "PolicyStepRecord"} <= set(where)
