"""Shipped files (configs/, motions/) are package data, found through importlib.resources.

The full check, a wheel installed into a throwaway venv and run outside the checkout, is scripts/check_wheel.sh
(part of `make test`); these are its quick parts.
"""

from __future__ import annotations

import ast
import importlib.resources
from fnmatch import fnmatch
from pathlib import Path

import pytest

from asap.paths import SHIPPED, repo_path, shipped_dir

REPO = Path(__file__).resolve().parents[1]


def _setup_constant(name: str) -> object:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py defines no {name}")


def test_shipped_folders_are_the_packages_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout
    for name in SHIPPED:
        assert shipped_dir(name) == Path(str(importlib.resources.files(f"asap.{name}")))
    assert set(_setup_constant("SHIPPED").values()) == set(SHIPPED)  # setup.py maps exactly these folders
    from asap.retarget.config import CONFIG_DIR

    assert CONFIG_DIR == shipped_dir("configs") / "retarget" and (CONFIG_DIR / "builtin.yaml").is_file()
    assert repo_path("motions/builtin/squat.npz") == shipped_dir("motions") / "builtin" / "squat.npz"
    with pytest.raises(ValueError, match="unknown shipped folder"):
        shipped_dir("scripts")


def test_a_checkout_that_was_never_installed_finds_its_own_folders(tmp_path):
    """PYTHONPATH=<checkout> without `pip install` (no asap.configs package registered): the checkout's folders."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, sys.argv[1]); from asap.paths import shipped_dir, repo_path; "
            "print(shipped_dir('configs')); print(repo_path('configs/real_gap/ankle_weak.yaml'))")  # fmt: skip
    out = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == [str(REPO / "configs"), str(REPO / "configs" / "real_gap" / "ankle_weak.yaml")]


def test_every_shipped_file_matches_a_package_data_pattern():
    patterns = _setup_constant("DATA_FILES")
    for name in SHIPPED:
        files = [p for p in (REPO / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files
        missed = [str(p.relative_to(REPO)) for p in files if p.name != "__init__.py"
                  and not any(fnmatch(p.name, pat) for pat in patterns)]  # fmt: skip
        assert not missed, f"not packaged (add a pattern to setup.py DATA_FILES): {missed}"
