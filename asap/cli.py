"""`asap <stage>`: the command line. Thin: each stage module registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import warnings

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
    return parser


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``asap`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_modules(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.simplefilter("default")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
