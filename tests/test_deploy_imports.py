"""The robot side stays onboard-light: the runtime and `asap deploy` run without torch, MuJoCo, envs or asap.rl.

Each check runs in a fresh interpreter where importing any of those raises ImportError (as on a robot computer
that lacks them), and then also requires that none of them is in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKER = textwrap.dedent("""
    import importlib.abc, json, sys
    HEAVY = ("torch", "mujoco", "envs", "genesis", "jax", "warp")
    def heavy(name):
        return name.split(".")[0] in HEAVY or name == "asap.rl" or name.startswith("asap.rl.")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if heavy(name):
                raise ImportError(f"{name} is not available on the robot")
            return None
    sys.meta_path.insert(0, Block())
    def loaded():
        return sorted(m for m in sys.modules if heavy(m))
""")

ROBOT_MODULES = ("deploy.runtime", "deploy.controller", "deploy.safety", "deploy.dds", "deploy.contract",
                 "deploy.logger", "deploy.commands", "deploy.collect", "deploy.peer", "asap.cli")  # fmt: skip
"""What runs on the robot: the runtime and its parts, the robot commands, the CLI entry point."""


def _run(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[1], env=env)  # fmt: skip


def test_runtime_modules_import_without_training_stack() -> None:
    r = _run(f"""
        import importlib
        for m in {ROBOT_MODULES!r}:
            importlib.import_module(m)
        print(json.dumps(loaded()))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_blocker_blocks() -> None:
    """The check above can fail: a module that needs the training stack is refused in that interpreter."""
    r = _run("import asap.rl.commands")
    assert r.returncode != 0 and "not available on the robot" in r.stderr


def test_asap_deploy_dry_run_without_training_stack(tmp_path: Path) -> None:
    """`asap deploy --dry-run` goes through the CLI, loads the policy and listens, with the heavy stack blocked."""
    pytest.importorskip("cyclonedds")
    from deploy.testing import make_policy, next_test_domain

    policy = make_policy(tmp_path / "p.onnx")
    dom = next_test_domain()
    r = _run(f"""
        import asap.cli
        rc = asap.cli.main(["deploy", "--policy", {str(policy)!r}, "--dry-run", "--seconds", "0.3", "--net", "lo",
                            "--domain-id", "{dom}", "--log-dir", {str(tmp_path / "log")!r}])
        print(json.dumps({{"rc": rc, "heavy": loaded()}}))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"rc": 1, "heavy": []}, r.stdout  # rc 1: nobody publishes LowState on that domain
    assert "no LowState received" in r.stdout


def test_robot_commands_are_deploys() -> None:
    """The command names `asap.cli` routes to deploy.commands alone are exactly the ones it registers."""
    import argparse

    from deploy.commands import COMMANDS, register

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    register(sub)
    assert set(sub.choices) == set(COMMANDS)
