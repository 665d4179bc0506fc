"""What a fine-tune cost in general ability: the same lm-evaluation-harness tasks on the run's
base model and on the tuned model, and the difference (``llm-cockpit eval RUN --regression``).

A narrow fine-tune (72 examples of a made-up language) can teach new patterns and quietly break
everyday answers; the held-out eval of the run's own data cannot see that. So the check runs
general tasks through EleutherAI's lm-evaluation-harness (``lm-eval``, the optional ``eval``
extra), the harness everyone else reports with:

* default, offline: ``cockpit_general`` (``data/regression/``), 84 multiple-choice questions
  written for llm-cockpit (simple facts, small arithmetic, everyday instructions), in lm-eval's
  own YAML task format and loaded with ``TaskManager(include_path=...)``;
* ``tasks=["hellaswag", "arc_easy", ...]``: any lm-eval task, when the network or the local
  Hugging Face cache has its dataset.

Both models are one copy of the weights: a LoRA run's base is the tuned model with its adapters
disabled (:func:`cockpit.models.generate.adapters_off`); a full fine-tune's base is loaded after the
tuned model is freed. Each is wrapped in lm-eval's ``HFLM`` and scored by
``lm_eval.simple_evaluate``.

Prompts: no chat template by default. Multiple choice is scored by the log-likelihood of each
choice after the task's plain prompt ("Question: ...\\nAnswer:"), which is how lm-eval's tasks are
defined and how their published numbers were measured, and both models see exactly the same
text. ``chat_template=True`` wraps the prompt in the model's chat template instead (lm-eval's
``apply_chat_template``), closer to how an instruct model is talked to.

The result is the ``regression`` section of the run's ``eval.json`` (merged into what is there,
written atomically): plain nested numbers plus the task names::

    {"tasks": [...], "chat_template": false,
     "base":  {task: {"acc": .., "acc_stderr": .., "acc_norm": .., "acc_norm_stderr": ..}},
     "tuned": {task: {...}}, "delta": {task: {"acc": tuned - base, ...}},
     "items": {task: N}, "seconds": {"base": s, "tuned": s}}
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError, exception_line
from cockpit.paths import DATA_DIR

log = logging.getLogger(__name__)

LM_EVAL_PIN = "lm-eval==0.4.13"  # the `eval` extra of pyproject.toml names the same pin
TASK_DIR = DATA_DIR / "regression"
DEFAULT_TASK = "cockpit_general"
SECTION = "regression"
BATCH_SIZE = 8

Progress = Callable[[str], None]


# ---------- lm-eval itself ----------


def install_command() -> str:
    """The exact command that installs lm-eval into the environment llm-cockpit runs in."""
    return f"{sys.executable} -m pip install '{LM_EVAL_PIN}'"


def lm_eval_missing() -> str | None:
    """None when lm-eval imports, else the one line that says so and how to install it."""
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install of one of its parts
        return (f"eval --regression runs through lm-evaluation-harness, which is not importable here "
                f"({type(exc).__name__}: {exception_line(exc, 120)}); install it with: {install_command()}")
    return None


def require_lm_eval() -> None:
    problem = lm_eval_missing()
    if problem:
        raise CockpitError(problem)


def install(progress: Progress | None = None) -> None:
    """pip-install :data:`LM_EVAL_PIN` into this interpreter's environment (wheels only, about a
    minute: it brings scikit-learn, scipy and a few smaller packages)."""
    import subprocess

    if progress:
        progress(f"installing {LM_EVAL_PIN} ...")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", LM_EVAL_PIN],
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        tail = exception_line(Exception(lines[-1] if lines else f"pip exited with {done.returncode}"), 200)
        raise CockpitError(f"installing {LM_EVAL_PIN} failed ({tail})", f"run it yourself: {install_command()}")
    import importlib

    importlib.invalidate_caches()


@contextlib.contextmanager
def _quiet_lm_eval() -> Iterator[None]:
    """lm-eval logs every step at WARNING (a passed-in model, a custom dataset); a user of
    the cockpit sees our progress lines instead. Errors still come through."""
    from unittest import mock

    import lm_eval.evaluator

    logger = logging.getLogger("lm_eval")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        # the harness records `git describe` of the working directory in its results; outside a
        # repository git prints "fatal: not a git repository" on stderr. Not ours to record.
        with mock.patch.object(lm_eval.evaluator, "get_git_commit_hash", lambda: None, create=True), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations, via the harness
            yield
    finally:
        logger.setLevel(before)


# ---------- tasks ----------


def parse_tasks(text: str | None) -> list[str]:
    """``--tasks a,b`` as a list (the bundled task when empty)."""
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    return list(dict.fromkeys(names)) or [DEFAULT_TASK]


@functools.lru_cache(maxsize=2)
def task_manager(with_lm_eval_tasks: bool):
    """lm-eval's TaskManager over the bundled task directory; lm-eval's own catalogue (some
    14,000 tasks, about 8 s to index on a small CPU) only when a task outside ours is named."""
    from lm_eval.tasks import TaskManager

    with _quiet_lm_eval():
        return TaskManager(verbosity="ERROR", include_path=str(TASK_DIR), include_defaults=with_lm_eval_tasks)


def _load_error(name: str, exc: BaseException) -> CockpitError:
    """One line for a task that would not load: offline without its dataset cached, or else."""
    what = f"{type(exc).__name__}: {exception_line(exc, 140)}"
    offline = isinstance(exc, (ConnectionError, TimeoutError)) or any(
        word in what.lower() for word in ("offline", "reach", "connection", "localentrynotfound", "resolve"))
    if offline:
        return CockpitError(
            f"lm-eval task '{name}' needs its dataset from the Hugging Face Hub, which is not reachable, and the "
            f"local cache does not have it ({what})",
            "run once with a network (and HF_DATASETS_OFFLINE=0 or unset) to cache it, or leave out --tasks "
            f"for the bundled offline task {DEFAULT_TASK}")
    return CockpitError(f"lm-eval task '{name}' could not be loaded ({what})",
                        f"check it outside the cockpit: lm_eval --tasks {name} --model hf --limit 1 ...")


def load_tasks(names: list[str]):
    """The TaskManager that knows ``names``, after loading each task once (so a missing dataset
    is one line naming its task before any model is loaded)."""
    manager = task_manager(any(n != DEFAULT_TASK for n in names))
    known = set(manager.all_tasks)
    for name in names:
        if name not in known:
            raise CockpitError(f"unknown lm-eval task '{name}'",
                               "list them with: lm_eval ls tasks; e.g. --tasks hellaswag,arc_easy "
                               f"(or leave out --tasks for the bundled offline task {DEFAULT_TASK})")
    for name in names:
        try:
            with _quiet_lm_eval():
                manager.load([name])
        except CockpitError:
            raise
        except Exception as exc:  # noqa: BLE001 - datasets' offline/connection errors have many types
            raise _load_error(name, exc) from exc
    return manager


# ---------- scoring ----------


def _metrics(entry: dict[str, Any]) -> dict[str, float]:
    """lm-eval's ``{"acc,none": .., "acc_stderr,none": .., "alias": ..}`` as ``{"acc": ..}``
    (numbers only; a filter other than ``none`` stays in the name)."""
    out: dict[str, float] = {}
    for key, value in entry.items():
        if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metric, _, filt = key.partition(",")
        if math.isfinite(float(value)):
            out[metric if filt == "none" else f"{metric}[{filt}]"] = float(value)
    return out


def score(lm, names: list[str], manager, limit: int | None, chat_template: bool) -> tuple[dict, dict]:
    """One model's scores per task and the number of items each used."""
    import lm_eval

    with _quiet_lm_eval():
        results = lm_eval.simple_evaluate(model=lm, tasks=list(names), task_manager=manager, limit=limit,
                                          apply_chat_template=chat_template, log_samples=False,
                                          bootstrap_iters=1000, verbosity="ERROR")
    scores = {task: _metrics(entry) for task, entry in results["results"].items()}
    items = {task: int(n.get("effective", n.get("original", 0))) for task, n in results.get("n-samples", {}).items()}
    return scores, items


