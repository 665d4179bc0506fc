"""``chat``: talk to a run's model (beside its base model and its GGUF), or to any model.

On a terminal it opens the cockpit on the chat screen; with ``--plain``, or when standard
input is not a terminal, it is a line loop: each line read is a message (or a slash
command, :mod:`cockpit.chat.commands`), each answer is printed as it is generated. With one
side the answer alone goes to standard output (``echo "hi" | llm-cockpit chat latest``);
side by side each side's answer is a block under its ``[label]``. Loading progress, notes
and the commands' replies go to standard error, so a script reads only answers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cockpit.errors import CockpitError, UsageError

GIB = 2**30


def register(sub) -> None:
    p = sub.add_parser("chat", help="talk to a run's model, beside its base model (and its GGUF)",
                       description="Multi-turn chat through the model's chat template, answers streamed. A run "
                                   "(name, path or 'latest') uses its system prompt; side by side its base model "
                                   "(LoRA: the same weights, adapters off) and its exported GGUF in llama.cpp "
                                   "answer too. Slash commands: /temp /top_p /max /system /sides /reset /save /quit.")
    p.add_argument("target", nargs="?", default=None,
                   help="a run (name, unique prefix, path or 'latest', the default) or a model "
                        "(hub id, directory, .gguf)")
    p.add_argument("--plain", action="store_true",
                   help="a line loop on stdin/stdout instead of the full-screen chat (automatic when stdin "
                        "is not a terminal)")
    p.add_argument("--side-by-side", action="store_true",
                   help="the base model and the exported GGUF answer beside the fine-tuned model")
    p.add_argument("--base", action="store_true", help="only the base model beside the fine-tuned one (no GGUF)")
    p.add_argument("--no-gguf", action="store_true", help="side by side without the GGUF")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (the default) answers greedily")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--system", default=None, help="the system prompt (default: the run's, if it has one)")
    p.add_argument("--no-system", action="store_true", help="no system prompt, not even the run's")
    p.add_argument("--save", default=None, metavar="FILE",
                   help="where /save appends conversations (default: chat_examples.jsonl in the run directory)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--output-dir", default=None,
                   help="look for the run in this runs directory only (default: every one llm-cockpit knows)")
    p.add_argument("--light", action="store_true", help="colours for a light terminal background")
    # fixes the free memory the size check compares with (tests; "would it fit in N GiB?")
    p.add_argument("--free-memory", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_chat)


def session_options(args) -> dict:
    """The :class:`cockpit.chat.session.ChatSession` keyword arguments the flags ask for."""
    from cockpit.chat.session import ChatSettings

    settings = ChatSettings()
    for flag, name, value in (("--temperature", "temp", args.temperature), ("--top-p", "top_p", args.top_p),
                              ("--max-new-tokens", "max", args.max_new_tokens)):
        try:
            settings.set(name, str(value))
        except CockpitError as exc:
            raise UsageError(f"{flag} {value} is not allowed", exc.advice) from None
    free = None if args.free_memory is None else int(args.free_memory * GIB)
    return {"side_by_side": args.side_by_side or args.base, "with_gguf": not (args.base or args.no_gguf),
            "settings": settings, "free_bytes": free, "device": args.device}


def _apply_system(session, args) -> None:
    if args.no_system:
        session.settings.system_prompt = None
    elif args.system is not None:
        session.settings.system_prompt = args.system
    if args.save:
        session.save_path = Path(args.save).expanduser().resolve()


def cmd_chat(args) -> int:
    from cockpit.chat.session import ChatSession, resolve_target

    if args.system is not None and args.no_system:
        raise CockpitError("--system and --no-system contradict each other", "give one of them")
    target = resolve_target(args.target, args.output_dir)
    options = session_options(args)
    if target.run_dir is None and options["side_by_side"]:
        raise CockpitError(f"{target.spec} is a model, not a run: it has no base model to compare with",
                           "give a run (llm-cockpit runs lists them), or drop --side-by-side/--base")
    plain = args.plain or not (sys.stdin.isatty() and sys.stdout.isatty())
    if not plain:
        return _run_app(target, args, options)
    session = ChatSession(target, **{k: v for k, v in options.items() if k != "settings"},
                          settings=_settings_for(target, options["settings"]))
    _apply_system(session, args)
    return chat_plain(session, sys.stdin, sys.stdout, sys.stderr)


def _settings_for(target, settings):
    """The flags' sampling with the run's system prompt (the flags may replace it later)."""
    if target.run_dir is not None:
        from cockpit.run_config import load_run_config

        settings.system_prompt = load_run_config(target.run_dir).system_prompt
    return settings


def _run_app(target, args, options) -> int:
    from screens.app import CockpitApp

    options = dict(options, settings=_settings_for(target, options["settings"]))
    if args.no_system:
        options["settings"].system_prompt = None
    elif args.system is not None:
        options["settings"].system_prompt = args.system
    if args.save:
        options["save_path"] = Path(args.save).expanduser().resolve()
    app = CockpitApp(output_dir=args.output_dir, start="chat", light=args.light,
                     chat={"target": target, **options})
    app.run()
    return app.return_code or 0


def chat_plain(session, stdin, out, err) -> int:
    """The line loop: load, then one message (or command) per line until EOF or /quit."""
    from cockpit.chat.commands import COMMANDS_HELP, is_command, run_command

    interactive = stdin.isatty()

    def say(phase: str, message: str) -> None:
        if phase != "ready":
            print(f"  loading… {message}", file=err, flush=True)

    session.load(say)
    print(f"chat with {session.title}: {_sides_line(session)}; {session.settings.describe()}", file=err, flush=True)
    for note in session.notes:
        print(f"  note: {note}", file=err, flush=True)
    if interactive:
        print(f"type a message; {COMMANDS_HELP}", file=err, flush=True)
    try:
        while True:
            if interactive:
                print("you> ", end="", file=err, flush=True)
            line = stdin.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if is_command(line):
                result = run_command(session, line)
                if result.side_by_side is not None:
                    result.message = session.set_side_by_side(result.side_by_side, say)
                if result.message:
                    print(("error: " if result.error else "") + result.message, file=err, flush=True)
                if result.quit:
                    break
                continue
            _print_answers(session, line, out, err)
    except KeyboardInterrupt:
        print("", file=err)
    finally:
        session.close()
    return 0


def _sides_line(session) -> str:
    return " | ".join(s.label + ("" if s.available else f" (unavailable: {s.note})") for s in session.sides)


def _print_answers(session, message: str, out, err) -> None:
    labelled = len(session.sides) > 1
    started: set[str] = set()
    labels = {s.key: s.label for s in session.sides}
    for chunk in session.send(message):
        if labelled and chunk.side not in started:
            started.add(chunk.side)
            print(f"[{labels.get(chunk.side, chunk.side)}]", file=out, flush=True)
        if chunk.text:
            print(chunk.text, end="", file=out, flush=True)
        if chunk.done:
            if chunk.error:
                print(f"error: {chunk.error}", file=err, flush=True)
            elif chunk.answer is None:
                print(f"(unavailable: {chunk.note})", file=out, flush=True)
            else:
                print("", file=out, flush=True)
                if chunk.note:
                    print(f"  ({chunk.note})", file=err, flush=True)
            if labelled:
                print("", file=out, flush=True)
