"""Recorded runs with fixed numbers, written the way the trainer writes them: events through
``JsonlSink``, ``status.json`` through ``write_status``, ``config_used.yaml`` through
``config_to_yaml``. The compare tests (engine, CLI, screen) read them."""

from __future__ import annotations

import math
from pathlib import Path

from cockpit.run import events as ev
from cockpit.config import config_from_dict, config_to_yaml
from cockpit.run.rundir import CONFIG_FILE
from cockpit.run.status import write_status

GIB = 2**30
T0 = 1796000000.0
FAST = "2026-12-01_10-00-00-lr-1e-3"
SLOW = "2026-12-01_12-00-00-lr-2e-4"


def record_run(root: Path, name: str, *, lr: float, lora_r: int, steps: int = 40, floor: float = 0.5,
               tokens_per_step: int = 500, seconds_per_step: float = 2.0, peak_gib: float = 3.0,
               eval_every: int = 10, eval_offset: float = 0.2, with_tokens: bool = True,
               t0: float = T0) -> Path:
    """A finished LoRA run on the bundled model: loss ``floor + 2.5 exp(-step * lr / 0.01)``
    (a higher lr falls faster), an eval every ``eval_every`` steps ``eval_offset`` above it."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = config_from_dict({"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "data": "data/dsl_train.jsonl",
                            "eval_data": "data/dsl_eval.jsonl", "lr": lr, "lora_r": lora_r, "lora_alpha": 2 * lora_r,
                            "max_steps": steps, "output_dir": str(root)})
    (run / CONFIG_FILE).write_text(config_to_yaml(cfg), encoding="utf-8")
    sink = ev.JsonlSink(run / "events.jsonl")
    t = t0
    sink.emit(ev.RunStarted(time=t, config=cfg.to_dict(), model=cfg.model, method="lora", total_steps=steps,
                            hardware={"device": "cpu"}))
    loss = None
    for step in range(1, steps + 1):
        t += seconds_per_step
        loss = floor + 2.5 * math.exp(-step * lr / 0.01)
        sink.emit(ev.Step(step=step, time=t, epoch=step / steps, loss=loss, grad_norm=1.0, lr=lr,
                          tokens_per_s=tokens_per_step / seconds_per_step,
                          tokens=step * tokens_per_step if with_tokens else None,
                          elapsed_s=step * seconds_per_step, eta_s=(steps - step) * seconds_per_step,
                          mem=[{"device": "cpu", "rss": int(peak_gib * GIB * 0.9), "peak": int(peak_gib * GIB),
                                "total": 16 * GIB}]))
        if step % eval_every == 0:
            sink.emit(ev.Eval(step=step, time=t, eval_loss=loss + eval_offset))
    sink.emit(ev.RunFinished(step=steps, time=t, state="finished",
                             summary={"final_loss": loss, "tokens": steps * tokens_per_step}))
    sink.close()
    write_status(run, state="finished", pid=None, model=cfg.model, method="lora", step=steps, total_steps=steps,
                 started=t0, loss=loss)
    return run


def two_recorded_runs(root: Path) -> tuple[Path, Path]:
    """A: lr 1e-3, r 16, falls fast to 0.6, 250 tokens/s, 3 GiB. B: lr 2e-4, r 8, falls slowly
    towards 0.4, 500 tokens/s, 2.5 GiB, started two hours later."""
    fast = record_run(root, FAST, lr=1e-3, lora_r=16, floor=0.6, peak_gib=3.0, seconds_per_step=2.0)
    slow = record_run(root, SLOW, lr=2e-4, lora_r=8, floor=0.4, peak_gib=2.5, seconds_per_step=1.0, t0=T0 + 7200)
    return fast, slow
