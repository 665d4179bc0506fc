"""One training run from its run directory: the process the TUI and the CLI only watch.

``TrainingRun(run_dir).execute()`` reads ``config_used.yaml``, trains, and leaves the run
directory in a final state (finished, stopped or failed) whatever happens. It is what
``python -m cockpit.training.trainer_main RUN_DIR`` runs in the detached trainer process, and what
``llm-cockpit train --foreground`` runs in the foreground.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from cockpit.run import events as ev
from cockpit.training.advice import ADVICE
from cockpit.training.chaining import continued_adapter
from cockpit.training.callbacks import (CHECKPOINT_MARKER, EventCallback, StopFlag, ThreadShareCallback, TokenCounter,
                               time_batches)
from cockpit.config import TrainConfig
from cockpit.training.cpu_share import start_watching, threads_message
from cockpit.errors import CockpitError, exception_line
from cockpit.training.oom import is_oom, oom_message
from cockpit.training.precision import Precision
from cockpit.training.recipe import (count_tokens, emit_error, load_model, load_tokenizer, loading_words, model_label,
                            pick_precision, source_label, trainable_parameters)
from cockpit.run_config import load_run_config
from cockpit.training.trackers import tracker_environment, tracker_names
from cockpit.run.rundir import EVENTS_FILE
from cockpit.run.status import read_status, write_status

log = logging.getLogger(__name__)


def newest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest step that finished saving (has our marker)."""
    best: tuple[int, Path] | None = None
    for p in (run_dir / "checkpoints").glob("checkpoint-*"):
        try:
            step = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if (p / CHECKPOINT_MARKER).exists() and (best is None or step > best[0]):
            best = (step, p)
    return best[1] if best else None


