"""Entry point of the trainer process: ``python -m cockpit.training.trainer_main RUN_DIR [--resume]``.

Signals: the first SIGTERM or SIGINT asks for a graceful stop (a full checkpoint at the
next step boundary, then state ``stopped``); a second one ends the process at once,
marking the run ``stopped`` so nothing claims to be running.

Only light modules are imported at the top: the process first says it is starting (a
``phase`` event), then pays for torch and transformers (seconds; more on a busy CPU).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.run import events as ev
from cockpit.run.rundir import EVENTS_FILE
from cockpit.run.status import write_status

if TYPE_CHECKING:
    from cockpit.training.callbacks import StopFlag


def announce_start(sink: ev.EventSink) -> None:
    """The trainer's first word, before its heavy imports: nothing else can be said that early."""
    sink.emit(ev.Phase(name="starting", message="Starting the trainer (loading PyTorch and transformers)"))


def install_signal_handlers(stop: StopFlag, run_dir: Path) -> None:
    def handler(signum, frame):  # noqa: ARG001 - signal API
        if stop.requested:
            try:
                write_status(run_dir, state="stopped", error=None,
                             advice="stopped at once by a second signal: resume from the last checkpoint")
            finally:
                os._exit(128 + signum)
        stop.requested = True
        stop.signal_name = signal.Signals(signum).name
        logging.getLogger("cockpit").warning("%s: saving a checkpoint and stopping after this step "
                                             "(send it again to stop at once)", stop.signal_name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cockpit.training.trainer_main")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if int(os.environ.get("RANK", "0")) == 0:  # rank 0 alone writes events
        sink = ev.JsonlSink(args.run_dir / EVENTS_FILE)
        announce_start(sink)
        sink.close()
    from cockpit.training.callbacks import StopFlag
    from cockpit.training.trainer import TrainingRun

    stop = StopFlag()
    install_signal_handlers(stop, args.run_dir)
    state = TrainingRun(args.run_dir, resume=args.resume, stop=stop).execute()
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
