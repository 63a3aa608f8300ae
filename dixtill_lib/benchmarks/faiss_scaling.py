"""Knowledge-store index kinds at 1e5 and 1e6 entries: memory, build time, query time, recall@10 vs exact.

    python -m dixtill_lib.benchmarks.faiss_scaling [--sizes 100000,1000000] [--kinds flat,hnsw,ivfpq]
                                                   [--threads 1] [--out results/store_scaling.json]

Embeddings are synthetic, 384-d like all-MiniLM-L6-v2's, L2-normalised and *clustered* (points around
``n/100`` random topic centres, cosine to their centre ≈ 0.6): unstructured Gaussian vectors would be the
worst case for approximate search and unlike sentence embeddings. Queries are fresh points from the same
distribution. Recall@10 = overlap of the index's 10 neighbours with the exact (flat) 10. Memory = the
serialised index size (vectors or PQ codes + graph links + centroids). Query time: a batch of queries (ms per
query) and single queries one at a time (latency), on ``--threads`` faiss threads."""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

DIM = 384
KEY_FIELDS = ("method", "index", "n", "threads", "hardware_id")


def clustered_embeddings(n: int, d: int = DIM, n_centres: int | None = None, spread: float = 1.3,
                         seed: int = 0, chunk: int = 200_000) -> np.ndarray:
    """``n`` L2-normalised float32 vectors around ``n_centres`` random unit centres (default ``max(10, n // 100)``).
    ``spread``: noise norm relative to the centre (1.3 → cosine to the centre ≈ 0.6)."""
    rng = np.random.default_rng(seed)
    k = n_centres or max(10, n // 100)
    centres = rng.standard_normal((k, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = rng.standard_normal((m, d)).astype(np.float32) * (spread / np.sqrt(d))
        x += centres[rng.integers(0, k, m)]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:s + m] = x
    return out


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k that the index also returned."""
    k = exact.shape[1]
    return float(np.mean([len(set(f) & set(e)) / k for f, e in zip(found, exact)]))


def params_for(kind: str, n: int) -> dict[str, Any]:
    """Index settings used here: IVF cells ≈ 4·√n (power of two), 32 probes; HNSW M = 32, efSearch = 64;
    PQ 48 bytes per vector (8 dimensions per sub-quantiser)."""
    nlist = int(2 ** round(np.log2(4 * np.sqrt(n))))
    return {"flat": {}, "hnsw": {"hnsw_m": 32, "ef_search": 64},
            "ivf": {"nlist": nlist, "nprobe": 32},
            "ivfpq": {"nlist": nlist, "nprobe": 32, "pq_m": 48, "train_size": min(n, 32 * nlist)},
            "hnswpq": {"hnsw_m": 32, "ef_search": 64, "pq_m": 48}}.get(kind, {})


def measure(emb: np.ndarray, queries: np.ndarray, exact: np.ndarray, kind: str, k: int = 10,
            n_single: int = 200) -> dict[str, Any]:
    from ..retrikt.store import build_index, index_bytes

    params = params_for(kind, len(emb))
    t0 = time.perf_counter()
    index = build_index(emb, kind, **params)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, found = index.search(queries, k)
    batch_ms = (time.perf_counter() - t0) / len(queries) * 1e3
    t0 = time.perf_counter()
    for q in queries[:n_single]:
        index.search(q[None], k)
    single_ms = (time.perf_counter() - t0) / n_single * 1e3
    size = index_bytes(index)
    return {"index": kind, "params": params, "build_seconds": round(build, 2), "bytes": size,
            "bytes_per_entry": round(size / len(emb), 1), "query_ms_batch": round(batch_ms, 4),
            "query_ms_single": round(single_ms, 4), "recall_at_10": round(recall_at_k(found, exact), 4)}


def main(argv: list[str] | None = None) -> None:
    import faiss

    from ..config import REPO_ROOT
    from ..results import hardware, write_results

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--kinds", default="flat,hnsw,ivfpq")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    hw = hardware()
    hw_id = f"{hw['cpu']} ({hw['cpu_count']} cores)"
    out = args.out or REPO_ROOT / "results" / "store_scaling.json"
    rows: list[dict[str, Any]] = []
    for n in (int(x) for x in args.sizes.split(",")):
        data = clustered_embeddings(n + args.queries, seed=n)
        emb, queries = data[:n], data[n:]
        del data
        from ..retrikt.store import build_index

        exact = build_index(emb, "flat").search(queries, 10)[1]
        for kind in args.kinds.split(","):
            load = os.getloadavg()
            row = measure(emb, queries, exact, kind)
            row.update(method=f"store_index/{kind}", n=n, dim=DIM, threads=args.threads, hardware_id=hw_id,
                       load_before=[round(x, 2) for x in load], load_after=[round(x, 2) for x in os.getloadavg()])
            rows.append(row)
            print(f"n={n:>9,d} {kind:7s} {row['bytes'] / 2**20:9.1f} MiB  build {row['build_seconds']:7.1f} s  "
                  f"query {row['query_ms_batch']:7.3f} ms (batch) {row['query_ms_single']:7.3f} ms (single)  "
                  f"recall@10 {row['recall_at_10']:.3f}", flush=True)
            write_results("store_scaling", rows, mode="full", seeds=[0], path=out, merge=True, key_fields=KEY_FIELDS,
                          config={"dim": DIM, "queries": args.queries, "threads": args.threads,
                                  "data": "synthetic clustered unit vectors (n/100 centres, cosine to centre ~0.6)"},
                          faiss=faiss.__version__)
        del emb
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
