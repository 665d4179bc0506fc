"""The invisible widget that follows a run directory from a thread.

:class:`RunWatcher` tails ``events.jsonl`` (and reads ``status.json``) in a Textual
thread worker through :class:`cockpit.run.follow.RunFollower`, folds the events there and
posts one :class:`RunWatcher.Updated` message per poll that saw something new. The
worker never touches a widget; polls are ``interval`` apart, so however fast the
trainer logs, the screen gets at most ``1 / interval`` updates a second (4 by default),
each carrying a complete snapshot (a batch of events folded into one state). A snapshot
still queued when a newer one arrives is dropped for it (``can_replace``), so a screen
that fell behind catches up in one draw.
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import get_current_worker

from cockpit.run.follow import RunFollower, RunState

# after a run ended the directory is still watched, slowly, because `resume` continues it
IDLE_INTERVAL = 2.0


class RunWatcher(Widget):
    """Follows one run; the screen handles :class:`RunWatcher.Updated` with ``@on``."""

    DEFAULT_CSS = "RunWatcher { display: none; }"

    class Updated(Message):
        """A new snapshot of the run: ``new_events`` events were folded since the last one."""

        def __init__(self, state: RunState, new_events: int) -> None:
            super().__init__()
            self.state = state
            self.new_events = new_events

        def can_replace(self, message: Message) -> bool:
            """A newer snapshot of the same run still queued supersedes this one (a busy screen
            draws the latest state once, not every stale one in turn); it counts our events too."""
            if isinstance(message, RunWatcher.Updated) and message.state.name == self.state.name:
                message.new_events += self.new_events
                return True
            return False

    def __init__(self, run_dir: str | Path, *, interval: float = 0.25, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_dir = Path(run_dir)
        self.interval = interval
        self._wake = threading.Event()
        self.polls = 0

    def on_mount(self) -> None:
        self._follow()

    def on_unmount(self) -> None:
        self._wake.set()

    @work(thread=True, exclusive=True, group="run-watcher", name="follow run")
    def _follow(self) -> None:
        worker = get_current_worker()
        follower = RunFollower(self.run_dir)
        seen: tuple | None = None
        while not worker.is_cancelled and not self._wake.is_set():
            events = follower.poll()
            self.polls += 1
            state = follower.state
            key = (state.state, state.events_seen, state.total_steps)
            if key != seen:
                seen = key
                self.post_message(self.Updated(state.snapshot(), len(events)))
            self._wake.wait(IDLE_INTERVAL if follower.done else self.interval)
