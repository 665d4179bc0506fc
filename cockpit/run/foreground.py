"""Training in this process (``train --foreground``, ``resume --foreground``, ``eval``'s
demo run): the trainer's events go to ``events.jsonl`` as always and each also to the
caller's ``echo`` (the CLI prints a line: :func:`cockpit.cli.console.echo_event`); the log
to ``train.log``. The logging set-up is put back as it was when the run ends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cockpit.run.rundir import EVENTS_FILE


def run_foreground(run_dir: Path, resume: bool, echo: Callable | None = None) -> int:
    """Train in this process, handing each event to ``echo`` too (and writing the log)."""
    import logging

    from cockpit.run import events as ev
    from cockpit.training.trainer_main import announce_start, install_signal_handlers

    root = logging.getLogger()
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    debug = root.getEffectiveLevel() <= logging.DEBUG
    # The terminal gets the error event's one line; the traceback goes to train.log only.
    terminal = [] if debug else [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                                 and not isinstance(h, logging.FileHandler)]
    saved = root.level, [h.level for h in terminal]
    for h in terminal:
        h.addFilter(_without_traceback)
        h.setLevel(max(h.level, logging.WARNING))
    root.setLevel(min(root.level, logging.INFO))
    root.addHandler(handler)

    class Tee:
        def __init__(self) -> None:
            self.file = ev.JsonlSink(run_dir / EVENTS_FILE)

        def emit(self, event) -> None:
            self.file.emit(event)
            if echo is not None:
                echo(event)

    tee = Tee()
    try:
        announce_start(tee)  # before the imports below, which take seconds
        from cockpit.training.callbacks import StopFlag
        from cockpit.training.trainer import TrainingRun

        stop = StopFlag()
        install_signal_handlers(stop, run_dir)
        state = TrainingRun(run_dir, resume=resume, stop=stop, sink=tee).execute()
    finally:
        tee.file.close()
        root.removeHandler(handler)
        handler.close()
        root.setLevel(saved[0])
        for h, level in zip(terminal, saved[1]):
            h.removeFilter(_without_traceback)
            h.setLevel(level)
    return 0 if state in ("finished", "stopped") else 1


def _without_traceback(record) -> bool:
    return not record.exc_info


__all__ = ["run_foreground"]
