"""The cockpit as a user runs it over SSH: start a run in the TUI, lose the terminal, attach.

The TUI runs in a real pseudo-terminal and is driven with keystrokes only. After the
run starts, the terminal is closed and the TUI killed (a dropped SSH connection); the
trainer, in its own session, keeps going, and ``attach`` replays its whole history.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit.config import load_config_file
from cockpit.run.status import effective_status, pid_alive, read_status

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?")


class Terminal:
    """A child process on a pseudo-terminal: type keys, wait for text on the screen."""

    def __init__(self, argv: list[str], cwd: Path, cols: int = 80, rows: int = 24) -> None:
        self.master, slave = pty.openpty()
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.seen = ""

    def read(self, timeout: float = 0.1) -> None:
        while select.select([self.master], [], [], timeout)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.seen += ANSI.sub("", chunk.decode("utf-8", "replace"))
            timeout = 0.01

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.read()
            if text in self.seen:
                self.seen = self.seen[self.seen.index(text) + len(text):]
                return
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"{text!r} never appeared; the screen ended with: {self.seen[-800:]!r}")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())
        time.sleep(0.3)

    def hang_up(self) -> None:
        """What a dropped SSH connection does: the terminal goes away, the UI is killed."""
        os.close(self.master)
        try:
            os.killpg(self.proc.pid, signal.SIGHUP)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


ENTER, NEXT, TAB = "\r", "\x0e", "\t"


def test_run_started_in_the_tui_outlives_it_and_attach_replays_everything(tmp_path, tiny_model_dir):
    runs = tmp_path / "runs"
    term = Terminal([sys.executable, "-m", "cockpit.cli.main", "tui", "--output-dir", str(runs)], cwd=REPO)
    trainer_pid = None
    try:
        term.wait_for("Step 1/7")
        term.type(ENTER)
        term.wait_for("Next: choose the model")  # the hardware probe has answered
        term.type(NEXT)
        term.wait_for("Step 3/7")
        term.wait_for("Next: how to train")  # the model step has mounted and advised
        term.type(TAB)
        term.type(str(tiny_model_dir))
        term.type(NEXT)
        term.wait_for("Step 4/7")
        term.type(NEXT)
        term.wait_for("ready. Next: review", timeout=120)  # the data report, with the model's tokenizer
        term.type(NEXT)
        term.wait_for("Step 6/7")
        # enough steps that the run is still going when the TUI is gone: the data is tokenized
        # before the start and the tiny model trains a dozen steps in a few seconds
        term.type("max_steps=80 batch_size=2 max_length=128 sample_every=0 sample_count=1 "
                  "sample_max_new_tokens=2 eval_steps=0 save_steps=40" + ENTER)
        term.wait_for("Your changes")
        term.type(NEXT)
        term.wait_for("Step 7/7")
        term.type(NEXT)
        term.wait_for("Overview", timeout=60)  # the dashboard of the new run
        run_dir = (runs / "latest").resolve()
        assert load_config_file(run_dir / "config_used.yaml").model == str(tiny_model_dir)
        deadline = time.time() + 30
        while trainer_pid is None and time.time() < deadline:
            trainer_pid = read_status(run_dir).get("pid")
            time.sleep(0.2)
        assert trainer_pid and os.getsid(trainer_pid) == trainer_pid  # its own session
        term.hang_up()
        assert term.proc.returncode is not None
        time.sleep(1.0)
        assert pid_alive(trainer_pid), "the trainer died with the TUI"
        assert effective_status(run_dir)["state"] in ("starting", "running")

        out = subprocess.run([sys.executable, "-m", "cockpit.cli.main", "attach", run_dir.name, "--plain",
                              "--output-dir", str(runs)], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        started = [line for line in lines if line.startswith("run started:")]
        assert len(started) == 1 and str(tiny_model_dir) in started[0], lines[:3]
        steps = [int(m.group(1)) for m in (re.match(r"step (\d+)/80  loss", line) for line in lines) if m]
        assert steps == list(range(1, 81)), steps  # the whole history, every step once
        assert lines[-1].startswith("run finished at step 80/80")
    finally:
        if term.proc.poll() is None:
            term.hang_up()
        if trainer_pid and pid_alive(trainer_pid):
            os.kill(trainer_pid, signal.SIGKILL)
