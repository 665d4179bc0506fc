"""The export pipeline: one call from a finished run to a checked GGUF, Ollama model or Hub repo.

``export_run`` is what both the CLI and the TUI call. It reports through an optional
``progress`` callable taking one :class:`ExportProgress` (stage, message, overall
fraction 0..1); the callable runs on the exporting thread, so a TUI passes something
that only posts a message. What the libraries print meanwhile goes to the run's export
log (:mod:`cockpit.export.exportlog`), not to the caller's terminal.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.errors import UsageError
from cockpit.export import convert, doctor, hub, merge, modelfile, ollama, runtime, source, verify
from cockpit.export.exportlog import LOG_FILE, ExportLog
from cockpit.run.atomic import atomic_write_json, atomic_write_text, read_json_object

log = logging.getLogger(__name__)

TARGETS = ("ollama", "gguf", "hf")
QUANTS = convert.QUANTS
REPORT_FILE = "export.json"
# Share of the whole export each stage takes, for one overall progress bar.
_WEIGHTS = {"prepare": 0.04, "doctor": 0.04, "install": 0.3, "merge": 0.22, "convert": 0.3, "quantize": 0.1,
            "modelfile": 0.02, "verify": 0.3, "ollama": 0.08, "hub": 0.3}
# What a person reads for each stage.
STAGE_TITLES = {"prepare": "prepare", "doctor": "doctor", "install": "install llama.cpp", "merge": "merge",
                "convert": "convert", "quantize": "quantize", "modelfile": "Modelfile", "verify": "proof",
                "ollama": "ollama create", "hub": "upload", "done": "done"}


@dataclass
class ExportProgress:
    """One progress report: ``stage`` (prepare, doctor, install, merge, convert, quantize,
    modelfile, verify, ollama, hub, done; :data:`STAGE_TITLES` names them for people), a human
    ``message`` and the export's overall ``fraction`` done."""

    stage: str
    message: str
    fraction: float


@dataclass
class ExportResult:
    """What an export produced; :meth:`to_dict` is the CLI's ``--json`` document."""

    target: str
    quant: str | None
    run_dir: Path
    name: str
    dry_run: bool
    preflight: dict[str, Any] | None = None
    doctor: dict[str, Any] | None = None
    merged_dir: Path | None = None
    gguf: Path | None = None
    modelfile: Path | None = None
    modelfile_text: str | None = None
    verify: dict[str, Any] | None = None
    verify_summary: str | None = None
    ollama: dict[str, Any] | None = None
    hub: dict[str, Any] | None = None
    planned_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chat_command: str | None = None
    llama_cpp_installed: str | None = None  # the version this export installed, if it did
    log: Path | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            out[key] = str(value) if isinstance(value, Path) else value
        return out


class _Reporter:
    def __init__(self, progress: Callable[[ExportProgress], None] | None, stages: list[str]):
        self.progress = progress
        total = sum(_WEIGHTS[s] for s in stages)
        self.start: dict[str, float] = {}
        acc = 0.0
        for s in stages:
            self.start[s] = acc / total
            acc += _WEIGHTS[s]
        self.scale = {s: _WEIGHTS[s] / total for s in stages}
        self.last = 0.0

    def stage(self, name: str) -> Callable[[str, float | None], None]:
        def say(message: str, fraction: float | None = None) -> None:
            log.info("%s: %s", name, message)
            if fraction is not None:
                self.last = max(self.last, self.start[name] + self.scale[name] * min(max(fraction, 0.0), 1.0))
            else:
                self.last = max(self.last, self.start[name])
            if self.progress is not None:
                self.progress(ExportProgress(name, message, round(self.last, 4)))
        return say

    def done(self, message: str) -> None:
        if self.progress is not None:
            self.progress(ExportProgress("done", message, 1.0))


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.split(":")[0].replace("/", "-")).strip("-.") or "model"


