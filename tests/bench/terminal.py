"""A TUI process on a real pseudo-terminal, read continuously, with timestamps of what it shows.

The cockpit is meant to run in a terminal, so its latency is measured in one: a pty of
80x24, the size the design is checked at. A thread reads the pty master all the time,
so the app never blocks on a full terminal buffer (a stalled writer would slow the
very thing being measured), and notes the moment each awaited text first appears.

Text is matched after ANSI escape sequences are stripped, over a sliding window of the
most recent output, so a marker split across two reads, or interleaved with colour
codes, is still found at the read that completed it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time

from tests.bench.measure import ProcessResult, has_exited, kill_group, wait_measured
from tests.bench.settings import REPO

ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?")
WINDOW = 64 * 1024


class PtyApp:
    """``argv`` on a pty of ``cols`` x ``rows``; :meth:`wait_for` says when a text was painted."""

    def __init__(self, argv: list[str], *, cols: int = 80, rows: int = 24, watch: tuple[str, ...] = ()) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        self._cond = threading.Condition()
        self._seen: dict[bytes, float | None] = {t.encode(): None for t in watch}
        self._window = b""
        self.bytes_read = 0
        self.started = time.monotonic()
        self.wall_offset = time.time() - self.started  # monotonic + offset = unix time, to compare with events
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self._pump = threading.Thread(target=self._read_forever, name="pty-reader", daemon=True)
        self._pump.start()

    def _read_forever(self) -> None:
        while True:
            try:
                ready = select.select([self.master], [], [], 0.5)[0]  # a terminal does not poll
                chunk = os.read(self.master, 65536) if ready else None
            except (OSError, ValueError):  # EIO once the app is gone; EBADF after close
                break
            if chunk == b"":
                break
            if chunk:
                now = time.monotonic()
                with self._cond:
                    self.bytes_read += len(chunk)
                    self._window = (self._window + chunk)[-WINDOW:]
                    self._match(now)

    def _match(self, now: float) -> None:
        pending = [t for t, at in self._seen.items() if at is None]
        if not pending:
            return
        plain = ANSI.sub(b"", self._window)
        for text in pending:
            if text in plain:
                self._seen[text] = now
        self._cond.notify_all()

    def watch(self, text: str) -> None:
        """Start looking for ``text`` (output already in the window counts, so use a fresh marker)."""
        with self._cond:
            self._seen.setdefault(text.encode(), None)
            self._match(time.monotonic())

    def wait_for(self, text: str, timeout: float) -> float | None:
        """The monotonic time ``text`` first appeared, waiting up to ``timeout``; None if never."""
        key = text.encode()
        deadline = time.monotonic() + timeout
        with self._cond:
            if key not in self._seen:
                self._seen[key] = None
                self._match(time.monotonic())
            while self._seen[key] is None:
                left = deadline - time.monotonic()
                if left <= 0 or has_exited(self.proc.pid):
                    break
                self._cond.wait(min(left, 0.2))
            return self._seen[key]

    def screen_tail(self, n: int = 400) -> str:
        """The end of the output without escape codes: what goes into an error line."""
        with self._cond:
            return " ".join(ANSI.sub(b"", self._window).decode("utf-8", "replace").split())[-n:]

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def quit(self, keys: str = "q", grace: float = 5.0) -> ProcessResult:
        """Press ``keys`` (the dashboard's detach), give the app ``grace`` seconds, then :meth:`close`."""
        try:
            self.send(keys)
        except OSError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not has_exited(self.proc.pid):
            time.sleep(0.05)
        return self.close()

    def close(self, timeout: float = 10.0) -> ProcessResult:
        """End the app as a dropped terminal does (SIGHUP to its group), reap and measure it."""
        kill_group(self.proc.pid, signal.SIGHUP)
        result = wait_measured(self.proc, self.started, timeout=time.monotonic() - self.started + timeout)
        try:
            os.close(self.master)
        except OSError:
            pass
        self._pump.join(timeout=2)
        return result
