"""Checkers for chapter 3 (explaining the teacher).

* :func:`check_integrated_gradients` — ``integrated_gradients(grad_f, x, baseline, n_steps)``: IG of a
  function of a vector with the midpoint Riemann rule,
  ``(x − x') ⊙ (1/m) Σ_k ∇f(x' + (k − ½)/m · (x − x'))``.
* :func:`check_merge_pieces` — ``merge_pieces(text, offsets, special, token_scores)``: word-piece scores
  → one score per word of ``text.split()`` (mean of the pieces that start inside the word; special
  tokens dropped; 0.0 for a word without pieces), using the tokenizer's character offsets.
* :func:`check_feature_agreement` — ``feature_agreement(a, b, k)``: |top_k(a) ∩ top_k(b)| / k, top-k by
  absolute value, k capped at the sentence length.
* :func:`check_occlusion_scores` — ``occlusion_scores(predict_proba, text)``: for each word of
  ``text.split()``, how much the probability of the class predicted for ``text`` falls when that one word
  (by position) is deleted (:mod:`dixtill_lib.occlusion`, raw scores).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import ExerciseFailure, correct, expect_close
from ..agreement import feature_agreement_at_k
from ..explain import merge_to_words, piece_to_word
from ..occlusion import word_drops

# ---------------------------------------------------------------- 1. IG by hand


def reference_integrated_gradients(grad_f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                                   baseline: np.ndarray, n_steps: int = 50) -> np.ndarray:
    x, baseline = np.asarray(x, float), np.asarray(baseline, float)
    alphas = (np.arange(n_steps) + 0.5) / n_steps
    grads = np.mean([grad_f(baseline + a * (x - baseline)) for a in alphas], axis=0)
    return (x - baseline) * grads


def _toy():
    """f(x) = sigmoid(w·x) with its gradient: a one-neuron 'classifier'."""
    w = np.array([2.0, -1.0, 0.5, 0.0])

    def f(x):
        return 1.0 / (1.0 + np.exp(-(w @ x)))

    def grad_f(x):
        s = f(x)
        return s * (1 - s) * w

    return f, grad_f


def check_integrated_gradients(integrated_gradients: Callable[..., np.ndarray]) -> str:
    f, grad_f = _toy()
    cases = [(np.array([1.0, 1.0, 1.0, 1.0]), np.zeros(4), 50),
             (np.array([0.5, -2.0, 3.0, 1.0]), np.zeros(4), 20),
             (np.array([1.0, 2.0, 0.0, -1.0]), np.array([0.5, 0.5, 0.5, 0.5]), 100)]
    for x, base, m in cases:
        on = f"x={x.tolist()}, baseline={base.tolist()}, n_steps={m}"
        got = integrated_gradients(grad_f, x.copy(), base.copy(), m)
        if got is None:
            raise ExerciseFailure(f"Your function returned None: return the attribution vector (input: {on}).")
        got = np.asarray(got, dtype=float)
        if got.shape != x.shape:
            raise ExerciseFailure(f"Return one attribution per input feature: expected shape {x.shape}, got "
                                  f"{got.shape} (input: {on}).")
        want = reference_integrated_gradients(grad_f, x, base, m)
        grads_only = np.mean([grad_f(base + a * (x - base)) for a in (np.arange(m) + 0.5) / m], axis=0)
        if np.allclose(got, grads_only, atol=1e-6) and not np.allclose(want, grads_only, atol=1e-6):
            raise ExerciseFailure("You returned the average gradient only: IG multiplies it by (x − baseline), "
                                  f"feature by feature (input: {on}).")
        if np.allclose(got, x * grad_f(x), atol=1e-6) and not np.allclose(want, x * grad_f(x), atol=1e-6):
            raise ExerciseFailure("That is gradient × input at x only; IG averages the gradient along the "
                                  f"straight path from the baseline to x (input: {on}).")
        expect_close(got, want, "IG attributions", on, rtol=1e-3, atol=1e-4)
        gap = f(x) - f(base)
        if abs(got.sum() - gap) > 1e-3:
            raise ExerciseFailure(f"Completeness fails: attributions sum to {got.sum():.5f} but "
                                  f"f(x) − f(baseline) = {gap:.5f} (input: {on}).")
    return correct("Your attributions are also complete: they add up to f(x) − f(baseline) (convergence delta ≈ 0).")


# ---------------------------------------------------------------- 2. word pieces -> student words

def reference_merge_pieces(text: str, offsets, special, token_scores) -> np.ndarray:
    tw = piece_to_word(text, offsets, special)
    return merge_to_words(np.asarray(token_scores, float), tw, len(text.split())).astype(np.float64)


#: (text, tokens (for the message), offsets, special mask, scores) — BERT WordPiece output of real tweets.
MERGE_CASES = [
    ("$aapl up 3.5% !?",
     ["[CLS]", "$", "aa", "##pl", "up", "3", ".", "5", "%", "!", "?", "[SEP]"],
     [(0, 0), (0, 1), (1, 3), (3, 5), (6, 8), (9, 10), (10, 11), (11, 12), (12, 13), (14, 15), (15, 16), (0, 0)],
     [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
     [0.5, 0.3, 0.1, -0.1, 0.4, 0.2, 0.0, 0.2, 0.4, -0.2, -0.4, 0.6]),
    ("tesla shares fall",
     ["[CLS]", "tesla", "shares", "fall", "[SEP]"],
     [(0, 0), (0, 5), (6, 12), (13, 17), (0, 0)], [1, 0, 0, 0, 1],
     [0.9, 0.2, 0.1, -0.7, 0.9]),
    ("stocks rally today",  # truncated at max_length: "today" lost all its pieces
     ["[CLS]", "stocks", "rally", "[SEP]"],
     [(0, 0), (0, 6), (7, 12), (0, 0)], [1, 0, 0, 1],
     [0.1, 0.5, 0.6, 0.1]),
]


def check_merge_pieces(merge_pieces: Callable[..., np.ndarray]) -> str:
    for text, toks, off, sp, sc in MERGE_CASES:
        on = f"text={text!r}, tokens={toks}"
        got = merge_pieces(text, list(off), list(sp), np.array(sc))
        if got is None:
            raise ExerciseFailure(f"Your function returned None (input: {on}).")
        got = np.asarray(got, dtype=float).ravel()
        want = reference_merge_pieces(text, off, sp, sc)
        n_words = len(text.split())
        if got.size == n_words + 2:
            raise ExerciseFailure(f"Got {got.size} scores for {n_words} words: drop the special tokens "
                                  f"[CLS] and [SEP] (input: {on}).")
        n_pieces = int(len(sp) - np.sum(sp))
        if got.size == n_words - 1:
            raise ExerciseFailure(f"Got {got.size} scores for {n_words} words: a word whose pieces were all "
                                  f"truncated away still needs an entry (0.0) (input: {on}).")
        if got.size == n_pieces and n_pieces != n_words:
            raise ExerciseFailure(f"Got one score per word piece ({got.size}); merge the pieces of each word into "
                                  f"one score ({n_words} words) (input: {on}).")
        if got.size != n_words:
            raise ExerciseFailure(f"Return exactly one score per word of text.split() ({n_words}), got {got.size} "
                                  f"(input: {on}).")
        tw = piece_to_word(text, off, sp)
        summed = np.bincount(tw[tw >= 0], weights=np.asarray(sc)[tw >= 0], minlength=n_words)
        if np.allclose(got, summed) and not np.allclose(summed, want):
            raise ExerciseFailure(f"You summed the pieces; the authors take the *mean* of a word's pieces "
                                  f"(input: {on}).")
        expect_close(got, want, "word scores", on, rtol=1e-6, atol=1e-9)
    return correct("'$aapl' is one student word even though BERT sees '$' and 'aapl' as two words — offsets, "
                   "not '##', decide which word a piece belongs to.")


# ---------------------------------------------------------------- 3. feature agreement@k

def reference_feature_agreement(a, b, k: int) -> float:
    return feature_agreement_at_k(a, b, k)


AGREEMENT_CASES = [
    (np.array([0.9, -0.8, 0.1, 0.05, -0.5]), np.array([0.7, 0.1, 0.2, 0.0, 0.6]), 2),
    (np.array([0.9, -0.8, 0.1, 0.05, -0.5]), np.array([0.7, 0.1, 0.2, 0.0, 0.6]), 3),
    (np.array([-0.9, 0.2, 0.3, 0.1]), np.array([0.1, 0.2, 0.3, 0.8]), 1),
    (np.array([-0.9, 0.2, 0.3]), np.array([0.8, 0.1, 0.4]), 1),
    (np.array([0.3, 0.1, -0.2]), np.array([0.05, 0.4, 0.1]), 5),
]


def check_feature_agreement(feature_agreement: Callable[[np.ndarray, np.ndarray, int], float]) -> str:
    for a, b, k in AGREEMENT_CASES:
        on = f"a={a.tolist()}, b={b.tolist()}, k={k}"
        got = feature_agreement(a.copy(), b.copy(), k)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseFailure(f"Return a single number, got {got!r} (input: {on}).") from None
        want = reference_feature_agreement(a, b, k)
        signed = len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-b, kind="stable")[:k])) / min(k, a.size)
        if np.isclose(got, signed) and not np.isclose(signed, want):
            raise ExerciseFailure("You ranked by the signed score; Krishna et al. rank by |score| — a strongly "
                                  f"negative word is just as important (input: {on}).")
        if k > a.size and np.isclose(got, want * a.size / k):
            raise ExerciseFailure(f"The sentence has only {a.size} words, so k is capped at {a.size}: divide by "
                                  f"min(k, n), not by k (input: {on}).")
        expect_close(got, want, "feature agreement", on, rtol=1e-6)
    return correct("Feature agreement only asks *which* words are in both top-k sets, not in what order.")


# ---------------------------------------------------------------- 4. occlusion

def reference_occlusion_scores(predict_proba: Callable[[list[str]], np.ndarray], text: str) -> np.ndarray:
    num_labels = np.asarray(predict_proba([text])).shape[1]
    return word_drops(predict_proba, [text], num_labels)[0][0]


#: A bag-of-words "teacher": each word adds its weight vector to the logits of (bearish, bullish, neutral).
TOY_WEIGHTS = {"stocks": (0.0, 0.3, 0.2), "up": (-0.8, 1.2, 0.0), "today": (0.0, 0.0, 0.4),
               "profit": (-0.3, 0.9, 0.1), "warning": (1.6, -0.6, 0.0), "hits": (0.7, 0.0, 0.0),
               "shares": (0.1, 0.1, 0.3), "fed": (0.0, 0.0, 0.9), "holds": (0.1, 0.1, 0.8),
               "rates": (0.2, 0.0, 0.5), "steady": (-0.2, 0.3, 0.6)}
OCCLUSION_CASES = ["stocks up up today", "profit warning hits shares", "fed holds rates steady"]


def toy_predict_proba(texts: list[str]) -> np.ndarray:
    """Softmax of the summed word weights (unknown words add nothing) — one row per text."""
    z = np.array([np.sum([TOY_WEIGHTS.get(w, (0.0, 0.0, 0.0)) for w in t.split()] or [(0.0, 0.0, 0.0)], axis=0)
                  for t in texts])
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def check_occlusion_scores(occlusion_scores: Callable[[Callable, str], np.ndarray]) -> str:
    for text in OCCLUSION_CASES:
        on = f"text={text!r}"
        got = occlusion_scores(toy_predict_proba, text)
        if got is None:
            raise ExerciseFailure(f"Your function returned None (input: {on}).")
        got = np.asarray(got, dtype=float).ravel()
        words = text.split()
        if got.size != len(words):
            raise ExerciseFailure(f"Return one score per word of text.split() ({len(words)}), got {got.size} "
                                  f"(input: {on}).")
        want = reference_occlusion_scores(toy_predict_proba, text)
        full = toy_predict_proba([text])[0]
        t = int(full.argmax())
        deleted = toy_predict_proba([" ".join(words[:i] + words[i + 1:]) for i in range(len(words))])
        if np.allclose(got, -want) and not np.allclose(want, 0):
            raise ExerciseFailure("Your signs are flipped: a word that *supports* the prediction should score "
                                  f"positive, p(text) − p(text without the word) (input: {on}).")
        if np.allclose(got, deleted[:, t]):
            raise ExerciseFailure("You returned the probability *without* each word; the score is how much it "
                                  f"falls: p(text) − p(text without the word) (input: {on}).")
        every = toy_predict_proba([" ".join(x for x in words if x != w) for w in words])
        if np.allclose(got, full[t] - every[:, t]) and not np.allclose(every, deleted):
            raise ExerciseFailure("You deleted every copy of a repeated word (e.g. with str.replace); delete only "
                                  f"the word at that position (input: {on}).")
        for c in range(full.size):
            if c != t and np.allclose(got, full[c] - deleted[:, c]):
                raise ExerciseFailure(f"You explained class {c}; explain the class the model predicts for the "
                                      f"whole text ({t}) (input: {on}).")
        expect_close(got, want, "occlusion scores", on, rtol=1e-6, atol=1e-9)
    return correct("Each score is an exact 'what if this word were gone' — no gradients and no path, unlike IG.")
