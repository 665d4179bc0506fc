"""cockpit.metrics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.metrics import (
    aggregate,
    bleu,
    exact_match,
    fact_recall,
    lcs_length,
    normalize,
    perplexity,
    rouge_l,
    rouge_n,
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


# ---------- ROUGE ----------


def test_rouge_1_symmetric_pair():
    # clipped unigram overlap: the min(2,2)=2 + cat 1 + on 1 + mat 1 = 5; 6 tokens each side
    scores = rouge_n(CAT, CAT_REF, 1)
    assert close(scores["precision"], 5 / 6)
    assert close(scores["recall"], 5 / 6)
    assert close(scores["f1"], 5 / 6)


def test_rouge_1_precision_and_recall_differ():
    # pred 3 tokens, ref 6, overlap 3: P = 3/3 = 1, R = 3/6 = 0.5, F1 = 2*1*0.5/1.5 = 2/3
    scores = rouge_n("the cat sat", CAT, 1)
    assert close(scores["precision"], 1.0)
    assert close(scores["recall"], 0.5)
    assert close(scores["f1"], 2 / 3)


def test_rouge_1_clips_repeated_tokens():
    # "the" x3 vs "the" x1: overlap min(3,1) = 1; P = 1/3, R = 1/2, F1 = 2*(1/6)/(5/6) = 0.4
    scores = rouge_n("the the the", "the cat", 1)
    assert close(scores["precision"], 1 / 3)
    assert close(scores["recall"], 1 / 2)
    assert close(scores["f1"], 0.4)


def test_rouge_2():
    # bigrams: 5 each side; shared: (the cat), (on the), (the mat) = 3 -> 3/5
    scores = rouge_n(CAT, CAT_REF, 2)
    assert close(scores["precision"], 3 / 5)
    assert close(scores["recall"], 3 / 5)
    assert close(scores["f1"], 3 / 5)


def test_rouge_n_edge_cases():
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    one = {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert rouge_n("a b c", "d e f", 1) == zero
    assert rouge_n("", "a b", 1) == zero
    assert rouge_n("a b", "", 1) == zero
    assert rouge_n("", "", 1) == one
    # both shorter than n: compared whole
    assert rouge_n("word", "word", 2) == one
    assert rouge_n("word", "other", 2) == zero
    # only pred has bigrams: P = 0/2 = 0, R undefined -> 0
    assert rouge_n("a b c", "a", 2) == zero
    with pytest.raises(ValueError):
        rouge_n("a", "a", 0)


def test_lcs_length():
    assert lcs_length("abcd", "acbde") == 3  # a-b-d or a-c-d
    assert lcs_length([], ["x"]) == 0
    assert lcs_length(list("abc"), list("abc")) == 3


def test_rouge_l():
    # LCS of CAT and CAT_REF: "the cat on the mat" = 5; P = R = F1 = 5/6
    assert close(rouge_l(CAT, CAT_REF)["f1"], 5 / 6)
    # "a b c d" vs "a c b d e": LCS 3; P = 3/4, R = 3/5, F1 = 2*0.45/1.35 = 2/3
    scores = rouge_l("a b c d", "a c b d e")
    assert close(scores["precision"], 3 / 4)
    assert close(scores["recall"], 3 / 5)
    assert close(scores["f1"], 2 / 3)
    assert rouge_l("", "")["f1"] == 1.0
    assert rouge_l("", "a")["f1"] == 0.0
    assert rouge_l("x y", "z")["f1"] == 0.0


# ---------- BLEU ----------


def test_bleu_smoothed_hand_computed():
    # p1 = 5/6 (clipped unigrams, as in ROUGE-1)
    # p2: 3 of 5 bigrams match -> add-one (3+1)/(5+1) = 4/6
    # p3: only "on the mat" of 4 trigrams -> (1+1)/(4+1) = 2/5
    # p4: none of 3 four-grams -> (0+1)/(3+1) = 1/4
    # product 5/6 * 4/6 * 2/5 * 1/4 = 40/720 = 1/18; BP = 1 (6 vs 6 tokens)
    assert close(bleu(CAT, CAT_REF), (1 / 18) ** 0.25)  # 0.48549...


def test_bleu_unsmoothed():
    # no four-gram matches -> p4 = 0 -> BLEU 0
    assert bleu(CAT, CAT_REF, smooth=False) == 0.0
    # max_n = 2: sqrt(5/6 * 3/5) = sqrt(1/2)
    assert close(bleu(CAT, CAT_REF, max_n=2, smooth=False), math.sqrt(0.5))
    assert bleu("a b c d e", "a b c d e", smooth=False) == 1.0
    # pred shorter than n: plain BLEU has p4 = 0/0 -> 0
    assert bleu("a b", "a b", smooth=False) == 0.0


def test_bleu_brevity_penalty():
    # c = 2, r = 6: BP = exp(1 - 6/2) = exp(-2); p1 = 2/2, p2 = (1+1)/(1+1), p3 = p4 = 1/1
    assert close(bleu("the cat", CAT), math.exp(-2))
    # longer pred: no penalty; max_n = 1 -> p1 = 6/7
    assert close(bleu(CAT + " today", CAT, max_n=1, smooth=False), 6 / 7)


def test_bleu_edge_cases():
    assert bleu("", "") == 1.0
    assert bleu("", "a b") == 0.0
    assert bleu("a b", "") == 0.0
    assert bleu("x y z", "a b c") == 0.0  # no shared word: p1 = 0, never smoothed
    assert bleu(CAT, CAT) == 1.0
    with pytest.raises(ValueError):
        bleu("a", "a", max_n=0)


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
    assert all(value == 1.0 for value in scores.values()), scores
    scores = text_scores("no idea", ref, [])
    assert scores["fact_recall"] is None
    assert scores["exact_match"] == 0.0 and scores["bleu"] == 0.0


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
    forward, backward = rouge_n(pred, ref, 1), rouge_n(ref, pred, 1)
    assert close(forward["precision"], backward["recall"])
    assert close(rouge_l(pred, ref)["f1"], rouge_l(ref, pred)["f1"])
    assert bleu(pred, ref, smooth=False) <= bleu(pred, ref) + 1e-12


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=40))
def test_identical_texts_score_one(text):
    scores = text_scores(text, text)
    assert scores.pop("fact_recall") is None
    assert all(value == 1.0 for value in scores.values()), scores
