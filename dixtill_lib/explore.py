"""Looking at the data (chapter 2): split summaries, class balance and length plots, one example per
cleaning rule, and the confusion-matrix plot."""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from .data import URL_RE, Dataset, clean_text

#: The cleaning rules of :func:`dixtill_lib.data.clean_text`, each with a pattern that finds a raw
#: tweet the rule changes.
CLEANING_RULES: tuple[tuple[str, str], ...] = (
    ("lower-case", r"[A-Z]{2,}"),
    ("URLs removed", URL_RE.pattern),
    ("cash-tag keeps its $", r"\$[A-Za-z]+"),
    ("numbers lose % . ,", r"\d+[.,]\d+%?"),
    ("punctuation and quotes dropped", r"[:;\"'()\-]"),
    ("non-ASCII (accents, emoji) dropped", r"[^\x00-\x7f]"),
    ("whitespace collapsed", r"\s{2,}|\n"),
)


def split_summary(splits: dict[str, Dataset]) -> pd.DataFrame:
    """Rows, dropped and duplicated rows, and class counts (with shares) for each named split."""
    recs = []
    for name, ds in splits.items():
        counts = ds.class_counts()
        rec = {"split": name, "rows": len(ds), "dropped (empty)": ds.n_dropped, "duplicates": ds.n_duplicates}
        for label, c in zip(ds.label_names, counts):
            rec[label] = f"{c} ({c / len(ds):.1%})"
        recs.append(rec)
    return pd.DataFrame(recs).set_index("split")


def word_counts(ds: Dataset) -> np.ndarray:
    """Words per (cleaned) text — what the student will see after ``text.split()``."""
    return np.array([len(t.split()) for t in ds.texts])


def cleaning_examples(ds: Dataset, max_chars: int = 110, min_chars: int = 40) -> pd.DataFrame:
    """For each cleaning rule, a short raw text of ``ds`` that the rule changes (a different text per
    rule when possible), before and after cleaning."""
    raws = sorted(set(ds.raw_texts or ds.texts), key=lambda r: (len(r) < min_chars, len(r), r))
    used: set[str] = set()
    recs = []
    for rule, pattern in CLEANING_RULES:
        rx = re.compile(pattern)
        hits = [r for r in raws if rx.search(r)]
        hit = next((r for r in hits if r not in used), hits[0] if hits else None)
        if hit is None:
            recs.append({"rule": rule, "raw": "(no example in this split)", "clean": ""})
            continue
        used.add(hit)
        recs.append({"rule": rule, "raw": _short(hit, max_chars), "clean": _short(clean_text(hit), max_chars)})
    return pd.DataFrame(recs).set_index("rule")


def _short(s: str, n: int) -> str:
    s = s.replace("\n", "⏎")
    return s if len(s) <= n else s[: n - 1] + "…"


def class_balance_plot(splits: dict[str, Dataset], ax=None):
    """Class shares per split as grouped bars (counts annotated)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.4))
    names = list(splits)
    labels = next(iter(splits.values())).label_names
    width = 0.8 / len(names)
    xs = np.arange(len(labels))
    for i, name in enumerate(names):
        counts = splits[name].class_counts()
        share = counts / counts.sum()
        bars = ax.bar(xs + (i - (len(names) - 1) / 2) * width, share, width, label=f"{name} (n={counts.sum():,})")
        for b, c in zip(bars, counts):
            ax.annotate(f"{c:,}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(xs, labels)
    ax.set_ylabel("share of the split")
    ax.set_ylim(0, 1)
    ax.set_title("class balance")
    ax.legend(fontsize=8)
    return ax


def length_plot(splits: dict[str, Dataset], ax=None, max_words: int = 60):
    """Histogram of words per cleaned text for each split."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.4))
    bins = np.arange(0, max_words + 2) - 0.5
    for name, ds in splits.items():
        w = word_counts(ds)
        ax.hist(np.clip(w, 0, max_words), bins=bins, density=True, alpha=0.55,
                label=f"{name}: median {np.median(w):.0f}, max {w.max()}")
    ax.set_xlabel("words per cleaned tweet")
    ax.set_ylabel("density")
    ax.set_title("length")
    ax.legend(fontsize=8)
    return ax


def confusion_plot(cm: Sequence[Sequence[int]], label_names: Sequence[str], ax=None, title: str = "confusion matrix"):
    """Counts with row-normalised colour (recall per true class)."""
    import matplotlib.pyplot as plt

    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(label_names)), label_names)
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return ax


def subset_shares(full: Dataset, subset: Dataset) -> pd.DataFrame:
    """Class shares of a subset next to those of the split it was drawn from."""
    f = full.class_counts() / len(full)
    s = subset.class_counts() / len(subset)
    return pd.DataFrame({"full split": [f"{x:.2%}" for x in f], f"subset (n={len(subset)})": [f"{x:.2%}" for x in s],
                         "difference (points)": [f"{100 * (b - a):+.2f}" for a, b in zip(f, s)]},
                        index=list(full.label_names))


def confusion_summary(cm: Sequence[Sequence[int]], label_names: Sequence[str]) -> str:
    """One sentence naming the most frequent confusions and the weakest class (for the chapter text)."""
    m = np.asarray(cm, dtype=int)
    off = [(m[i, j], label_names[i], label_names[j]) for i in range(len(m)) for j in range(len(m)) if i != j]
    off.sort(reverse=True)
    recall = m.diagonal() / np.maximum(m.sum(1), 1)
    worst = int(np.argmin(recall))
    polar_swaps = sum(n for n, a, b in off if "Neutral" not in (a, b))
    total_err = sum(n for n, _, _ in off)
    parts = [f"{n} {a} tweets were called {b}" for n, a, b in off[:2] if n > 0]
    text = (f"The most frequent mistakes: {' and '.join(parts)}. " if parts else "No mistakes at all. ")
    text += (f"The weakest class is **{label_names[worst]}** (recall {recall[worst]:.0%}). "
             f"{polar_swaps} of the {total_err} errors ({polar_swaps / max(total_err, 1):.0%}) swap Bearish and "
             f"Bullish, the costly kind of error for a trading signal; the rest involve Neutral.")
    return text
