"""Explanation agreement (Krishna et al. 2022) on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.agreement import (agreement_per_sample, agreement_table, cosine, feature_agreement_at_k,
                                   sign_agreement_at_k, spearman, top_k)

A = np.array([0.9, -0.8, 0.1, 0.05, -0.5])   # |.| order: 0, 1, 4, 2, 3
B = np.array([0.7, 0.1, 0.2, 0.0, 0.6])      # |.| order: 0, 4, 2, 1, 3


def test_top_k_by_magnitude_ties_to_earlier_word():
    assert top_k(A, 3).tolist() == [0, 1, 4]
    assert top_k(np.array([0.5, -0.5, 0.5]), 2).tolist() == [0, 1]


def test_feature_and_sign_agreement_hand_cases():
    assert feature_agreement_at_k(A, B, 1) == 1.0                  # {0} vs {0}
    assert feature_agreement_at_k(A, B, 2) == 0.5                  # {0,1} vs {0,4}
    assert feature_agreement_at_k(A, B, 3) == pytest.approx(2 / 3)  # {0,1,4} vs {0,4,2}
    assert feature_agreement_at_k(A, B, 4) == 1.0                  # {0,1,4,2} vs {0,4,2,1}
    assert sign_agreement_at_k(A, B, 3) == pytest.approx(1 / 3)    # 0 agrees (+,+); 4 does not (-,+)
    assert sign_agreement_at_k(A, B, 4) == pytest.approx(2 / 4)    # 0 and 2 agree; 1 and 4 do not
    assert sign_agreement_at_k(A, -A, 5) == 0.0 and feature_agreement_at_k(A, -A, 5) == 1.0


def test_short_sentences_use_k_equal_length():
    a, b = np.array([0.3, 0.1]), np.array([0.0, 0.2])
    assert feature_agreement_at_k(a, b, 5) == 1.0   # k=2: both words are in both top-2
    assert sign_agreement_at_k(a, b, 5) == 0.5      # word 0: sign(0.3)=+ vs sign(0)=0


def test_cosine_and_spearman():
    assert cosine(A, 2 * A) == pytest.approx(1.0)
    assert cosine(A, np.zeros(5)) == 0.0
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 20, 30])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.array([1.0]), np.array([2.0])))


def test_padded_student_and_length_mismatch():
    padded = np.zeros((1, 8))
    padded[0, :5] = B
    assert feature_agreement_at_k(A, padded[0], 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="length"):
        feature_agreement_at_k(A, B[:3], 2)


def test_table_means_and_per_sample():
    teacher = [A, np.array([1.0, -2.0])]
    student = np.zeros((2, 6))
    student[0, :5], student[1, :2] = B, [-1.0, 2.0]
    means, per = agreement_table(teacher, student, ks=(1, 3), return_per_sample=True)
    np.testing.assert_allclose(per["feature_agreement@3"], [2 / 3, 1.0])
    np.testing.assert_allclose(per["sign_agreement@1"], [1.0, 0.0])
    assert means["feature_agreement@3"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert means["cosine"] == pytest.approx((cosine(A, B) + -1.0) / 2)
    assert set(means) == {"feature_agreement@1", "sign_agreement@1", "feature_agreement@3",
                          "sign_agreement@3", "cosine", "spearman"}
    assert agreement_table([A], [A])["feature_agreement@5"] == 1.0
    with pytest.raises(ValueError, match="teacher explanations"):
        agreement_per_sample([A], [A, A])
