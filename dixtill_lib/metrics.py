"""Classification metrics used in every table: accuracy, macro-F1, MCC, macro ROC-AUC (one-vs-rest),
per-class F1, the confusion matrix, and bootstrap confidence intervals."""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, matthews_corrcoef, roc_auc_score


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def classification_metrics(y_true, proba, num_labels: int | None = None) -> dict[str, float]:
    """``proba``: (n, C) class probabilities (softmax of logits). Returns accuracy, macro_f1, mcc,
    macro_auc (one-vs-rest; NaN when a class is absent from ``y_true``) and f1_<class index>."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    c = num_labels or p.shape[1]
    pred = p.argmax(1)
    labels = list(range(c))
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "mcc": float(matthews_corrcoef(y, pred)),
        "macro_auc": macro_auc(y, p),
    }
    for k, f in enumerate(f1_score(y, pred, average=None, labels=labels, zero_division=0)):
        out[f"f1_{k}"] = float(f)
    return out


def macro_auc(y_true, proba) -> float:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if len(np.unique(y)) < p.shape[1]:
        return float("nan")
    if p.shape[1] == 2:
        return float(roc_auc_score(y, p[:, 1]))
    p = p / p.sum(1, keepdims=True)
    return float(roc_auc_score(y, p, multi_class="ovr", average="macro"))


def confusion(y_true, pred, num_labels: int) -> np.ndarray:
    return confusion_matrix(y_true, pred, labels=list(range(num_labels)))


def bootstrap_ci(y_true, proba, metric: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 1000,
                 alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y, proba)`` over resampled test rows."""
    y = np.asarray(y_true)
    p = np.asarray(proba)
    rng = np.random.Generator(np.random.PCG64(seed))
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        stats.append(metric(y[idx], p[idx]))
    lo, hi = np.nanpercentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def mean_ci(values, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds (or any repeated measurements)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    h = float(stats.t.ppf(1 - alpha / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - h, m + h
