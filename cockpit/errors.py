"""The one exception type users see.

Every failure a user can cause or fix (bad data, missing model, bad config, no disk)
is raised as a :class:`CockpitError` carrying one line that says what happened and
what to do. The CLI prints that line and exits 1; a traceback only with ``--debug``.
"""

from __future__ import annotations


class CockpitError(Exception):
    """A user-facing failure: ``message`` says what happened, ``advice`` what to do."""

    exit_code = 1

    def __init__(self, message: str, advice: str | None = None):
        super().__init__(message)
        self.message = message
        self.advice = advice

    def one_line(self) -> str:
        """The message and the advice joined into the single line the CLI prints."""
        return f"{self.message} -> {self.advice}" if self.advice else self.message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.one_line()


def exception_line(exc: BaseException, limit: int = 300) -> str:
    """A library exception's message on one line, for a CockpitError or a report.

    Whitespace is collapsed rather than the first line kept: messages such as pydantic's or
    huggingface_hub's validation errors say which field and why on their later lines.
    """
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UsageError(CockpitError):
    """Wrong command-line usage (exit code 2, like argparse)."""

    exit_code = 2
