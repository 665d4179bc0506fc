"""The chat's slash commands, shared by ``chat --plain`` and the chat screen.

A line that starts with ``/`` is a command, anything else a message::

    /temp 0.7   /top_p 0.9   /max 128      sampling (temperature 0 = greedy)
    /system TEXT   /system off             the system prompt of the next answers
    /sides on|off  (or /sides)             the base model and the GGUF beside the model
    /reset                                 forget the conversation (every side)
    /save [FILE] [base|gguf]               append the conversation to FILE as training data
    /help   /quit
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.errors import CockpitError

COMMANDS_HELP = ("/temp X · /top_p X · /max N · /system TEXT|off · /sides on|off · /reset · "
                 "/save [FILE] [base|gguf] · /quit")


@dataclass
class CommandResult:
    """What a command did, in one line. ``side_by_side`` asks the caller to turn side by side
    on or off (it loads models, so the caller decides where that runs); ``quit`` ends the chat."""

    message: str = ""
    quit: bool = False
    side_by_side: bool | None = None
    error: bool = False


def is_command(line: str) -> bool:
    return line.strip().startswith("/")


def run_command(session, line: str) -> CommandResult:
    """Do one slash command on ``session`` (a :class:`cockpit.chat.session.ChatSession`)."""
    name, _, rest = line.strip()[1:].partition(" ")
    name, rest = name.lower(), rest.strip()
    try:
        return _run(session, name, rest)
    except CockpitError as exc:
        return CommandResult(exc.one_line(), error=True)


def _run(session, name: str, rest: str) -> CommandResult:
    if name in ("quit", "exit", "q"):
        return CommandResult("bye", quit=True)
    if name in ("help", "?", ""):
        return CommandResult(COMMANDS_HELP)
    if name in ("temp", "temperature", "top_p", "top-p", "max", "max_new_tokens"):
        if not rest:
            return CommandResult(f"now: {session.settings.describe()}; give a value, e.g. /{name} "
                                 + ("128" if name.startswith("max") else "0.7"))
        return CommandResult(session.settings.set(name, rest))
    if name == "system":
        if not rest:
            current = session.settings.system_prompt
            return CommandResult(f"system prompt: {current!r}" if current
                                 else "no system prompt (/system TEXT sets one)")
        session.settings.system_prompt = None if rest.lower() in ("off", "none", "-") else rest
        return CommandResult("system prompt off" if session.settings.system_prompt is None
                             else f"system prompt: {rest!r}")
    if name in ("sides", "side", "base", "compare"):
        value = rest.lower()
        if value in ("", "toggle"):
            return CommandResult(side_by_side=not session.side_by_side)
        if value not in ("on", "off"):
            raise CockpitError(f"/sides {rest!r}?", "give /sides on or /sides off")
        return CommandResult(side_by_side=value == "on")
    if name in ("reset", "clear", "new"):
        session.reset()
        return CommandResult("conversation forgotten; the next message starts a new one")
    if name == "save":
        words = rest.split()
        side = "tuned"
        if words and words[-1] in ("tuned", "base", "gguf"):
            side = words.pop()
        path, turns = session.save(" ".join(words) or None, side=side)
        return CommandResult(f"saved {turns} turn(s) of the {session.side(side).label} side as one "
                             f"training example to {path}")
    raise CockpitError(f"unknown command /{name}", COMMANDS_HELP)
