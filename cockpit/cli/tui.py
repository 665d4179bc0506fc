"""``tui``, ``attach`` and ``wizard``: the cockpit's interactive commands.

``llm-cockpit`` with no command opens the full-screen cockpit (:func:`default_handler`).
Each command has a ``--plain`` form for terminals where a full-screen app cannot run:
``attach --plain`` prints the run's events as readable lines and follows it until it
ends; ``wizard --plain`` asks the wizard's questions one by one (questionary).

The UI (``screens``) is imported inside the handlers only, so other commands never
load textual.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cockpit.errors import CockpitError
from cockpit.cli.console import attach_plain
from cockpit.run.registry import DEFAULT_RUNS_ROOT, find_run


def register(sub) -> None:
    p = sub.add_parser("tui", help="open the full-screen cockpit (also: llm-cockpit with no command)",
                       description="The full-screen cockpit: resume a run or set up a new one with the wizard.")
    _ui_options(p)
    p.add_argument("--runs", action="store_true", help="open the list of runs instead of the wizard")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("attach", help="watch a run live (replays its whole history first)",
                       description="Open a run's dashboard: the whole history is replayed, then it follows "
                                   "live. Quitting detaches; training continues.")
    p.add_argument("run", nargs="?", default=None, help="run name, unique prefix or path (default: latest)")
    p.add_argument("--plain", action="store_true",
                   help="print events as lines instead of the dashboard, until the run ends (Ctrl+C detaches)")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    _ui_options(p)
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("wizard", help="set up and start a run step by step",
                       description="Hardware, model, method, data, review, start: the questions a first run needs.")
    p.add_argument("--plain", action="store_true", help="ask the questions line by line (no full-screen UI)")
    _ui_options(p)
    p.set_defaults(func=cmd_wizard)


def _ui_options(p) -> None:
    p.add_argument("--output-dir", default=None,
                   help=f"this runs directory only, for new runs too (default: runs of every runs directory "
                        f"llm-cockpit knows are shown, new runs go to {DEFAULT_RUNS_ROOT} here)")
    p.add_argument("--light", action="store_true", help="colours for a light terminal background")


def default_handler(parser):
    """The handler ``llm-cockpit`` runs when no command is given: the full-screen cockpit."""
    del parser  # the cockpit needs no arguments

    def handler(args) -> int:
        return _run_app(start="wizard", output_dir=getattr(args, "output_dir", None),
                        light=getattr(args, "light", False))

    return handler


def cmd_tui(args) -> int:
    return _run_app(start="runs" if args.runs else "wizard", output_dir=args.output_dir, light=args.light)


def cmd_wizard(args) -> int:
    if args.plain:
        from cockpit.cli.plain_wizard import run_plain_wizard

        return run_plain_wizard(output_dir=args.output_dir)
    return _run_app(start="wizard", output_dir=args.output_dir, light=args.light)


def cmd_attach(args) -> int:
    run_dir = find_run(args.run, args.output_dir)
    if args.plain:
        return attach_plain(run_dir, interval=args.interval)
    return _run_app(start="dashboard", output_dir=args.output_dir, run_dir=run_dir, light=args.light)


def _require_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CockpitError("the full-screen cockpit needs a terminal (stdin/stdout are not one)",
                           "use  llm-cockpit wizard --plain  or  llm-cockpit attach --plain")


def _run_app(*, start: str, output_dir: str | Path | None, run_dir: Path | None = None, light: bool = False) -> int:
    _require_terminal()
    from screens.app import CockpitApp

    app = CockpitApp(output_dir=output_dir, start=start, run_dir=run_dir, light=light)
    app.run()
    return app.return_code or 0
