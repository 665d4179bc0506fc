"""A log that runs one command in a thread and shows its output as it comes.

Used for work that must not run in the UI process (the export imports torch and
llama.cpp): the command runs as a child process; its thread worker only posts
:class:`CommandLog.Output` and :class:`CommandLog.Finished` messages, and the widget
writes the lines on the UI thread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from textual import on, work
from textual.message import Message
from textual.widgets import Log


class CommandLog(Log):
    """Runs :meth:`run`'s command; screens handle :class:`CommandLog.Finished`."""

    class Output(Message, bubble=False):
        """Lines the command printed (stdout and stderr, merged)."""

        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

    class Finished(Message):
        """The command ended with ``returncode`` (None when it could not start)."""

        def __init__(self, returncode: int | None, error: str | None = None) -> None:
            super().__init__()
            self.returncode = returncode
            self.error = error

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, highlight=False, auto_scroll=True)
        self.process: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def run(self, command: Sequence[str], cwd: str | Path | None = None) -> None:
        """Start ``command``; its output appears line by line."""
        self.clear()
        self.write_line("$ " + " ".join(command))
        self._run(list(command), cwd)

    def cancel(self) -> None:
        """Terminate the command (it gets SIGTERM, like Ctrl+C on a terminal)."""
        if self.running and self.process is not None:
            self.process.terminate()

    @work(thread=True, exclusive=True, group="command-log")
    def _run(self, command: list[str], cwd: str | Path | None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, bufsize=1)
        except OSError as exc:
            self.post_message(self.Finished(None, str(exc)))
            return
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.post_message(self.Output([line.rstrip("\n")]))
        self.post_message(self.Finished(self.process.wait()))

    @on(Output)
    def _write(self, message: Output) -> None:
        self.write_lines(message.lines)
