"""The tiny model: ≈1 % of the teacher's parameters, learns its k-shot data, honours soft targets."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.retrikt.experiment import _select_mixture, dev_split, RetriKTConfig
from dixtill_lib.retrikt.tiny import TinyClassifier, TinyConfig, TinyVocab, params_budget, train_tiny

MINILM_PARAMS = 22_714_371     # all-MiniLM-L6-v2 + a 3-class head (the default teacher)


@pytest.fixture(scope="module")
def glove():
    rng = np.random.default_rng(0)
    words = ["the", "stock", "up", "down", "bullish", "bearish", "market", "report", "shares", "fall", "rise"]
    words += [f"w{i}" for i in range(6000)]
    return {w: i for i, w in enumerate(words)}, rng.normal(size=(len(words), 50)).astype(np.float32)


def test_param_budget_is_one_percent(glove):
    v = params_budget(MINILM_PARAMS, 0.01, 50, 64, 3)
    model = TinyClassifier(TinyVocab(["the stock"], glove[0], v), glove[1], 3, hidden=64)
    ratio = model.num_parameters() / MINILM_PARAMS
    assert 0.0095 <= ratio <= 0.0100, ratio
    assert len(model.vocab) == v + 2


def test_vocab_puts_task_words_first(glove):
    vocab = TinyVocab(["bullish bullish market", "unknownword market"], glove[0], 5)
    assert vocab.words[:2] == ["bullish", "market"] and len(vocab.words) == 5
    ids = vocab.encode(["bullish unknownword", "market"])
    assert ids.tolist() == [[2, 1], [3, 0]]          # <unk> = 1, <pad> = 0


def test_tiny_fits_kshot_and_follows_soft_targets(glove):
    texts = ["stock up rise bullish", "shares rise up", "bullish market rise",
             "stock down fall bearish", "shares fall down", "bearish market fall"]
    y = np.array([1, 1, 1, 0, 0, 0])
    vocab = TinyVocab(texts, glove[0], 50)
    cfg = TinyConfig(epochs=100, dropout=0.0)
    model = train_tiny(texts, np.eye(2)[y], np.ones(6), vocab, glove[1], 2, cfg)
    assert (model.predict_proba(texts).argmax(1) == y).all()
    soft = np.tile([0.7, 0.3], (6, 1))                 # constant soft target → predictions near it
    model = train_tiny(texts, soft, np.ones(6), vocab, glove[1], 2, TinyConfig(epochs=200, dropout=0.0,
                                                                              weight_decay=0.0))
    assert model.predict_proba(texts)[:, 0] == pytest.approx(np.full(6, 0.7), abs=0.05)
    e = model.embed(texts)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_dev_split_is_disjoint(tweets):
    kshot, dev = dev_split(tweets, 3, seed=1)
    assert len(kshot) == len(dev) == 9
    assert not set(kshot.texts) & set(dev.texts)
    assert np.bincount(dev.labels).tolist() == [3, 3, 3]


def test_select_mixture_prefers_the_better_source():
    y = np.array([0, 1, 0, 1])
    p_tiny = np.array([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])     # always wrong
    sims = np.ones((4, 2))
    soft = np.stack([np.eye(2)[y], np.eye(2)[y]], 1)                     # neighbours always right
    cfg = RetriKTConfig(neighbours=(1, 2), temperatures=(0.1,), lambdas=(0.0, 0.5, 1.0))
    lam, T, kn, score = _select_mixture(p_tiny, sims, soft, y, cfg)
    assert lam == 0.5 and score == 1.0          # first λ that reaches the best dev score
