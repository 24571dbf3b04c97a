"""`asap <stage>`: the command line. Thin: each stage module registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

# Each module defines ``register(subparsers)`` adding its commands; a command's handler is stored as
# ``func`` and receives the parsed args. Order = order in ``asap --help``. Only stages that exist are listed, and
# every listed module must import: a stage is never hidden because its module failed to load.
COMMAND_MODULES = (
    "asap.robot.commands",
    "asap.motion.commands",
    "asap.retarget.commands",
    "asap.rl.commands",
    "asap.delta.commands",
    "asap.delta.sysid_commands",
    "asap.delta.dynamics_commands",
    "asap.eval.commands",
    "deploy.commands",
    "deploy.log_commands",
    "asap.pipeline",
)


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The argument parser with the stages of ``modules`` (default: every stage); import errors propagate."""
    parser = argparse.ArgumentParser(prog="asap", description="ASAP pipeline for the Unitree G1.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """Give every command ``--debug`` (show the traceback instead of the one-line error), where it lacks one."""
    sp = _subparsers(parser)
    if sp is None:
        if "--debug" not in parser._option_string_actions:
            parser.add_argument("--debug", action="store_true", help="show tracebacks")
        return
    for child in dict.fromkeys(sp.choices.values()):  # aliases share a parser
        _add_debug(child)


def command_modules(argv: list[str]) -> tuple[str, ...]:
    """The modules to load for a command line: a robot command (``asap deploy`` ...) loads only
    ``deploy.commands``, so that it runs on the robot's computer without the training stack (torch, MuJoCo); so
    does every command line of the runtime-only install (``runtime/``, docs/onboard.md), which has no stages."""
    from deploy.commands import COMMANDS

    if argv and argv[0] in COMMANDS:
        return ("deploy.commands",)
    if importlib.util.find_spec("asap.rl") is None:  # the runtime-only install (runtime/): the robot commands alone
        return ("deploy.commands",)
    return COMMAND_MODULES


OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")
"""A dotted ``key.sub=value`` config override on the command line."""


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, list[str], list[Any]]:
    """The (sub-)sub-command parser ``argv`` names, the arguments left for it and the (parser, dest, name) of each
    sub-command level above it."""
    path: list[Any] = []
    while (sp := _subparsers(parser)) is not None and argv and argv[0] in sp.choices:
        path.append((parser, sp.dest, argv[0]))
        parser, argv = sp.choices[argv[0]], argv[1:]
    return parser, argv, path


def reorder_overrides(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with the ``key=value`` overrides that a list option (``--motions A B``) would swallow moved to the
    end, where the command's ``overrides`` take them (``--motions logs/ run.max_time_s=60 --out D`` reads as the user
    meant). Only for commands with an ``overrides`` argument; an existing file named like an override stays put."""
    if not any(a.dest == "overrides" and not a.option_strings for a in parser._actions):
        return argv
    greedy = {s for a in parser._actions if a.option_strings and a.nargs in ("+", "*") for s in a.option_strings}
    kept: list[str] = []
    moved: list[str] = []
    in_list = False
    for tok in argv:
        if tok.startswith("-") and len(tok) > 1 and not tok[1].isdigit():
            in_list = tok in greedy
            kept.append(tok)
        elif in_list and OVERRIDE.match(tok) and not Path(tok).exists():
            moved.append(tok)
        else:
            kept.append(tok)
    return kept + moved


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` for the sub-command it names, options and positionals in any order (``asap pretrain
    --config C motion=M --out D run.max_time_s=60``; ``asap eval A.onnx --out D B.onnx``), with the sub-command's
    own usage in its errors."""
    leaf, rest, path = _leaf(parser, argv)
    if not path or _subparsers(leaf) is not None:
        return parser.parse_args(argv)
    rest = reorder_overrides(leaf, rest)
    try:
        args = leaf.parse_intermixed_args(rest)
    except TypeError:  # a parser feature intermixed parsing does not support
        args = leaf.parse_args(rest)
    for level, dest, name in path:  # what the levels above would have set: the command names and their defaults
        setattr(args, dest, name)
        for a in level._actions:
            if argparse.SUPPRESS not in (a.dest, a.default) and not hasattr(args, a.dest):
                setattr(args, a.dest, a.default)
        for k, v in level._defaults.items():
            if not hasattr(args, k):
                setattr(args, k, v)
    return args


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """Warnings on the command line as one line each, ``warning: <message> (<category>)``, without the source line
    Python shows by default (it reads like a traceback)."""
    return f"warning: {message} ({category.__name__})\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``asap`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_modules(argv))
    args = parse_command_line(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.simplefilter("default")
    shown, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, inside the handler below, not at exit
        return rc
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`asap motion info F | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = shown  # a caller's own (main() runs in-process in tests and scripts)


if __name__ == "__main__":
    sys.exit(main())