def export_run(run_dir: str | Path, target: str = "ollama", quant: str = convert.DEFAULT_QUANT, name: str | None = None,
               dry_run: bool = False, progress: Callable[[ExportProgress], None] | None = None, *,
               verify_export: bool = True, verify_logits: bool = True, merged: bool = False,
               private: bool = True, install_runtime: bool = False, echo: bool = False) -> ExportResult:
    """Export a finished run.

    ``target``: ``ollama`` (GGUF + Modelfile + ``ollama create``), ``gguf`` (GGUF +
    Modelfile only) or ``hf`` (upload to the Hugging Face Hub; ``name`` is the repo id;
    ``merged`` uploads the merged model instead of the adapter). ``dry_run`` checks and
    plans without writing or uploading anything. ``verify_export`` runs the llama.cpp
    check of the GGUF, ``verify_logits`` also the (slower) transformers reload check.
    ``install_runtime`` installs llama.cpp's runtime first when this export needs or uses it
    (:mod:`cockpit.export.runtime`); without it a K-quant with no quantizer here fails
    before any work. The libraries' output goes to ``RUN/export/export.log`` (``echo``: to
    the terminal as well). Raises :class:`CockpitError`.
    """
    started = time.monotonic()
    if target not in TARGETS:
        raise UsageError(f"unknown export target {target!r}", f"choose one of: {', '.join(TARGETS)}")
    if target != "hf" and quant not in QUANTS:
        raise UsageError(f"unknown quantization {quant!r}", f"choose one of: {', '.join(QUANTS)}")
    if target == "ollama" and name is not None:
        ollama.validate_name(name)  # before any work, so a typo costs nothing
    if target == "hf":
        if not name:
            raise UsageError("--to hf needs the repository to upload to", "add --name OWNER/REPO")
        hub.validate_repo_id(name)
    src = source.load_run(run_dir)
    need = None
    if target != "hf":  # what cannot work here is refused before anything is written, the log included
        doctor.converter_module()
        need = runtime.need_for(quant, verify_export)
        if need.quantizer_missing and not install_runtime:
            raise runtime.missing_quantizer_error(quant)
    log_path = None if dry_run else src.export_dir / LOG_FILE
    with ExportLog(log_path, echo=echo, title=f"{src.run_dir.name} --to {target}") as chatter:
        if target == "hf":
            result = _export_hf(src, name, dry_run, progress, merged, private)
        else:
            result = _export_gguf(src, target, quant, name, dry_run, progress, verify_export, verify_logits,
                                  install_runtime and need.install_helps, chatter)
    result.log = log_path
    result.seconds = round(time.monotonic() - started, 2)
    if not dry_run:
        atomic_write_json(Path(result.run_dir) / source.EXPORT_DIR / REPORT_FILE, result.to_dict())
    return result


def _gen_eos(model_dir: Path) -> list[int]:
    value = read_json_object(model_dir / "generation_config.json").get("eos_token_id")
    return [value] if isinstance(value, int) else [int(v) for v in value or []]


def _default_system(tok, family: str | None) -> str | None:
    if not getattr(tok, "chat_template", None):
        return None
    try:
        rendered = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                           add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that needs other roles: no default to find
        return None
    return modelfile.default_system_from(rendered, family)


def _export_gguf(src: source.RunSource, target: str, quant: str, name: str | None, dry_run: bool, progress,
                 verify_export: bool, verify_logits: bool, install: bool, chatter: ExportLog) -> ExportResult:
    stages = ["prepare", "doctor"] + (["install"] if install and not dry_run else []) + ["merge", "convert"]
    stages += (["quantize"] if quant in convert.K_QUANTS else []) + ["modelfile"]
    stages += (["verify"] if verify_export else []) + (["ollama"] if target == "ollama" else [])
    rep = _Reporter(progress, stages)
    say = rep.stage("prepare")
    say(f"reading the run {src.run_dir.name}", 0.0)
    name = name or src.default_name()
    if target == "ollama":
        ollama.validate_name(name)
    result = ExportResult(target=target, quant=quant, run_dir=src.run_dir, name=name, dry_run=dry_run)
    if install and dry_run:
        result.warnings.append(f"{runtime.LLAMA_CPP_PIN} would be installed first ({runtime.BUILD_TIME})")
    base_dir = source.base_model_dir(src) if src.is_adapter else None
    pf = merge.preflight(src, base_dir, quant, need_merge=src.is_adapter)
    result.preflight = {**pf.to_dict(), "summary": pf.summary()}
    say(pf.summary(), 1.0)

    say = rep.stage("doctor")
    from transformers import AutoTokenizer

    model_files = base_dir if src.is_adapter else src.model_dir
    tok = AutoTokenizer.from_pretrained(str(source.tokenizer_dir(src, base_dir)))
    report = doctor.run_doctor(model_files, tok, model_files, _gen_eos(model_files))
    result.doctor = report.to_dict()
    result.warnings += [f"{c.name}: {c.detail} ({c.advice})" for c in report.checks if not c.ok and c.level != "error"]
    report.raise_if_failed()
    say("all checks passed", 1.0)

    gguf_path = src.export_dir / convert.gguf_filename(_safe_file_name(name), quant)
    mf_path = src.export_dir / "Modelfile"
    spec = modelfile.build_modelfile(
        gguf_path, tok.chat_template if isinstance(tok.chat_template, str) else None, report.eos_tokens,
        vocab=set(tok.get_vocab()), system_prompt=src.system_prompt,
        default_system=_default_system(tok, report.family), title=name)
    result.warnings += spec.warnings
    result.modelfile_text = spec.text
    if dry_run:
        result.planned_files = ([str(src.export_dir / merge.MERGED_DIR)] if src.is_adapter else []) + [
            str(gguf_path), str(mf_path)]
        result.chat_command = f"ollama run {name}" if target == "ollama" else f"llama-cli -m {shlex.quote(str(gguf_path))}"
        rep.done("dry run: nothing was written")
        return result

    if install:
        result.llama_cpp_installed = runtime.install(rep.stage("install"), chatter.stream)

    say = rep.stage("merge")
    src.export_dir.mkdir(parents=True, exist_ok=True)
    if src.is_adapter:
        hf_dir = merge.merge_adapter(src, base_dir, pf.load_dtype, say)
        result.merged_dir = hf_dir
    else:
        hf_dir = src.model_dir
        say("full fine-tune: the model is converted as saved", 1.0)

    result.gguf = convert.convert_to_gguf(
        hf_dir, gguf_path, quant, name, rep.stage("convert"),
        quantize_say=rep.stage("quantize") if quant in convert.K_QUANTS else None, quiet=chatter.native)

    say = rep.stage("modelfile")
    atomic_write_text(mf_path, spec.text)
    result.modelfile = mf_path
    say(f"wrote {mf_path}", 1.0)

    if verify_export:
        rep_v = verify.verify_export(hf_dir, gguf_path, src.probes, system_prompt=src.system_prompt,
                                     max_new_tokens=min(src.cfg.sample_max_new_tokens, 64),
                                     logits_check=verify_logits, say=rep.stage("verify"), quiet=chatter.native)
        result.verify = rep_v.to_dict()
        result.verify_summary = rep_v.summary()
        result.warnings += rep_v.notes

    if target == "ollama":
        outcome = ollama.register(spec, mf_path, name, rep.stage("ollama"))
        result.ollama = outcome.to_dict()
        if not outcome.registered:
            result.warnings.append(outcome.message)
        result.chat_command = f"ollama run {name}" if outcome.registered else f"{outcome.command} && ollama run {name}"
    else:
        result.chat_command = f"llama-cli -m {shlex.quote(str(gguf_path))}"
    rep.done(f"exported {gguf_path.name}")
    return result


