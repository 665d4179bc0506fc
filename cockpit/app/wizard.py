"""What the wizard asks the engine, in one place, for the full-screen and the plain wizard.

The wizard's questions (hardware, model, method, data, review) each need an engine
answer: the hardware profile, the model catalog, a memory estimate and the advisor's
recommendation, a data report with token lengths, the resolved config and an estimate
of steps and time. :class:`WizardEngine` asks the engine modules and returns small
view objects; it imports no UI toolkit, so ``wizard --plain`` uses it as it is.

Slow parts (a tokenizer for the data report) are imported lazily inside the methods,
and screens call them from worker threads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.app.config import TrainRequest, build_train_config
from cockpit.config import BUNDLED_MODEL, DEFAULT_PRESET, TrainConfig
from cockpit.errors import CockpitError
from cockpit.run_config import resolve_data_path
from cockpit.planning.estimate import RunEstimate, estimate_run
from cockpit.run.registry import DEFAULT_RUNS_ROOT
from cockpit.training.precision import decide_precision

DEMO_DATA = TrainConfig.data  # data/dsl_train.jsonl: the bundled copy when not in the project
DEMO_EVAL = "data/dsl_eval.jsonl"
TASK_LABELS = {
    "new": "Teach something new (language, format, facts)",
    "behaviour": "Change its behaviour (tone, style, persona)",
    "extend": "Extend what it does well, in its own domain",
}
# The same answers in a third of 80 columns: the model step's narrow layout puts them side by side.
TASK_SHORT_LABELS = {"new": "Teach something new", "behaviour": "Change its behaviour", "extend": "Extend its own domain"}
GPU_PRESET = "gpu-8b-workshop"


@dataclass
class ModelChoice:
    """The Model step's answer: which model, and what the training is for."""

    model: str = BUNDLED_MODEL
    task: str = "new"


@dataclass
class MethodChoice:
    """The Method step's answer: how to train and the knobs that decide the memory."""

    method: str = "lora"
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    lora_r: int = 16
    grad_ckpt: bool = False
    model: str | None = None
    """Set when the advisor's way to fit is a smaller model than the one picked."""


PREFERENCE_PRESET = "cpu-demo-dpo"
PREFERENCE_KEYS = ("lr", "epochs", "warmup_ratio", "beta", "save_steps", "eval_steps", "sample_every")


@dataclass
class DataChoice:
    """The Data step's answer: the training file and the held-out file (if any)."""

    data: str = DEMO_DATA
    eval_data: str | None = DEMO_EVAL
    examples: int = 0
    mean_tokens: float | None = None
    stage: str = "sft"
    """dpo or kto when the data holds preference pairs or labelled answers."""


@dataclass
class PlanView:
    """The memory estimate of the asked settings against this machine, and the advisor's answer."""

    asked: Any  # cockpit.planning.memory.MemoryEstimate of the settings as chosen
    recommendation: Any  # cockpit.planning.advisor.Recommendation
    capacity: int
    asked_model: str = ""

    @property
    def fits(self) -> bool:
        return self.asked.total_bytes <= self.recommendation.usable_bytes

    def recommended_choice(self, current: MethodChoice) -> MethodChoice | None:
        """The settings the advisor lands on (None when nothing fits)."""
        rec = self.recommendation
        if rec.method is None:
            return None
        s = rec.settings
        return MethodChoice(method=s.method, batch_size=s.batch, grad_accum=s.grad_accum, max_length=s.seq,
                            lora_r=current.lora_r, grad_ckpt=s.grad_ckpt,
                            model=s.model if s.model != self.asked_model else None)


@dataclass
class DataView:
    """The data report, token lengths for the histogram, and the first examples as the
    model sees them (``report.marked``: segments of text, each learned or not)."""

    report: Any  # cockpit.data.report.DataReport
    tokenizer_note: str = ""

    @property
    def lengths(self) -> list[int]:
        return self.report.lengths

    @property
    def examples(self) -> list[dict]:
        return getattr(self.report, "marked", [])  # a preference report shows its pairs in its lines

    @property
    def train_rows(self) -> int:
        """What one epoch iterates over: usable examples, or rows of packed plain text."""
        r = self.report
        if r.format == "text" and r.token_stats and r.max_length:
            return max(1, math.ceil(r.token_stats["total"] / r.max_length))
        return r.usable


