#!/usr/bin/env bash
# Install the DDS stack the robot runtime and the virtual G1 use, matching the G1's Cyclone DDS 0.10.x:
#   1. the Cyclone DDS C library 0.10.x (Debian/Ubuntu: apt package `cyclonedds-dev`, or an existing build
#      pointed to by CYCLONEDDS_HOME, e.g. the one Unitree documents for the G1's onboard computer);
#   2. the Python binding `cyclonedds==0.10.2`, built against that library;
#   3. `unitree_sdk2==1.0.1` with --no-deps (optional: the project does not need it; see docs/robot.md).
#
# Debian installs libddsc.so under /usr/lib/<multiarch>, where cyclonedds' build helper does not look
# (it wants $CYCLONEDDS_HOME/{include,bin,lib/libddsc.so}), so the script lays a small prefix of symlinks in
# $VENV/cyclonedds-home and builds against it. The built binding records the absolute library path, so no
# LD_LIBRARY_PATH is needed at run time.
#
# Usage: scripts/install_dds.sh [VENV]    (default VENV=.venv; idempotent; run as root or with sudo for apt)
# Env:   CYCLONEDDS_HOME=<prefix>  use this Cyclone DDS build instead of the apt package
#        ASAP_DDS_SKIP_SDK=1       do not install unitree_sdk2 (the runtime works without it)
set -euo pipefail

VENV="${1:-.venv}"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q)
[ -f constraints.txt ] && PIP+=(-c constraints.txt)

log() { echo "[install_dds] $*"; }

if "$PY" -c "import os, cyclonedds.domain, cyclonedds.__library__ as l; assert os.path.exists(l.library_path)" 2>/dev/null \
    && [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("cyclonedds"))')" = "0.10.2" ]; then
    log "cyclonedds 0.10.2 already installed in $VENV"
else
    home="${CYCLONEDDS_HOME:-}"
    if [ -n "$home" ] && { [ -e "$home/lib/libddsc.so" ] || [ -e "$home/lib64/libddsc.so" ]; }; then
        log "using Cyclone DDS from CYCLONEDDS_HOME=$home"
    else
        lib=""
        for d in /usr/lib/*-linux-gnu /usr/lib /usr/lib64; do
            [ -e "$d/libddsc.so" ] && [ -e /usr/include/dds/dds.h ] && { lib="$d/libddsc.so"; break; }
        done
        if [ -z "$lib" ]; then
            command -v apt-get >/dev/null || { log "no apt-get: build Cyclone DDS 0.10.x and set CYCLONEDDS_HOME"; exit 1; }
            SUDO=""
            [ "$(id -u)" -ne 0 ] && SUDO="sudo"
            log "installing cyclonedds-dev (Cyclone DDS C library 0.10.x) with apt-get"
            export DEBIAN_FRONTEND=noninteractive
            $SUDO apt-get install -y -qq cyclonedds-dev >/dev/null 2>&1 \
                || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq cyclonedds-dev; }
            for d in /usr/lib/*-linux-gnu /usr/lib /usr/lib64; do
                [ -e "$d/libddsc.so" ] && { lib="$d/libddsc.so"; break; }
            done
        fi
        [ -n "$lib" ] || { log "libddsc.so not found after installing cyclonedds-dev"; exit 1; }
        ver="$(dpkg-query -W -f='${Version}' libddsc0debian 2>/dev/null || echo unknown)"
        case "$ver" in 0.10.*|unknown) ;; *) log "warning: Cyclone DDS $ver is not 0.10.x (the G1 runs 0.10.x)";; esac
        home="$(cd "$VENV" && pwd)/cyclonedds-home"
        rm -rf "$home"
        mkdir -p "$home/lib" "$home/bin"
        ln -s /usr/include "$home/include"
        ln -s "$(readlink -f "$lib")" "$home/lib/libddsc.so"  # the runtime library itself (libddsc0debian)
    fi
    log "building cyclonedds==0.10.2 against $home"
    # --no-cache-dir: a cached wheel would carry another prefix's library path
    CYCLONEDDS_HOME="$home" "${PIP[@]}" --no-cache-dir --force-reinstall --no-deps --no-binary cyclonedds \
        "cyclonedds==0.10.2"
    "${PIP[@]}" "cyclonedds==0.10.2"  # its own dependencies (rich-click)
fi

if [ "${ASAP_DDS_SKIP_SDK:-0}" != "1" ]; then
    # The 1.0.1 wheel imports a missing `b2` subpackage from its __init__ and lacks the CRC library; the
    # project never imports it at module level (deploy/ has its own message types and CRC). --no-deps keeps
    # pip from replacing cyclonedds 0.10.2 or pulling opencv.
    "$PY" -c "import importlib.metadata as m; m.version('unitree_sdk2')" 2>/dev/null \
        || "${PIP[@]}" --no-deps "unitree_sdk2==1.0.1" || log "warning: unitree_sdk2 not installed (optional)"
fi

"$PY" - <<'EOF'
import cyclonedds.domain, importlib.metadata as m
from cyclonedds.__library__ import library_path
print(f"[install_dds] cyclonedds {m.version('cyclonedds')} OK, C library {library_path}")
EOF