def _export_hf(src: source.RunSource, name: str | None, dry_run: bool, progress, merged: bool,
               private: bool) -> ExportResult:
    stages = ["prepare"] + (["merge"] if merged else []) + ["hub"]
    rep = _Reporter(progress, stages)
    say = rep.stage("prepare")
    result = ExportResult(target="hf", quant=None, run_dir=src.run_dir, name=name, dry_run=dry_run)
    if merged and not src.is_adapter:
        result.warnings.append("--merged has no effect: this run trained all weights (method full)")
    kind = "full" if not src.is_adapter else ("merged" if merged else "adapter")
    folder = src.model_dir
    if kind == "merged":
        base_dir = source.base_model_dir(src)
        pf = merge.preflight(src, base_dir, "f16", need_merge=True)
        result.preflight = {**pf.to_dict(), "summary": pf.summary()}
        say(pf.summary(), 1.0)
        folder = src.export_dir / merge.MERGED_DIR
        if dry_run and not merge.merged_is_current(src, base_dir):
            result.warnings.append(f"the merged model would be written to {folder} first")
            plan = hub.plan_upload(src, name, src.model_dir, kind)
            # The merge is not done yet: its weights replace the adapter's files in the plan.
            plan.files = [f for f in plan.files if not f["path"].startswith("adapter_")]
            size = pf.params * (2 if merge._torch_dtype_name(source.weights_summary(base_dir)[2]) != "float32" else 4)
            plan.files[:0] = [{"path": "config.json", "bytes": None}, {"path": "generation_config.json", "bytes": None},
                              {"path": "model.safetensors", "bytes": int(size)}]
            plan.folder = folder
            return _finish_hf(result, plan, dry_run, private, rep)
        if not dry_run:
            src.export_dir.mkdir(parents=True, exist_ok=True)
            folder = merge.merge_adapter(src, base_dir, pf.load_dtype, rep.stage("merge"))
            result.merged_dir = folder
    return _finish_hf(result, hub.plan_upload(src, name, folder, kind), dry_run, private, rep)


def _finish_hf(result: ExportResult, plan: hub.HubPlan, dry_run: bool, private: bool, rep: _Reporter) -> ExportResult:
    result.hub = plan.to_dict()
    result.planned_files = [f["path"] for f in plan.files]
    if dry_run:
        rep.done(f"dry run: {len(plan.files)} files would go to {plan.repo_id}")
        return result
    url = hub.upload(plan, private=private, say=rep.stage("hub"))
    result.hub["url"] = url
    rep.done(f"uploaded to {url}")
    return result
