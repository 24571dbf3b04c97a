#!/usr/bin/env bash
# Packaging check (part of `make test`): build the wheel that `pip install .` builds, install it (not editable) into
# a throwaway venv and run stages from a folder outside the checkout, so that shipped configs and motions must come
# from the installed package data.
#
#   bash scripts/check_wheel.sh [VENV]     # VENV (default .venv): the project's venv, for pip, setuptools and deps
#
# To stay fast and offline the wheel is built without build isolation (setuptools from VENV) and the throwaway venv
# reads the already-installed dependencies from VENV's site-packages through a .pth file; only the project itself
# comes from the wheel (checked below). ~10 s on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(realpath "${1:-.venv}")
PY="$VENV/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The source as a clean clone has it (tracked files plus new files git does not ignore): no stale build/ or
# egg-info from this checkout can leak into the wheel.
mkdir "$tmp/src" "$tmp/run"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null |
        tar -xf - -C "$tmp/src"
else
    tar --exclude=./.venv --exclude=./build --exclude='*.egg-info' -cf - . | tar -xf - -C "$tmp/src"
fi

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$tmp/dist" "$tmp/src" 2>"$tmp/build.log" ||
    { cat "$tmp/build.log"; exit 1; }
wheel=$(ls "$tmp"/dist/asap_g1-*.whl)

"$PY" -m venv --without-pip "$tmp/venv"
deps=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$deps" >"$site/_asap_check_deps.pth"
"$PY" -m pip --python "$tmp/venv/bin/python" install -q --no-deps "$wheel"

cd "$tmp/run"
env -u PYTHONPATH "$tmp/venv/bin/asap" retarget builtin:squat -o x.npz >"$tmp/retarget.log" 2>&1 ||
    { cat "$tmp/retarget.log"; exit 1; }
test -s x.npz
env -u PYTHONPATH "$tmp/venv/bin/python" - "$tmp/venv" "$tmp/src" <<'EOF'
import sys
from pathlib import Path

import asap
from asap.config import load_config
from asap.paths import shipped_dir
from asap.rl.config import PretrainConfig
from asap.rl.runner import motion_sources

venv = Path(sys.argv[1]).resolve()
for where in (Path(asap.__file__), shipped_dir("configs"), shipped_dir("motions")):
    assert venv in where.resolve().parents, f"{where} is not inside the wheel install {venv}"
src = Path(sys.argv[2])
for name in ("configs", "motions"):  # every shipped file made it into the wheel
    want, have = ({p.relative_to(d) for p in d.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
                  for d in (src / name, shipped_dir(name)))  # fmt: skip
    assert want == have, f"{name}/ files missing from the wheel: {sorted(map(str, want - have))} (setup.py DATA_FILES)"
cfg = load_config(PretrainConfig, "configs/pretrain/demo.yaml")  # a shipped config names a shipped motion
assert all(venv in Path(p).resolve().parents for p in motion_sources(cfg.motion)), cfg.motion
EOF
echo "wheel check: $(basename "$wheel") installs; asap retarget builtin:squat ran outside the checkout"
