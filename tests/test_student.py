"""The student: vocabulary, embeddings, masked attention, parameter count, save/load, inference API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dixtill_lib.student import (PAD_ID, UNK_ID, BiLSTMAttentionStudent, StudentClassifier, StudentConfig,
                                 StudentError, Vocab, build_student, count_parameters, describe_layers,
                                 expected_parameters, explain, glove_matrix, load_student, predict_proba,
                                 save_student, size_bytes, with_glove_aliases)

TEXTS = ["$aapl up up up", "stocks down", "up and down and up", "market flat today"]


def test_vocab_is_keras_like():
    v = Vocab.build(TEXTS)
    assert v.words[:2] == ("<PAD>", "<UNK>")
    # "up" ×5 then "down" ×3, "and" ×2; ties (count 1) keep first-seen order
    assert v.words[2:5] == ("up", "down", "and")
    assert v.words[5:] == ("$aapl", "stocks", "market", "flat", "today")
    assert v.ids("Up and zzz") == [2, 4, UNK_ID]


def test_vocab_max_size_keeps_most_frequent():
    v = Vocab.build(TEXTS, max_size=4)
    assert v.words == ("<PAD>", "<UNK>", "up", "down")
    assert v.ids("and up") == [UNK_ID, 2]
    assert v.oov_rate(["and up"]) == 0.5


def test_encode_post_pads_and_truncates_with_mask():
    v = Vocab.build(TEXTS)
    ids, mask = v.encode(["up down", "up and down and up", "zzz"], max_len=4)
    assert ids.dtype == np.int64 and mask.dtype == np.float32
    assert ids.tolist() == [[2, 3, 0, 0], [2, 4, 3, 4], [UNK_ID, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]  # <UNK> is a real word


def test_vocab_roundtrip_and_errors(tmp_path):
    v = Vocab.build(TEXTS)
    path = v.save(tmp_path / "vocab.json")
    assert Vocab.load(path) == v
    with pytest.raises(StudentError, match="list of texts"):
        Vocab.build("one string")
    with pytest.raises(StudentError, match="No vocabulary file"):
        Vocab.load(tmp_path / "missing.json")
    with pytest.raises(StudentError, match="must start with"):
        Vocab(("a", "b"))


def test_glove_matrix_rows_and_missing_count():
    from dixtill_lib.assets import load_glove

    v = Vocab.build(["the market zzqxnotaword the"])
    mat, missing = glove_matrix(v)
    w2i, vectors = load_glove()
    assert mat.shape == (len(v), 50)
    assert missing == 1
    assert not mat[PAD_ID].any() and not mat[UNK_ID].any()
    np.testing.assert_array_equal(mat[v.index["market"]], vectors[w2i["market"]])
    assert not mat[v.index["zzqxnotaword"]].any()


def test_aliases_read_an_unknown_word_as_its_vocabulary_word_and_survive_saving(tmp_path):
    v = Vocab.build(TEXTS)
    a = Vocab(v.words, {"rises": v.index["up"], "falls": v.index["down"]})
    assert len(a) == len(v)                                   # no new embedding rows
    assert a.ids("Rises and falls zzz") == [2, 4, 3, UNK_ID]  # aliases read as their word; others stay <UNK>
    assert a.oov_rate(["rises zzz"]) == 0.5 and v.oov_rate(["rises zzz"]) == 1.0
    assert Vocab.load(a.save(tmp_path / "a.json")) == a
    assert "aliases" not in v.to_json()                       # files without aliases are as before
    with pytest.raises(StudentError, match="outside the vocabulary"):
        Vocab(v.words, {"up": 3})                             # a vocabulary word cannot be an alias
    with pytest.raises(StudentError, match="outside the vocabulary"):
        Vocab(v.words, {"rises": UNK_ID})                     # nor point at <UNK>, pad or past the end


def test_glove_aliases_are_the_nearest_vocabulary_word_by_cosine():
    from dixtill_lib.assets import load_glove

    w2i, vectors = load_glove()
    v = Vocab.build(["stocks rose market fell zzqxnotaword"])
    a = with_glove_aliases(v, 1000)
    top = [w for w, r in w2i.items() if r < 1000]
    assert set(a.aliases) == {w for w in top if w not in v.index}   # every frequent GloVe word it lacks
    keys = {w: vectors[w2i[w]] / np.linalg.norm(vectors[w2i[w]]) for w in ("stocks", "rose", "market", "fell")}
    for word in ("fall", "shares", "the"):
        x = vectors[w2i[word]]
        best = max(keys, key=lambda k: float(keys[k] @ x))
        assert a.words[a.aliases[word]] == best
    assert v.index["zzqxnotaword"] not in a.aliases.values()    # a word without a GloVe vector is never chosen
    assert with_glove_aliases(v, 0) == v
    with pytest.raises(StudentError, match="top must be"):
        with_glove_aliases(v, -1)


def _model(vocab_size=12, max_len=6, seed=0, **kw):
    torch.manual_seed(seed)
    return BiLSTMAttentionStudent(StudentConfig(vocab_size=vocab_size, max_len=max_len, **kw))


def test_padding_gets_zero_attention_and_zero_sigma():
    model = _model()
    ids = torch.tensor([[3, 4, 5, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
    mask = (ids != 0).float()
    logits, sig_m = model(ids, mask)
    alpha = model.attention(ids, mask)
    assert logits.shape == (2, 3) and sig_m.shape == (2, 6)
    assert torch.all(sig_m[mask == 0] == 0) and torch.all(sig_m[mask == 1] != 0)
    assert torch.all(alpha[mask == 0] < 1e-30)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2))
    # the second text has one word: all attention on it
    assert float(alpha[1, 0]) == pytest.approx(1.0)


def test_attention_ignores_the_pad_scores():
    """Whatever the raw scores at padded positions, the pooled context (hence the logits) only depends on
    the real positions' scores: check by feeding the same H with different pad-position scores."""
    model = _model()
    ids = torch.tensor([[3, 4, 0, 0, 0, 0]])
    mask = (ids != 0).float()
    emb = model.emb(ids)
    out1, _ = model.scores(emb, mask)
    H, _ = model.lstm(emb)
    sig = model.w2(torch.tanh(model.W1(H))).squeeze(-1)
    sig_changed = sig.clone()
    sig_changed[0, 2:] = 1e3  # huge raw scores on the pads
    for s in (sig, sig_changed):
        a = torch.softmax(s * mask + (mask - 1) * 1e4, dim=1)
        torch.testing.assert_close(model.out((a.unsqueeze(-1) * H).sum(1)), out1)


