"""Checkers for chapter 2 (data and teacher): a text-cleaning function and a stratified subset."""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import ExerciseFailure, correct
from ..data import clean_text

#: Inputs that exercise every cleaning rule (and the easy-to-miss corners).
CLEANING_CASES: tuple[str, ...] = (
    "$AAPL up 3.5% after earnings!",
    "Read more: https://t.co/AbC123 and www.example.com/x?y=1",
    "J.P. Morgan: 'Buy' rating — target $1,250",
    "Bearish?!  Really??\n\nYes.",
    "Café résumé 🚀🚀 to the moon",
    "   leading and trailing   ",
    "Mixed CASE Ticker $tsla & $GOOG",
    "price-target (raised) #stocks @user",
)


def check_clean_text(student_clean: Callable[[str], str]) -> str:
    """The student's cleaning function must give exactly :func:`dixtill_lib.data.clean_text`'s output."""
    for case in CLEANING_CASES:
        got = student_clean(case)
        want = clean_text(case)
        if not isinstance(got, str):
            raise ExerciseFailure(f"your function returned {type(got).__name__}, expected a string (input: {case!r}).")
        if got != want:
            hint = _cleaning_hint(got, want)
            raise ExerciseFailure(f"on {case!r} expected {want!r}, got {got!r}. {hint}")
    return correct(f"all {len(CLEANING_CASES)} tricky tweets are cleaned exactly like the library does.")


def _cleaning_hint(got: str, want: str) -> str:
    if got != got.lower():
        return "Hint: lower-case first."
    if "http" in got or "www" in got:
        return "Hint: remove URLs (http(s)://… and www.…) before deleting punctuation."
    if "  " in got or got != got.strip():
        return "Hint: collapse runs of whitespace into one space and strip the ends."
    extra = sorted(set(got) - set(want))
    if extra:
        return f"Hint: these characters should have been removed: {extra}."
    missing = sorted(set(want) - set(got))
    if missing:
        return f"Hint: these characters should have been kept: {missing}."
    return "Hint: compare the two strings character by character."


def check_stratified_indices(student_fn: Callable[[np.ndarray, int, int], np.ndarray]) -> str:
    """``student_fn(labels, n, seed)`` must return ``n`` distinct, sorted indices whose class counts
    match the class proportions (each within one of ``n * share``), and be reproducible for a seed."""
    rng = np.random.Generator(np.random.PCG64(0))
    cases = [(np.repeat([0, 1, 2], [161, 202, 637]), 100), (rng.integers(0, 3, 997), 250),
             (np.repeat([0, 1], [5, 95]), 20)]
    for labels, n in cases:
        on = f"{len(labels)} labels with counts {np.bincount(labels).tolist()}, n={n}"
        idx = np.asarray(student_fn(labels, n, 7))
        if idx.ndim != 1 or len(idx) != n:
            raise ExerciseFailure(f"expected {n} indices, got shape {idx.shape} ({on}).")
        if not np.issubdtype(idx.dtype, np.integer):
            raise ExerciseFailure(f"indices must be integers, got dtype {idx.dtype} ({on}).")
        if len(np.unique(idx)) != n:
            raise ExerciseFailure(f"indices repeat: draw without replacement ({on}).")
        if idx.min() < 0 or idx.max() >= len(labels):
            raise ExerciseFailure(f"indices must lie in 0..{len(labels) - 1} ({on}).")
        if not np.all(np.diff(idx) > 0):
            raise ExerciseFailure(f"return the indices sorted ({on}).")
        got = np.bincount(labels[idx], minlength=labels.max() + 1)
        exact = np.bincount(labels) * n / len(labels)
        if np.any(np.abs(got - exact) >= 1):
            raise ExerciseFailure(f"class counts {got.tolist()} are not proportional: expected about "
                                  f"{np.round(exact, 2).tolist()} (each within 1) ({on}).")
        again = np.asarray(student_fn(labels, n, 7))
        if not np.array_equal(idx, again):
            raise ExerciseFailure(f"two calls with the same seed gave different subsets: seed your RNG ({on}).")
    return correct("sizes, class proportions, sortedness and reproducibility all check out.")
