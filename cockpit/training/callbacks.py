"""The bridge from HF Trainer to our event log: one TrainerCallback that reports every
step, eval, checkpoint and sample, watches for numerical trouble and honours stop requests.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from cockpit.run import events as ev
from cockpit.training.advice import ADVICE
from cockpit.training.checklist import Checklist
from cockpit.run.status import write_status
from cockpit.training.stages import stage_metrics
from cockpit.training.telemetry import GpuPoller, memory_snapshot

log = logging.getLogger(__name__)

CHECKPOINT_MARKER = "cockpit-complete"
GRAD_SPIKE = 100.0
GPU_POLL_S = 5.0


class TokenCounter:
    """Counts useful (non-padding) tokens as the collator builds batches."""

    def __init__(self, start: int = 0) -> None:
        self.total = start


def time_batches(trainer, report: Callable[[float], None]) -> None:
    """Report how long ``trainer`` waits for the batches of each accumulation window (the
    Trainer fetches them all in ``get_batch_samples`` before the window's first step): the
    checklist's "slow data" reading. Wrapped on this instance only."""
    fetch = trainer.get_batch_samples

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fetch(*args, **kwargs)
        finally:
            report(time.perf_counter() - t0)

    trainer.get_batch_samples = timed


class StopFlag:
    """Set by the signal handler; read by the callback at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""


class ThreadShareCallback(TrainerCallback):
    """Applies :class:`cockpit.training.cpu_share.CpuShare`'s thread count at each step boundary
    (``torch.set_num_threads`` acts on the calling thread: it must be the training thread)
    and says so through ``notify(step, threads, other_cores, most)``."""

    def __init__(self, share, notify: Callable[[int, int, float, int], None] | None = None) -> None:
        self.share = share
        self.notify = notify
        self.current = share.most

    def on_train_begin(self, args, state, control, **kwargs):
        self.share.wait_first()  # (it has usually looked while the model loaded)
        self.on_step_begin(args, state, control)  # the first step already with the right count

    def on_step_begin(self, args, state, control, **kwargs):
        want = self.share.desired
        if want == self.current:
            return
        import torch

        torch.set_num_threads(want)
        self.current = want
        if self.notify is not None:
            self.notify(state.global_step, want, self.share.other_cores, self.share.most)

    def on_train_end(self, args, state, control, **kwargs):
        self.share.stop()


class EventCallback(TrainerCallback):
    """Turns Trainer hooks into events on ``sink`` and keeps ``status.json`` current."""

    def __init__(self, sink: ev.EventSink, run_dir: Path, tokens: TokenCounter, stop: StopFlag,
                 sampler: Callable[[int], None] | None, sample_every: int, patience: int,
                 start_step: int, world_size: int = 1) -> None:
        self.sink = sink
        self.run_dir = run_dir
        self.tokens = tokens
        self.stop = stop
        self.sampler = sampler
        self.sample_every = sample_every
        self.patience = patience
        self.world_size = world_size
        self.start_step = start_step
        self.session_t0 = time.time()
        self._last_t = self.session_t0
        self._last_tokens = tokens.total
        self._gpu = GpuPoller()
        self._last_gpu = 0.0
        self.best_eval: float | None = None
        self._bad_evals = 0
        self.best_loss: float | None = None
        self.last_loss: float | None = None
        self.failure: tuple[str, str] | None = None  # (message, advice) when the run must fail
        self._loss_ema: float | None = None
        self.last_saved_step: int | None = None
        # The base model's answers still to give (rank 0, adapter methods): set by the trainer,
        # called once right after the first logged step, or earlier if a sample is due first.
        self.baseline: Callable[[], None] | None = None
        # The checklist's detectors (flat loss, memory, heat, idle GPU, slow data); the trainer
        # reports each wait for batches through data_wait (it wraps get_batch_samples).
        self.checklist = Checklist()
        self._data_s = 0.0
        self._step_end_t: float | None = None
        self._busy = False

    # -- helpers -------------------------------------------------------------
    def _eta(self, step: int, total: int) -> float | None:
        """Remaining time from THIS session's speed (a resumed run does not count old steps)."""
        done = step - self.start_step
        if done <= 0 or total <= 0:
            return None
        return (time.time() - self.session_t0) / done * max(0, total - step)

    def _emit(self, warnings) -> None:
        for warning in warnings:
            self.sink.emit(warning)

    def data_wait(self, seconds: float) -> None:
        """The Trainer waited this long for the batches of an accumulation window."""
        self._data_s += seconds

    def give_baseline(self) -> None:
        """Give the base model's answers now if they are still due. The time they take is not
        training: speed, elapsed time and ETA leave it out, as they leave out model loading."""
        give, self.baseline = self.baseline, None
        if give is None:
            return
        t0 = time.time()
        give()
        self._busy = True
        spent = time.time() - t0
        self.session_t0 += spent
        self._last_t += spent

    # -- hooks ---------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        # Speed and ETA count from here: model loading and the baseline samples are not training.
        self.session_t0 = self._last_t = time.time()
        self._last_tokens = self.tokens.total
        self._step_end_t, self._data_s = self._last_t, 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step < self.start_step:  # resumed: the loaded state is the truth
            self.start_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Every DDP rank sees the same logs (the loss is gathered across ranks) and so takes
        # the same decisions (NaN stop, early stop); only rank 0 has a real sink and status.
        if not logs:
            return
        main = state.is_world_process_zero
        step = state.global_step
        if "loss" in logs:
            loss = float(logs["loss"])
            grad = logs.get("grad_norm")
            grad = float(grad) if grad is not None else None
            now = time.time()
            dt = max(now - self._last_t, 1e-9)
            tps = (self.tokens.total - self._last_tokens) * self.world_size / dt
            self._last_t, self._last_tokens = now, self.tokens.total
            mem = memory_snapshot()
            self.sink.emit(ev.Step(
                step=step, epoch=float(state.epoch or 0.0), loss=loss, grad_norm=grad,
                lr=logs.get("learning_rate"), tokens_per_s=round(tps, 2), tokens=self.tokens.total * self.world_size,
                elapsed_s=round(now - self.session_t0, 3), eta_s=self._eta(step, state.max_steps),
                mem=mem, metrics=stage_metrics(logs),
            ))
            self._watch(step, loss, grad, control)
            self._emit(self.checklist.preference(step, stage_metrics(logs)))
            self._emit(self.checklist.train_loss(step, loss, evaluated=args.eval_strategy != "no"))
            self._emit(self.checklist.memory(step, mem))
            if math.isfinite(loss):
                self.last_loss = loss
                self.best_loss = loss if self.best_loss is None else min(self.best_loss, loss)
            if main:
                write_status(self.run_dir, state="running", step=step, total_steps=state.max_steps,
                             loss=self.last_loss, best_loss=self.best_loss, eta_s=self._eta(step, state.max_steps))
            if self.failure is None and not self.stop.requested:
                # after the step event, so the base answers never delay the first step on screen;
                # a stopping run leaves them to its resume (the log tells which are missing)
                self.give_baseline()
        if "eval_loss" in logs:
            eval_loss = float(logs["eval_loss"])
            # the stage's own numbers on the eval set (eval_rewards/margins, ...), not its timings
            metrics = {f"eval_{k}": v for k, v in stage_metrics({k[5:]: v for k, v in logs.items()
                                                                 if k.startswith("eval_")}).items()}
            self.sink.emit(ev.Eval(step=step, eval_loss=eval_loss, metrics=metrics))
            self._emit(self.checklist.eval_loss(step, eval_loss))
            self._busy = True
            self._early_stop(eval_loss, control)
            if main:
                write_status(self.run_dir, eval_loss=eval_loss, best_eval_loss=self.best_eval)
        if main:
            self._poll_gpu(step)

    def _watch(self, step: int, loss: float, grad: float | None, control) -> None:
        """NaN stops the run; a gradient or loss spike is a warning (workshop checklist)."""
        if not math.isfinite(loss) or (grad is not None and not math.isfinite(grad)):
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            self.failure = (f"the {what} became {loss if what == 'loss' else grad} at step {step}", ADVICE["nan"])
            self.sink.emit(ev.Warning(step=step, kind="nan", message=self.failure[0], advice=ADVICE["nan"]))
            control.should_training_stop = True
            control.should_save = False  # keep the last good checkpoint, never save a broken one
            return
        if grad is not None and grad > GRAD_SPIKE:
            self.sink.emit(ev.Warning(step=step, kind="grad_spike",
                                      message=f"gradient norm {grad:.1f} at step {step} (above {GRAD_SPIKE:.0f})",
                                      advice=ADVICE["grad_spike"]))
        if self._loss_ema is not None and loss > 2.0 * self._loss_ema and loss - self._loss_ema > 0.5:
            self.sink.emit(ev.Warning(step=step, kind="loss_spike",
                                      message=f"loss jumped to {loss:.3f} (recent average {self._loss_ema:.3f})",
                                      advice=ADVICE["loss_spike"]))
        self._loss_ema = loss if self._loss_ema is None else 0.8 * self._loss_ema + 0.2 * loss

    def _early_stop(self, eval_loss: float, control) -> None:
        if self.best_eval is None or eval_loss < self.best_eval:
            self.best_eval = eval_loss
            self._bad_evals = 0
            return
        self._bad_evals += 1
        if self.patience and self._bad_evals >= self.patience:
            self.sink.emit(ev.Warning(kind="early_stop", message=(
                f"eval loss has not improved for {self._bad_evals} evaluations (best {self.best_eval:.4f})"),
                advice=ADVICE["overfit"]))
            control.should_training_stop = True
            control.should_save = True

    def _poll_gpu(self, step: int) -> None:
        if not self._gpu.available or time.time() - self._last_gpu < GPU_POLL_S:
            return
        self._last_gpu = time.time()
        devices = self._gpu.read()
        self.sink.emit(ev.Gpu(step=step, devices=devices))
        self._emit(self.checklist.gpu(step, devices))

    def on_step_end(self, args, state, control, **kwargs):
        now = time.time()
        if self._step_end_t is not None:
            self._emit(self.checklist.step_time(state.global_step, self._data_s, now - self._step_end_t, self._busy))
        self._step_end_t, self._data_s, self._busy = now, 0.0, False
        if self.world_size > 1:
            self._agree_on_stop(args.device)
        if self.stop.requested:
            control.should_save = True
            control.should_training_stop = True
            return
        if (self.sampler and self.sample_every and state.is_world_process_zero
                and state.global_step % self.sample_every == 0 and state.global_step < state.max_steps):
            self.give_baseline()  # the "before" comes before any "after" (a sample due before the first log)
            self.sampler(state.global_step)
            self._busy = True

    def _agree_on_stop(self, device) -> None:
        """A signal reaches rank 0 only (its pid is in status.json); every rank must stop at the
        same step, or the others would wait forever in the next all-reduce."""
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            return
        flag = torch.tensor([1.0 if self.stop.requested else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.stop.requested = bool(flag.item())

    def on_save(self, args, state, control, **kwargs):
        self.last_saved_step = state.global_step
        self._busy = True
        if not state.is_world_process_zero:
            return
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            # Written last: a checkpoint without it was interrupted mid-save and is never resumed from.
            (ckpt / CHECKPOINT_MARKER).write_text(f"{state.global_step}\n")
            self.sink.emit(ev.Checkpoint(step=state.global_step, path=str(ckpt.relative_to(self.run_dir))))

    @property
    def summary(self) -> dict[str, Any]:
        return {"final_loss": self.last_loss, "best_loss": self.best_loss, "best_eval_loss": self.best_eval,
                "duration_s": round(time.time() - self.session_t0, 2), "tokens": self.tokens.total * self.world_size}
