"""Where the project's shipped files live, so commands work from any working directory and from a wheel install.

The YAML configs (``configs/``) and the built-in motions (``motions/``) are package data: the build maps them to the
packages ``asap.configs`` and ``asap.motions`` (``setup.py``), so a wheel carries them inside ``asap/`` and an
editable install points at the checkout's folders. They are found through :mod:`importlib.resources`, never
relative to a source file.
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import sys
from pathlib import Path

SHIPPED = ("configs", "motions")
"""Top-level folders of the source tree that ship as package data (``configs/x`` -> package ``asap.configs``)."""


def shipped_dir(name: str) -> Path:
    """The installed folder of the shipped data ``name`` (one of :data:`SHIPPED`).

    Returns a real directory (wheel: ``site-packages/asap/<name>``; editable install: the checkout's ``<name>/``).
    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the package is not on the file system
    (e.g. imported from a zip), which the project does not support.
    """
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped folder {name!r}; choose one of {SHIPPED}")
    if importlib.util.find_spec(f"asap.{name}") is None:  # a source checkout on PYTHONPATH, never installed
        checkout = Path(__file__).resolve().parents[1] / name
        if checkout.is_dir():
            return checkout
    if sys.version_info >= (3, 9):
        root = importlib.resources.files(f"asap.{name}")  # novermin: guarded by the version check
    else:  # the robot runtime on Python 3.8: a package's first search path is the same folder
        root = Path(next(iter(importlib.import_module(f"asap.{name}").__path__)))
    if not isinstance(root, Path) or not root.is_dir():
        raise RuntimeError(f"asap.{name} is not a folder on disk ({root}); reinstall with `pip install .`")
    return root


def repo_path(p: str | Path) -> Path:
    """``p`` as given when it exists (or is absolute); otherwise, when it names a shipped file (``configs/...`` or
    ``motions/...``, as the shipped configs and the docs write them), the installed copy of that file; otherwise
    ``p`` unchanged (the caller reports it missing). A local file therefore wins over the shipped one."""
    q = Path(p)
    if q.exists() or q.is_absolute():
        return q
    if len(q.parts) > 1 and q.parts[0] in SHIPPED:
        r = shipped_dir(q.parts[0]).joinpath(*q.parts[1:])
        if r.exists():
            return r
    return q