def deltas(base: dict[str, dict[str, float]], tuned: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """tuned - base for every metric both have (standard errors are not differenced)."""
    out: dict[str, dict[str, float]] = {}
    for task, t in tuned.items():
        b = base.get(task, {})
        diff = {m: t[m] - b[m] for m in t if m in b and "_stderr" not in m}
        if diff:
            out[task] = diff
    return out


def _hflm(model, tokenizer):
    from lm_eval.models.huggingface import HFLM

    with _quiet_lm_eval():
        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE)


def _sides(run_dir: Path, progress: Progress | None) -> Iterator[tuple[str, Any, Any, Any]]:
    """("base" | "tuned", HF model, tokenizer, context to score it in), one copy of the weights
    at a time."""
    from cockpit.evaluation.heldout import load_inference_model, load_run_model
    from cockpit.models.generate import adapters_off
    from cockpit.run_config import load_run_config

    cfg = load_run_config(run_dir)
    if progress:
        progress(f"loading {run_dir.name}")
    model, tok = load_run_model(run_dir)
    model = _to_device(model)
    if hasattr(model, "disable_adapter"):  # LoRA: the base is the same weights, adapters bypassed
        inner = model.get_base_model()
        yield "base", inner, tok, adapters_off(model)
        yield "tuned", inner, tok, contextlib.nullcontext()
        return
    yield "tuned", model, tok, contextlib.nullcontext()
    del model
    if progress:
        progress(f"loading the base model {cfg.model}")
    base, btok = load_inference_model(cfg.model)
    yield "base", _to_device(base), btok, contextlib.nullcontext()


def _to_device(model):
    import torch

    return model.to("cuda") if torch.cuda.is_available() else model


def run_regression(run_dir: Path, tasks: list[str] | None = None, limit: int | None = None,
                   chat_template: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Score the run's base and tuned model on ``tasks`` and merge the ``regression`` section
    into the run's ``eval.json``; returns the section."""
    require_lm_eval()
    names = list(tasks or [DEFAULT_TASK])
    manager = load_tasks(names)  # a bad task name or a missing dataset fails here, before any model loads
    if progress:
        progress(f"lm-eval tasks: {', '.join(names)}")
    section: dict[str, Any] = {"tasks": names, "chat_template": chat_template, "base": {}, "tuned": {},
                               "delta": {}, "items": {}, "seconds": {}}
    lm = None
    for side, model, tok, context in _sides(run_dir, progress):
        if lm is None or lm.model is not model:
            lm = _hflm(model, tok)
        if progress:
            progress(f"{side} model: scoring {', '.join(names)}" + (f" (first {limit} items)" if limit else ""))
        t0 = time.time()
        with context:
            section[side], items = score(lm, names, manager, limit, chat_template)
        section["seconds"][side] = round(time.time() - t0, 2)
        section["items"].update(items)
    lm = None
    section["delta"] = deltas(section["base"], section["tuned"])
    from cockpit.evaluation.heldout import merge_eval_json

    merge_eval_json(run_dir, SECTION, section)
    return section
