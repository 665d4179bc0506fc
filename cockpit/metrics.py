"""Text metrics for evaluation, in pure Python (no network, no ``evaluate.load``).

All word-level metrics work on :func:`tokenize_words`: lowercase, split on whitespace, strip
punctuation from both edges of each token (so ``wv.drizzle(250ml,`` becomes
``wv.drizzle(250ml`` and ``end.`` becomes ``end``), drop tokens that become empty. No stemming
and no stop-word removal. Every score lies in [0, 1] except :func:`perplexity`.

Formulas (P = pred tokens, R = reference tokens):

- ``exact_match`` = 1 if normalize(pred) == normalize(ref) else 0.
- ``token_jaccard`` = |set(P) & set(R)| / |set(P) | set(R)| (Jaccard 1901); two empty
  texts score 1.
- ``rouge_n`` (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"):
  overlap = sum over n-grams g of min(count_P(g), count_R(g)) (clipped counts);
  precision = overlap / #n-grams(P), recall = overlap / #n-grams(R),
  f1 = 2PR / (P + R). A side with no n-grams gives 0 for the ratio it divides; when *neither*
  side has an n-gram (both shorter than n) the texts are compared whole: 1 if their normalized
  forms are equal (e.g. both empty), else 0.
- ``rouge_l`` (Lin 2004, section 3): L = length of the longest common subsequence of P and R;
  precision = L / |P|, recall = L / |R|, f1 = 2PR / (P + R) (beta = 1, as the
  ``rouge_score`` package reports it). Both empty: 1.
- ``bleu`` (Papineni et al. 2002, "BLEU: a Method for Automatic Evaluation of Machine
  Translation"), one sentence against one reference:
  p_n = clipped n-gram matches / n-grams in P for n = 1..max_n;
  BP = 1 if |P| > |R| else exp(1 - |R| / |P|);
  BLEU = BP * exp(sum_n log(p_n) / max_n).
  Smoothing (``smooth=True``): add one to both the match count and the n-gram count for
  n > 1, p_n = (m_n + 1) / (c_n + 1), as in Lin & Och 2004 ("ORANGE: a Method for Evaluating
  Automatic Evaluation Metrics for Machine Translation"). Without it a short answer that
  misses any 4-gram scores 0, which says little on one sentence. Unigram precision is never
  smoothed, so an answer sharing no word with the reference scores 0. ``smooth=False`` is
  plain BLEU: any p_n = 0 (including an order with no n-grams in P) gives 0. Empty pred scores
  0, unless the reference is empty too (identical texts: 1).
- ``fact_recall`` = share of ``must_include`` strings found in pred as case-insensitive
  substrings (on the raw text, not the tokens, so ``wv.drizzle(`` and ``E-DRZ-12`` match
  exactly); None when the list is empty.
- ``perplexity`` = exp(mean token cross-entropy in nats); inf when that overflows.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

_EDGE_PUNCTUATION = string.punctuation + "\u2018\u2019\u201c\u201d\u2026"


def normalize(text: str) -> str:
    """Lowercase, strip punctuation at both edges of each token, collapse whitespace."""
    return " ".join(tokenize_words(text))


def tokenize_words(text: str) -> list[str]:
    """The word tokens every metric compares (see the module docstring)."""
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


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _prf(overlap: int, n_pred: int, n_ref: int) -> dict[str, float]:
    precision = overlap / n_pred if n_pred else 0.0
    recall = overlap / n_ref if n_ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _vacuous(pred_tokens: list[str], ref_tokens: list[str]) -> dict[str, float]:
    same = 1.0 if pred_tokens == ref_tokens else 0.0
    return {"precision": same, "recall": same, "f1": same}


def rouge_n(pred: str, ref: str, n: int = 1) -> dict[str, float]:
    """ROUGE-N precision, recall and F1 from clipped n-gram overlap."""
    if n < 1:
        raise ValueError(f"rouge_n needs n >= 1, got {n}")
    p_tokens, r_tokens = tokenize_words(pred), tokenize_words(ref)
    p_grams, r_grams = _ngrams(p_tokens, n), _ngrams(r_tokens, n)
    n_pred, n_ref = sum(p_grams.values()), sum(r_grams.values())
    if not n_pred and not n_ref:
        return _vacuous(p_tokens, r_tokens)
    overlap = sum((p_grams & r_grams).values())  # Counter & keeps min counts: clipping
    return _prf(overlap, n_pred, n_ref)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b, 1):
            if item == other:
                current.append(previous[j - 1] + 1)
            else:
                current.append(max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(pred: str, ref: str) -> dict[str, float]:
    """ROUGE-L precision, recall and F1 from the longest common subsequence of tokens."""
    p_tokens, r_tokens = tokenize_words(pred), tokenize_words(ref)
    if not p_tokens and not r_tokens:
        return _vacuous(p_tokens, r_tokens)
    return _prf(lcs_length(p_tokens, r_tokens), len(p_tokens), len(r_tokens))


def bleu(pred: str, ref: str, max_n: int = 4, smooth: bool = True) -> float:
    """Sentence BLEU of pred against one reference, with brevity penalty.

    ``smooth`` adds one to matches and totals for orders n > 1 (Lin & Och 2004).
    """
    if max_n < 1:
        raise ValueError(f"bleu needs max_n >= 1, got {max_n}")
    p_tokens, r_tokens = tokenize_words(pred), tokenize_words(ref)
    if not p_tokens:
        return 1.0 if not r_tokens else 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        p_grams, r_grams = _ngrams(p_tokens, n), _ngrams(r_tokens, n)
        matches, total = sum((p_grams & r_grams).values()), sum(p_grams.values())
        if smooth and n > 1:
            matches, total = matches + 1, total + 1
        if matches == 0:
            return 0.0
        log_sum += math.log(matches / total)
    c, r = len(p_tokens), len(r_tokens)
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_sum / max_n)


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
        "rouge1_f1": rouge_n(pred, ref, 1)["f1"],
        "rouge2_f1": rouge_n(pred, ref, 2)["f1"],
        "rougeL_f1": rouge_l(pred, ref)["f1"],
        "bleu": bleu(pred, ref),
        "fact_recall": fact_recall(pred, must_include),
    }


def aggregate(rows: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """Mean of each metric over per-example dicts.

    None values are skipped (a mean over the examples that have the metric; None when none
    has it). Nested dicts, such as a ``rouge_n`` result, are averaged key by key. Values that
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
