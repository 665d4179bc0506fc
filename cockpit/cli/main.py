"""The ``llm-cockpit`` console script.

Sub-commands live in ``cockpit/cli/*.py`` modules, each with ``register(subparsers)``;
this module only wires them and turns :class:`~cockpit.errors.CockpitError` into one
line on stderr (exit 1, or 2 for usage). Heavy libraries (torch, transformers, peft)
are imported inside the handlers that need them, never at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cockpit import __version__
from cockpit.errors import CockpitError

COMMAND_MODULES = (
    "cockpit.cli.train",
    "cockpit.cli.data",
    "cockpit.cli.plan",
    "cockpit.cli.eval",
    "cockpit.cli.export",
    "cockpit.cli.compare",
    "cockpit.cli.chat",
    "cockpit.cli.tui",
)


# Commands that share the machine with a running trainer: they take one CPU thread then.
HELPER_COMMANDS = ("data", "eval", "export", "chat")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-cockpit",
        description="A terminal cockpit for fine-tuning LLMs on your own hardware.",
    )
    parser.add_argument("--version", action="version", version=f"llm-cockpit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        func = _default_command(sub_parser=parser)
        if func is None:
            parser.print_help()
            return 0
    if getattr(args, "command", None) in HELPER_COMMANDS:
        from cockpit.training.cpu_share import yield_to_trainer

        if yield_to_trainer():
            logging.getLogger(__name__).info("a trainer runs on this machine: one CPU thread for this command")
    try:
        return int(func(args) or 0)
    except CockpitError as exc:
        if args.debug:
            raise
        print(f"llm-cockpit: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("llm-cockpit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `llm-cockpit compare A B --json | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def _default_command(sub_parser: argparse.ArgumentParser):
    """``llm-cockpit`` with no command opens the TUI."""
    return importlib.import_module("cockpit.cli.tui").default_handler(sub_parser)


def entry_point() -> None:  # the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
