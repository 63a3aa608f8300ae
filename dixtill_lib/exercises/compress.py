"""Checkers for chapter 5 (compression baselines).

* :func:`check_head_mask` — ``mask_heads(x, keep, head_dim)``: zero the slices of the concatenated
  per-head context ``x`` (…, H·d) that belong to removed heads (the body of the forward-pre-hook).
* :func:`check_compression_stats` — ``compression_stats(teacher_bytes, model_bytes, teacher_f1, model_f1)
  -> (C_ratio, P_drop)`` with ``C_ratio = S_teacher / S_model`` and ``P_drop = 1 − P_c / P_r``.
* :func:`check_heads_to_prune` — ``choose_heads(importance, n_prune) -> {layer: [heads]}``: the
  ``n_prune`` least important heads of *every* layer.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from . import ExerciseFailure, correct, expect_close


# ---------------------------------------------------------------- 1. the head-mask hook

def reference_mask_heads(x: torch.Tensor, keep: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Head ``h`` owns columns ``[h*head_dim, (h+1)*head_dim)`` of the last axis."""
    return x * keep.to(x.dtype).repeat_interleave(head_dim)


def check_head_mask(mask_heads: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> str:
    gen = torch.Generator().manual_seed(0)
    cases = [(torch.randn(2, 5, 4 * 3, generator=gen), torch.tensor([1.0, 0.0, 1.0, 0.0]), 3),
             (torch.randn(1, 7, 6 * 2, generator=gen), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 0.0]), 2),
             (torch.randn(3, 2, 3 * 4, generator=gen), torch.tensor([1.0, 1.0, 1.0]), 4)]
    for x, keep, d in cases:
        on = f"x of shape {tuple(x.shape)}, keep={keep.int().tolist()}, head_dim={d}"
        got = mask_heads(x.clone(), keep.clone(), d)
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailure(f"Return a torch.Tensor, got {type(got).__name__} (input: {on}).")
        want = reference_mask_heads(x, keep, d)
        tiled = x * keep.repeat(d)
        if got.shape == want.shape and torch.allclose(got, tiled) and not torch.allclose(tiled, want):
            raise ExerciseFailure("You tiled the mask (keep.repeat): the layout is head-major, so head h owns "
                                  "d *consecutive* columns — use repeat_interleave(head_dim).")
        if got.shape == want.shape and torch.allclose(got, x * (1 - keep).repeat_interleave(d)) \
                and not torch.allclose(want, x):
            raise ExerciseFailure("You zeroed the heads to *keep*: keep[h] = 1 means the head stays.")
        expect_close(got, want, "masked context", on, rtol=1e-6, atol=1e-7)
    return correct("Removed heads contribute exactly zero to attention.output.dense — the same logits as "
                   "slicing them out.")


# ---------------------------------------------------------------- 2. compression ratio and performance drop

def reference_compression_stats(teacher_bytes: float, model_bytes: float, teacher_metric: float,
                                model_metric: float) -> tuple[float, float]:
    return teacher_bytes / model_bytes, 1.0 - model_metric / teacher_metric


def check_compression_stats(compression_stats: Callable[..., Any]) -> str:
    cases = [(439e6, 182.5e6, 0.810, 0.808), (439e6, 3.45e6, 0.810, 0.789), (90.9e6, 58.6e6, 0.80, 0.82)]
    for tb, mb, tf, mf in cases:
        on = f"teacher {tb:.3g} B, model {mb:.3g} B, teacher F1 {tf}, model F1 {mf}"
        got = compression_stats(tb, mb, tf, mf)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseFailure(f"Return a pair (C_ratio, P_drop), got {got!r} (input: {on}).")
        ratio, drop = (float(v) for v in got)
        want_ratio, want_drop = reference_compression_stats(tb, mb, tf, mf)
        if np.isclose(ratio, mb / tb, rtol=1e-6):
            raise ExerciseFailure(f"C_ratio is upside down ({ratio:.4g}): it is S_teacher / S_model, so a smaller "
                                  f"model has a ratio > 1 (input: {on}).")
        if np.isclose(drop, tf - mf, rtol=1e-6, atol=1e-12) and not np.isclose(tf - mf, want_drop):
            raise ExerciseFailure(f"P_drop = {drop:.4g} is an absolute difference; the paper's drop is relative: "
                                  f"1 − P_c / P_r (input: {on}).")
        if np.isclose(drop, -want_drop, rtol=1e-6) and not np.isclose(want_drop, 0):
            raise ExerciseFailure(f"P_drop has the wrong sign: a worse model has a positive drop (input: {on}).")
        expect_close(ratio, want_ratio, "C_ratio", on, rtol=1e-6)
        expect_close(drop, want_drop, "P_drop", on, rtol=1e-6, atol=1e-9)
    return correct("PTQ in the paper: 2.41× smaller for a 0.25 % drop in macro-F1; DiXtill: 127× for 2.6 %.")


# ---------------------------------------------------------------- 3. which heads to prune

def reference_choose_heads(importance: np.ndarray, n_prune: int) -> dict[int, list[int]]:
    imp = np.asarray(importance, dtype=float)
    return {l: sorted(int(h) for h in np.argsort(imp[l], kind="stable")[:n_prune]) for l in range(imp.shape[0])}


def check_heads_to_prune(choose_heads: Callable[[np.ndarray, int], dict]) -> str:
    rng = np.random.default_rng(4)
    cases = [(rng.random((3, 6)), 2), (np.array([[0.1, 5.0, 0.2, 3.0], [9.0, 8.0, 0.01, 0.02]]), 2),
             (rng.random((2, 12)) * np.array([[1.0], [100.0]]), 6), (rng.random((4, 4)), 0)]
    for imp, n in cases:
        on = f"importance of shape {imp.shape}, n_prune={n}"
        got = choose_heads(imp.copy(), n)
        if not isinstance(got, dict):
            raise ExerciseFailure(f"Return a dict {{layer: [heads]}}, got {type(got).__name__} (input: {on}).")
        got = {int(k): sorted(int(h) for h in v) for k, v in got.items()}
        want = reference_choose_heads(imp, n)
        if got == reference_choose_heads(-imp, n) and got != want:
            raise ExerciseFailure(f"You picked the *most* important heads; prune the least important ones "
                                  f"(input: {on}).")
        flat = np.argsort(imp, axis=None, kind="stable")[: n * imp.shape[0]]
        global_pick: dict[int, list[int]] = {l: [] for l in range(imp.shape[0])}
        for f in flat:
            global_pick[int(f // imp.shape[1])].append(int(f % imp.shape[1]))
        if got == {k: sorted(v) for k, v in global_pick.items()} and got != want:
            raise ExerciseFailure(f"You ranked heads globally; AHP prunes the same number of heads in *every* "
                                  f"layer (rank within each layer) (input: {on}).")
        if set(got) != set(want):
            raise ExerciseFailure(f"Return one entry per layer {sorted(want)}, got layers {sorted(got)} "
                                  f"(input: {on}).")
        for l in want:
            if len(got[l]) != n:
                raise ExerciseFailure(f"Layer {l}: expected {n} heads to prune, got {len(got[l])} (input: {on}).")
            if got[l] != want[l]:
                raise ExerciseFailure(f"Layer {l}: expected heads {want[l]}, got {got[l]} (input: {on}).")
    return correct("Same count per layer, least important first — exactly what heads.keep_mask does.")
