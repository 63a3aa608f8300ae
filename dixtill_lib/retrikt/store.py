"""The knowledge store: generated texts x̂, their teacher soft labels p_T(·|x̂) and sentence embeddings, in a
faiss inner-product index over L2-normalised vectors (inner product = cosine).

``IndexFlatIP`` is exact and fast enough up to ~100k entries on a CPU. Larger stores choose another index kind
behind the same API (``KnowledgeStore(..., index_kind=...)``, :func:`build_index`): ``"hnsw"`` (graph search,
no training), ``"ivf"`` (k-means cells), ``"ivfpq"`` / ``"hnswpq"`` (product-quantised vectors, for 1e7–1e8
entries) or any faiss ``index_factory`` string; ``python -m dixtill_lib.benchmarks.faiss_scaling`` measures them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io import atomic_path, cached_arrays, hash_texts, stable_hash, verify_manifest, write_manifest

Encoder = Callable[[list[str]], np.ndarray]


class StoreError(ValueError):
    """A knowledge store is malformed or does not match what it is used with."""


# ---------------------------------------------------------------- the sentence encoder

class SentenceEncoder:
    """all-MiniLM-L6-v2 (packaged) mean-pooled over real tokens and L2-normalised; embeddings are cached by text
    hash. Call it with a list of texts → ``(n, 384)`` float32."""

    def __init__(self, source: str | None = None, max_length: int = 64, batch_size: int = 64,
                 device: str = "cpu", cache: bool = True):
        from transformers import AutoModel, AutoTokenizer

        from .. import assets

        path = source or str(assets.minilm_dir())
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.max_length, self.batch_size, self.device, self.cache = max_length, batch_size, device, cache
        self.name = "all-MiniLM-L6-v2" if source is None else Path(path).name
        self.dim = int(self.model.config.hidden_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def __call__(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if not self.cache:
            return self._embed(texts)
        key = stable_hash(self.name, self.max_length, hash_texts(texts))
        return cached_arrays("sentence-embeddings", key, lambda: {"emb": self._embed(texts)})["emb"]

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                idx = order[s:s + self.batch_size]
                enc = self.tok([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                               padding=True, return_tensors="pt").to(self.device)
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                out[idx] = ((h * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy()
        return l2_normalise(out)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------- cleaning generated text

def normalise_text(text: str) -> str:
    """Key for exact de-duplication: lower case, no URLs, punctuation and extra whitespace removed."""
    text = re.sub(r"https?://\S+", " ", text.lower())
    return " ".join(re.sub(r"[^a-z0-9$ ]+", " ", text).split())


def deduplicate(texts: list[str], min_words: int = 3) -> list[int]:
    """Indices of the first occurrence of each distinct (normalised) text with at least ``min_words`` words."""
    seen, keep = set(), []
    for i, t in enumerate(texts):
        key = normalise_text(t)
        if len(key.split()) < min_words or key in seen:
            continue
        seen.add(key)
        keep.append(i)
    return keep


def near_duplicates(emb: np.ndarray, threshold: float = 0.95) -> list[int]:
    """Greedy near-duplicate removal on normalised embeddings: indices kept (cosine to all kept < threshold)."""
    keep: list[int] = []
    for i in range(len(emb)):
        if not keep or float(np.max(emb[keep] @ emb[i])) < threshold:
            keep.append(i)
    return keep


# ---------------------------------------------------------------- diagnostics

def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over ``texts`` (higher = more diverse)."""
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_similarity(emb: np.ndarray, labels: np.ndarray | None = None) -> float:
    """Mean pairwise cosine of embeddings (within each label group when ``labels`` given; lower = more diverse)."""
    groups = [emb] if labels is None else [emb[labels == c] for c in np.unique(labels)]
    vals = []
    for g in groups:
        if len(g) > 1:
            s = g @ g.T
            vals.append((s.sum() - np.trace(s)) / (len(g) * (len(g) - 1)))
    return float(np.mean(vals)) if vals else float("nan")


# ---------------------------------------------------------------- the index

#: Index kinds :func:`build_index` knows by name (any other string is passed to ``faiss.index_factory``).
INDEX_KINDS = ("flat", "hnsw", "ivf", "ivfpq", "hnswpq")


