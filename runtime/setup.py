"""Build asap-g1-runtime from the repository's own files (runtime/files.txt), copied as they are.

The packages are the folders of the listed files; ``build_py`` copies exactly the listed files (``configs/x`` to
``asap/configs/x``, as the full install's ``setup.py`` maps them), so the wheel carries the robot runtime and
nothing of the training stack. Build from a checkout (in-tree: pip >= 21.3); there is no sdist.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FILES = [s.strip() for s in (HERE / "files.txt").read_text().splitlines() if s.strip() and not s.startswith("#")]


def installed_path(src: str) -> str:
    """Where a repository file goes in the wheel: ``configs/...`` ships inside ``asap/``."""
    return "asap/" + src if src.startswith("configs/") else src


PACKAGES = sorted({str(Path(installed_path(f)).parent).replace("/", ".") for f in FILES})


class BuildRuntime(build_py):
    """Copy the listed files into the build folder instead of whole packages."""

    def run(self) -> None:
        for top in {installed_path(f).split("/")[0] for f in FILES}:  # no file left over from an earlier build
            shutil.rmtree(Path(self.build_lib) / top, ignore_errors=True)
        for src in FILES:
            if not (ROOT / src).is_file():
                raise FileNotFoundError(f"runtime/files.txt lists {src}, which is not in the repository: fix the list")
            dst = Path(self.build_lib) / installed_path(src)
            self.mkpath(str(dst.parent))
            self.copy_file(str(ROOT / src), str(dst))

    def get_outputs(self, include_bytecode: bool = True) -> list:
        return [str(Path(self.build_lib) / installed_path(src)) for src in FILES]


setup(packages=PACKAGES, package_dir={"": "..", "asap.configs": "../configs"}, cmdclass={"build_py": BuildRuntime})
