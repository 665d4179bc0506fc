"""One writer per status file: the launcher and the trainer write at once, are killed and
restarted, and no field either of them wrote is lost (DESIGN.md section 3)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cockpit.run.status import (LAUNCH_FILE, STATUS_FILE, effective_status, merge_status, read_launch,
                                read_status, read_trainer_status, write_launch, write_status)

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import signal, sys
    from cockpit.run.status import read_launch, read_trainer_status, write_launch, write_status
    role, run_dir = sys.argv[1], sys.argv[2]
    done = False
    def stop(signum, frame):
        global done
        done = True
    signal.signal(signal.SIGTERM, stop)
    if role == "launcher":
        i = int(read_launch(run_dir).get("launches") or 0)
        write_launch(run_dir, num_processes=2, accelerate_config="fsdp.yaml")  # written once per start
        while not done:
            i += 1
            write_launch(run_dir, launches=i, pid=1000 + i)
    else:
        i = int(read_trainer_status(run_dir).get("step") or 0)
        write_status(run_dir, model="m", method="lora")  # written once per start
        while not done:
            i += 1
            write_status(run_dir, state="running", step=i, loss=1.0 / i)
    print(i, flush=True)
""")


def _start(role: str, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, role, str(run_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)


def test_launcher_and_trainer_killed_and_restarted_at_random_lose_no_field(tmp_path):
    rng = random.Random(16)
    procs = {role: _start(role, tmp_path) for role in ("launcher", "trainer")}
    time.sleep(1.0)  # both past their interpreter start
    for _ in range(6):
        time.sleep(rng.uniform(0.05, 0.3))
        role = rng.choice(sorted(procs))
        procs[role].kill()  # SIGKILL mid-write: the atomic replace leaves the old file or the new
        procs[role].wait()
        procs[role] = _start(role, tmp_path)
    time.sleep(1.0)
    last = {}
    for role, proc in procs.items():
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        last[role] = int(out.strip())
    assert last["launcher"] > 5 and last["trainer"] > 5  # they did write at the same time
    status = read_status(tmp_path)
    assert (status["launches"], status["step"]) == (last["launcher"], last["trainer"])
    assert (status["num_processes"], status["accelerate_config"]) == (2, "fsdp.yaml")
    assert (status["model"], status["method"], status["state"]) == ("m", "lora", "running")
    # a writer killed mid-write leaves at most its hidden temporary file, never a torn status
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [LAUNCH_FILE, STATUS_FILE]


def test_each_file_holds_only_its_writers_fields(tmp_path):
    write_launch(tmp_path, new_session=True, pid=11, num_processes=1)
    write_status(tmp_path, state="running", pid=22, step=3)
    assert "step" not in read_launch(tmp_path) and "num_processes" not in read_trainer_status(tmp_path)
    assert read_status(tmp_path)["pid"] == 22  # the trainer's own pid, once it runs


def test_a_restart_reads_starting_until_the_trainer_takes_it_up(tmp_path):
    write_launch(tmp_path, new_session=True, pid=11)
    write_status(tmp_path, state="failed", pid=22, step=7, error="killed", advice="resume it")
    assert read_status(tmp_path)["state"] == "failed"
    write_launch(tmp_path, new_session=True, pid=33)  # `resume`
    seen = read_status(tmp_path)
    assert (seen["state"], seen["pid"], seen["error"], seen["advice"], seen["step"]) == ("starting", 33, None, None, 7)
    write_status(tmp_path, state="running", pid=44, step=8, error=None)  # the new trainer's first word
    seen = read_status(tmp_path)
    assert (seen["state"], seen["pid"], seen["error"], seen["step"]) == ("running", 44, None, 8)


def test_a_run_of_an_older_cockpit_has_only_status_json(tmp_path):
    (tmp_path / STATUS_FILE).write_text('{"state": "finished", "pid": 1, "step": 4}', encoding="utf-8")
    assert effective_status(tmp_path)["state"] == "finished"
    assert merge_status({}, {}) == {}
    assert effective_status(tmp_path / "nothing")["state"] == "unknown"
