"""``data check``, ``data convert`` and ``data convert-chatgpt``: look at training data before training on it."""

from __future__ import annotations

import functools
import json
import sys

from cockpit.config import TrainConfig
from cockpit.data.formats import DATA_FORMATS
from cockpit.errors import CockpitError

# Enough lines to fix a file from; --json always lists every problem.
MAX_PROBLEM_LINES = 200


def register(sub) -> None:
    p = sub.add_parser("data", help="check or convert training data",
                       description="Check training data (any accepted source), convert it to normalized JSONL, "
                                   "or convert a ChatGPT export.")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda args: _help(p))

    c = data_sub.add_parser(
        "check", help="validate data: file:line problems, format, duplicates, lengths, what is learned",
        description="Validate training data: a JSONL, JSON, CSV, TSV or Parquet file, a directory or glob of "
                    "them, a dataset saved with save_to_disk, or hf:ORG/NAME. Prints every bad record as "
                    "file:line, the detected format, empty samples, duplicates, examples longer than "
                    "--max-length, token statistics, the share of learned tokens, and the first examples "
                    "as the model sees them (learned text in [[...]]). Exit 1 when any record is bad.")
    c.add_argument("file", metavar="SOURCE", help="the data (file, directory, glob, saved dataset or hf:ORG/NAME)")
    c.add_argument("--json", action="store_true", help="print one JSON document")
    c.add_argument("--max-length", type=int, default=TrainConfig.max_length,
                   help=f"training max_length in tokens (default {TrainConfig.max_length})")
    c.add_argument("--model", default=None,
                   help="model whose tokenizer and chat template are used (default: the bundled model; "
                        "'none' skips token counts)")
    c.add_argument("--system-prompt", default=None,
                   help="system message added to examples without one (as training would)")
    c.add_argument("--examples", type=int, default=2, metavar="N",
                   help="show the first N examples as the model sees them (default 2; 0 hides them)")
    _add_source_args(c)
    c.set_defaults(func=cmd_check)

    n = data_sub.add_parser(
        "convert", help="write any accepted source as normalized JSONL",
        description="Write the examples of any accepted source (see `data check`) as normalized JSON Lines: "
                    "cleaned, one example per line, what training reads. Nothing is written when a record "
                    "is bad (unless --skip-bad).")
    n.add_argument("input", metavar="SOURCE", help="the data (file, directory, glob, saved dataset or hf:ORG/NAME)")
    n.add_argument("output", metavar="OUT", help="the JSONL file to write")
    n.add_argument("--format", default="messages", choices=("messages", "prompt_completion"),
                   help="how to write supervised examples (default messages; plain text stays text)")
    n.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    n.add_argument("--skip-bad", action="store_true", help="write the good records, list the bad ones")
    n.add_argument("--json", action="store_true", help="print the counts as one JSON document")
    _add_source_args(n)
    n.set_defaults(func=cmd_convert_source)

    v = data_sub.add_parser(
        "convert-chatgpt", help="ChatGPT export (conversations.json) -> chat JSONL",
        description="Convert the conversations.json of a ChatGPT data export (or the export .zip) "
                    "into chat-format JSONL, one conversation per line (its main branch).")
    v.add_argument("input", metavar="IN", help="conversations.json, or the export .zip")
    v.add_argument("output", metavar="OUT", help="the JSONL file to write")
    v.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    v.add_argument("--json", action="store_true", help="print the counts as one JSON document")
    v.set_defaults(func=cmd_convert)


def _add_source_args(p) -> None:
    p.add_argument("--data-format", default="auto", choices=DATA_FORMATS,
                   help="force one format for every record (default auto: each record's from its keys)")
    p.add_argument("--columns", default=None, metavar="MAP",
                   help="ours:theirs names for data with other keys, e.g. prompt:question,completion:answer")
    p.add_argument("--split", default=None, help="split of a hub/saved dataset or split-named files (default train)")
    p.add_argument("--subset", default=None, help="subset (configuration) of a hub dataset")


