"""``data check`` and ``data convert-chatgpt``: look at training data before training on it."""

from __future__ import annotations

import functools
import json
import sys

from cockpit.config import TrainConfig
from cockpit.errors import CockpitError

# Enough lines to fix a file from; --json always lists every problem.
MAX_PROBLEM_LINES = 200


def register(sub) -> None:
    p = sub.add_parser("data", help="check or convert training data",
                       description="Check a JSONL data file, or convert a ChatGPT export to JSONL.")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda args: _help(p))

    c = data_sub.add_parser(
        "check", help="validate a JSONL file: file:line problems, duplicates, lengths",
        description="Validate a JSONL data file (prompt/completion or chat messages): every bad line "
                    "as file:line, empty samples, duplicates, examples longer than --max-length and "
                    "token-length statistics. Exit 1 when any line is bad.")
    c.add_argument("file", help="the JSONL file")
    c.add_argument("--json", action="store_true", help="print one JSON document")
    c.add_argument("--max-length", type=int, default=TrainConfig.max_length,
                   help=f"training max_length in tokens (default {TrainConfig.max_length})")
    c.add_argument("--model", default=None,
                   help="model whose tokenizer measures lengths (default: the bundled model; "
                        "'none' skips token counts)")
    c.add_argument("--system-prompt", default=None,
                   help="system message added to examples without one (as training would)")
    c.set_defaults(func=cmd_check)

    v = data_sub.add_parser(
        "convert-chatgpt", help="ChatGPT export (conversations.json) -> chat JSONL",
        description="Convert the conversations.json of a ChatGPT data export (or the export .zip) "
                    "into chat-format JSONL, one conversation per line (its main branch).")
    v.add_argument("input", metavar="IN", help="conversations.json, or the export .zip")
    v.add_argument("output", metavar="OUT", help="the JSONL file to write")
    v.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    v.add_argument("--json", action="store_true", help="print the counts as one JSON document")
    v.set_defaults(func=cmd_convert)


def _help(parser) -> int:
    parser.print_help()
    return 2


@functools.lru_cache(maxsize=4)
def load_tokenizer_for(model: str | None):
    """The tokenizer of ``model`` (None: the bundled default), as training loads it."""
    from cockpit.models import bundled_tokenizer_dir, is_bundled, resolve_model
    from cockpit.recipe import load_tokenizer

    if model is None or is_bundled(model):
        # The tokenizer alone: no need to materialize the whole bundled model for a check.
        return load_tokenizer(bundled_tokenizer_dir())
    return load_tokenizer(resolve_model(model).path)


def cmd_check(args) -> int:
    from cockpit.data import build_report

    if args.max_length < 1:
        raise CockpitError(f"--max-length {args.max_length} must be at least 1", "e.g. --max-length 512")
    try:
        tokenizer = None
        if (args.model or "").lower() != "none":
            tokenizer = load_tokenizer_for(args.model)
        report = build_report(args.file, tokenizer=tokenizer, max_length=args.max_length,
                              system_prompt=args.system_prompt)
    except CockpitError as exc:
        if args.json:  # still one JSON document on stdout; the line on stderr comes from cli.py
            print(json.dumps({"path": args.file, "ok": False, "error": exc.message,
                              "advice": exc.advice}))
        raise
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for line in report.to_lines(max_problems=MAX_PROBLEM_LINES):
            print(line)
    return 0 if report.ok else 1


def cmd_convert(args) -> int:
    from cockpit.data.chatgpt import convert_chatgpt
    from cockpit.data import plural

    result = convert_chatgpt(args.input, args.output, overwrite=args.force)
    if args.json:
        print(json.dumps({"output": args.output, **result.to_dict()}))
        return 0
    print(f"converted {plural(result.converted, 'conversation')} to {args.output}")
    if result.skipped:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(result.reasons.items()))
        print(f"skipped {result.skipped} ({why})")
    print(f"next: llm-cockpit data check {args.output}", file=sys.stderr)
    return 0