def test_parameter_count_formula():
    # The authors' demo: V = 4,168 → 254,153 parameters in Keras (one LSTM bias per gate);
    # PyTorch's LSTM has two bias vectors, so 2 directions × 4 gates × 50 = 400 more.
    assert expected_parameters(4168, keras=True) == 254_153
    assert expected_parameters(4168) == 254_553
    model = BiLSTMAttentionStudent(StudentConfig(vocab_size=4168))
    assert count_parameters(model) == 254_553
    assert sum(r["params"] for r in describe_layers(model)) == 254_553
    paper = BiLSTMAttentionStudent(StudentConfig(vocab_size=4168, attn_size=100))
    assert count_parameters(paper) == expected_parameters(4168, attn_size=100) == 259_603


def test_keras_init_sets_forget_bias_and_zero_biases():
    model = _model()
    h = model.cfg.hidden
    b = model.lstm.bias_ih_l0.detach()
    assert torch.all(b[h:2 * h] == 1) and torch.all(b[:h] == 0) and torch.all(model.lstm.bias_hh_l0 == 0)
    assert torch.all(model.out.bias == 0)


def test_config_validation():
    with pytest.raises(StudentError, match="vocab_size"):
        BiLSTMAttentionStudent(StudentConfig())
    with pytest.raises(StudentError, match="embeddings"):
        StudentConfig(embeddings="word2vec")
    with pytest.raises(StudentError, match="shape"):
        BiLSTMAttentionStudent(StudentConfig(vocab_size=5), embeddings=np.zeros((4, 50)))


def test_build_student_random_embeddings_is_seeded():
    v = Vocab.build(TEXTS)
    cfg = StudentConfig(embeddings="random")
    a, _ = build_student(v, cfg, seed=3)
    b, _ = build_student(v, cfg, seed=3)
    c, _ = build_student(v, cfg, seed=4)
    torch.testing.assert_close(a.emb.weight, b.emb.weight)
    assert not torch.equal(a.emb.weight, c.emb.weight)
    assert float(a.emb.weight.detach().abs().max()) <= 0.05


def test_save_load_roundtrip_and_inference_api(tmp_path):
    v = Vocab.build(TEXTS)
    model, _ = build_student(v, StudentConfig(embeddings="random", max_len=8), seed=0)
    path = save_student(model, v, tmp_path / "dixtill_seed0", extra={"method": "dixtill"})
    m2, v2, cfg2 = load_student(path)
    assert v2 == v and cfg2 == model.cfg
    texts = ["up and down", "zzz unknown words here", "up " * 12]
    p1, p2 = predict_proba(model, v, texts), predict_proba(m2, v2, texts)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1.sum(1), 1, atol=1e-6)
    ex = explain(m2, v2, texts)
    assert [len(e) for e in ex] == [3, 4, 12]
    assert np.all(ex[2][8:] == 0)  # words beyond max_len were never seen
    clf = StudentClassifier.load(path)
    np.testing.assert_array_equal(clf.predict(texts), p1.argmax(1))
    # the reported size is the real serialised size (same bytes as the saved state_dict file, up to the zip name)
    assert abs(size_bytes(model) - (path / "model.pt").stat().st_size) < 0.01 * size_bytes(model)


def test_load_student_errors(tmp_path):
    with pytest.raises(StudentError, match="No saved student"):
        load_student(tmp_path / "nothing")
    v = Vocab.build(TEXTS)
    model, _ = build_student(v, StudentConfig(embeddings="random"), seed=0)
    path = save_student(model, v, tmp_path / "s")
    (path / "model.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(StudentError, match="checksum"):
        load_student(path)
