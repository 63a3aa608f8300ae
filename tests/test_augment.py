"""The transfer set (Tang et al.'s augmentation): GloVe neighbours, the word rules, distinct seeded draws, the
teacher's labels, and training on it (never from held-out rows; no explanation term on its texts)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from dixtill_lib import augment as A
from dixtill_lib import distill as D
from dixtill_lib.student import StudentConfig, Vocab

pytestmark = pytest.mark.usefixtures("torch_one_thread")

WORDS = ("<PAD>", "<UNK>", "up", "rise", "down", "fall", "zzz")
VECTORS = np.array([[0, 0], [0, 0], [1, 0], [1, 0.2], [-1, 0.3], [-1, 0.1], [0, 0]], dtype=np.float32)


def test_glove_neighbours_nearest_first_and_skip_zero_rows():
    near = A.glove_neighbours(WORDS, VECTORS, k=2)
    assert set(near) == {"up", "rise", "down", "fall"}          # pad, <UNK> and the GloVe-less word have no vector
    assert near["up"] == ("rise", "down") and near["fall"] == ("down", "rise")
    assert all(w not in n for w, n in near.items())              # never itself
    # chunking does not change the answer
    assert A.glove_neighbours(WORDS, VECTORS, k=2, chunk=1) == near
    with pytest.raises(ValueError, match="7 words but 2 vectors"):
        A.glove_neighbours(WORDS, VECTORS[:2])


def test_augment_words_rules():
    words = "shares of acme rise after strong results".split()
    rng = np.random.default_rng(0)
    keep = A.AugmentConfig(p_drop=0.0, p_swap=0.0, p_ngram=0.0)
    assert A.augment_words(words, rng, keep, {}) == words
    assert A.augment_words(words, rng, A.AugmentConfig(p_drop=1.0, p_swap=0.0, p_ngram=0.0), {}) == []
    swapped = A.augment_words(words, rng, A.AugmentConfig(p_drop=0.0, p_swap=1.0, p_ngram=0.0), {"rise": ("fall",)})
    assert swapped == [w if w != "rise" else "fall" for w in words]  # words without neighbours stay
    for _ in range(50):
        gram = A.augment_words(words, rng, A.AugmentConfig(p_drop=0.0, p_swap=0.0, p_ngram=1.0, max_ngram=3), {})
        assert 1 <= len(gram) <= 3
        i = words.index(gram[0])
        assert words[i:i + len(gram)] == gram                    # a contiguous n-gram of the text


def test_config_is_checked():
    with pytest.raises(ValueError, match="p_swap must be a probability"):
        A.AugmentConfig(p_swap=1.5)
    with pytest.raises(ValueError, match="at most 1"):
        A.AugmentConfig(p_drop=0.6, p_swap=0.6)
    with pytest.raises(ValueError, match="copies"):
        A.AugmentConfig(copies=0)


def test_transfer_texts_distinct_new_and_seeded(tweets):
    texts = tweets.texts[:20]
    cfg = A.AugmentConfig(copies=3, seed=1)
    new, source = A.transfer_texts(texts, cfg, {})
    again, _ = A.transfer_texts(texts, cfg, {})
    other, _ = A.transfer_texts(texts, A.AugmentConfig(copies=3, seed=2), {})
    assert new == again and new != other
    assert len(set(new)) == len(new) and not set(new) & set(texts) and all(new)
    assert np.bincount(source, minlength=20).max() <= 3
    assert len(new) > 2 * len(texts)                             # nearly every tweet gets its 3 copies
    for t, s in zip(new, source):                                # made from its source: only its words (no swaps here)
        assert set(t.split()) <= set(texts[s].split())


def test_balanced_copies_follow_inverse_label_frequency(tweets):
    labels = np.array([2, 2, 2, 2, 1, 1, 0])
    assert A.copies_per_text(labels, A.AugmentConfig(copies=2)).tolist() == [2] * 7
    assert A.copies_per_text(labels, A.AugmentConfig(copies=2, balance=True)).tolist() == [2, 2, 2, 2, 4, 4, 8]
    texts, y = tweets.texts[:30], tweets.labels[:30]
    cfg = A.AugmentConfig(copies=1, seed=3, balance=True)
    new, source = A.transfer_texts(texts, cfg, {}, y)
    per_text = np.bincount(source, minlength=len(texts))
    want = A.copies_per_text(y, cfg)
    assert (per_text <= want).all() and per_text.sum() > 0.8 * want.sum()   # (a 2-word tweet has few variants)
    made = np.bincount(y[source], minlength=3)
    assert made.max() < 2 * made.min() and np.bincount(y).max() > 2 * np.bincount(y).min()  # closer to even
    with pytest.raises(ValueError, match="one label per text"):
        A.transfer_texts(texts, cfg, {})
    # the record names balance only when it is on: keys of sets drawn before it existed are unchanged
    assert "balance" not in A.config_record(A.AugmentConfig()) and A.config_record(cfg)["balance"] is True


def test_rounds_extend_a_set_and_reuse_its_labels(tweets, tiny, monkeypatch):
    texts = tweets.texts[:15]  # (no other test labels these sets: the session's cache starts without them)
    one, two = A.AugmentConfig(copies=2), A.AugmentConfig(copies=2, rounds=2)
    new1, src1 = A.transfer_texts(texts, one, {})
    new2, src2 = A.transfer_texts(texts, two, {})
    assert new2[:len(new1)] == new1 and (src2[:len(src1)] == src1).all()  # round 1 is the one-round set
    assert len(new2) > 1.5 * len(new1) and len(set(new2)) == len(new2) and not set(new2) & set(texts)
    assert [c.row_suffix() for c in (one, two, A.AugmentConfig(balance=True, rounds=3))] == [
        "_aug", "_augx2", "_augbalx3"]
    assert "rounds" not in A.config_record(one) and A.config_record(two)["rounds"] == 2
    vocab = Vocab.build(tweets.texts)
    vectors = np.zeros((len(vocab), 4), np.float32)
    labelled = []
    real = tiny.logits
    monkeypatch.setattr(tiny, "logits", lambda t, **k: labelled.append(len(t)) or real(t, **k))
    small = A.build_transfer_set(tiny, texts, vocab.words, vectors, one, progress=False)
    big = A.build_transfer_set(tiny, texts, vocab.words, vectors, two, progress=False)
    assert labelled == [len(new1), len(new2) - len(new1)]                 # the second call labels round 2 only
    np.testing.assert_allclose(big.logits[:len(small)], small.logits)
    assert big.key() != small.key()


def test_build_transfer_set_labels_with_the_teacher(tweets, tiny):
    vocab = Vocab.build(tweets.texts)
    vectors = np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32)
    ts = A.build_transfer_set(tiny, tweets.texts[:10], vocab.words, vectors, A.AugmentConfig(copies=2),
                              progress=False)
    np.testing.assert_allclose(ts.logits, tiny.logits(ts.texts, progress=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ts.labels, ts.logits.argmax(1))
    summary = ts.summary()
    assert summary["n"] == len(ts) and sum(summary["teacher_label_counts"]) == len(ts)
    # the key follows the texts, the config and the labels
    shifted = A.TransferSet(ts.texts, ts.source, ts.logits + np.array([0, 0, 5], np.float32), ts.config)
    assert ts.key() == A.TransferSet(list(ts.texts), ts.source, ts.logits.copy(), ts.config).key() != shifted.key()


def test_xai_loss_averages_over_rows_with_an_explanation_only():
    e = torch.tensor([[1.0, -2.0], [0.0, 0.0], [1.0, 0.0]])
    s = torch.tensor([[2.0, -4.0], [3.0, 1.0], [-1.0, 0.0]])
    rows = torch.tensor([1.0, 0.0, 1.0])
    assert float(D.xai_loss(e, s, rows)) == pytest.approx(0.5)           # cosines +1 and −1 over 2 rows
    assert float(D.xai_loss(e, s)) == pytest.approx(0.5)                 # (+1 + 0 − 1) / 3: the same here ...
    assert float(D.xai_loss(e[:2], s[:2], rows[:2])) == pytest.approx(0.0, abs=1e-7)
    assert float(D.xai_loss(e[:2], s[:2])) == pytest.approx(0.25)        # ... but not here: the zero row counted
    assert float(D.xai_loss(e[1:2], s[1:2], rows[1:2])) == pytest.approx(0.5)  # none has one: a constant
    s = torch.tensor([[2.0, -1.0], [3.0, 1.0], [-1.0, 1.0]], requires_grad=True)
    D.xai_loss(e, s, rows).backward()
    assert s.grad[1].abs().sum() == 0 and s.grad[0].abs().sum() > 0 and s.grad[2].abs().sum() > 0


@pytest.fixture(scope="module")
def toy_transfer(toy):
    """The trainer's toy inputs plus a transfer set made from the 45 rows it fits, with random teacher logits."""
    new, source = A.transfer_texts(toy[0].texts[:45], A.AugmentConfig(copies=2), {})
    logits = np.random.default_rng(1).normal(size=(len(new), 3)).astype(np.float32)
    return (*toy, A.TransferSet(new, source, logits, A.AugmentConfig(copies=2)))


