"""Package layout (everything else is in pyproject.toml).

The import packages are found on disk; the shipped data folders ``configs/`` and ``motions/`` are mapped to the
packages ``asap.configs`` and ``asap.motions`` so that a wheel carries them inside ``asap/`` and
``importlib.resources`` finds them in both a wheel and an editable install (``asap/paths.py``).
"""

from setuptools import find_namespace_packages, find_packages, setup

SHIPPED = {"asap.configs": "configs", "asap.motions": "motions"}
DATA_FILES = ["*.yaml", "*.npz", "*.json", "*.md"]
shipped = [
    f"{pkg}.{sub}" if sub else pkg
    for pkg, folder in SHIPPED.items()
    for sub in ["", *find_namespace_packages(folder, exclude=["__pycache__", "*.__pycache__"])]
]

setup(
    packages=find_packages(include=["asap*", "envs*", "deploy*"]) + shipped,
    package_dir=SHIPPED,
    package_data={pkg: DATA_FILES for pkg in shipped},
)
