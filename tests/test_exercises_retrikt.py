"""The RetriKT exercise checkers accept the reference and reject typical wrong answers with a helpful message."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.exercises import ExerciseFailure
from dixtill_lib.exercises.retrikt import (check_clipped_objective, check_gae, check_retrieval_proba,
                                           reference_clipped_objective, reference_gae, reference_retrieval_proba)
from dixtill_lib.retrikt.ppo import clipped_policy_loss, gae
from dixtill_lib.retrikt.store import retrieval_proba


def test_references_pass_and_match_the_library():
    assert check_retrieval_proba(reference_retrieval_proba).startswith("Correct")
    assert check_retrieval_proba(retrieval_proba).startswith("Correct")
    assert check_gae(reference_gae).startswith("Correct")
    assert check_clipped_objective(reference_clipped_objective).startswith("Correct")
    import torch

    r, v = np.array([0.2, -0.1, 1.0]), np.array([0.1, 0.3, 0.4])
    lib, _ = gae(torch.tensor(r[None]), torch.tensor(v[None]), torch.ones(1, 3), 0.9, 0.8)
    assert lib[0].numpy() == pytest.approx(reference_gae(r, v, 0.9, 0.8))
    ratio, adv = np.array([1.5, 0.5, 1.1]), np.array([1.0, 1.0, -1.0])
    loss = clipped_policy_loss(torch.log(torch.tensor(ratio[None])), torch.zeros(1, 3), torch.tensor(adv[None]), torch.ones(1, 3))
    assert -loss.item() == pytest.approx(reference_clipped_objective(ratio, adv, 0.2))


def test_retrieval_wrong_answers():
    with pytest.raises(ExerciseFailure, match="averaged"):
        check_retrieval_proba(lambda s, p, T: p.mean(1))
    with pytest.raises(ExerciseFailure, match="p_ret"):                       # forgot the temperature
        check_retrieval_proba(lambda s, p, T: reference_retrieval_proba(s, p, 1.0))
    with pytest.raises(ExerciseFailure, match="p_ret"):                       # weights ∝ similarity
        check_retrieval_proba(lambda s, p, T: np.einsum("nk,nkc->nc", s / s.sum(1, keepdims=True), p))
    with pytest.raises(ExerciseFailure, match="ZeroDivisionError"):
        check_retrieval_proba(lambda s, p, T: 1 / 0)


def test_gae_wrong_answers():
    with pytest.raises(ExerciseFailure, match="one-step TD"):
        check_gae(lambda r, v, g, l: reference_gae(r, v, g, 0.0))
    with pytest.raises(ExerciseFailure, match="advantages"):                   # Monte-Carlo: ignores λ
        check_gae(lambda r, v, g, l: reference_gae(r, v, g, 1.0))
    with pytest.raises(ExerciseFailure, match="advantages"):                   # forgot γ in the bootstrap
        check_gae(lambda r, v, g, l: reference_gae(r, v, 1.0, l))


def test_clipped_wrong_answers():
    with pytest.raises(ExerciseFailure, match="max"):
        check_clipped_objective(lambda r, a, e: np.mean(np.maximum(r * a, np.clip(r, 1 - e, 1 + e) * a)))
    with pytest.raises(ExerciseFailure, match="sign"):
        check_clipped_objective(lambda r, a, e: -reference_clipped_objective(r, a, e))
    with pytest.raises(ExerciseFailure, match="clipped objective"):           # no clipping at all
        check_clipped_objective(lambda r, a, e: np.mean(r * a))
