"""cockpit.evaluation.metrics against values worked out by hand (the arithmetic is in the comments) and,
for ROUGE and BLEU, against the reference libraries themselves (rouge_score, sacrebleu)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.evaluation.metrics import (
    aggregate,
    bleu,
    exact_match,
    fact_recall,
    normalize,
    perplexity,
    rouge,
    text_scores,
    token_jaccard,
    tokenize_words,
)

CAT = "the cat sat on the mat"
CAT_REF = "the cat is on the mat"


def close(a, b):
    return a == pytest.approx(b, abs=1e-12)


# ---------- normalize / tokenize ----------


def test_normalize_lowercases_strips_edge_punctuation_and_collapses_space():
    assert normalize("  Hello,   World!\n ") == "hello world"
    # inner punctuation stays, edges go: "wv.drizzle(250ml," -> "wv.drizzle(250ml", "b1)" -> "b1"
    assert normalize("wv.drizzle(250ml, b1)") == "wv.drizzle(250ml b1"
    assert normalize("It's e.g. fine.") == "it's e.g fine"
    assert normalize("--- !! ...") == ""
    assert normalize("") == ""


def test_tokenize_words_drops_tokens_that_are_only_punctuation():
    assert tokenize_words("E-DRZ-12: swapped - fix it.") == ["e-drz-12", "swapped", "fix", "it"]


# ---------- exact match / jaccard ----------


def test_exact_match():
    assert exact_match("The cat.", "the   CAT") == 1.0
    assert exact_match("the cat", "the dog") == 0.0
    assert exact_match("", "") == 1.0
    assert exact_match("", "x") == 0.0


def test_token_jaccard():
    # sets {the,cat,sat,on,mat} and {the,cat,is,on,mat}: 4 shared of 6 distinct -> 4/6
    assert close(token_jaccard(CAT, CAT_REF), 4 / 6)
    assert token_jaccard("a b", "c d") == 0.0
    assert token_jaccard("same words", "Same words!") == 1.0
    assert token_jaccard("", "") == 1.0
    assert token_jaccard("", "x") == 0.0


# ---------- ROUGE (rouge_score) ----------

PAIRS = [  # (pred, ref): overlapping, disjoint, repeated words, DSL code, punctuation, case, empty
    (CAT, CAT_REF),
    ("the cat sat", CAT),
    ("the the the", "the cat"),
    ("a b c", "d e f"),
    ("Use wv.drizzle(250ml, b1) after wv.tank(b1).", "wv.drizzle(250ml, b1) waters bed b1"),
    ("Error E-DRZ-12: volume first.", "E-DRZ-12 means the volume comes before the bed."),
    ("THE CAT", "the cat"),
    ("", "a b"),
    ("a b", ""),
]


def test_rouge_equals_rouge_scorer_on_several_pairs():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for pred, ref in PAIRS:
        expected = scorer.score(ref, pred)  # the library takes (target, prediction)
        got = rouge(pred, ref)
        assert got == {k: pytest.approx(expected[k].fmeasure, abs=1e-12) for k in expected}, (pred, ref)
        assert text_scores(pred, ref)["rougeL_f1"] == got["rougeL"]


def test_rouge_known_values():
    # CAT vs CAT_REF: unigram overlap the x2 + cat + on + mat = 5 of 6 each side -> 5/6;
    # bigrams (the cat), (on the), (the mat) = 3 of 5 -> 3/5; LCS "the cat on the mat" = 5 -> 5/6
    scores = rouge(CAT, CAT_REF)
    assert close(scores["rouge1"], 5 / 6)
    assert close(scores["rouge2"], 3 / 5)
    assert close(scores["rougeL"], 5 / 6)
    # the library's tokenizer splits on every non-alphanumeric: "wv.tank(b1)" = wv tank b1,
    # 3 of the 4 reference tokens "wv tank b2 b1" -> P = 1, R = 3/4, F1 = 6/7
    assert close(rouge("wv.tank(b1)", "wv.tank(b2, b1)")["rouge1"], 6 / 7)
    # "the the the" vs "the cat": clipped overlap 1; P = 1/3, R = 1/2, F1 = 0.4
    assert close(rouge("the the the", "the cat")["rouge1"], 0.4)
    assert rouge("", "") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}  # the library's convention


# ---------- BLEU (sacrebleu, on a 0-1 scale) ----------


def test_bleu_equals_sacrebleu_over_100_on_several_pairs():
    import sacrebleu

    for pred, ref in PAIRS:
        expected = sacrebleu.sentence_bleu(pred, [ref]).score / 100
        assert close(bleu(pred, ref), min(1.0, expected)), (pred, ref)


def test_bleu_known_value_with_exp_smoothing():
    # 13a tokens of CAT / CAT_REF are the six words. p1 = 5/6, p2 = 3/5, p3 = 1/4 ("on the mat"
    # of 4 trigrams); p4: 0 of 3 four-grams, sacrebleu's exp smoothing makes it 1/(2 * 3);
    # BP = 1 (6 vs 6). BLEU = (5/6 * 3/5 * 1/4 * 1/6) ** (1/4) = (1/48) ** 0.25 = 0.37992...
    assert close(bleu(CAT, CAT_REF), (1 / 48) ** 0.25)


def test_bleu_scale_case_and_edges():
    assert bleu(CAT, CAT) == 1.0  # sacrebleu says 100.00000000000004: clamped
    assert bleu("x y z", "a b c") == 0.0
    assert bleu("", "a b") == 0.0
    assert bleu("THE CAT", "the cat") == 0.0  # case-sensitive, as sacrebleu's default
    # brevity: "the cat" against CAT: c = 2, r = 6, BP = exp(1 - 6/2); effective order 2:
    # p1 = 2/2, p2 = 1/1 -> BLEU = exp(-2)
    assert close(bleu("the cat", CAT), math.exp(-2))


# ---------- fact recall / perplexity ----------


def test_fact_recall():
    pred = "Use WV.DRIZZLE(250ml, b1) here."
    # "wv.drizzle(" present (case-insensitive), "E-DRZ-12" absent -> 1/2
    assert fact_recall(pred, ["wv.drizzle(", "E-DRZ-12"]) == 0.5
    assert fact_recall(pred, ["250ML, B1", "use"]) == 1.0
    assert fact_recall("", ["x"]) == 0.0
    assert fact_recall(pred, []) is None
    assert fact_recall(pred, iter(["b1"])) == 1.0


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert close(perplexity(math.log(20.0)), 20.0)
    assert close(perplexity(2.0), 7.38905609893065)  # e^2
    assert perplexity(1e6) == math.inf
    assert perplexity(math.inf) == math.inf


# ---------- aggregate / text_scores ----------


def test_aggregate_averages_and_skips_none():
    rows = [
        {"bleu": 1.0, "fact_recall": None, "rouge": {"f1": 0.5}, "ok": True},
        {"bleu": 0.0, "fact_recall": 0.5, "rouge": {"f1": 1.0}, "ok": False, "prompt": "x"},
        {"bleu": 0.5, "fact_recall": 1.0, "rouge": {"f1": 0.0}, "ok": True},
    ]
    # bleu (1 + 0 + 0.5)/3 = 0.5; fact_recall (0.5 + 1)/2 = 0.75; rouge f1 1.5/3 = 0.5; ok 2/3
    result = aggregate(rows)
    assert result == {"bleu": 0.5, "fact_recall": 0.75, "rouge": {"f1": 0.5}, "ok": 2 / 3}
    assert aggregate([{"fact_recall": None}, {"fact_recall": None}]) == {"fact_recall": None}
    assert aggregate([]) == {}


def test_text_scores_on_a_dsl_answer():
    ref = "Error E-DRZ-12: drizzle takes the volume before the bed. Corrected:\n"
    ref += "wv.drizzle(250ml, b1)"
    scores = text_scores(ref, ref, ["E-DRZ-12"])
    assert list(scores) == ["exact_match", "token_jaccard", "rouge1_f1", "rouge2_f1", "rougeL_f1", "bleu",
                            "fact_recall"]
    assert all(value == 1.0 for value in scores.values()), scores
    scores = text_scores("no idea", ref, [])
    assert scores["fact_recall"] is None
    assert scores["exact_match"] == 0.0 and scores["bleu"] == 0.0 and scores["rouge1_f1"] == 0.0


# ---------- properties ----------

VOCAB = ["wv.tank(", "b1", "the", "E-AT-02", "grove", "a", "a,", "."]  # small, so texts overlap
WORDS = st.lists(st.sampled_from(VOCAB), max_size=12)
TEXT = WORDS.map(" ".join)


@settings(max_examples=150, deadline=None)
@given(pred=TEXT, ref=TEXT)
def test_scores_lie_in_unit_interval_and_are_consistent(pred, ref):
    scores = text_scores(pred, ref, ["b1"])
    for name, value in scores.items():
        assert 0.0 <= value <= 1.0, (name, value)
    assert token_jaccard(pred, ref) == token_jaccard(ref, pred)
    forward, backward = rouge(pred, ref), rouge(ref, pred)  # F1 is symmetric
    assert all(close(forward[k], backward[k]) for k in forward)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=40))
def test_identical_texts_score_one(text):
    scores = text_scores(text, text)
    assert scores.pop("fact_recall") is None
    assert scores.pop("exact_match") == 1.0 and scores.pop("token_jaccard") == 1.0
    # rouge_score keeps a-z and 0-9 only; a text without them scores 0 even against itself
    has_rouge_tokens = any(c.isascii() and c.isalnum() for c in text.lower())
    assert scores.pop("rouge1_f1") == scores.pop("rougeL_f1") == (1.0 if has_rouge_tokens else 0.0)
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    # identical texts with at least one 13a token: BLEU 1 (none, e.g. only spaces: 0)
    assert scores.pop("bleu") == (1.0 if Tokenizer13a()(text.strip()).split() else 0.0), text
