"""Text metrics for evaluation, offline.

ROUGE and BLEU are the reference implementations that Hugging Face ``evaluate`` wraps, called
directly (``evaluate.load`` would want the network), so our numbers are the ones other papers
and tools report for the same texts:

- ``rouge`` = ``rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])`` with
  its defaults (as ``evaluate``'s "rouge" uses them): its tokenizer lowercases, turns every
  character other than a-z and 0-9 into a space (``wv.drizzle(250ml,`` becomes
  ``wv drizzle 250ml``), no stemming. We report the F1 (``fmeasure``) of each; a text with no
  a-z/0-9 token scores 0 (also against itself: the library's convention).
- ``bleu`` = ``sacrebleu.sentence_bleu(pred, [ref])`` with its defaults: the standard ``13a``
  tokenizer, case-sensitive, ``exp`` smoothing, effective order. sacrebleu reports 0-100; we
  report **0-1** (its score / 100, clamped to [0, 1] against float rounding such as
  100.00000000000004), like every other metric here, in ``eval.json`` and the README.

Ours (no reference implementation fits; the formulas, P = pred tokens, R = reference tokens,
where tokens come from :func:`tokenize_words`: lowercase, split on whitespace, punctuation
stripped from both edges of each token, empty tokens dropped):

- ``exact_match`` = 1 if normalize(pred) == normalize(ref) else 0.
- ``token_jaccard`` = |set(P) & set(R)| / |set(P) | set(R)| (Jaccard 1901); two empty
  texts score 1.
- ``fact_recall`` = share of ``must_include`` strings found in pred as case-insensitive
  substrings (on the raw text, not the tokens, so ``wv.drizzle(`` and ``E-DRZ-12`` match
  exactly); None when the list is empty.
- ``perplexity`` = exp(mean token cross-entropy in nats); inf when that overflows.

Every score lies in [0, 1] except :func:`perplexity`.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Iterable, Mapping

_EDGE_PUNCTUATION = string.punctuation + "\u2018\u2019\u201c\u201d\u2026"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def normalize(text: str) -> str:
    """Lowercase, strip punctuation at both edges of each token, collapse whitespace."""
    return " ".join(tokenize_words(text))


def tokenize_words(text: str) -> list[str]:
    """The word tokens of exact match and token Jaccard (see the module docstring)."""
    tokens = (raw.strip(_EDGE_PUNCTUATION) for raw in text.lower().split())
    return [token for token in tokens if token]


def exact_match(pred: str, ref: str) -> float:
    """1.0 when pred and ref are equal after :func:`normalize`, else 0.0."""
    return 1.0 if normalize(pred) == normalize(ref) else 0.0


def token_jaccard(pred: str, ref: str) -> float:
    """Jaccard similarity of the two sets of word tokens; 1.0 for two empty texts."""
    p, r = set(tokenize_words(pred)), set(tokenize_words(ref))
    if not p and not r:
        return 1.0
    return len(p & r) / len(p | r)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES))


def rouge(pred: str, ref: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of pred against ref, from ``rouge_score``."""
    scores = _rouge_scorer().score(ref, pred)  # the library's order: (target, prediction)
    return {kind: float(scores[kind].fmeasure) for kind in ROUGE_TYPES}


def bleu(pred: str, ref: str) -> float:
    """sacrebleu's sentence BLEU of pred against one reference, on a 0-1 scale."""
    import sacrebleu

    score = sacrebleu.sentence_bleu(pred, [ref]).score / 100.0
    return min(1.0, max(0.0, score))


def fact_recall(pred: str, must_include: Iterable[str]) -> float | None:
    """Share of ``must_include`` strings present in pred (case-insensitive substrings).

    None when there is nothing to check, so :func:`aggregate` leaves the example out.
    """
    items = list(must_include)
    if not items:
        return None
    text = pred.casefold()
    return sum(1 for item in items if item.casefold() in text) / len(items)


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy loss in nats); ``inf`` when the result would overflow."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def text_scores(pred: str, ref: str, must_include: Iterable[str] = ()) -> dict[str, float | None]:
    """Every text metric for one example, as the flat dict eval reports and aggregates."""
    return {
        "exact_match": exact_match(pred, ref),
        "token_jaccard": token_jaccard(pred, ref),
        **{f"{kind}_f1": value for kind, value in rouge(pred, ref).items()},
        "bleu": bleu(pred, ref),
        "fact_recall": fact_recall(pred, must_include),
    }


def aggregate(rows: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """Mean of each metric over per-example dicts.

    None values are skipped (a mean over the examples that have the metric; None when none
    has it). Nested dicts, such as a :func:`rouge` result, are averaged key by key. Values that
    are neither numbers nor dicts (a prompt, an id) are ignored.
    """
    numbers: dict[str, list[float]] = {}
    nested: dict[str, list[Mapping[str, object]]] = {}
    order: list[str] = []
    for row in rows:
        for key, value in row.items():
            if isinstance(value, Mapping):
                nested.setdefault(key, []).append(value)
            elif value is None or isinstance(value, (int, float)):  # bools count as 0/1
                numbers.setdefault(key, [])
                if value is not None:
                    numbers[key].append(float(value))
            else:
                continue
            if key not in order:
                order.append(key)
    result: dict[str, object] = {}
    for key in order:
        if key in nested:
            result[key] = aggregate(nested[key])
        else:
            values = numbers[key]
            result[key] = sum(values) / len(values) if values else None
    return result
