"""Chapter-2 checkers accept correct answers and reject wrong ones with a useful message."""
from __future__ import annotations

import re

import numpy as np
import pytest

from dixtill_lib.data import clean_text, stratified_indices
from dixtill_lib.exercises import ExerciseFailure
from dixtill_lib.exercises.data import check_clean_text, check_stratified_indices


def test_clean_text_checker():
    assert check_clean_text(clean_text).startswith("Correct!")
    with pytest.raises(ExerciseFailure, match="lower-case"):
        check_clean_text(lambda s: re.sub(r"\s+", " ", s).strip())
    no_urls = lambda s: re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 $!?\n]", "", s.lower())).strip()  # noqa: E731
    with pytest.raises(ExerciseFailure, match="URL"):
        check_clean_text(no_urls)
    keeps_dots = lambda s: re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 $!?\n.]", "",  # noqa: E731
                                                      re.sub(r"(https?://\S+|www\.\S+)", " ", s.lower()))).strip()
    with pytest.raises(ExerciseFailure, match=r"removed: \['\.'\]"):
        check_clean_text(keeps_dots)


def test_stratified_checker():
    assert check_stratified_indices(stratified_indices).startswith("Correct!")
    with pytest.raises(ExerciseFailure, match="not proportional"):
        check_stratified_indices(lambda y, n, seed: np.arange(n))
    with pytest.raises(ExerciseFailure, match="same seed"):
        rng = np.random.default_rng()
        check_stratified_indices(lambda y, n, seed: stratified_indices(y, n, int(rng.integers(1 << 30))))
    with pytest.raises(ExerciseFailure, match="sorted"):
        check_stratified_indices(lambda y, n, seed: stratified_indices(y, n, seed)[::-1])
