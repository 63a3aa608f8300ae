"""Knowledge store: save/load round trip, validation errors, de-duplication, retrieval aggregation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dixtill_lib.io import write_manifest
from dixtill_lib.retrikt.store import (KnowledgeStore, StoreError, build_index, deduplicate, distinct_n,
                                       l2_normalise, near_duplicates, retrieval_proba, retrieve, self_similarity)


def _store(n=20, d=8, c=3, seed=0, index_kind="flat"):
    rng = np.random.default_rng(seed)
    emb = l2_normalise(rng.normal(size=(n, d)))
    soft = rng.dirichlet(np.ones(c), size=n)
    return KnowledgeStore(emb, [f"text number {i}" for i in range(n)], soft, soft.argmax(1),
                          {"encoder": "random", "generation": {"top_p": 0.9}}, index_kind)


def test_round_trip_and_search(tmp_path):
    s = _store()
    s.save(tmp_path / "store")
    t = KnowledgeStore.load(tmp_path / "store", expected_dim=8, num_labels=3)
    assert t.texts == s.texts and t.meta == s.meta
    np.testing.assert_allclose(t.soft_labels, s.soft_labels, rtol=1e-6)
    sims, idx = t.search(s.embeddings[[3, 7]], 4)
    assert idx[:, 0].tolist() == [3, 7]                       # each vector is its own nearest neighbour
    assert sims[:, 0] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all()              # best first


def test_load_errors(tmp_path):
    _store().save(tmp_path / "s")
    with pytest.raises(StoreError, match="8-d embeddings but the encoder gives 384"):
        KnowledgeStore.load(tmp_path / "s", expected_dim=384)
    with pytest.raises(StoreError, match="over 3 classes; the task has 2"):
        KnowledgeStore.load(tmp_path / "s", num_labels=2)
    with pytest.raises(StoreError, match="missing store.json"):
        KnowledgeStore.load(tmp_path / "nothing")
    # a store whose metadata lists fewer texts than the index holds (consistent checksums) → count error
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    meta["texts"] = meta["texts"][:-1]
    (tmp_path / "s" / "store.json").write_text(json.dumps(meta))
    write_manifest(tmp_path / "s")
    with pytest.raises(StoreError, match="index holds 20 vectors.*19 texts"):
        KnowledgeStore.load(tmp_path / "s")


def test_tampered_store_fails_checksum(tmp_path):
    _store().save(tmp_path / "s")
    with open(tmp_path / "s" / "embeddings.npy", "ab") as f:
        f.write(b"garbage")
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(StoreError, match="checksum"):
        KnowledgeStore.load(tmp_path / "s")


def test_mismatched_parts_and_queries():
    with pytest.raises(StoreError, match="disagree"):
        KnowledgeStore(np.zeros((3, 4)), ["a", "b"], np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(StoreError, match=r"expects \(n, 8\)"):
        _store().search(np.zeros((1, 5), np.float32), 2)


def test_approximate_indexes():
    s = _store(n=300, d=8)
    exact = build_index(s.embeddings, "flat").search(s.embeddings[:5], 3)[1]
    hnsw = build_index(s.embeddings, "hnsw").search(s.embeddings[:5], 3)[1]
    assert (exact[:, 0] == hnsw[:, 0]).all()
    ivf = build_index(s.embeddings, "ivf", nlist=4, nprobe=4)      # probing every cell = exact
    assert (ivf.search(s.embeddings[:5], 3)[1] == exact).all()
    with pytest.raises(StoreError, match="needs at least 256 entries"):
        build_index(s.embeddings[:10], "ivf")


def test_deduplicate():
    texts = ["$AAPL up 5% today!", "$aapl up 5 today", "too short", "Something else entirely here", "",
             "something  else entirely here?"]
    assert deduplicate(texts) == [0, 3]
    e = l2_normalise(np.array([[1, 0], [0.999, 0.01], [0, 1]]))
    assert near_duplicates(e, 0.95) == [0, 2]


def test_diagnostics():
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    e = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    assert self_similarity(e) == pytest.approx(2 / 6 * 1.0 + 0)  # 2 of 6 ordered-pair halves are identical
    assert self_similarity(e, np.array([0, 0, 1, 1])) == pytest.approx(1.0)


def test_retrieval_aggregation_hand_case():
    sims = np.array([[0.9, 0.5]])
    soft = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    # T = 0.2: weights ∝ exp(4.5), exp(2.5) → w1 = 1 / (1 + e^-2)
    w1 = 1 / (1 + np.exp(-2))
    assert retrieval_proba(sims, soft, 0.2)[0] == pytest.approx([w1, 1 - w1])
    # huge T → plain average; tiny T → the nearest neighbour only
    assert retrieval_proba(sims, soft, 1e6)[0] == pytest.approx([0.5, 0.5], abs=1e-5)
    assert retrieval_proba(sims, soft, 1e-3)[0] == pytest.approx([1.0, 0.0])
    with pytest.raises(StoreError, match="positive"):
        retrieval_proba(sims, soft, 0.0)
    s = _store()
    p = retrieve(s, s.embeddings[:4], k=5, temperature=0.1)
    assert p.shape == (4, 3) and np.allclose(p.sum(1), 1)
