"""The docs say what the code does: figures and defaults quoted in the docs are read back from the code here."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _text(rel: str) -> str:
    """A doc's text with line wraps folded into single spaces."""
    return " ".join((REPO / rel).read_text().split())


def _subcommand(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def test_robot_md_safety_figures_are_safety_config():
    from deploy.safety import SafetyConfig

    cfg, doc = SafetyConfig(), _text("docs/robot.md")
    for phrase in (
        f"`state_timeout_s` ({cfg.state_timeout_s * 1e3:.0f} ms)",
        f"`watchdog_lead_s` ({cfg.watchdog_lead_s * 1e3:.0f} ms)",
        f"|a| > {cfg.max_abs_action:g} policy output",
        f"more than {cfg.limit_margin:g} rad beyond a limit",
        f"tilt > {cfg.max_tilt_deg:g}°",
        f"|tau_est| > {cfg.torque_limit_scale:g} × effort for {cfg.torque_violation_steps} checks",
        f"(kp 0, kd {cfg.damping_kd:g})",
    ):
        assert phrase in doc, f"docs/robot.md should say {phrase!r} (deploy/safety.py SafetyConfig)"


def test_fix_floor_default_in_docs_is_the_commands():
    from asap.cli import build_parser

    convert = _subcommand(build_parser(("asap.motion.commands",)), "motion", "convert")
    action = next(a for a in convert._actions if "--fix-floor" in a.option_strings)
    default, others = action.const, [m for m in action.choices if m != action.const]
    motion_md = _text("docs/motion.md")
    assert f"`{default}` (the default" in motion_md
    assert not any(f"`{m}` (the default" in motion_md for m in others)
    assert f"by default (`{default}`)" in _text("README.md")


def test_cited_test_files_exist():
    cited: dict[str, set[str]] = {}
    sources = [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    for folder in ("asap", "deploy", "envs", "scripts"):
        sources += (REPO / folder).rglob("*.py")
    for src in sources:
        for ref in re.findall(r"tests/test_\w+\.py", src.read_text()):
            cited.setdefault(ref, set()).add(str(src.relative_to(REPO)))
    assert cited, "no citations found: the pattern is broken"
    missing = {ref: sorted(where) for ref, where in cited.items() if not (REPO / ref).exists()}
    assert not missing, f"cited test files that do not exist: {missing}"


def test_unitree_message_definitions_carry_their_attribution():
    import deploy.messages

    doc = " ".join((deploy.messages.__doc__ or "").split())
    assert "unitree_sdk2" in doc and "unitree_hg" in doc and "BSD-3-Clause" in doc


def test_every_cli_stage_module_exists_and_registers_commands():
    from asap.cli import COMMAND_MODULES, build_parser

    for name in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(name).register(sub)
        assert sub.choices, f"{name} registers no command"
    with pytest.raises(ModuleNotFoundError):  # a missing stage is an error, not a silently shorter --help
        build_parser(("asap.robot.commands", "asap.no_such_stage.commands"))
