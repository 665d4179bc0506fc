"""The chat screen: talk to a run's model, beside its base model and its GGUF.

The engine is :class:`cockpit.chat.session.ChatSession`. Loading and answering run in thread
workers (torch never runs on the UI's thread); the workers hand text to the screen with
``call_from_thread``, at most every :data:`FLUSH_S` seconds per side, so a fast model
streams without flooding the event loop. Side by side, the columns stand next to each
other from 120 columns on and are stacked below that (80x24 shows two sides with four
lines each, and the input). The input also takes the slash commands of ``chat --plain``
(:mod:`cockpit.chat.commands`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from widgets.chat_log import ChatLog

FLUSH_S = 0.05
SIDE_KEYS = ("tuned", "base", "gguf")


class ChatScreen(Screen[None]):
    """A conversation with one model, or side by side with its base model and GGUF.

    ``target``: a run directory, a run name or a model spec (or a resolved
    :class:`cockpit.chat.session.ChatTarget`); ``options``: :class:`cockpit.chat.session.ChatSession`'s
    keyword arguments (``side_by_side``, ``settings``, ``free_bytes``, ...) and ``save_path``.
    """

    CSS_PATH = "chat.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("escape", "back", "Back / stop"),
        Binding("ctrl+b", "toggle_sides", "Side by side"),
        Binding("ctrl+s", "save", "Save example"),
        Binding("ctrl+r", "reset", "New chat"),
    ]

    def __init__(self, target: Any, *, output_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__()
        self.target = target
        self.output_dir = output_dir
        self.save_path = options.pop("save_path", None)
        self.options = options
        self.session = None
        self.state = "loading"  # loading | ready | answering | refused
        self.phase = "starting"
        self.phase_started = time.monotonic()
        self.error: str | None = None
        self.leaving = False  # gone from the screen stack: late results of a worker are dropped

    def compose(self) -> ComposeResult:
        yield Static(Text(f" Chat  {self._target_name()}", style="bold"), id="chat-title")
        yield Static(id="chat-status")
        with Horizontal(id="chat-columns"):
            for key in SIDE_KEYS:
                with Vertical(id=f"col-{key}", classes="chat-column"):
                    yield Static(key, id=f"title-{key}", classes="chat-column-title")
                    yield ChatLog(id=f"log-{key}")
        yield Static(id="chat-error")
        yield Input(placeholder="loading the model…", id="chat-input", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#chat-error").display = False
        for key in SIDE_KEYS[1:]:
            self.query_one(f"#col-{key}").display = False
        self._show_status()
        self.set_interval(1.0, self._tick)
        self._load()

    def on_unmount(self) -> None:
        self.leaving = True
        if self.session is not None:
            self.session.cancel()

    # -- the engine, in workers ------------------------------------------------------
    @work(thread=True, exclusive=True, group="chat")
    def _load(self) -> None:
        from cockpit.chat.session import ChatSession
        from cockpit.errors import CockpitError

        try:
            session = ChatSession(self.target, output_dir=self.output_dir, **self.options)
            if self.save_path:
                session.save_path = Path(self.save_path)
            self.session = session  # read by the UI thread only after _loaded / _refused
            session.load(self._progress)
        except CockpitError as exc:
            self.app.call_from_thread(self._refused, exc.message, exc.advice)
            return
        except Exception as exc:  # noqa: BLE001 - the screen stays, with the reason
            self.app.call_from_thread(self._refused, f"could not load the model: {exc}", "see --debug")
            return
        if self.leaving:  # escape while it loaded: nobody will talk to it
            session.close()
            return
        self.app.call_from_thread(self._loaded)

    def _progress(self, phase: str, message: str) -> None:
        self.app.call_from_thread(self._set_phase, message)

    @work(thread=True, exclusive=True, group="chat")
    def _answer(self, message: str) -> None:
        session = self.session
        buffers: dict[str, str] = {}
        flushed = time.monotonic()
        try:
            for chunk in session.send(message):
                if self.leaving:
                    session.cancel()
                if chunk.text:
                    buffers[chunk.side] = buffers.get(chunk.side, "") + chunk.text
                if chunk.done or time.monotonic() - flushed >= FLUSH_S:
                    for side, text in buffers.items():
                        if text:
                            self.app.call_from_thread(self._stream, side, text)
                    buffers.clear()
                    flushed = time.monotonic()
                if chunk.done:
                    self.app.call_from_thread(self._finish, chunk)
        except Exception as exc:  # noqa: BLE001 - the chat goes on; the reason is shown
            self.app.call_from_thread(self.notify, f"The answer failed: {exc}", severity="error")
        finally:
            self.app.call_from_thread(self._answered)

    @work(thread=True, exclusive=True, group="chat")
    def _switch_sides(self, on: bool) -> None:
        from cockpit.errors import CockpitError

        try:
            line = self.session.set_side_by_side(on, self._progress)
        except CockpitError as exc:
            line = exc.one_line()
        except Exception as exc:  # noqa: BLE001 - the chat goes on with the sides it has
            line = f"could not load the other sides: {exc}"
        self.app.call_from_thread(self._sides_switched, line)

    # -- on the UI thread ------------------------------------------------------------
    def _set_phase(self, message: str) -> None:
        if self.leaving:
            return
        self.phase, self.phase_started = message, time.monotonic()
        self._show_status()

    def _tick(self) -> None:
        if self.state == "loading":
            self._show_status()

    def _loaded(self) -> None:
        if self.leaving:
            return
        self.state = "ready"
        self._show_columns()
        for note in self.session.notes:
            self.query_one("#log-tuned", ChatLog).add_note(note)
        box = self.query_one("#chat-input", Input)
        box.disabled = False
        box.placeholder = "a message, or /help for commands"
        box.focus()
        self._show_status()

    def _refused(self, message: str, advice: str | None) -> None:
        if self.leaving:
            return
        self.state = "refused"
        self.error = message + (f" -> {advice}" if advice else "")
        error = self.query_one("#chat-error", Static)
        error.update(Text.assemble(("✖ ", "bold"), message, *(("\n→ ", advice) if advice else ())))
        error.display = True
        self.query_one("#chat-input", Input).placeholder = "nothing to talk to: escape goes back"
        self._show_status()

    def _stream(self, side: str, text: str) -> None:
        if self.leaving:
            return
        self.query_one(f"#log-{side}", ChatLog).append(text)

    def _finish(self, chunk) -> None:
        if self.leaving:
            return
        self.query_one(f"#log-{chunk.side}", ChatLog).finish(chunk.answer, chunk.note, chunk.error)

    def _answered(self) -> None:
        if self.leaving:
            return
        self.state = "ready"
        self._show_status()

    def _sides_switched(self, line: str) -> None:
        if self.leaving:
            return
        self.state = "ready"
        self._show_columns()
        self.notify(line, title="Side by side")
        self._show_status()

    def _show_columns(self) -> None:
        active = {s.key: s for s in self.session.sides} if self.session is not None else {}
        for key in SIDE_KEYS:
            column = self.query_one(f"#col-{key}")
            side = active.get(key)
            column.display = side is not None
            if side is None:
                continue
            title = side.label + (f"  ({side.note})" if side.note and side.available else "")
            self.query_one(f"#title-{key}", Static).update(Text(title, style="bold"))
            log = self.query_one(f"#log-{key}", ChatLog)
            if not side.available and not log.texts:
                log.add_note(f"unavailable: {side.note}")
        self.query_one("#chat-columns").set_class(len(active) > 1, "-sides")

    def _show_status(self) -> None:
        status = self.query_one("#chat-status", Static)
        if self.state == "loading":
            seconds = int(time.monotonic() - self.phase_started)
            status.update(Text(f" loading… {self.phase}" + (f"  {seconds}s" if seconds >= 2 else "")))
            return
        if self.state == "refused":
            status.update(Text(" not loaded: the reason is below"))
            return
        settings = self.session.settings.describe()
        doing = "answering… (escape stops)" if self.state == "answering" else "ready"
        status.update(Text(f" {settings} · {doing} · /help", no_wrap=True, overflow="ellipsis"))

    def _target_name(self) -> str:
        label = getattr(self.target, "label", None)
        return str(label) if label else Path(str(self.target)).name or str(self.target)

    # -- input and keys --------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        if not line or self.state != "ready":
            if self.state == "answering":
                self.notify("Still answering; escape stops the answer.", severity="warning")
            return
        event.input.value = ""
        from cockpit.chat.commands import is_command, run_command

        if is_command(line):
            result = run_command(self.session, line)
            if result.quit:
                self.action_back()
                return
            if result.side_by_side is not None:
                self._toggle(result.side_by_side)
                return
            self.notify(result.message, severity="error" if result.error else "information")
            self._show_status()
            return
        for side in self.session.sides:
            log = self.query_one(f"#log-{side.key}", ChatLog)
            log.add_user(line)
            log.start_answer()
        self.state = "answering"
        self._show_status()
        self._answer(line)

    def action_back(self) -> None:
        if self.state == "answering" and self.session is not None:
            self.session.cancel()
            return
        self.leaving = True
        if self.session is not None and self.state in ("ready", "refused"):
            self.session.close()  # still loading: the worker closes it when it is done
        if len(self.app.screen_stack) > 2 or getattr(self.app, "start_mode", None) != "chat":
            self.app.pop_screen()
        else:
            self.app.exit()

    def action_toggle_sides(self) -> None:
        if self.session is None or self.state != "ready":
            self.notify("Wait until the model is ready (and the answer done).", severity="warning")
            return
        self._toggle(not self.session.side_by_side)

    def _toggle(self, on: bool) -> None:
        if not self.session.is_run:
            self.notify("Side by side needs a run: a model on its own has no base model to compare with.",
                        severity="warning")
            return
        self.state = "loading"
        self._set_phase("the base model and the GGUF" if on else "one side")
        self._switch_sides(on)

    def action_save(self) -> None:
        if self.session is None or self.state != "ready":
            self.notify("Nothing to save yet.", severity="warning")
            return
        from cockpit.chat.commands import run_command

        result = run_command(self.session, "/save")
        self.notify(result.message, title="Save", severity="error" if result.error else "information")

    def action_reset(self) -> None:
        if self.session is None or self.state != "ready":
            return
        self.session.reset()
        for key in SIDE_KEYS:
            self.query_one(f"#log-{key}", ChatLog).clear_log()
        self.notify("A new conversation: every side has forgotten the last one.")