def _train(toy_transfer, transfer, method="dixtill", epochs=2):
    ds, zt, expl, vocab, _ = toy_transfer
    return D.train_student(method, ds.texts, ds.labels, zt, expl, vocab, D.DistillConfig(epochs=epochs, batch_size=8),
                           StudentConfig(embeddings="random", max_len=24), seed=0, progress=False, transfer=transfer)


def test_training_on_a_transfer_set(toy_transfer):
    ts = toy_transfer[-1]
    plain, aug = _train(toy_transfer, None), _train(toy_transfer, ts)
    assert plain.info["n_transfer"] == 0 and aug.info["n_transfer"] == len(ts)
    assert aug.info["n_fit"] == plain.info["n_fit"] == 45            # the held-out rows are the same 5
    assert aug.history[0]["val_total"] != plain.history[0]["val_total"]  # the extra texts changed the training
    # the held-out loss is computed on the same rows, so the two runs' records compare like with like
    assert set(aug.history[0]) == set(plain.history[0])
    # texts made from held-out rows would leak them into training: refused
    leak = A.TransferSet(ts.texts[:1], np.array([47]), ts.logits[:1], ts.config)
    with pytest.raises(ValueError, match="held-out rows"):
        _train(toy_transfer, leak, epochs=1)


def test_transfer_fraction_draws_a_fresh_share_of_the_transfer_set_each_epoch(shown_rows, toy_transfer):
    ds, zt, expl, vocab, ts = toy_transfer
    epochs = shown_rows

    def train(**kw):
        return D.train_student("kd", ds.texts, ds.labels, zt, expl, vocab, D.DistillConfig(epochs=3, batch_size=8, **kw),
                               StudentConfig(embeddings="random", max_len=24), seed=0, progress=False, transfer=ts)
    whole, half, gold = train(), train(transfer_fraction=0.5), train(transfer_fraction=0.5, gold_repeat=2)
    n_fit, n = whole.info["n_fit"], len(ts)
    assert half.info["n_transfer"] == n                       # the whole set is there to draw from
    for e in epochs[:3]:                                      # the default: every row once per epoch
        assert sorted(e.tolist()) == list(range(n_fit + n))
    draws = []
    for e in epochs[3:6]:
        fitted, new = e[e < n_fit], e[e >= n_fit]
        assert sorted(fitted.tolist()) == list(range(n_fit))  # the fitted rows are all shown, once
        assert len(new) == round(n / 2) == new.unique().numel()  # half the new tweets, without replacement
        draws.append(set(new.tolist()))
    assert len(set(map(frozenset, draws))) == 3               # a fresh draw each epoch
    for e in epochs[6:]:                                      # with gold_repeat: the fitted rows twice, mixed in
        assert sorted(e[e < n_fit].tolist()) == sorted(list(range(n_fit)) * 2) and (e >= n_fit).sum() == round(n / 2)
    assert half.history[0]["train_total"] != whole.history[0]["train_total"]
    with pytest.raises(ValueError, match="draws from a transfer set, but there is none"):
        D.train_student("kd", ds.texts, ds.labels, zt, expl, vocab, D.DistillConfig(epochs=1, transfer_fraction=0.5),
                        StudentConfig(embeddings="random", max_len=24), seed=0, progress=False)


