"""One side of a chat: the conversation as a scrolling column of messages, the newest answer
growing as its tokens arrive."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class ChatLog(VerticalScroll):
    """The messages of one side. :meth:`add_user` shows a message sent, :meth:`start_answer`
    opens the answer that :meth:`append` grows and :meth:`finish` closes."""

    DEFAULT_CSS = """
    ChatLog { height: 1fr; }
    ChatLog > .chat-user { color: $text-accent; margin-top: 1; }
    ChatLog > .chat-answer { color: $text; }
    ChatLog > .chat-note { color: $text-muted; text-style: italic; }
    ChatLog > .chat-error { color: $text-error; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._answer: Static | None = None
        self.answer_text = ""  # the answer being generated (or the last one)
        self.updates = 0  # how many times the current answer was redrawn while it streamed

    def add_user(self, text: str) -> None:
        self._add(Text.assemble(("you: ", "bold"), text), "chat-user")

    def start_answer(self) -> None:
        self.answer_text = ""
        self.updates = 0
        self._answer = self._add(Text("…"), "chat-answer")

    def append(self, text: str) -> None:
        """Add streamed text to the current answer."""
        if self._answer is None:
            self.start_answer()
        self.answer_text += text
        self.updates += 1
        self._answer.update(Text(self.answer_text.lstrip("\n") or "…"))
        self.scroll_end(animate=False)

    def finish(self, answer: str | None, note: str | None = None, error: str | None = None) -> None:
        """Close the current answer with its final text (stripped), a note or an error line."""
        if self._answer is not None:
            if answer is not None:
                self.answer_text = answer
                self._answer.update(Text(answer or "(an empty answer)"))
            elif not self.answer_text:
                self._answer.remove()
        self._answer = None
        if error:
            self._add(Text(error), "chat-error")
        elif note:
            self.add_note(note)

    def add_note(self, text: str) -> None:
        self._add(Text(text), "chat-note")

    def clear_log(self) -> None:
        self._answer = None
        self.answer_text = ""
        self.remove_children()

    @property
    def texts(self) -> list[str]:
        """Every message shown, as plain text (tests read the screen through it)."""
        return [str(w.content) for w in self.query(Static)]

    def _add(self, text: Text, cls: str) -> Static:
        widget = Static(text, classes=cls)
        self.mount(widget)
        self.scroll_end(animate=False)
        return widget
