"""Chapter 3 checkers accept the reference and reject typical wrong answers with a useful message."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.exercises import ExerciseFailure
from dixtill_lib.exercises.explain import (check_feature_agreement, check_integrated_gradients,
                                           check_merge_pieces, reference_feature_agreement,
                                           reference_integrated_gradients, reference_merge_pieces)


def test_integrated_gradients_checker():
    assert check_integrated_gradients(reference_integrated_gradients).startswith("Correct")

    def avg_grad(grad_f, x, b, m):
        return np.mean([grad_f(b + (k + 0.5) / m * (x - b)) for k in range(m)], axis=0)

    with pytest.raises(ExerciseFailure, match="average gradient only"):
        check_integrated_gradients(avg_grad)
    with pytest.raises(ExerciseFailure, match="gradient × input"):
        check_integrated_gradients(lambda g, x, b, m: x * g(x))
    with pytest.raises(ExerciseFailure, match="None"):
        check_integrated_gradients(lambda g, x, b, m: None)
    with pytest.raises(ExerciseFailure, match="shape"):
        check_integrated_gradients(lambda g, x, b, m: float(((x - b) * g(x)).sum()))

    def left_rule_2_steps(g, x, b, m):  # too coarse: close but not equal to the midpoint rule
        return (x - b) * np.mean([g(b + k / 2 * (x - b)) for k in range(2)], axis=0)

    with pytest.raises(ExerciseFailure, match="IG attributions"):
        check_integrated_gradients(left_rule_2_steps)


def test_merge_pieces_checker(tweets):
    assert check_merge_pieces(reference_merge_pieces).startswith("Correct")

    def no_drop(text, off, sp, sc):  # [CLS] and [SEP] kept as words
        return np.concatenate([[sc[0]], reference_merge_pieces(text, off, sp, sc), [sc[-1]]])

    def summed(text, off, sp, sc):
        from dixtill_lib.explain import piece_to_word

        tw = piece_to_word(text, off, sp)
        return np.bincount(tw[tw >= 0], weights=np.asarray(sc)[tw >= 0], minlength=len(text.split()))

    def per_piece(text, off, sp, sc):  # one score per word piece instead of per word
        return np.array([v for v, s in zip(sc, sp) if not s])

    def drop_missing(text, off, sp, sc):
        full = reference_merge_pieces(text, off, sp, sc)
        return full[:-1] if text.startswith("stocks") else full

    with pytest.raises(ExerciseFailure, match="special tokens"):
        check_merge_pieces(no_drop)
    with pytest.raises(ExerciseFailure, match="mean"):
        check_merge_pieces(summed)
    with pytest.raises(ExerciseFailure, match="one score per word piece"):
        check_merge_pieces(per_piece)
    with pytest.raises(ExerciseFailure, match="truncated"):
        check_merge_pieces(drop_missing)


def test_feature_agreement_checker():
    assert check_feature_agreement(reference_feature_agreement).startswith("Correct")

    def signed(a, b, k):
        k = min(k, len(a))
        return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k

    def uncapped(a, b, k):
        kk = min(k, len(a))
        return len(set(np.argsort(-np.abs(a))[:kk]) & set(np.argsort(-np.abs(b))[:kk])) / k

    with pytest.raises(ExerciseFailure, match="signed"):
        check_feature_agreement(signed)
    with pytest.raises(ExerciseFailure, match="capped"):
        check_feature_agreement(uncapped)
    with pytest.raises(ExerciseFailure, match="single number"):
        check_feature_agreement(lambda a, b, k: [1.0, 2.0])


def test_occlusion_checker():
    from dixtill_lib.exercises.explain import check_occlusion_scores, reference_occlusion_scores, toy_predict_proba

    assert check_occlusion_scores(reference_occlusion_scores).startswith("Correct")
    p = toy_predict_proba(["stocks up up today"])[0]
    assert p.argmax() == 1  # bullish: "up" is the strongest word, and it is there twice

    def flipped(pp, text):
        return -reference_occlusion_scores(pp, text)

    def prob_without(pp, text):
        w = text.split()
        t = int(pp([text])[0].argmax())
        return pp([" ".join(w[:i] + w[i + 1:]) for i in range(len(w))])[:, t]

    def every_copy(pp, text):
        w = text.split()
        t = int(pp([text])[0].argmax())
        return pp([text])[0, t] - pp([" ".join(x for x in w if x != v) for v in w])[:, t]

    def class_zero(pp, text):
        w = text.split()
        return pp([text])[0, 0] - pp([" ".join(w[:i] + w[i + 1:]) for i in range(len(w))])[:, 0]

    for wrong, msg in ((flipped, "signs are flipped"), (prob_without, "probability \\*without\\*"),
                       (every_copy, "every copy"), (class_zero, "explained class 0"),
                       (lambda pp, t: None, "None"), (lambda pp, t: [0.0], "one score per word")):
        with pytest.raises(ExerciseFailure, match=msg):
            check_occlusion_scores(wrong)
