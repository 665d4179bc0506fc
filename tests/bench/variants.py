"""The training variants: each runs in its own process and returns one row of numbers.

* ``recipe_padded`` (1) and ``recipe_dynamic`` (2): the plain HF Trainer + PEFT scripts;
  they write their own measurements as JSON.
* ``cockpit`` (3): ``llm-cockpit train --foreground`` at its defaults (the loss only where
  it is learned, packing); ``cockpit_learned`` (3a): the learned-position loss with padding
  instead of packing; ``cockpit_hf_loss`` (3c): transformers' own loss over every position,
  with padding (the cockpit before it computed the loss only where learned). The numbers
  come from the run's ``events.jsonl``, the same log the dashboard reads.
* ``cockpit_tui`` (4): variant 3 again while ``llm-cockpit attach`` follows the run in an
  80x24 pseudo-terminal. The trainer is started exactly as in 3 (foreground, its own
  process), so its numbers compare one to one; the dashboard only adds its load.
* ``cockpit_busy`` (6): variant 3 while another process keeps one core busy for the whole
  run (``while True: pass``): what training keeps of its speed when a user compiles,
  evaluates or runs anything else beside it. ``cockpit_busy_fixed`` (6b): the same with the
  trainer's thread count fixed (``LLM_COCKPIT_CPU_SHARE=0``), as it was before the cockpit
  learned to share the CPU.
* ``cockpit_ddp`` (5): variant 3 with ``--num-processes 2`` (DDP through accelerate launch;
  gloo on a CPU, each rank with ``OMP_NUM_THREADS`` = cores / 2 as torchrun sets it). The
  same per-device batch on each rank, so a step sees twice the examples; the trainer runs
  detached and the peak RSS of its ranks is not measured (they are not our children).

Useful tokens/s = non-padding tokens the model saw / training-loop seconds, both on the
cockpit's clock (from the Trainer's ``on_train_begin`` to the last logged step).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench import settings as S
from tests.bench.measure import (ProcessResult, has_exited, kill_group, load_average, run_measured, spawn, tail,
                                 vm_hwm_mib, wait_measured)
from tests.bench.terminal import PtyApp


@dataclass
class Context:
    """What every variant of one benchmark run shares."""

    steps: int
    model_path: Path
    work_dir: Path
    timeout: float
    script_text: str = "plain"
    """How the plain recipes build the text: plain (workshop rule) or chat (the chat template)."""


TRAINING_VARIANTS = {
    "recipe_padded": "1  workshop recipe (pad to 512)",
    "recipe_dynamic": "2  HF Trainer + PEFT, dynamic pad",
    "cockpit": "3  llm-cockpit defaults (3a + packing)",
    "cockpit_learned": "3a loss only where learned, padded",
    "cockpit_hf_loss": "3c transformers' loss, padded (before)",
    "cockpit_tui": "4  llm-cockpit + dashboard (80x24)",
    "cockpit_ddp": "5  llm-cockpit, 2 processes (DDP)",
    "cockpit_busy": "6  llm-cockpit beside a busy process",
    "cockpit_busy_fixed": "6b 6 with the thread count fixed",
}
# The settings of each cockpit variant beyond the shared setup (the rest: the defaults).
COCKPIT_SETTINGS = {"cockpit_learned": {"packing": "false"},
                    "cockpit_hf_loss": {"packing": "false", "learned_loss": "false"}}
# A program that keeps one core busy for as long as it runs (a compile, an eval, a script).
BUSY = [sys.executable, "-c", "while True: pass"]


def cockpit_command() -> list[str]:
    """The installed console script beside this interpreter (what a user types)."""
    script = Path(sys.executable).with_name("llm-cockpit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cockpit.cli.main"]


def run_variant(name: str, ctx: Context) -> dict:
    """One variant, measured; a failure becomes an ``error`` field, never an exception."""
    row: dict = {"name": name, "label": TRAINING_VARIANTS[name], "load_before": load_average()}
    t0 = time.monotonic()
    try:
        if name in ("recipe_padded", "recipe_dynamic"):
            row.update(_recipe(name, ctx))
        else:
            row.update(_cockpit(name, ctx, settings=COCKPIT_SETTINGS.get(name, {}), with_tui=name == "cockpit_tui",
                                processes=2 if name == "cockpit_ddp" else 1, busy=name.startswith("cockpit_busy"),
                                fixed_threads=name == "cockpit_busy_fixed"))
    except Exception as exc:  # noqa: BLE001 - the table must go on with the other variants
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["harness_s"] = round(time.monotonic() - t0, 2)
    _derive(row, ctx)
    return row


def _derive(row: dict, ctx: Context) -> None:
    """Rates from counts and seconds, and the ok flag."""
    train_s, useful, seen = row.get("train_s"), row.get("useful_tokens"), row.get("seen_tokens")
    steps = row.get("steps") or 0
    per_step = S.BATCH_SIZE * S.GRAD_ACCUM * row.get("processes", 1)
    if train_s:
        row["useful_tok_s"] = round(useful / train_s, 2) if useful else None
        row["seen_tok_s"] = round(seen / train_s, 2) if seen else None
        row["examples_s"] = round(steps * per_step / train_s, 3) if steps else None
    if useful and steps:
        row["tokens_per_example"] = round(useful / (steps * per_step), 1)
    if not row.get("error") and steps != ctx.steps:
        row["error"] = f"trained {steps} steps, expected {ctx.steps}"
    row["ok"] = not row.get("error")


def _process_fields(proc: ProcessResult, prefix: str = "") -> dict:
    return {f"{prefix}process_s": round(proc.wall_s, 3), f"{prefix}peak_rss_mib": proc.peak_rss_mib and
            round(proc.peak_rss_mib, 1), f"{prefix}cpu_s": proc.cpu_s and round(proc.cpu_s, 2),
            f"{prefix}returncode": proc.returncode}


def _failure(proc: ProcessResult, log: Path, what: str) -> str | None:
    if proc.timed_out:
        return f"{what} timed out; see {log}"
    if proc.returncode != 0:
        return f"{what} exited with {proc.returncode}: {tail(log)[-300:]} (log: {log})"
    return None


# -- 1 and 2: the plain scripts ------------------------------------------------------------
def _recipe(name: str, ctx: Context) -> dict:
    out = ctx.work_dir / name
    result_path = out / "result.json"
    argv = [sys.executable, "-m", f"tests.bench.{name}", "--model", str(ctx.model_path), "--data", S.DATA,
            "--steps", str(ctx.steps), "--seed", str(S.SEED), "--output-dir", str(out / "trainer"),
            "--text", ctx.script_text, "--result", str(result_path)]
    proc = run_measured(argv, log_dir=out, name="script", timeout=ctx.timeout)
    row = _process_fields(proc)
    row["log"] = str(out / "script.stderr")
    error = _failure(proc, out / "script.stderr", name)
    if error:
        return {**row, "error": error}
    data = json.loads(result_path.read_text(encoding="utf-8"))
    row.update({k: data.get(k) for k in ("steps", "useful_tokens", "seen_tokens", "train_s", "train_call_s",
                                         "final_loss", "losses", "torch_threads", "text")})
    return row


# -- 3, 3a, 3c, 4, 5 and 6: the cockpit ----------------------------------------------------
def _cockpit(name: str, ctx: Context, *, settings: dict[str, str], with_tui: bool, processes: int = 1,
             busy: bool = False,
             fixed_threads: bool = False) -> dict:
    """``llm-cockpit train --foreground``; ``busy``: with a CPU-bound process beside it for the
    whole run; ``fixed_threads``: the trainer keeps all its threads (LLM_COCKPIT_CPU_SHARE=0)."""
    out = ctx.work_dir / name
    runs = out / "runs"
    argv = cockpit_command() + ["train", "--foreground", *S.cockpit_overrides(ctx.steps, runs, **settings)]
    if processes > 1:
        argv += ["--num-processes", str(processes)]
    env = None
    if fixed_threads:
        import os

        env = {**os.environ, "LLM_COCKPIT_CPU_SHARE": "0"}
    neighbour = spawn(BUSY, log_dir=out, name="busy") if busy else None
    started = time.monotonic()
    trainer = spawn(argv, log_dir=out, name="train", env=env)
    row: dict = {"log": str(out / "train.stderr"), "processes": processes}
    tui: PtyApp | None = None
    proc: ProcessResult | None = None
    try:
        if with_tui:
            run_dir = _wait_for_run_dir(out / "train.stdout", trainer.pid, timeout=120)
            tui = PtyApp(cockpit_command() + ["attach", str(run_dir), "--output-dir", str(runs)],
                         watch=("Overview", "finished"))
        proc = wait_measured(trainer, started, ctx.timeout)
        row.update(_process_fields(proc))
        if processes > 1:  # the ranks are the launcher's children, not ours: no peak of theirs here
            row["peak_rss_mib"] = None
        if tui is not None:
            row.update(_tui_fields(tui))
            tui = None
    finally:  # whatever went wrong, leave no process behind
        if tui is not None:
            tui.close()
        if proc is None:
            kill_group(trainer.pid)
            wait_measured(trainer, started, timeout=0)
        if neighbour is not None:
            kill_group(neighbour.pid)
            wait_measured(neighbour, started, timeout=5)
    error = _failure(proc, out / "train.stderr", "llm-cockpit train")
    run_dir = _find_run_dir(out / "train.stdout", runs)
    if run_dir is None:
        return {**row, "error": error or "no run directory was created"}
    row["run_dir"] = str(run_dir)
    row.update(_from_events(run_dir / "events.jsonl"))
    shown, written = row.pop("tui_finished_shown_at", None), row.pop("finished_at", None)
    if with_tui:  # the end of the run as a live event-to-screen sample
        row["tui_end_latency_s"] = round(shown - written, 3) if shown and written else None
    if error and not row.get("error"):
        row["error"] = error
    return row


def _wait_for_run_dir(stdout: Path, pid: int, timeout: float) -> Path:
    """The run directory ``train --foreground`` prints first, before it loads anything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = stdout.read_text(encoding="utf-8", errors="replace").splitlines()[:1] if stdout.exists() else []
        if first and Path(first[0].strip()).is_dir():
            return Path(first[0].strip())
        if has_exited(pid):
            raise RuntimeError("llm-cockpit train ended before printing its run directory")
        time.sleep(0.05)
    raise TimeoutError(f"no run directory printed within {timeout:.0f} s")