class WizardEngine:
    """The wizard's questions to the engine. ``detect`` replaces the hardware probe
    (tests pass a fixed profile so screenshots match on every machine).

    ``output_dir`` (``--output-dir``) is where new runs go and the only place runs are
    listed from; without it new runs go to ``outputs/runs`` here and the runs of every
    runs directory llm-cockpit knows are listed (:mod:`cockpit.run.registry`)."""

    def __init__(self, output_dir: str | Path | None = None, *,
                 detect: Callable[[], Any] | None = None) -> None:
        self.explicit_root = Path(output_dir) if output_dir is not None else None
        self.output_dir = Path(output_dir if output_dir is not None else DEFAULT_RUNS_ROOT)
        self._detect = detect
        self._hardware: Any = None
        self._tokenizers: dict[str, tuple[Any, str]] = {}

    # -- hardware ----------------------------------------------------------------------
    def hardware(self) -> Any:
        """The machine's profile (``cockpit.planning.hardware.HardwareProfile``), probed once."""
        if self._hardware is None:
            if self._detect is not None:
                self._hardware = self._detect()
            else:
                from cockpit.planning.hardware import detect_hardware

                self._hardware = detect_hardware(self.output_dir)
        return self._hardware

    def hardware_lines(self) -> list[str]:
        """The profile in sentences a newcomer understands."""
        hw = self.hardware()
        gib = 2**30
        lines = []
        for g in hw.gpus:
            # what precision=auto (every preset's) trains in on it: the trainer's own rule
            auto = decide_precision("auto", "lora", cuda=True, bf16_supported=g.bf16).compute
            bf16 = "it supports bf16, the 16-bit format that trains most stably" if auto == "bf16" else \
                "it has no bf16, so 16-bit training uses fp16"
            lines.append(f"GPU {g.index}: {g.name} with {g.total_bytes / gib:.1f} GiB of memory "
                         f"({g.free_bytes / gib:.1f} GiB free now); {bf16}.")
        if not hw.gpus:
            lines.append("No NVIDIA GPU found: training runs on the CPU. That is fine for the bundled "
                         "135M model and the demo data (minutes to an hour), far too slow for billions of "
                         "parameters.")
        lines.append(f"CPU: {hw.cpu_name or 'unknown'}, {hw.cpu_cores} cores usable; RAM {hw.ram_total / gib:.1f} GiB "
                     f"({hw.ram_available / gib:.1f} GiB available).")
        lines.append(f"Disk: {hw.disk_free / gib:.1f} GiB free for runs and checkpoints under {hw.disk_path}.")
        where = "the GPU" if hw.gpus else "the CPU (RAM)"
        lines.append(f"Training memory to plan with: {hw.training_memory_bytes / gib:.1f} GiB on {where}.")
        return lines + [f"Note: {n}" for n in hw.notes]

    @property
    def device(self) -> str:
        return "cuda" if self.hardware().gpus else "cpu"

    @property
    def capacity(self) -> int:
        return int(self.hardware().training_memory_bytes)

    # -- models ------------------------------------------------------------------------
    def models(self) -> list[Any]:
        """Catalog models (``cockpit.models.catalog.ModelSpec``), smallest first, base before variants."""
        from cockpit.models.catalog import load_catalog

        order = {"base": 0, "instruct": 1, "code": 2, "code-instruct": 3}
        return sorted(load_catalog().values(), key=lambda s: (s.params, order.get(s.kind, 9), s.id))

    def finished_runs(self) -> list[Any]:
        """Runs with a saved result a new run can start from (``model=RUN``), newest first
        (``cockpit.run.rundir.RunInfo``)."""
        from cockpit.training.chaining import is_run_dir
        from cockpit.run.registry import list_all_runs

        runs = [info for info in list_all_runs(self.explicit_root) if info.state == "finished"
                and is_run_dir(info.path) and (info.path / "model").is_dir()]
        return runs[::-1]

    def run_advice(self, run_dir: str) -> list[str]:
        """What starting from a finished run means (the model step's advice for a run)."""
        from cockpit.run_config import load_run_config

        cfg = load_run_config(Path(run_dir))
        kind = "its adapter merged into its base" if cfg.uses_lora else "its trained weights"
        lines = [f"Starts from run {Path(run_dir).name}'s result ({cfg.stage}, {cfg.method} on "
                 f"{cfg.model.rsplit('/', 1)[-1]}): {kind}; from_run=continue keeps training its adapter instead."]
        if cfg.stage == "sft":
            lines.append("After supervised tuning the usual next step is preference tuning: give a file of pairs "
                         "of a better and a worse answer on the data step, and the run becomes stage=dpo.")
        return lines

    def spec(self, model: str) -> Any:
        from cockpit.models.catalog import resolve_spec

        return resolve_spec(model, network=False)

    def model_advice(self, model: str, task: str | None) -> Any:
        """Base or specialized for this task (``cockpit.planning.advisor.Advice``)."""
        from cockpit.planning.advisor import model_kind_advice

        return model_kind_advice(model, task)

    # -- method ------------------------------------------------------------------------
    def plan(self, model: str, choice: MethodChoice, auto: bool = False) -> PlanView:
        """The estimate for ``choice`` against this machine, and the advisor's recommendation
        (``auto``: let it pick the method)."""
        from cockpit.planning.advisor import recommend
        from cockpit.planning.memory import estimate_memory

        spec = self.spec(model)
        asked = estimate_memory(spec, choice.method, choice.batch_size, choice.max_length, choice.lora_r,
                                grad_ckpt=choice.grad_ckpt, device=self.device)
        rec = recommend(spec, self.capacity, self.device, "auto" if auto else choice.method, choice.batch_size,
                        choice.max_length, choice.lora_r, grad_ckpt=choice.grad_ckpt,
                        gpus=max(1, len(self.hardware().gpus)), grad_accum=choice.grad_accum)
        return PlanView(asked=asked, recommendation=rec, capacity=self.capacity, asked_model=spec.id)

    # -- data --------------------------------------------------------------------------
    def data_view(self, path: str, model: str, max_length: int, preview: int = 2) -> DataView:
        """Validate and measure a data source (a file, directory, glob or hf:ORG/NAME) with the
        model's tokenizer, in one streaming pass (slow: call from a worker)."""
        from cockpit.data.preference import is_preference_source
        from cockpit.data.report import build_report

        tokenizer, note = self._tokenizer(model)
        source = shown_path(resolve_data_path(path) or path)  # what the run will read (cockpit.run_config)
        if is_preference_source(source):
            from cockpit.data.preference_report import build_preference_report

            return DataView(report=build_preference_report(source, tokenizer, max_length, show=preview),
                            tokenizer_note=note)
        return DataView(report=build_report(source, tokenizer, max_length, show=preview), tokenizer_note=note)

    def is_preference(self, spec: str) -> bool:
        """Whether a data source holds preference pairs or labelled answers (DPO/KTO data)."""
        from cockpit.data.preference import is_preference_source

        return is_preference_source(shown_path(resolve_data_path(spec) or spec))

    def source_problem(self, spec: str) -> str | None:
        """Why ``spec`` names no data source (missing file, empty directory, bad hub id), or None."""
        from cockpit.data.sources import resolve_source

        try:
            resolve_source(resolve_data_path(spec) or spec)
        except CockpitError as exc:
            return exc.message
        return None

    def _tokenizer(self, model: str) -> tuple[Any, str]:
        """The model's tokenizer and a note when another one stands in (loaded once per model)."""
        if model not in self._tokenizers:
            self._tokenizers[model] = self._load_tokenizer(model)
        return self._tokenizers[model]

    def _load_tokenizer(self, model: str) -> tuple[Any, str]:
        from cockpit.models.sources import bundled_tokenizer_dir, is_bundled
        from cockpit.training.recipe import load_tokenizer

        if not is_bundled(model):
            local = Path(model).expanduser()
            if (local / "tokenizer_config.json").is_file() or (local / "tokenizer.json").is_file():
                return load_tokenizer(local), ""
            try:
                from transformers import AutoTokenizer

                return AutoTokenizer.from_pretrained(model, local_files_only=True), ""
            except Exception:  # noqa: BLE001 - not downloaded yet: measure with the bundled one
                note = (f"{model} is not downloaded yet, so lengths were measured with the bundled SmolLM2 "
                        "tokenizer; the model's own may count 10-30% differently")
                return load_tokenizer(bundled_tokenizer_dir()), note
        return load_tokenizer(bundled_tokenizer_dir()), ""

    # -- config ------------------------------------------------------------------------
    def base_preset(self) -> str:
        """The preset a run starts from: the CPU demo, or the workshop's GPU recipe on a GPU."""
        return GPU_PRESET if self.hardware().gpus else DEFAULT_PRESET

    def base_config(self) -> TrainConfig:
        """:meth:`base_preset` with this wizard's runs directory."""
        return build_train_config(TrainRequest(self.base_preset(), choices={"output_dir": str(self.output_dir)}))

    def default_method(self) -> MethodChoice:
        """The method step's starting values: those of the preset this machine starts from."""
        cfg = self.base_config()
        return MethodChoice(method=cfg.method, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                            max_length=cfg.max_length, lora_r=cfg.lora_r, grad_ckpt=cfg.grad_ckpt)

    def request(self, model: ModelChoice, method: MethodChoice, data: DataChoice,
                overrides: dict[str, Any] | None = None) -> TrainRequest:
        """The wizard's answers as the request the CLI would make: the base preset and
        ``key=value`` choices (what ``llm-cockpit train --preset ... k=v`` gives the same config)."""
        choices: dict[str, Any] = dict(
            output_dir=str(self.output_dir), model=model.model, method=method.method, batch_size=method.batch_size,
            grad_accum=method.grad_accum, max_length=method.max_length, lora_r=method.lora_r,
            lora_alpha=2 * method.lora_r, grad_ckpt=method.grad_ckpt, data=data.data, eval_data=data.eval_data,
            stage=data.stage)
        if data.stage != "sft":  # the preference preset's schedule: a low lr, one epoch, beta
            preset = build_train_config(TrainRequest(PREFERENCE_PRESET)).to_dict()
            choices.update({k: preset[k] for k in PREFERENCE_KEYS})
        choices.update(overrides or {})
        return TrainRequest(self.base_preset(), choices=choices)

    def build_config(self, model: ModelChoice, method: MethodChoice, data: DataChoice,
                     overrides: dict[str, Any] | None = None) -> TrainConfig:
        """The resolved config of the wizard's answers (validated; names the bad key)."""
        return build_train_config(self.request(model, method, data, overrides))

    def estimate_run(self, cfg: TrainConfig, examples: int, mean_tokens: float | None) -> RunEstimate:
        """Optimizer steps (the trainer's own count) and a rough time for this machine."""
        try:
            params = self.spec(cfg.model).params
        except CockpitError:
            params = None
        return estimate_run(cfg, examples, mean_tokens, params, self.hardware())

    def start(self, cfg: TrainConfig) -> Path:
        """Create the run and spawn its detached trainer."""
        from cockpit.app.runs import start_run

        return start_run(cfg)


def shown_path(path: str) -> str:
    """An absolute path as a person reads it here: relative when under the current directory."""
    if not os.path.isabs(path):
        return path  # e.g. an hf: dataset id
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def demo_data() -> tuple[str, str]:
    """The bundled demo data (train, eval) as the engine resolves it: shown relative when it
    is under the current directory (run from the project), else absolute."""
    return shown_path(resolve_data_path(DEMO_DATA)), shown_path(resolve_data_path(DEMO_EVAL))
