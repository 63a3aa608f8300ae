"""Is an explanation faithful to the model? ERASER's deletion metrics (DeYoung et al. 2020, "ERASER: A
benchmark to evaluate rationalized NLP models"), model-agnostic: any ``predict_proba(list[str]) ->
(n, n_classes)`` callable (the HF teacher, the BiLSTM student, a toy function) and word-level scores.

For a text x with words w_1..w_n (``x.split()``), explained class y = the model's prediction on x, and
the rationale r_k = the k highest-scoring words with k = ceil(ratio · n):

- **comprehensiveness** = p(y | x) − p(y | x without r_k): removing the important words should hurt
  (high is good);
- **sufficiency** = p(y | x) − p(y | r_k only): the important words alone should keep the prediction
  (low is good, can be negative);
- **AOPC** versions average both over deletion ratios (default 10 %, 20 %, …, 50 %).

Words are removed from / kept in the whitespace-split text, in their original order, and rejoined with
single spaces. Words are ranked by their **signed** score, descending (``rank_by="value"``: words that
push towards the explained class; use ``"abs"`` for unsigned ranking). Ties go to the earlier word.
Comprehensiveness of a one-word text (deleting it leaves nothing) is NaN and skipped in means.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np

PredictProba = Callable[[list[str]], np.ndarray]
DEFAULT_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)


def rationale(scores: np.ndarray, ratio: float, rank_by: str = "value") -> np.ndarray:
    """Indices (sorted) of the ceil(ratio·n) top-ranked words."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}.")
    if rank_by not in ("value", "abs"):
        raise ValueError(f"rank_by must be 'value' or 'abs', got {rank_by!r}.")
    key = scores if rank_by == "value" else np.abs(scores)
    k = math.ceil(round(ratio * scores.size, 9))
    return np.sort(np.argsort(-key, kind="stable")[:k])


def _check(texts: Sequence[str], scores: Sequence[np.ndarray]) -> None:
    if isinstance(texts, str):
        raise TypeError("Pass a list of texts, not a single string.")
    if len(texts) != len(scores):
        raise ValueError(f"{len(texts)} texts but {len(scores)} score vectors.")
    for i, (t, s) in enumerate(zip(texts, scores)):
        if len(t.split()) != len(s):
            raise ValueError(f"Text {i} has {len(t.split())} words but {len(s)} scores: scores must be one per "
                             "word of text.split() (unpadded).")


def _perturb(texts, scores, ratios, rank_by):
    """The reduced texts: comprehensiveness (rationale removed) and sufficiency (rationale only)."""
    comp, suff = [], []
    for t, s in zip(texts, scores):
        words = t.split()
        for r in ratios:
            keep = np.zeros(len(words), dtype=bool)
            keep[rationale(s, r, rank_by)] = True
            comp.append(" ".join(w for w, k in zip(words, keep) if not k) or None)
            suff.append(" ".join(w for w, k in zip(words, keep) if k))
    return comp, suff


def erasure_scores(predict_proba: PredictProba, texts: Sequence[str], scores: Sequence[np.ndarray],
                   ratios: Sequence[float] = DEFAULT_RATIOS, rank_by: str = "value",
                   target: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text and ratio: ``(comprehensiveness (n, R), sufficiency (n, R), target (n,))``.
    ``target`` defaults to the model's predicted class on the full text."""
    _check(texts, scores)
    texts = list(texts)
    p_full = np.asarray(predict_proba(texts), dtype=np.float64)
    y = p_full.argmax(1) if target is None else np.asarray(target, dtype=np.int64)
    comp_t, suff_t = _perturb(texts, scores, ratios, rank_by)
    R = len(ratios)
    queries = [t for t in comp_t if t is not None] + suff_t
    p = np.asarray(predict_proba(queries), dtype=np.float64) if queries else np.zeros((0, p_full.shape[1]))
    yy = np.repeat(y, R)
    comp = np.full(len(comp_t), np.nan)
    nonempty = np.array([t is not None for t in comp_t])
    n_c = int(nonempty.sum())
    comp[nonempty] = p[np.arange(n_c), yy[nonempty]]
    suff = p[n_c + np.arange(len(suff_t)), yy]
    base = p_full[np.arange(len(texts)), y]
    return (base[:, None] - comp.reshape(-1, R)), (base[:, None] - suff.reshape(-1, R)), y


def comprehensiveness(predict_proba: PredictProba, texts: Sequence[str], scores: Sequence[np.ndarray],
                      ratio: float = 0.2, rank_by: str = "value") -> np.ndarray:
    """p(y|x) − p(y|x without the top ``ratio`` words), per text (NaN for one-word texts)."""
    return erasure_scores(predict_proba, texts, scores, (ratio,), rank_by)[0][:, 0]


def sufficiency(predict_proba: PredictProba, texts: Sequence[str], scores: Sequence[np.ndarray],
                ratio: float = 0.2, rank_by: str = "value") -> np.ndarray:
    """p(y|x) − p(y|only the top ``ratio`` words), per text."""
    return erasure_scores(predict_proba, texts, scores, (ratio,), rank_by)[1][:, 0]


def aopc(predict_proba: PredictProba, texts: Sequence[str], scores: Sequence[np.ndarray],
         ratios: Sequence[float] = DEFAULT_RATIOS, rank_by: str = "value") -> dict:
    """ERASER's AOPC comprehensiveness and sufficiency: means over texts and ratios, plus per-ratio
    means and the per-text AOPC arrays."""
    comp, suff, _ = erasure_scores(predict_proba, texts, scores, ratios, rank_by)
    with warnings.catch_warnings():  # all-NaN columns (only one-word texts) give NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"comprehensiveness": float(np.nanmean(comp)), "sufficiency": float(np.nanmean(suff)),
                "ratios": tuple(float(r) for r in ratios),
                "comprehensiveness_by_ratio": [float(v) for v in np.nanmean(comp, axis=0)],
                "sufficiency_by_ratio": [float(v) for v in np.nanmean(suff, axis=0)],
                "comprehensiveness_per_text": np.nanmean(comp, axis=1), "sufficiency_per_text": suff.mean(axis=1)}


def random_scores(texts: Sequence[str], seed: int = 0) -> list[np.ndarray]:
    """A random explanation (uniform scores) per text: the baseline a real explanation should beat."""
    rng = np.random.default_rng(seed)
    return [rng.random(len(t.split())).astype(np.float32) for t in texts]
