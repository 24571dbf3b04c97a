"""Locate Unitree's G1 MJCF: a user path, the local cache, or the ``mjlab`` wheel from PyPI.

The robot description is not copied into this repository. ``fetch_g1_assets`` downloads the ``mjlab``
wheel (no dependencies; it ships Unitree's ``g1_29dof_rev_1_0`` MJCF with capsule collisions and STL
visuals) and extracts only the robot folder into ``$ASAP_CACHE/g1`` (default ``~/.cache/asap/g1``).
``make`` runs it once at install time; afterwards everything works offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MJLAB_VERSION = "1.6.0"
"""The mjlab release whose wheel provides the G1 MJCF."""
_WHEEL_PREFIX = "mjlab/asset_zoo/robots/unitree_g1/xmls/"


class AssetError(RuntimeError):
    """The G1 model files cannot be found or fetched."""


def cache_dir() -> Path:
    """Folder for fetched assets (``$ASAP_CACHE`` or ``~/.cache/asap``)."""
    return Path(os.environ.get("ASAP_CACHE", Path.home() / ".cache" / "asap"))


def g1_dir() -> Path:
    """Folder holding ``g1.xml`` and ``assets/*.STL`` once fetched."""
    return cache_dir() / "g1"


def extract_wheel(wheel: Path, dest: Path) -> Path:
    """Extract the G1 robot folder of an mjlab wheel into ``dest``; return the path of ``g1.xml``."""
    if not zipfile.is_zipfile(wheel):
        raise AssetError(f"{wheel} is not a wheel (zip) file")
    tmp = Path(tempfile.mkdtemp(dir=dest.parent if dest.parent.exists() else None))
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(_WHEEL_PREFIX) and not m.endswith("/")]
            if not any(m.endswith("/g1.xml") for m in members):
                raise AssetError(f"{wheel} has no {_WHEEL_PREFIX}g1.xml; use mjlab=={MJLAB_VERSION}")
            for m in members:
                out = tmp / m[len(_WHEEL_PREFIX) :]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(m))
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest / "g1.xml"


def fetch_g1_assets(wheel: str | Path | None = None, force: bool = False) -> Path:
    """Make sure the G1 MJCF is in the cache and return the path of ``g1.xml``.

    ``wheel`` (or ``$ASAP_MJLAB_WHEEL``) points to a local mjlab wheel for machines without PyPI.
    """
    dest = g1_dir()
    xml = dest / "g1.xml"
    if xml.exists() and not force:
        return xml
    wheel = wheel or os.environ.get("ASAP_MJLAB_WHEEL")
    if wheel:
        return extract_wheel(Path(wheel), dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", f"mjlab=={MJLAB_VERSION}", "-d", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mjlab-*.whl"))
        if res.returncode != 0 or not wheels:
            raise AssetError(
                "could not download the G1 model (mjlab wheel) from PyPI: "
                f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else 'no wheel'}. "
                "Fix: run `asap robot fetch --wheel PATH` with a local mjlab-1.6.0 wheel, "
                "or point ASAP_G1_MJCF to your own model (MJCF or URDF)."
            )
        return extract_wheel(wheels[0], dest)


def g1_mjcf_path(user_path: str | Path | None = None) -> Path:
    """Return the MJCF/URDF to load: ``user_path``, ``$ASAP_G1_MJCF``, or the cached G1 (fetched if absent)."""
    path = user_path or os.environ.get("ASAP_G1_MJCF")
    if path:
        p = Path(path)
        if not p.exists():
            raise AssetError(f"robot model {p} does not exist")
        return p
    xml = g1_dir() / "g1.xml"
    if xml.exists():
        return xml
    return fetch_g1_assets()
