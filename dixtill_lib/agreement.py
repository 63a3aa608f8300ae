"""Do two explanations of the same sentence agree? (Krishna et al. 2022, "The disagreement problem in
explainable machine learning"; used by DiXtill's Fig. 4 to compare the student's attention with the
teacher's Integrated Gradients.)

For one sentence with word scores ``a`` (teacher) and ``b`` (student), both one entry per word:

- **feature agreement@k** = |top_k(a) ∩ top_k(b)| / k
- **sign agreement@k**    = |{f ∈ top_k(a) ∩ top_k(b) : sign a_f = sign b_f}| / k

Top-k ranks words by **absolute value** (Krishna et al.); ties go to the earlier word (stable sort).
A sentence shorter than k uses k = its length (so a 3-word tweet is scored at k=3 when k=5).
Also: **cosine** similarity of the two vectors (0 if either is all zeros) and **Spearman** rank
correlation of the signed scores (NaN for fewer than 2 words or a constant vector; averaged with nanmean).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 2, 3, 4, 5)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest |scores| (ties: earlier index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-np.abs(scores), kind="stable")[:k]


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if b.size < a.size:
        raise ValueError(f"Explanations differ in length: {a.size} teacher words vs {b.size} student scores. "
                         "Both must have one score per word of text.split().")
    return a, b[:a.size]  # a longer student vector is padding: compare over the teacher's words


def _shared_top_k(a, b, k: int) -> tuple[np.ndarray, np.ndarray, set[int], int]:
    """Both vectors, the word indices in both top-k sets, and k capped at the sentence length."""
    a, b = _pair(a, b)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    k = min(k, a.size)
    return a, b, set(top_k(a, k).tolist()) & set(top_k(b, k).tolist()), k


def feature_agreement_at_k(a, b, k: int) -> float:
    """|top_k(a) ∩ top_k(b)| / k for one sentence (k capped at the sentence length); NaN if empty."""
    _, _, common, k = _shared_top_k(a, b, k)
    return len(common) / k if k else float("nan")


def sign_agreement_at_k(a, b, k: int) -> float:
    """Like :func:`feature_agreement_at_k` but a shared word counts only if both signs agree."""
    a, b, common, k = _shared_top_k(a, b, k)
    return sum(np.sign(a[f]) == np.sign(b[f]) for f in common) / k if k else float("nan")


def cosine(a, b) -> float:
    a, b = _pair(a, b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def spearman(a, b) -> float:
    a, b = _pair(a, b)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def agreement_per_sample(teacher_expl: Sequence[np.ndarray], student_expl: Sequence[np.ndarray] | np.ndarray,
                         ks: Sequence[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Every metric for every sentence: ``{"feature_agreement@k": (n,), "sign_agreement@k": (n,),
    "cosine": (n,), "spearman": (n,)}``. ``student_expl`` may be a padded 2-D array."""
    if len(teacher_expl) != len(student_expl):
        raise ValueError(f"{len(teacher_expl)} teacher explanations but {len(student_expl)} student ones.")
    out: dict[str, list[float]] = {}
    for a, b in zip(teacher_expl, student_expl):
        for k in ks:
            out.setdefault(f"feature_agreement@{k}", []).append(feature_agreement_at_k(a, b, k))
            out.setdefault(f"sign_agreement@{k}", []).append(sign_agreement_at_k(a, b, k))
        out.setdefault("cosine", []).append(cosine(a, b))
        out.setdefault("spearman", []).append(spearman(a, b))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def agreement_table(teacher_expl: Sequence[np.ndarray], student_expl: Sequence[np.ndarray] | np.ndarray,
                    ks: Sequence[int] = DEFAULT_KS, return_per_sample: bool = False):
    """Test-set means (NaN-skipping) of :func:`agreement_per_sample`; with ``return_per_sample=True``
    returns ``(means, per_sample)`` for distribution plots."""
    per = agreement_per_sample(teacher_expl, student_expl, ks)
    means = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per.items()}
    return (means, per) if return_per_sample else means