def _find_run_dir(stdout: Path, runs: Path) -> Path | None:
    try:
        first = stdout.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
    except OSError:
        first = []
    if first and Path(first[0].strip()).is_dir():
        return Path(first[0].strip())
    dirs = [p for p in runs.glob("*") if p.is_dir() and not p.is_symlink()]
    return dirs[0] if len(dirs) == 1 else None


def _tui_fields(tui: PtyApp) -> dict:
    """What the dashboard did while the trainer ran: did it paint, show the end, and its cost."""
    painted = tui.wait_for("Overview", timeout=5)
    finished = tui.wait_for("finished", timeout=10)
    screen = tui.screen_tail()
    peak = vm_hwm_mib(tui.proc.pid)  # its own peak: ru_maxrss would start at the harness's
    proc = tui.quit()
    fields = {"tui_painted_after_s": None if painted is None else round(painted - tui.started, 3),
              "tui_finished_shown_at": None if finished is None else finished + tui.wall_offset,
              "tui_bytes": tui.bytes_read, **_process_fields(proc, prefix="tui_")}
    fields["tui_peak_rss_mib"] = peak and round(peak, 1)
    if painted is None:
        fields["error"] = f"the dashboard never painted its Overview tab; screen: {screen[-200:]!r}"
    return fields


def _from_events(path: Path) -> dict:
    """Tokens, loop time and loss from the run's event log (what the dashboard shows too)."""
    from cockpit.run import events as ev
    events = ev.read_events(path)
    steps = [e for e in events if isinstance(e, ev.Step)]
    finished = [e for e in events if isinstance(e, ev.RunFinished)]
    errors = [e.message for e in events if isinstance(e, ev.Error)]
    row: dict = {"steps": len(steps), "losses": [e.loss for e in steps]}
    if steps:
        last = steps[-1]
        row.update(useful_tokens=last.tokens, train_s=last.elapsed_s, final_loss=last.loss)
        rss = [d.get("rss") for e in steps for d in (e.mem or []) if isinstance(d, dict) and d.get("rss")]
        row["event_rss_max_mib"] = round(max(rss) / 2**20, 1) if rss else None
    if finished:
        row["state"] = finished[-1].state
        row["finished_at"] = finished[-1].time
        row["summary"] = finished[-1].summary
    if errors:
        row["error"] = f"the run failed: {errors[-1]}"
    elif finished and finished[-1].state != "finished":
        row["error"] = f"the run ended {finished[-1].state}"
    return row
