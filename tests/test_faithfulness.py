"""ERASER faithfulness on hand cases and on a toy model whose important word is known."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.faithfulness import (aopc, comprehensiveness, erasure_scores, random_scores, rationale,
                                      sufficiency)


def bullish_model(texts: list[str]) -> np.ndarray:
    """Class 1 (Bullish) with p=0.9 iff the word 'bullish' is present, else class 2 with p=0.8."""
    out = np.zeros((len(texts), 3))
    for i, t in enumerate(texts):
        out[i] = [0.05, 0.9, 0.05] if "bullish" in t.split() else [0.1, 0.1, 0.8]
    return out


TEXTS = ["analysts turn bullish on $aapl today", "very bullish", "stocks bullish after strong jobs report data"]


def _scores(texts, word="bullish", good=True):
    out = []
    for t in texts:
        w = t.split()
        s = np.linspace(0.1, 0.2, len(w))
        if good:
            s[w.index(word)] = 1.0
        else:
            s[w.index(word)] = -1.0
        out.append(s)
    return out


def test_rationale_sizes_and_ranking():
    s = np.array([0.1, -0.9, 0.5, 0.3, 0.0, 0.2, 0.05, 0.4, 0.6, 0.7])
    assert rationale(s, 0.1).tolist() == [9]
    assert rationale(s, 0.2).tolist() == [8, 9]
    assert rationale(s, 0.1, rank_by="abs").tolist() == [1]
    assert rationale(np.array([1.0, 2.0, 3.0]), 0.5).tolist() == [1, 2]  # ceil(1.5) = 2


def test_hand_computed_values():
    texts = ["very bullish"]
    s = [np.array([0.0, 1.0])]
    # delete 'bullish' (ceil(0.2*2)=1 word): p(class 1) 0.9 -> 0.1
    assert comprehensiveness(bullish_model, texts, s, 0.2)[0] == pytest.approx(0.8)
    # keep only 'bullish': still 0.9
    assert sufficiency(bullish_model, texts, s, 0.2)[0] == pytest.approx(0.0)
    s_bad = [np.array([1.0, 0.0])]
    assert comprehensiveness(bullish_model, texts, s_bad, 0.2)[0] == pytest.approx(0.0)
    assert sufficiency(bullish_model, texts, s_bad, 0.2)[0] == pytest.approx(0.8)


def test_right_explanation_beats_wrong_and_random():
    good = aopc(bullish_model, TEXTS, _scores(TEXTS, good=True))
    bad = aopc(bullish_model, TEXTS, _scores(TEXTS, good=False))
    rnd = aopc(bullish_model, TEXTS, random_scores(TEXTS, seed=0))
    assert good["comprehensiveness"] == pytest.approx(0.8) and good["sufficiency"] == pytest.approx(0.0)
    assert bad["comprehensiveness"] < 0.3 < good["comprehensiveness"]
    assert bad["sufficiency"] > good["sufficiency"]
    assert rnd["comprehensiveness"] <= good["comprehensiveness"]
    assert len(good["comprehensiveness_by_ratio"]) == 5 and good["comprehensiveness_per_text"].shape == (3,)


def test_one_word_text_comprehensiveness_is_nan_and_skipped():
    comp, suff, y = erasure_scores(bullish_model, ["bullish", "very bullish"], [np.array([1.0]),
                                                                              np.array([0.0, 1.0])], (0.5,))
    assert np.isnan(comp[0, 0]) and comp[1, 0] == pytest.approx(0.8)
    assert y.tolist() == [1, 1]
    res = aopc(bullish_model, ["bullish", "very bullish"], [np.array([1.0]), np.array([0.0, 1.0])], (0.5,))
    assert res["comprehensiveness"] == pytest.approx(0.8)


def test_works_with_the_hf_teacher(tiny, tweets):
    texts = tweets.texts[:6]
    res = aopc(lambda t: tiny.predict_proba(t, progress=False), texts, random_scores(texts))
    assert -1 <= res["comprehensiveness"] <= 1 and -1 <= res["sufficiency"] <= 1


def test_bad_input():
    with pytest.raises(ValueError, match="one per"):
        aopc(bullish_model, ["a b c"], [np.zeros(2)])
    with pytest.raises(ValueError, match="ratio"):
        rationale(np.zeros(3), 0.0)