@pytest.mark.parametrize("balance", [False, True])
def test_step_names_rows_aug_and_records_the_set(toy_transfer, tiny, monkeypatch, tmp_path, balance):
    from dixtill_lib.explain import IGConfig, word_attributions
    from dixtill_lib.metrics import classification_metrics, softmax
    from dixtill_lib.student import glove_matrix

    ds = toy_transfer[0]
    train, valid = ds.select(np.arange(40)), ds.select(np.arange(40, 50))
    vocab = Vocab.build(train.texts)
    glove, missing = glove_matrix(vocab)
    vl = tiny.logits(valid.texts, progress=False)
    cfg = IGConfig(n_steps=2)
    seen = {}

    def fake_prepare(*a, augment=None, holdout=None, **k):
        seen.update(augment=augment, holdout=holdout)
        ts = A.build_transfer_set(tiny, train.texts[:36], vocab.words, glove, augment, progress=False,
                                  labels=train.labels[:36])
        return D.DistillInputs("quick", train, valid, tiny.logits(train.texts, progress=False), vl,
                               word_attributions(tiny, train.texts, cfg, progress=False),
                               word_attributions(tiny, valid.texts, cfg, progress=False), vocab, glove, missing,
                               "tiny-bert", tiny.fingerprint(), classification_metrics(valid.labels, softmax(vl), 3),
                               tiny.num_parameters(), 1, transfer=ts)

    monkeypatch.setattr(D, "prepare_inputs", fake_prepare)
    out = tmp_path / "distillation.json"
    args = argparse.Namespace(mode="quick", seeds=[0], methods="kd,dixtill", temperatures="", sweep_seeds=None,
                              no_ablation=True, epochs=1, max_len=24, momentum=None, paper_kd=False, attn_size=None,
                              no_save=True, data_dir=None, device="cpu", out=str(out), augment=2, temperature=2.0,
                              balance=balance)
    D.run_step(args)
    assert seen == {"augment": A.AugmentConfig(copies=2, balance=balance), "holdout": 0.1}
    obj = json.loads(out.read_text())
    suffix = "_augbal" if balance else "_aug"
    assert [r["method"] for r in obj["rows"]] == ["teacher", "kd" + suffix, "dixtill" + suffix]
    assert obj["provenance"]["plan"]["augment_balance"] is balance
    assert obj["provenance"]["data"]["transfer_set"]["config"].get("balance", False) is balance
    assert all(r["n_transfer"] > 40 and r["temperature"] == 2.0 for r in obj["rows"][1:])
    assert obj["provenance"]["config"]["distill"]["temperature"] == 2.0 and obj["provenance"]["plan"]["augment_copies"] == 2
    assert obj["provenance"]["data"]["transfer_set"]["config"]["copies"] == 2
    assert all(r["transfer_set"]["config"]["copies"] == 2 for r in obj["rows"][1:])
    with pytest.raises(SystemExit, match="give --augment too"):
        D.run_step(argparse.Namespace(**{**vars(args), "augment": 0, "rounds": 2}))
    with pytest.raises(SystemExit, match="give --augment too"):
        D.run_step(argparse.Namespace(**{**vars(args), "augment": 0, "balance": True}))