class TrainingRun:
    """``setup -> train -> save -> cleanup`` for one run directory."""

    def __init__(self, run_dir: Path, resume: bool = False, stop: StopFlag | None = None,
                 sink: ev.EventSink | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.stop = stop or StopFlag()
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._own_sink = sink is None
        if not self.is_main:
            sink = ev.NullSink()  # rank 0 alone writes events, status and checkpoints
        self.sink = sink or ev.JsonlSink(self.run_dir / EVENTS_FILE)
        self.cfg: TrainConfig | None = None
        self.trainer = None
        self.callback: EventCallback | None = None
        self.cpu_share = None  # cockpit.training.cpu_share.CpuShare on a CPU
        # what setup() finds, in its order (None until it has)
        self.model_path: Path | None = None  # the model's files on this machine
        self.precision: Precision | None = None
        self.speedups = None  # cockpit.training.speedups.Speedups
        self.tokenizer = None
        self.model = None  # the PEFT-wrapped model with LoRA, the plain one for full
        self.data = None  # the prepared SFT data or the preference data
        self.train_set = self.eval_set = None
        self.probes: list = []  # what the sample events ask
        self.raw_probes = False  # plain text: the probes are continued, not chat-templated
        self.tokens = None  # cockpit.training.callbacks.TokenCounter

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- the whole run ---------------------------------------------------------
    def execute(self) -> str:
        """Train and return the final state; never raises for training failures."""
        if self.is_main:
            write_status(self.run_dir, state="starting", pid=os.getpid(), error=None, advice=None)
        # the trackers' variables and the warning filters are this run's: a caller training in
        # its own process (train --foreground, demo, tests) gets its own back afterwards
        with warnings.catch_warnings(), _environment_restored():
            return self._execute()

    def _execute(self) -> str:
        step = 0
        try:
            self.setup()
            state = self.train()
            return state
        except CockpitError as exc:
            self._fail(exc.message, exc.advice or "", step)
        except MemoryError as exc:
            self._fail(self._oom_message(exc), ADVICE["oom"], step)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._fail(f"the disk is full while writing {exc.filename or self.run_dir}",
                           f"free some space (old checkpoints under {self.run_dir.parent}) "
                           "or set output_dir= elsewhere", step)
            else:
                self._fail(f"{type(exc).__name__}: {exc}", "see train.log in the run directory", step)
        except Exception as exc:  # noqa: BLE001 - every failure ends the run as 'failed' with a line
            if is_oom(exc):
                self._fail(self._oom_message(exc), ADVICE["oom"], step)
            else:
                log.exception("training failed")
                self._fail(f"{type(exc).__name__}: {exception_line(exc)}",
                           "see train.log in the run directory; rerun with --debug for details", step)
        finally:
            self.cleanup()
        return "failed"

    def _oom_message(self, exc: BaseException) -> str:
        on_gpu = self.precision is not None and self.precision.device == "cuda"
        return oom_message(exc, on_gpu, _estimate(self.cfg) if self.cfg is not None else None)

    def _fail(self, message: str, advice: str, step: int) -> None:
        if not self.is_main:
            return
        step = self.trainer.state.global_step if self.trainer is not None else step
        emit_error(self.sink, self.run_dir, message, advice, step=step)

    # -- setup -------------------------------------------------------------------
    def setup(self) -> None:
        import transformers

        from cockpit.models.sources import resolve_model

        transformers.utils.logging.disable_progress_bar()
        import datasets

        datasets.disable_progress_bars()  # TRL tokenizes with map(): its bars would fill train.log
        # Deprecation notices about transformers' own internals say nothing to a user.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
        self.cfg = cfg = load_run_config(self.run_dir)
        transformers.set_seed(cfg.seed)
        resolved = resolve_model(cfg.model, report=self._phase)
        self.model_path = resolved.path
        self.precision = pick_precision(cfg)
        # samples while the rest loads, so the first step starts with the right thread count
        self.cpu_share = start_watching(self.precision.device, self.world_size)
        self._phase("loading_tokenizer", f"Loading the tokenizer of {model_label(cfg.model)}")
        self.tokenizer = self._loading(load_tokenizer, resolved.path)

        self._phase("preparing_data", f"Reading and tokenizing the data: {source_label(cfg.data)}"
                    + (f" (and {source_label(cfg.eval_data)} for evaluation)" if cfg.eval_data else ""))
        if cfg.is_preference:
            self._setup_preference_data()
        else:
            self._setup_sft_data()

        self._phase("loading_model", loading_words(cfg, self.precision))
        self.speedups = self._loading(self._resolve_speedups, resolved.path)
        adapter = continued_adapter(cfg)
        # A preference stage's new adapter is attached by TRL (the reference is then the
        # model with its adapters off); a continued adapter is loaded here.
        self.model = self._loading(load_model, cfg, resolved.path, self.precision, self.speedups.attn,
                                   not cfg.is_preference, adapter)
        self._setup_trainer()

    def _setup_sft_data(self) -> None:
        from cockpit.data.prepare import prepare_training_data

        cfg = self.cfg
        self.data = data = prepare_training_data(cfg, self.tokenizer, progress=self._data_progress())
        stats = data.stats
        if stats.truncated or stats.dropped:
            self._warn("data", f"{stats.truncated} training examples were truncated to max_length={cfg.max_length}"
                       f" and {stats.dropped} dropped (prompt alone too long)",
                       "raise max_length if the end of the answers matters")
        if stats.unlearned:
            self._warn("data", f"{stats.unlearned} examples have no token to learn (every answer masked) and were "
                       "skipped", f"llm-cockpit data check {cfg.data} lists them")
        self.train_set, self.eval_set = data.train, data.eval
        self.probes = cfg.sample_prompts or data.probes
        self.raw_probes = stats.format == "text" and not cfg.sample_prompts

    def _setup_preference_data(self) -> None:
        from cockpit.data.preference import load_preference_data

        cfg = self.cfg
        self.data = data = load_preference_data(cfg, self.tokenizer)
        stats = data.stats
        if stats.truncated:
            self._warn("data", f"{stats.truncated} of {stats.train_examples} training examples are longer than "
                       f"max_length={cfg.max_length} tokens (prompt and answer) and are cut",
                       "raise max_length if the end of the answers tells chosen from rejected")
        self.train_set, self.eval_set = data.train, data.eval
        self.probes = cfg.sample_prompts or stats.probes
        self.raw_probes = False

    def _resolve_speedups(self, model_path: Path):
        """What this run gets of the learned-position loss, packing, Liger and attention."""
        from transformers import AutoConfig

        from cockpit.training.speedups import resolve_speedups

        model_config = AutoConfig.from_pretrained(str(model_path))
        shards = (("fsdp", "ACCELERATE_USE_FSDP"), ("deepspeed", "ACCELERATE_USE_DEEPSPEED"))
        sharded = next((name for name, var in shards if os.environ.get(var, "").lower() in ("true", "1")), None)
        return resolve_speedups(self.cfg, getattr(model_config, "model_type", ""), self.precision.device,
                                self.precision.dtype_name, model_config, distributed=sharded)

    def _data_progress(self):
        """Reading and tokenizing a large dataset takes minutes: say where it is, once a second."""
        last = [0.0]

        def progress(message: str, fraction: float | None) -> None:
            if time.time() - last[0] >= 1.0 or (fraction is not None and fraction >= 1.0):
                last[0] = time.time()
                self._phase("preparing_data", message[0].upper() + message[1:], fraction)

        return progress

    def _phase(self, name: str, message: str, progress: float | None = None) -> None:
        """Tell the viewers what the trainer does next, before it starts (a ``phase`` event):
        the screen then says "Loading the model… 12s" instead of sitting at 0%."""
        if self.is_main:
            step = self.trainer.state.global_step if self.trainer is not None else 0
            self.sink.emit(ev.Phase(step=step, name=name, message=message, progress=progress))

    def _loading(self, load, *args):
        """Load the tokenizer or the model; a directory that is not a usable model says so in one line."""
        try:
            return load(*args)
        except (CockpitError, MemoryError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a broken model
            if is_oom(exc):
                raise
            log.exception("loading %s failed", self.cfg.model)
            raise CockpitError(f"cannot load the model {self.cfg.model}: {type(exc).__name__}: {exception_line(exc)}",
                               "check that it is a complete Hugging Face model (config.json, weights, "
                               "tokenizer files); details in train.log") from exc

    def _setup_trainer(self) -> None:
        from transformers import Trainer, TrainingArguments

        from cockpit.training.learned_loss import LearnedLoss, chunk_rows, free_device_memory, trainer_class
        from cockpit.data.tokenize import DataCollator

        cfg, speedups = self.cfg, self.speedups
        os.environ.update(tracker_environment(cfg.report_to, self.run_dir))  # (the trainer's own process)
        has_eval = self.eval_set is not None and len(self.eval_set) > 0
        training_kwargs = dict(
            output_dir=str(self.run_dir / "checkpoints"),
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.lr,
            num_train_epochs=cfg.epochs,
            max_steps=self._total_steps(),  # ours, so HF's count can never differ from the one shown
            warmup_steps=cfg.warmup_ratio,  # a float < 1 is a share of the total steps
            lr_scheduler_type=cfg.lr_scheduler,
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm if cfg.max_grad_norm > 0 else 1e9,
            logging_steps=cfg.logging_steps,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=cfg.save_total_limit,
            eval_strategy="steps" if has_eval and cfg.eval_steps else "no",
            eval_steps=cfg.eval_steps or None,
            seed=cfg.seed,
            data_seed=cfg.seed,
            bf16=self.precision.bf16,
            fp16=self.precision.fp16,
            use_cpu=self.precision.device == "cpu",
            report_to=tracker_names(cfg.report_to) or "none",
            run_name=self.run_dir.name,
            disable_tqdm=True,
            dataloader_num_workers=0,  # the token counter lives in this process
            remove_unused_columns=False,
            save_only_model=False,  # optimizer, scheduler and RNG states: needed to resume exactly
            ddp_find_unused_parameters=False if self.world_size > 1 else None,
            prediction_loss_only=True,  # evaluation wants the loss; the logits would only fill memory
            use_liger_kernel=speedups.liger,
        )
        self.tokens = TokenCounter(self._tokens_so_far() if self.resume else 0)
        count_tokens(self.model, self.tokens)
        sampler = self._sample if self.is_main else None
        self.callback = EventCallback(self.sink, self.run_dir, self.tokens, self.stop, sampler, cfg.sample_every,
                                      cfg.early_stopping_patience, start_step=0, world_size=self.world_size)
        if cfg.is_preference:
            from cockpit.training.stages import build_trainer

            self.trainer = build_trainer(cfg, self.model, training_kwargs, self.train_set,
                                         self.eval_set if has_eval else None, self.tokenizer, [self.callback],
                                         new_adapter=cfg.uses_lora and continued_adapter(cfg) is None)
            self.model = self.trainer.model  # with the adapters TRL attached
            self._finish_trainer_setup()
            return
        args = TrainingArguments(**training_kwargs)
        trainer_kwargs: dict[str, Any] = dict(
            model=self.model, args=args, train_dataset=self.train_set,
            eval_dataset=self.eval_set if has_eval else None,
            data_collator=DataCollator(self.tokenizer, packing=speedups.packing),
            processing_class=self.tokenizer, callbacks=[self.callback],
        )
        why_not = LearnedLoss.unsupported(self.model) if speedups.learned_loss else None
        if why_not:
            self.speedups = speedups = dataclasses.replace(
                speedups, learned_loss=False, notes=[*speedups.notes, f"loss over every position: {why_not}"])
        if speedups.learned_loss:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            chunk = chunk_rows(vocab, self.precision.device, free_device_memory(self.precision.device))
            self.trainer = trainer_class()(learned_loss=LearnedLoss(self.model, chunk), **trainer_kwargs)
        else:
            self.trainer = Trainer(**trainer_kwargs)
        self._finish_trainer_setup()

    def _finish_trainer_setup(self) -> None:
        from transformers import PrinterCallback

        self.trainer.remove_callback(PrinterCallback)  # our events replace its stdout dicts
        time_batches(self.trainer, self.callback.data_wait)
        if self.cpu_share is not None:
            self.trainer.add_callback(ThreadShareCallback(self.cpu_share, self._threads_changed))

    def _threads_changed(self, step: int, threads: int, other_cores: float, most: int) -> None:
        message, advice = threads_message(threads, other_cores, most)
        self.sink.emit(ev.Warning(step=step, kind="cpu_share", message=message, advice=advice))

    def _tokens_so_far(self) -> int:
        last = 0
        for e in ev.read_events(self.run_dir / EVENTS_FILE):
            if isinstance(e, ev.Step) and e.tokens:
                last = int(e.tokens) // max(1, self.world_size)
        return last

    def _warn(self, kind: str, message: str, advice: str) -> None:
        if self.is_main:
            self.sink.emit(ev.Warning(kind=kind, message=message, advice=advice))

    def _sample(self, step: int) -> None:
        from cockpit.models.generate import generate

        self._phase("sampling", f"Asking the model in training the {len(self.probes)} probe prompts (step {step})")
        outputs = generate(self.model, self.tokenizer, self.probes, self.cfg.sample_max_new_tokens,
                           system_prompt=self.cfg.system_prompt, raw=self.raw_probes)
        for prompt, out in zip(self.probes, outputs):
            self.sink.emit(ev.Sample(step=step, prompt=prompt, output=out))

    def _baseline(self, prompts: list[str], adapters: bool = False) -> None:
        """The base model's answer to each of ``prompts``: ``sample`` events of step 0 whose
        ``baseline`` is the answer. With adapters they are switched off for it, so this may run
        at any point of training and still gives exactly the untrained model's answers.
        ``adapters=True`` (a continued adapter, which is the starting point) keeps them on."""
        from cockpit.models.generate import adapters_off, generate

        with contextlib.nullcontext() if adapters else adapters_off(self.model):
            for i, prompt in enumerate(prompts):
                self._phase("baseline_samples", f"Asking the base model probe prompt {i + 1} of {len(prompts)} "
                            "(the 'before' answers)", progress=i / len(prompts))
                out = generate(self.model, self.tokenizer, [prompt], self.cfg.sample_max_new_tokens,
                               system_prompt=self.cfg.system_prompt)[0]
                self.sink.emit(ev.Sample(step=0, prompt=prompt, output=out, baseline=out))

    def _baselines_missing(self) -> list[str]:
        """The probe prompts whose base answer the run's log does not hold yet (all of them on
        a fresh start; after a resume those the earlier sessions did not get to)."""
        if not self.resume:
            return list(self.probes)
        given = {e.prompt for e in ev.read_events(self.run_dir / EVENTS_FILE)
                 if isinstance(e, ev.Sample) and e.baseline is not None}
        return [p for p in self.probes if p not in given]

    # -- train -------------------------------------------------------------------
    def train(self) -> str:
        cfg, trainer = self.cfg, self.trainer
        resume_from = newest_complete_checkpoint(self.run_dir) if self.resume else None
        if self.resume and resume_from is None:
            log.warning("no complete checkpoint in %s: starting from step 0", self.run_dir)
        start_step = int(resume_from.name.split("-")[1]) if resume_from else 0
        self.callback.start_step = start_step
        total = self._total_steps()
        trainable, params = trainable_parameters(self.model)
        if self.is_main:
            started = read_status(self.run_dir).get("started") or time.time()
            write_status(self.run_dir, state="running", pid=os.getpid(), step=start_step, total_steps=total,
                         model=cfg.model, method=cfg.method, started=started, error=None, advice=None)
            self.sink.emit(ev.RunStarted(
                step=start_step, config=cfg.to_dict(), model=cfg.model, method=cfg.method, total_steps=total,
                hardware=_hardware_summary(self.precision), estimate=_estimate(cfg),
                resumed_from=str(resume_from.relative_to(self.run_dir)) if resume_from else None,
            ))
            self.sink.emit(ev.Warning(step=start_step, kind="info", message=(
                f"{cfg.method}: training {trainable:,} of {params:,} parameters "
                f"({100 * trainable / max(params, 1):.2f}%) on {self.precision.device} in {self.precision.dtype_name};"
                f" {_examples_line(self.data.stats)}"
                f"{' (tokenized data from the cache)' if getattr(self.data, 'cached', False) else ''};"
                f" {self.speedups.summary()}"),
                advice=""))
            for note in self.speedups.notes:
                self.sink.emit(ev.Warning(step=start_step, kind="info", message=note, advice=""))
            if cfg.is_preference:
                self.sink.emit(ev.Warning(step=start_step, kind="info", message=_stage_line(cfg), advice=""))
            missing = self._baselines_missing()
            if missing and continued_adapter(cfg) is not None:
                if resume_from is None:  # the continued adapter is the 'before': only untouched it answers so
                    self._baseline(missing, adapters=True)
            elif missing and cfg.uses_lora:
                # Adapters can be switched off at any time, so the base answers need not hold up
                # the first step: the callback asks for them once the first step is logged.
                self.callback.baseline = lambda: self._baseline(missing)
            elif missing and resume_from is None:  # full: only the untouched weights answer as the base
                self._baseline(missing)
        self._phase("first_step", f"Restoring {resume_from.name} and running step {start_step + 1}" if resume_from
                    else "Running the first training step (the first batch through the model and back)")
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        return self._finish()

    def _total_steps(self) -> int:
        """The run's optimizer steps, decided once (:func:`cockpit.planning.estimate.optimizer_steps`)
        and given to the HF Trainer as ``max_steps``: the schedule, the status and the wizard agree."""
        from cockpit.planning.estimate import optimizer_steps

        return optimizer_steps(len(self.train_set), self.cfg, self.world_size)

    def _finish(self) -> str:
        trainer, cb = self.trainer, self.callback
        step = trainer.state.global_step
        if cb.failure is not None:
            if self.is_main:
                emit_error(self.sink, self.run_dir, cb.failure[0], cb.failure[1], step=step)
            return "failed"
        if self.stop.requested:
            # The callback asked the Trainer to save at this step; if the stop came after the
            # last step boundary, save here. Every rank takes the same branch (DDP saves together).
            if cb.last_saved_step != step:
                _save_resumable_checkpoint(trainer, cb)
            if self.is_main:
                self.sink.emit(ev.RunFinished(step=step, state="stopped", summary=cb.summary))
                write_status(self.run_dir, state="stopped", step=step, advice=(
                    f"continue with: llm-cockpit resume {self.run_dir.name}"))
            return "stopped"
        if self.eval_set is not None and len(self.eval_set):
            self._phase("evaluating", f"Evaluating the trained model on {len(self.eval_set)} held-out examples")
            trainer.evaluate()  # logs eval_loss, which the callback turns into an eval event
        if self.is_main:
            cb.give_baseline()  # a run that never logged a step has not given them yet
            self._sample(step)
            self._phase("saving_model", "Saving the trained " + ("adapter" if self.cfg.uses_lora else "weights")
                        + " and the tokenizer to model/")
            self._save_final()
            self.sink.emit(ev.RunFinished(step=step, state="finished", summary=cb.summary))
            write_status(self.run_dir, state="finished", step=step, **{k: v for k, v in cb.summary.items()
                                                                        if k in ("final_loss", "best_eval_loss")})
        return "finished"

    def _save_final(self) -> None:
        """``model/`` = the adapter (or full weights) + tokenizer, written beside and renamed in."""
        import shutil

        final = self.run_dir / "model"
        tmp = self.run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.trainer.save_model(str(tmp))
        # a continued adapter's frozen reference copy (TRL's "ref" adapter) is no result
        if (tmp / "ref" / "adapter_config.json").is_file():
            shutil.rmtree(tmp / "ref")
        self.tokenizer.save_pretrained(str(tmp))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)

    def cleanup(self) -> None:
        if self.cpu_share is not None:
            self.cpu_share.stop()
        if self._own_sink and isinstance(self.sink, ev.JsonlSink):
            self.sink.close()


@contextlib.contextmanager
def _environment_restored():
    """``os.environ`` as it was on entry, on exit (variables set for the run are removed again)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in [n for n in os.environ if n not in saved]:
            del os.environ[name]
        os.environ.update(saved)


def _save_resumable_checkpoint(trainer, callback) -> None:
    """A checkpoint a resume can continue from (weights, optimizer, scheduler, RNG, trainer
    state) at this step. transformers has no public call for one outside its step loop: its
    own ``_save_checkpoint`` is the routine the loop calls (TRL and Axolotl use it too). Where
    a transformers release no longer has it, the run keeps its newest complete checkpoint and
    says so."""
    save = getattr(trainer, "_save_checkpoint", None)
    if save is None:
        log.warning("this transformers cannot save a checkpoint outside its step loop: "
                    "a resume continues from the newest complete checkpoint")
        return
    save(trainer.model, trial=None)
    callback.on_save(trainer.args, trainer.state, trainer.control)


def _examples_line(stats) -> str:
    """``72 train / 8 eval examples``, or for plain text how the documents were packed."""
    if not hasattr(stats, "train_rows"):  # preference data (cockpit.data.preference)
        what = "pairs" if stats.format == "pairs" else "answers"
        return f"{stats.train_examples} train / {stats.eval_examples} eval {what}"
    if stats.format == "text":
        return (f"{stats.train_examples} train / {stats.eval_examples} eval documents packed into "
                f"{stats.train_rows} / {stats.eval_rows} rows")
    return f"{stats.train_rows} train / {stats.eval_rows} eval examples"


def _stage_line(cfg: TrainConfig) -> str:
    """What a preference stage compares against, in one line (the run's info events)."""
    from cockpit.training.stages import STAGE_NAMES

    if continued_adapter(cfg) is not None:
        ref = f"a frozen copy of run {Path(cfg.parent_run).name}'s adapter"
    elif cfg.uses_lora:
        ref = "the same model with its adapters off (no second copy)"
    else:
        ref = "a frozen copy of the starting weights"
    start = f"; starting from run {Path(cfg.parent_run).name} ({cfg.from_run})" if cfg.parent_run else ""
    return f"{STAGE_NAMES[cfg.stage]}: beta {cfg.beta:g}, reference = {ref}{start}"


def _hardware_summary(precision) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": precision.device, "dtype": precision.dtype_name,
                            "cpu_count": os.cpu_count(), "torch": torch.__version__}
    if precision.device == "cuda":
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _estimate(cfg: TrainConfig) -> dict[str, Any] | None:
    """The memory estimate for this config (the run_started event carries it), or None."""
    from cockpit.planning.memory import estimate_for_config

    try:
        return estimate_for_config(cfg)
    except Exception:  # noqa: BLE001 - an estimate is informative, never a reason to fail
        log.debug("no estimate", exc_info=True)
        return None