def _options(args, **kw):
    from cockpit.data import DataOptions

    return DataOptions.make(data_format=args.data_format, columns=args.columns, split=args.split,
                            subset=args.subset, **kw)


def _help(parser) -> int:
    parser.print_help()
    return 2


@functools.lru_cache(maxsize=4)
def load_tokenizer_for(model: str | None):
    """The tokenizer of ``model`` (None: the bundled default), as training loads it."""
    from cockpit.models.sources import bundled_tokenizer_dir, is_bundled, resolve_model
    from cockpit.training.recipe import load_tokenizer

    if model is None or is_bundled(model):
        # The tokenizer alone: no need to materialize the whole bundled model for a check.
        return load_tokenizer(bundled_tokenizer_dir())
    return load_tokenizer(resolve_model(model).path)


def cmd_check(args) -> int:
    from cockpit.data import build_report

    from cockpit.run_config import typed_or_bundled

    if args.max_length < 1:
        raise CockpitError(f"--max-length {args.max_length} must be at least 1", "e.g. --max-length 512")
    args.file = typed_or_bundled(args.file)  # the demo's data/dsl_train.jsonl from any directory
    try:
        tokenizer = None
        if (args.model or "").lower() != "none":
            tokenizer = load_tokenizer_for(args.model)
        if args.examples < 0:
            raise CockpitError(f"--examples {args.examples} must be 0 or more")
        options = _options(args, system_prompt=args.system_prompt)
        if options.data_format == "auto" and _is_preference(args.file, options):
            from cockpit.data.preference_report import build_preference_report

            report = build_preference_report(args.file, tokenizer=tokenizer, max_length=args.max_length,
                                             options=options, show=args.examples)
        else:
            report = build_report(args.file, tokenizer=tokenizer, max_length=args.max_length, options=options,
                                  show=args.examples)
    except CockpitError as exc:
        if args.json:  # still one JSON document on stdout; the line on stderr comes from cli.py
            print(json.dumps({"path": args.file, "ok": False, "error": exc.message,
                              "advice": exc.advice}))
        raise
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for line in report.to_lines(max_problems=MAX_PROBLEM_LINES, marked=args.examples > 0):
            print(line)
    return 0 if report.ok else 1


def _is_preference(spec: str, options) -> bool:
    """Preference pairs or labelled answers (DPO/KTO data) get their own report."""
    from cockpit.data.preference import is_preference_source

    return is_preference_source(spec, options)


def cmd_convert_source(args) -> int:
    from cockpit.data.convert import convert_source
    from cockpit.data import plural

    report = convert_source(args.input, args.output, options=_options(args), to=args.format,
                            overwrite=args.force, skip_bad=args.skip_bad)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for p in report.problems[:MAX_PROBLEM_LINES]:
            print(p, file=sys.stderr)
        if len(report.problems) > MAX_PROBLEM_LINES:
            print(f"... and {len(report.problems) - MAX_PROBLEM_LINES} more problems (--json lists them all)",
                  file=sys.stderr)
        if report.wrote:
            formats = ", ".join(f"{n} {f}" for f, n in report.formats.items())
            print(f"wrote {plural(report.written, 'example')} ({formats}) to {args.output}")
            if report.problems:
                print(f"skipped {plural(len(report.problems), 'bad record')}", file=sys.stderr)
            print(f"next: llm-cockpit data check {args.output}", file=sys.stderr)
        elif report.problems:
            print(f"llm-cockpit: nothing written: {plural(len(report.problems), 'problem')} in {report.source} "
                  "-> fix them, or pass --skip-bad to write the good records", file=sys.stderr)
        else:
            print(f"llm-cockpit: nothing written: {report.source} has no examples", file=sys.stderr)
    return 0 if report.wrote and not report.problems else 1


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
