"""Knowledge-store index kinds at scale: same API for flat / HNSW / IVF / IVF-PQ / HNSW-PQ / factory strings,
and the helpers of ``benchmarks.faiss_scaling``."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.benchmarks.faiss_scaling import clustered_embeddings, params_for, recall_at_k
from dixtill_lib.retrikt.store import KnowledgeStore, StoreError, build_index, index_bytes


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """faiss's OpenMP threads spin-wait on a busy 2-core machine (10x slower PQ training): use one."""
    import faiss

    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(old)


@pytest.fixture(scope="module")
def emb():
    return clustered_embeddings(4000, d=64, seed=1)


def test_clustered_embeddings_are_unit_vectors_near_their_centres():
    e = clustered_embeddings(500, d=32, n_centres=5, seed=0)
    assert e.shape == (500, 32) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sims = e @ e.T
    assert sims.mean() > 0.05  # clustered: many pairs share a centre (random 32-d pairs would give ~0)


def test_recall_at_k():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[1, 2, 9], [7, 8, 9]]), exact) == pytest.approx(1 / 3)


@pytest.mark.parametrize("kind,min_recall", [("flat", 1.0), ("hnsw", 0.9), ("ivf", 0.9), ("ivfpq", 0.2),
                                             ("hnswpq", 0.2), ("IVF32,Flat", 0.9)])
def test_every_index_kind_searches_the_same_way(emb, kind, min_recall):
    base, q = emb[:3800], emb[3800:]
    exact = build_index(base, "flat").search(q, 10)[1]
    params = {"pq_m": 16, "nlist": 32} if kind in ("ivf", "ivfpq", "hnswpq") else {}
    if kind == "hnswpq":
        params.pop("nlist")
    index = build_index(base, kind, **params)
    sims, found = index.search(q, 10)
    assert found.shape == (200, 10) and (np.diff(sims, axis=1) <= 1e-5).all()  # best first
    assert recall_at_k(found, exact) >= min_recall


def test_pq_indexes_are_much_smaller_than_flat(emb):
    flat, pq = build_index(emb, "flat"), build_index(emb, "ivfpq", nlist=32, pq_m=16)
    assert index_bytes(flat) >= 4 * 64 * len(emb)
    assert index_bytes(pq) < index_bytes(flat) / 4  # 16-byte codes (+ ids) instead of 256-byte vectors


def test_bad_index_settings_say_what_to_do(emb):
    with pytest.raises(StoreError, match="Unknown index kind 'annoy'"):
        build_index(emb, "annoy")
    with pytest.raises(StoreError, match="needs at least 256 entries"):
        build_index(emb[:100], "ivfpq", nlist=16)
    with pytest.raises(StoreError, match="divisible by pq_m=48"):
        build_index(emb, "ivfpq", nlist=16, pq_m=48)


def test_a_store_keeps_its_index_kind_through_save_and_load(tmp_path, emb):
    n = 600
    store = KnowledgeStore(emb[:n], [f"text {i}" for i in range(n)], np.full((n, 3), 1 / 3), np.zeros(n),
                           {"encoder": "synthetic"}, index_kind="hnsw")
    before = store.search(emb[:3], 5)[1]
    loaded = KnowledgeStore.load(store.save(tmp_path / "s"), expected_dim=64, num_labels=3)
    assert loaded.index_kind == "hnsw" and type(loaded.index).__name__ == "IndexHNSWFlat"
    np.testing.assert_array_equal(loaded.search(emb[:3], 5)[1], before)


def test_benchmark_parameters_grow_with_the_store():
    small, large = params_for("ivfpq", 100_000), params_for("ivfpq", 1_000_000)
    assert small["nlist"] == 1024 and large["nlist"] == 4096
    assert params_for("flat", 10) == {}