def build_index(emb: np.ndarray, kind: str = "flat", nlist: int = 256, nprobe: int = 16, hnsw_m: int = 32,
                pq_m: int = 48, ef_search: int = 64, train_size: int | None = None):
    """A faiss inner-product index over (already L2-normalised) ``emb``.

    - ``flat``: exact, 4·d bytes per entry (the book's stores: a few thousand entries);
    - ``hnsw``: graph search (``hnsw_m`` links per node, ``ef_search`` candidates per query), no training,
      4·d + ~8·``hnsw_m`` bytes per entry;
    - ``ivf``: ``nlist`` k-means cells, ``nprobe`` of them probed per query, full vectors (needs ≥ ``nlist`` entries);
    - ``ivfpq``: the same cells with vectors product-quantised to ``pq_m`` bytes (8-bit codes, ``d`` divisible by
      ``pq_m``): the choice for very large stores (1e8 × 48 B ≈ 4.8 GB instead of 154 GB flat);
    - ``hnswpq``: HNSW over PQ codes (``pq_m`` bytes) — graph speed with compressed vectors;
    - anything else is a ``faiss.index_factory`` string such as ``"IVF4096,PQ48"`` (inner-product metric).

    Trained kinds learn their cells/codebooks on ``train_size`` entries (default: all, capped at 256 per cell).
    A store too small to train raises :class:`StoreError` (use ``flat``)."""
    import faiss

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n, d = emb.shape
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, ip)
        index.hnsw.efSearch = ef_search
    elif kind in ("ivf", "ivfpq"):
        need = nlist if kind == "ivf" else max(nlist, 256)
        if n < need:
            raise StoreError(f"index={kind!r} with nlist={nlist} needs at least {need} entries to train, got {n}; "
                             f"use index='flat' (exact) for small stores.")
        if kind == "ivfpq" and d % pq_m:
            raise StoreError(f"index='ivfpq' needs the dimension {d} to be divisible by pq_m={pq_m}.")
        quantizer = faiss.IndexFlatIP(d)
        index = (faiss.IndexIVFFlat(quantizer, d, nlist, ip) if kind == "ivf"
                 else faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, 8, ip))
        index.train(_train_sample(emb, train_size or 256 * nlist))
        index.nprobe = nprobe
    elif kind == "hnswpq":
        if d % pq_m or n < 256:
            raise StoreError(f"index='hnswpq' needs ≥ 256 entries and d={d} divisible by pq_m={pq_m}; got {n} entries.")
        index = faiss.IndexHNSWPQ(d, pq_m, hnsw_m, 8, ip)
        index.train(_train_sample(emb, train_size or 65_536))
        index.hnsw.efSearch = ef_search
    elif kind.startswith(("IVF", "HNSW", "PQ", "OPQ", "Flat")):
        index = faiss.index_factory(d, kind, ip)
        if not index.is_trained:
            index.train(_train_sample(emb, train_size or len(emb)))
    else:
        raise StoreError(f"Unknown index kind {kind!r}: use one of {', '.join(INDEX_KINDS)} or a faiss "
                         f"index_factory string such as 'IVF4096,PQ48'.")
    index.add(emb)
    return index


