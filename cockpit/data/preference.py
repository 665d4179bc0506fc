"""Preference data for ``stage=dpo``/``orpo`` (pairs of a better and a worse answer) and
``stage=kto`` (answers labelled good or bad): loaded, checked, split and shaped for TRL.

Every record is detected by its own keys (``cockpit.data.preference_formats`` lists the
forms); a bad record becomes a :class:`~cockpit.data.records.Problem` at ``file:line`` and
loading goes on, so ``llm-cockpit data check`` lists every problem at once, while a run
refuses the data with the first one (:func:`check_preference_records`, before a run
directory exists). ``stage=kto`` takes pairs too: each pair is two labelled answers, the
chosen one good and the rejected one bad.

:func:`load_preference_data` gives TRL's conversational datasets: ``prompt`` (messages),
``chosen``/``rejected`` (one assistant message each) for DPO and ORPO; ``prompt``,
``completion`` (one assistant message) and ``label`` for KTO. The held-out split is keyed
on the prompt, so no prompt is on both sides.

Nothing here imports torch, transformers or datasets at import time.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from cockpit.data.columns import apply_columns
from cockpit.data.loading import DataOptions, split_indices, strict_error
from cockpit.data.preference_formats import (ACCEPTED, FORMS, NOT_PREFERENCE, PAIRED, UNPAIRED, PreferenceExample,
                                             is_preference_record, label_value, parse_preference_record)
from cockpit.data.readers import ReadStats, plural, read_source
from cockpit.data.records import Problem, RecordError
from cockpit.data.sources import Source, resolve_source
from cockpit.errors import CockpitError

__all__ = ["ACCEPTED", "FORMS", "PAIRED", "UNPAIRED", "PreferenceData", "PreferenceExample", "PreferenceLoad",
           "PreferenceStats", "answer_token_ids", "check_preference_records", "checked_pairs", "example_tokens", "is_preference_record",
           "is_preference_source", "label_value", "load_preference_data", "load_preference_examples", "preference_splits", "to_unpaired"]

PAIR_STAGES = ("dpo", "orpo")
_MAX_PROBLEMS = 10_000  # enough to name the first and say how many


@dataclass
class PreferenceLoad:
    """What :func:`load_preference_examples` found: the good examples and every problem."""

    examples: list[PreferenceExample]
    problems: list[Problem]
    format: str
    """``pairs``, ``unpaired``, ``mixed`` (both) or ``none`` (nothing loaded)."""
    path: str = ""
    lines: int = 0
    """Lines (or rows) read, blank ones included."""
    forms: dict[str, int] = field(default_factory=dict)
    """How many records of each form (``trl-standard``, ``sharegpt``, ``kto-messages``, ...)."""
    notes: list[str] = field(default_factory=list)
    """Things accepted but worth knowing (a byte-order mark, CRLF line ends, blank lines)."""

    @property
    def pairs(self) -> int:
        return sum(1 for ex in self.examples if ex.kind == PAIRED)

    @property
    def good(self) -> int:
        return sum(1 for ex in self.examples if ex.kind == UNPAIRED and ex.label)

    @property
    def bad(self) -> int:
        return sum(1 for ex in self.examples if ex.kind == UNPAIRED and not ex.label)


def _format_of(examples: list[PreferenceExample]) -> str:
    kinds = {ex.kind for ex in examples}
    if not kinds:
        return "none"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _load_source(source: Source, options: DataOptions) -> PreferenceLoad:
    stats = ReadStats()
    examples: list[PreferenceExample] = []
    problems: list[Problem] = []
    forms: dict[str, int] = {}
    columns = options.column_map
    for item in read_source(source, stats):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        try:
            form, ex = parse_preference_record(item.obj, columns=columns, clean=options.clean,
                                               system_prompt=options.system_prompt)
        except RecordError as exc:
            problems.append(Problem(item.path, item.line, str(exc), exc.kind, row=item.row))
            continue
        ex.path, ex.line, ex.row = item.path, item.line, item.row
        forms[form] = forms.get(form, 0) + 1
        examples.append(ex)
    return PreferenceLoad(examples=examples, problems=problems, format=_format_of(examples), path=source.label,
                          lines=stats.lines, forms=forms, notes=list(stats.notes))


def load_preference_examples(spec: str, options: DataOptions) -> PreferenceLoad:
    """Read a whole source as preference data; every bad record becomes a Problem, loading
    goes on. Raises CockpitError only for failures of the whole source (missing, empty, binary)."""
    source = resolve_source(str(spec), split=options.split, subset=options.subset)
    return _load_source(source, options)


def is_preference_source(spec: str, options: DataOptions | None = None, sample: int = 20) -> bool:
    """Whether most of the first ``sample`` records are preference records (what ``data check``
    decides its report on). False for a source that cannot be read: the supervised check
    then says why."""
    options = options or DataOptions()
    seen = hits = 0
    try:
        source = resolve_source(str(spec), split=options.split, subset=options.subset)
        with contextlib.closing(read_source(source, ReadStats())) as items:
            for item in items:
                if isinstance(item, Problem):
                    continue
                seen += 1
                obj = item.obj
                if isinstance(obj, dict):
                    hits += is_preference_record(apply_columns(obj, options.column_map))
                if seen >= sample:
                    break
    except CockpitError:
        return False
    return seen > 0 and hits * 2 > seen


# ---------------------------------------------------------------- checking (no tokenizer)


def _stage(cfg: Any) -> str:
    return getattr(cfg, "stage", "dpo")


def _checked(key: str, source: Source, options: DataOptions, stage: str) -> PreferenceLoad:
    """The source's examples, or the one-line CockpitError a run shows for them."""
    load = _load_source(source, options)
    plain = [p for p in load.problems if p.kind == NOT_PREFERENCE]
    if not load.examples and plain:
        wanted = "pairs of a chosen and a rejected answer" if stage in PAIR_STAGES else \
            "answers labelled good or bad (or pairs)"
        raise CockpitError(f"{key} {load.path} has no preference pairs ({plain[0].where}: no 'chosen'/'rejected' "
                           f"or 'label'): stage={stage} trains on {wanted}",
                           f"accepted: {ACCEPTED}; plain examples train with stage=sft")
    if load.problems:
        problems = sorted(load.problems, key=lambda p: (p.path, p.line or p.row or 0))
        raise strict_error(problems, source.spec)
    if not load.examples:
        raise CockpitError(f"{key} {load.path} has no examples", "add preference pairs to it")
    if stage in PAIR_STAGES:
        unpaired = [ex for ex in load.examples if ex.kind == UNPAIRED]
        if unpaired and len(unpaired) == len(load.examples):
            raise CockpitError(f"stage={stage} needs pairs (chosen and rejected); {load.path} holds answers "
                               "labelled good/bad", "use stage=kto, or pair them")
        if unpaired:
            raise CockpitError(f"stage={stage} needs pairs (chosen and rejected); {load.path} holds "
                               f"{plural(len(unpaired), 'answer')} labelled good/bad among its pairs (the first "
                               f"at {unpaired[0].where})", "use stage=kto (it takes the pairs too), or pair them")
    return load


