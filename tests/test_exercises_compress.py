"""Chapter 5 checkers accept the reference and reject typical wrong answers with a useful message."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dixtill_lib.exercises import ExerciseFailure
from dixtill_lib.exercises.compress import (check_compression_stats, check_head_mask, check_heads_to_prune,
                                            reference_choose_heads, reference_compression_stats,
                                            reference_mask_heads)
from dixtill_lib.heads import heads_to_prune, keep_mask


def test_head_mask_checker():
    assert check_head_mask(reference_mask_heads).startswith("Correct")
    with pytest.raises(ExerciseFailure, match="repeat_interleave"):
        check_head_mask(lambda x, keep, d: x * keep.repeat(d))
    with pytest.raises(ExerciseFailure, match="to \\*keep\\*"):
        check_head_mask(lambda x, keep, d: x * (1 - keep).repeat_interleave(d))
    with pytest.raises(ExerciseFailure, match="masked context"):
        check_head_mask(lambda x, keep, d: x)
    with pytest.raises(ExerciseFailure, match="torch.Tensor"):
        check_head_mask(lambda x, keep, d: x.numpy())


def test_head_mask_reference_matches_library_hook(tiny):
    from dixtill_lib.heads import head_mask_hook

    x = torch.randn(2, 3, 8)
    keep = torch.tensor([0.0, 1.0, 1.0, 0.0])
    (hooked,) = head_mask_hook(keep, 2)(None, (x,))
    torch.testing.assert_close(hooked, reference_mask_heads(x, keep, 2))


def test_compression_stats_checker():
    assert check_compression_stats(reference_compression_stats).startswith("Correct")
    with pytest.raises(ExerciseFailure, match="upside down"):
        check_compression_stats(lambda tb, mb, tf, mf: (mb / tb, 1 - mf / tf))
    with pytest.raises(ExerciseFailure, match="absolute difference"):
        check_compression_stats(lambda tb, mb, tf, mf: (tb / mb, tf - mf))
    with pytest.raises(ExerciseFailure, match="wrong sign"):
        check_compression_stats(lambda tb, mb, tf, mf: (tb / mb, mf / tf - 1))
    with pytest.raises(ExerciseFailure, match="pair"):
        check_compression_stats(lambda tb, mb, tf, mf: tb / mb)


def test_heads_to_prune_checker():
    assert check_heads_to_prune(reference_choose_heads).startswith("Correct")
    # the library's keep_mask answers the same question
    imp = np.random.default_rng(0).random((3, 12))
    assert heads_to_prune(keep_mask(imp, 8)) == reference_choose_heads(imp, 4)
    with pytest.raises(ExerciseFailure, match="most"):
        check_heads_to_prune(lambda imp, n: reference_choose_heads(-imp, n))

    def global_rank(imp, n):
        flat = np.argsort(imp, axis=None, kind="stable")[: n * imp.shape[0]]
        out = {l: [] for l in range(imp.shape[0])}
        for f in flat:
            out[int(f // imp.shape[1])].append(int(f % imp.shape[1]))
        return out
    with pytest.raises(ExerciseFailure, match="globally"):
        check_heads_to_prune(global_rank)
    with pytest.raises(ExerciseFailure, match="expected .* heads to prune"):
        check_heads_to_prune(lambda imp, n: reference_choose_heads(imp, n + 1))
    with pytest.raises(ExerciseFailure, match="dict"):
        check_heads_to_prune(lambda imp, n: [])