def _train_sample(emb: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    if len(emb) <= size:
        return emb
    idx = np.sort(np.random.default_rng(seed).choice(len(emb), size, replace=False))
    return np.ascontiguousarray(emb[idx])


def index_bytes(index) -> int:
    """Size of a faiss index in bytes (its serialised form: vectors or codes, graph links, centroids)."""
    import faiss

    return int(faiss.serialize_index(index).nbytes)


@dataclass
class KnowledgeStore:
    """Entries ``(embedding, text, teacher soft label)`` + the intended class of each generation and free-form
    metadata (generation settings, encoder name, diagnostics)."""
    embeddings: np.ndarray            # (n, d) float32, L2-normalised
    texts: list[str]
    soft_labels: np.ndarray           # (n, C) teacher probabilities
    intended: np.ndarray              # (n,) class whose prompt generated the text
    meta: dict[str, Any] = field(default_factory=dict)
    index_kind: str = "flat"
    _index: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        self.soft_labels = np.asarray(self.soft_labels, dtype=np.float32)
        self.intended = np.asarray(self.intended, dtype=np.int64)
        n = len(self.texts)
        if self.embeddings.ndim != 2 or len(self.embeddings) != n or len(self.soft_labels) != n \
                or len(self.intended) != n:
            raise StoreError(f"Store parts disagree: {n} texts, {len(self.embeddings)} embeddings, "
                             f"{len(self.soft_labels)} soft labels, {len(self.intended)} intended labels.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def index(self):
        if self._index is None:
            if len(self) == 0:
                raise StoreError("The knowledge store is empty: generate more samples or lower the filter threshold.")
            self._index = build_index(self.embeddings, self.index_kind)
        return self._index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, indices)``, each (n_queries, k'), k' = min(k, len(store)), best first."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise StoreError(f"Query embeddings have shape {q.shape}; the store expects (n, {self.dim}) "
                             f"({self.meta.get('encoder', 'its encoder')}).")
        return self.index.search(q, min(k, len(self)))

    def neighbours(self, text: str, encoder: Encoder, k: int = 5, label_names=None):
        """A DataFrame of the ``k`` nearest entries to ``text``: rank, similarity, text, teacher label, confidence."""
        import pandas as pd

        sims, idx = self.search(encoder([text]), k)
        rows = []
        for r, (s, i) in enumerate(zip(sims[0], idx[0])):
            c = int(self.soft_labels[i].argmax())
            rows.append({"rank": r + 1, "similarity": round(float(s), 3), "text": self.texts[i],
                         "teacher label": label_names[c] if label_names else c,
                         "confidence": round(float(self.soft_labels[i, c]), 3)})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``index.faiss`` + ``store.json`` (texts, labels, metadata) + ``embeddings.npy`` atomically."""
        import faiss

        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir(parents=True)
            faiss.write_index(self.index if len(self) else build_index(np.zeros((0, self.dim), np.float32)),
                              str(tmp / "index.faiss"))
            np.save(tmp / "embeddings.npy", self.embeddings)
            (tmp / "store.json").write_text(json.dumps({
                "n": len(self), "dim": self.dim, "index_kind": self.index_kind, "texts": self.texts,
                "soft_labels": self.soft_labels.tolist(), "intended": self.intended.tolist(), "meta": self.meta},
                default=_jsonable))
            write_manifest(tmp, {"kind": "retrikt-store", "n": len(self), "dim": self.dim})
        return directory

    @classmethod
    def load(cls, directory: str | Path, expected_dim: int | None = None,
             num_labels: int | None = None) -> "KnowledgeStore":
        """Load and validate a saved store: checksums, entry counts and (when given) dimension and label count
        must all agree, else :class:`StoreError` says what differs."""
        import faiss

        directory = Path(directory)
        if not (directory / "store.json").is_file():
            raise StoreError(f"No knowledge store in {directory} (missing store.json); build one with build_store().")
        if verify_manifest(directory) is None:
            raise StoreError(f"Knowledge store {directory} failed its checksum and was deleted; rebuild it.")
        data = json.loads((directory / "store.json").read_text())
        index = faiss.read_index(str(directory / "index.faiss"))
        emb = np.load(directory / "embeddings.npy")
        n = len(data["texts"])
        if index.ntotal != n or len(emb) != n or data["n"] != n:
            raise StoreError(f"Store {directory} is inconsistent: index holds {index.ntotal} vectors, "
                             f"embeddings.npy {len(emb)}, metadata {n} texts. Rebuild the store.")
        if index.d != data["dim"] or emb.shape[1] != data["dim"]:
            raise StoreError(f"Store {directory}: index dimension {index.d} != metadata dimension {data['dim']}.")
        if expected_dim is not None and index.d != expected_dim:
            raise StoreError(f"Store {directory} has {index.d}-d embeddings but the encoder gives {expected_dim}-d: "
                             f"it was built with another encoder ({data['meta'].get('encoder')}). Rebuild it.")
        soft = np.asarray(data["soft_labels"], dtype=np.float32).reshape(n, -1)
        if num_labels is not None and soft.shape[1] != num_labels:
            raise StoreError(f"Store {directory} has soft labels over {soft.shape[1]} classes; the task has "
                             f"{num_labels}. Use the store built for this task.")
        return cls(emb, data["texts"], soft, np.asarray(data["intended"]), data["meta"], data["index_kind"], index)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ---------------------------------------------------------------- retrieval

def retrieval_proba(sims: np.ndarray, neighbour_soft: np.ndarray, temperature: float = 0.1) -> np.ndarray:
    """``p_ret = Σ_i softmax(sim_i / T) · p_T(·|x̂_i)``: sims (n, k), neighbour_soft (n, k, C) → (n, C)."""
    sims = np.asarray(sims, dtype=np.float64)
    if temperature <= 0:
        raise StoreError(f"Retrieval temperature must be positive, got {temperature}.")
    z = sims / temperature
    w = np.exp(z - z.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return np.einsum("nk,nkc->nc", w, np.asarray(neighbour_soft, dtype=np.float64))


def retrieve(store: KnowledgeStore, query_emb: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """``p_ret`` for each query embedding."""
    sims, idx = store.search(query_emb, k)
    return retrieval_proba(sims, store.soft_labels[idx], temperature)