def _sources(cfg: Any) -> tuple[Source, Source | None]:
    from cockpit.data.prepare import resolve_sources

    return resolve_sources(cfg)


def check_preference_records(cfg: Any) -> None:
    """Every record of ``cfg.data`` (and ``cfg.eval_data``) is a valid preference record the
    stage can train on; CockpitError (one line) otherwise. No tokenizer needed."""
    options = DataOptions.from_config(cfg)
    train, evaluation = _sources(cfg)
    _checked("data", train, options, _stage(cfg))
    if evaluation is not None:
        _checked("eval_data", evaluation, options.for_eval(), _stage(cfg))


# ---------------------------------------------------------------- tokens


def answer_token_ids(ex: PreferenceExample, tokenizer: Any) -> tuple[list[int], list[list[int]]]:
    """``(prompt ids, [ids of each answer])`` as the chat template renders them: the prompt
    with the generation prompt, each answer the full conversation's ids after the prompt's
    (so its end-of-turn tokens belong to the answer). Without a template: the plain prompt
    format, each answer's text and EOS. CockpitError when the template rejects the conversation."""
    from cockpit.data.tokenize import _encode, _render, has_chat_template, prompt_token_ids

    prompt_ids = prompt_token_ids(tokenizer, ex.prompt)
    answers = []
    for text in ex.answers():
        if has_chat_template(tokenizer):
            full = _encode(tokenizer, _render(tokenizer, [*ex.prompt, {"role": "assistant", "content": text}],
                                              gen_prompt=False))
            same = full[:len(prompt_ids)] == prompt_ids
            answers.append(full[len(prompt_ids):] if same else _encode(tokenizer, text))
        else:  # the plain prompt format: the answer and EOS follow the prompt's text
            eos = getattr(tokenizer, "eos_token_id", None)
            answers.append(_encode(tokenizer, text) + ([eos] if eos is not None else []))
    return prompt_ids, answers


def example_tokens(ex: PreferenceExample, tokenizer: Any) -> tuple[int, list[int]]:
    """``(prompt tokens, [tokens of each answer])``: the lengths of :func:`answer_token_ids`."""
    prompt_ids, answers = answer_token_ids(ex, tokenizer)
    return len(prompt_ids), [len(a) for a in answers]


# ---------------------------------------------------------------- for a run


@dataclass
class PreferenceStats:
    """What loading the preference data found (``examples`` count what is trained: a pair for
    DPO/ORPO, one answer for KTO, so a pair given to KTO counts twice)."""

    format: str
    """``pairs`` (dpo, orpo) or ``unpaired`` (kto): what the datasets hold."""
    examples: int
    train_examples: int
    eval_examples: int
    truncated: int
    """Training examples whose prompt and (longer) answer exceed max_length tokens."""
    prompt_tokens: int
    answer_tokens: int
    """Totals over the training split, per sequence (a pair is two sequences: the prompt
    counts twice); the learned share is answer / (prompt + answer)."""
    probes: list[str]

    @property
    def learned_share(self) -> float | None:
        total = self.prompt_tokens + self.answer_tokens
        return self.answer_tokens / total if total else None


