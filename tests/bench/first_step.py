"""Time to the first step: how long ``llm-cockpit train --foreground`` keeps a newcomer
waiting before the first ``step`` event, and what the trainer said meanwhile.

    python -m tests.bench.first_step [--preset cpu-demo] [--runs 1] [--out FILE] [key=value ...]

Each run starts the trainer exactly as a user does (the preset, its own output
directory), reads the run's ``events.jsonl`` until the first ``step`` event arrives, and
then kills the trainer's process group: nothing after the first step is measured. The
table gives every event before that (``phase``, ``run_started``, the base model's
``sample`` answers, the first ``step``) as seconds after the process was started.

The bundled model is materialized beforehand, in a child process, so the one-time
GGUF conversion is not counted (pass ``--cold`` to count it: it then runs in the
trainer, as on a newcomer's very first start). Like the other benchmarks, the
environment is passed through unchanged (``OMP_NUM_THREADS`` included) and the
1-minute load average is printed beside each run: a busy machine shows up there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cockpit.run import events as ev
from tests.bench.measure import has_exited, kill_group, load_average, spawn, wait_measured
from tests.bench.settings import REPO
from tests.bench.variants import cockpit_command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.first_step", description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")
    p.add_argument("--preset", default="cpu-demo", help="the preset to train (default cpu-demo)")
    p.add_argument("--runs", type=int, default=1, help="runs one after the other (the table shows each)")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the first step")
    p.add_argument("--cold", action="store_true", help="do not materialize the bundled model beforehand")
    p.add_argument("--out", default=None, help="also write the numbers as JSON to this file")
    p.add_argument("--until-step", type=int, default=1,
                   help="keep the trainer going until this step's event (default 1; the table always stops "
                        "at the first step, later events go to the JSON and the kept run)")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep the run directories under DIR")
    return p.parse_args(argv)


def materialize() -> None:
    """The bundled model as safetensors in the user cache (once, outside the timing)."""
    code = "from cockpit.models.sources import bundled_model_dir; print(bundled_model_dir())"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=900)


def one_run(args: argparse.Namespace, work: Path, index: int) -> dict:
    """Start the trainer, wait for its first step event, kill it; the events with their offsets."""
    out = work / f"run{index}"
    argv = cockpit_command() + ["train", "--foreground", "--preset", args.preset,
                                f"output_dir={out / 'runs'}", *args.overrides]
    row: dict = {"load_before": load_average()}
    t0 = time.time()
    started = time.monotonic()
    proc = spawn(argv, log_dir=out, name="train")
    try:
        events = _wait_step(out, proc.pid, args.timeout, args.until_step)
    finally:
        kill_group(proc.pid)
        wait_measured(proc, started, timeout=10)
    row["events"] = [_describe(e, t0) for e in events]
    first = next((i for i, e in enumerate(events) if isinstance(e, ev.Step)), len(events))
    row["before_first_step"] = row["events"][: first + 1]
    steps = [e for e in events if isinstance(e, ev.Step)]
    row["first_step_s"] = round(steps[0].time - t0, 2) if steps else None
    base = [e for e in events if isinstance(e, ev.Sample) and e.baseline is not None]
    row["base_answers_done_s"] = round(base[-1].time - t0, 2) if base else None
    if not steps:
        row["error"] = f"no step event within {args.timeout:.0f} s; see {out / 'train.stderr'}"
    return row


def _wait_step(out: Path, pid: int, timeout: float, step: int) -> list[ev.Event]:
    deadline = time.monotonic() + timeout
    events: list[ev.Event] = []
    while time.monotonic() < deadline:
        logs = list((out / "runs").glob("*/events.jsonl"))
        if logs:
            events = ev.read_events(logs[0])
            if any(isinstance(e, ev.Step) and e.step >= step for e in events):
                return events
        if has_exited(pid):
            return events
        time.sleep(0.1)
    return events


def _describe(e: ev.Event, t0: float) -> dict:
    data = e.raw if isinstance(e, ev.UnknownEvent) else e.to_dict()
    what = data.get("type", "?")
    if what == "phase":
        what = f"phase {data.get('name', '?')}: {data.get('message', '')}"
    elif what == "sample":
        what = "sample (base model)" if data.get("baseline") is not None else "sample"
    elif what == "step":
        what = f"step {data.get('step')}"
    return {"at_s": round(e.time - t0, 2), "event": what}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cold:
        materialize()
    rows = []
    with tempfile.TemporaryDirectory(prefix="first-step-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        for i in range(args.runs):
            row = one_run(args, work, i)
            rows.append(row)
            print(f"run {i + 1}: load before {row['load_before']}")
            for item in row["before_first_step"]:
                print(f"  {item['at_s']:7.2f} s  {item['event'][:100]}")
            print(f"  time to first step: {row['first_step_s']} s" if row["first_step_s"] is not None
                  else f"  {row['error']}")
            if row["base_answers_done_s"] is not None:
                print(f"  the base model's answers complete at {row['base_answers_done_s']} s")
    done = [r["first_step_s"] for r in rows if r["first_step_s"] is not None]
    if len(done) > 1:
        print(f"median time to first step: {statistics.median(done):.2f} s over {len(done)} runs")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": args.preset, "overrides": args.overrides,
                                              "runs": rows}, indent=2) + "\n", encoding="utf-8")
    return 0 if len(done) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