@dataclass
class PreferenceData:
    """The datasets a preference run trains and evaluates on (``datasets.Dataset``, TRL's
    conversational form)."""

    train: Any
    eval: Any | None
    stats: PreferenceStats

    @property
    def probes(self) -> list[str]:
        return self.stats.probes


def to_unpaired(examples: list[PreferenceExample]) -> list[PreferenceExample]:
    """Each pair as two labelled answers (chosen: good, rejected: bad); answers stay as they are."""
    out = []
    for ex in examples:
        if ex.kind == UNPAIRED:
            out.append(ex)
            continue
        for text, label in ((ex.chosen, True), (ex.rejected, False)):
            out.append(PreferenceExample(prompt=ex.prompt, completion=text, label=label, path=ex.path,
                                         line=ex.line, row=ex.row))
    return out


def _rows(examples: list[PreferenceExample], unpaired: bool) -> list[dict]:
    def message(text: str | None) -> list[dict]:
        return [{"role": "assistant", "content": text or ""}]

    if unpaired:
        return [{"prompt": [dict(m) for m in ex.prompt], "completion": message(ex.completion),
                 "label": bool(ex.label)} for ex in examples]
    return [{"prompt": [dict(m) for m in ex.prompt], "chosen": message(ex.chosen), "rejected": message(ex.rejected)}
            for ex in examples]


def _dataset(examples: list[PreferenceExample], unpaired: bool):
    from datasets import Dataset

    return Dataset.from_list(_rows(examples, unpaired))


def _probes(cfg: Any, train: list[PreferenceExample], evaluation: list[PreferenceExample]) -> list[str]:
    given = list(getattr(cfg, "sample_prompts", None) or [])
    if given:
        return given
    count = getattr(cfg, "sample_count", 3)
    for pool in (evaluation, train):
        out: list[str] = []
        for ex in pool:
            text = ex.prompt_text()
            if text and text not in out:
                out.append(text)
            if len(out) >= count:
                break
        if out:
            return out
    return []


def preference_splits(cfg: Any, stage: str | None = None) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """``(train, held out)`` examples of a run's config, checked for ``stage`` (default the
    config's): eval is ``cfg.eval_data``, else ``cfg.eval_split`` of the data held out by prompt."""
    stage = stage or _stage(cfg)
    options = DataOptions.from_config(cfg)
    train_source, eval_source = _sources(cfg)
    loaded = _checked("data", train_source, options, stage).examples
    if eval_source is not None:
        return loaded, _checked("eval_data", eval_source, options.for_eval(), stage).examples
    kept, held = split_indices([ex.prompt_key() for ex in loaded], cfg.eval_split, cfg.seed)
    return [loaded[i] for i in kept], [loaded[i] for i in held]


def checked_pairs(spec: str, options: DataOptions | None = None, key: str = "--data") -> list[PreferenceExample]:
    """Every example of ``spec`` as pairs (what preference evaluation scores); CockpitError otherwise."""
    options = options or DataOptions()
    source = resolve_source(str(spec), split=options.split, subset=options.subset)
    return _checked(key, source, options, "dpo").examples


def load_preference_data(cfg: Any, tokenizer: Any) -> PreferenceData:
    """The run's train (and eval) datasets for its stage, checked as :func:`check_preference_records`
    checks them; eval is ``cfg.eval_data``, else ``cfg.eval_split`` of the data held out by prompt."""
    stage = _stage(cfg)
    train, evaluation = preference_splits(cfg, stage)
    unpaired = stage not in PAIR_STAGES
    if unpaired:
        train, evaluation = to_unpaired(train), to_unpaired(evaluation)
    truncated = prompt_tokens = answer_tokens = 0
    for ex in train:
        try:
            prompt_n, answers = example_tokens(ex, tokenizer)
        except CockpitError as exc:
            raise CockpitError(f"{ex.where}: {exc.message}", exc.advice) from exc
        truncated += prompt_n + max(answers) > cfg.max_length
        prompt_tokens += prompt_n * len(answers)
        answer_tokens += sum(answers)
    stats = PreferenceStats(format=UNPAIRED if unpaired else PAIRED, examples=len(train) + len(evaluation),
                            train_examples=len(train), eval_examples=len(evaluation), truncated=truncated,
                            prompt_tokens=prompt_tokens, answer_tokens=answer_tokens,
                            probes=_probes(cfg, train, evaluation))
    return PreferenceData(train=_dataset(train, unpaired),
                          eval=_dataset(evaluation, unpaired) if evaluation else None, stats=stats)


def stage_advice(fmt: str) -> str:
    """Which stage trains data of this format (for the report)."""
    return {PAIRED: "stage=dpo (or stage=kto: each pair becomes a good and a bad answer)",
            UNPAIRED: "stage=kto (stage=dpo needs pairs)",
            "mixed": "stage=kto (its pairs become a good and a bad answer each; stage=dpo needs pairs only)"
            }.get(fmt, "")
