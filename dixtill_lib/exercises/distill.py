"""Checkers for chapter 4 (distillation): DiXtill's bounded KD term, its explanation loss L_XAI, and
the student's masked attention. Each compares the reader's function with the library's reference on
small fixed tensors and names the typical mistake when the answer matches a known wrong variant."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from . import ExerciseFailure, correct, expect_close
from ..distill import bounded_kd, cosine_keras, kl_per_sample


def _logit_cases() -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(0)
    zt = torch.randn(6, 3, generator=g) * 3
    zs = torch.randn(6, 3, generator=g)
    return [(zt, zs, 5.0), (zt, zs, 1.0), (zt[:2] * 0.3, zs[:2] * 0.2, 2.0), (zt, zt.clone(), 5.0)]


def _value(x) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ExerciseFailure(f"return one number for the batch (a 0-d tensor), got shape {tuple(x.shape)}.")
        return float(x)
    return float(x)


def check_bounded_kd(student_fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """``student_fn(teacher_logits, student_logits, T)`` must return the code form
    ``1 − exp(−T²·mean_b KL(softmax(z_T/T) ‖ softmax(z_S/T)))``."""
    for zt, zs, T in _logit_cases():
        on = f"batch of {len(zt)}, T={T}"
        got = _value(student_fn(zt.clone(), zs.clone(), T))
        want = float(bounded_kd(zt, zs, T))
        if np.isclose(got, want, rtol=1e-4, atol=1e-6):
            continue
        kl = kl_per_sample(zt, zs, T)
        wrong = {
            "you left out the T² inside the exponential (that is the paper's 1 − exp(−KL); the authors' code "
            "multiplies the KL by T²)": 1 - torch.exp(-kl.mean()),
            "you applied exp per example and averaged afterwards; the code takes exp of the *batch-mean* KL":
                (1 - torch.exp(-(T ** 2) * kl)).mean(),
            "the KL is reversed: use KL(p_T ‖ p_S) = Σ p_T·log(p_T/p_S)":
                1 - torch.exp(-(T ** 2) * kl_per_sample(zs, zt, T).mean()),
            "the softmaxes must be taken at temperature T (divide the logits by T first)":
                1 - torch.exp(-(T ** 2) * kl_per_sample(zt * T, zs * T, T).mean()),
            "you returned the bare KL term T²·KL, not the bounded 1 − exp(−T²·KL)": (T ** 2) * kl.mean(),
        }
        for msg, val in wrong.items():
            if np.isclose(got, float(val), rtol=1e-4, atol=1e-6):
                raise ExerciseFailure(f"{msg} (input: {on}; expected {want:.6f}, got {got:.6f}).")
        expect_close(got, want, "bounded KD", on)
    return correct("your bounded KD term matches the authors' code, T² and batch-mean KL included.")


def _xai_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 3, 8, 1])
    mask = (torch.arange(8)[None, :] < lengths[:, None]).float()
    expl = torch.randn(4, 8, generator=g) * mask
    scores = torch.randn(4, 8, generator=g) * 2 + 0.5          # raw σ, non-zero on pads too
    expl_zero = expl.clone()
    expl_zero[1] = 0.0                                         # a text whose teacher explanation is all zeros
    return [(expl, scores, mask), (expl_zero, scores, mask)]


def reference_xai_loss(teacher_expl: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``½·(1 − mean_b cos(σ_T, σ·μ))`` with Keras' zero-vector convention (cos = 0)."""
    return 0.5 * (1 - cosine_keras(teacher_expl, scores * mask).mean())


def check_xai_loss(student_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """``student_fn(teacher_expl, scores, mask)`` — teacher attributions (B, L) zero-padded, the student's
    *raw* attention scores σ (B, L) and the mask μ — must return ``L_XAI = ½(1 − mean cos(σ_T, σ·μ))``."""
    for expl, scores, mask in _xai_cases():
        on = f"batch of {len(expl)}, L={expl.shape[1]}" + (", one all-zero teacher vector" if
                                                          bool((expl.abs().sum(1) == 0).any()) else "")
        got_t = student_fn(expl.clone(), scores.clone(), mask.clone())
        got = _value(got_t)
        want = float(reference_xai_loss(expl, scores, mask))
        if not np.isfinite(got):
            raise ExerciseFailure(f"got {got}: an all-zero vector has norm 0 — clamp the squared norm (Keras uses "
                                  f"eps=1e-12) so its cosine is 0, not NaN (input: {on}).")
        if np.isclose(got, want, rtol=1e-4, atol=1e-6):
            continue
        alpha = torch.softmax(scores * mask + (mask - 1) * 1e4, dim=1)
        wrong = {
            "you did not mask the scores: multiply σ by the mask so padding contributes nothing (σm = σ·μ)":
                0.5 * (1 - cosine_keras(expl, scores).mean()),
            "you used the attention weights α (after the softmax); DiXtill aligns the raw masked scores σm, which "
            "can be negative like the teacher's attributions": 0.5 * (1 - cosine_keras(expl, alpha).mean()),
            "you forgot the factor ½: L_XAI = ½(1 − cos) lies in [0, 1]": 1 - cosine_keras(expl, scores * mask).mean(),
            "you returned the cosine itself; the loss is ½(1 − cos), small when the explanations agree":
                cosine_keras(expl, scores * mask).mean(),
            "you returned the Keras CosineSimilarity loss −cos; the code turns it into ½(1 + (−cos))":
                -cosine_keras(expl, scores * mask).mean(),
        }
        for msg, val in wrong.items():
            if np.isclose(got, float(val), rtol=1e-4, atol=1e-6):
                raise ExerciseFailure(f"{msg} (input: {on}; expected {want:.6f}, got {got:.6f}).")
        expect_close(got, want, "L_XAI", on)
    return correct("masked scores, cosine with the zero-vector convention, and the ½(1 − cos) scaling all match.")


def reference_masked_attention(scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, sig_m)``: ``sig_m = σ·μ``; ``alpha = softmax(sig_m + (μ − 1)·10⁴)`` over the time axis."""
    sig_m = scores * mask
    return torch.softmax(sig_m + (mask - 1) * 1e4, dim=1), sig_m


def check_masked_attention(student_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> str:
    """``student_fn(scores, mask) -> (alpha, sig_m)`` for raw scores σ (B, L) and mask μ (B, L)."""
    _, scores, mask = _xai_cases()[0]
    on = f"scores of shape {tuple(scores.shape)} with {int(mask.sum())} real words"
    out = student_fn(scores.clone(), mask.clone())
    if not isinstance(out, tuple) or len(out) != 2:
        raise ExerciseFailure("return a pair (alpha, sig_m).")
    alpha, sig_m = (torch.as_tensor(o, dtype=torch.float32) for o in out)
    want_alpha, want_sig = reference_masked_attention(scores, mask)
    if alpha.shape != want_alpha.shape:
        raise ExerciseFailure(f"alpha must have shape {tuple(want_alpha.shape)} (one weight per position), got "
                              f"{tuple(alpha.shape)} ({on}).")
    if not torch.allclose(alpha.sum(1), torch.ones(len(alpha)), atol=1e-4):
        raise ExerciseFailure(f"each row of alpha must sum to 1 (softmax over the time axis, dim=1); row sums are "
                              f"{alpha.sum(1).numpy().round(4).tolist()} ({on}).")
    pad_weight = float((alpha * (1 - mask)).sum())
    if pad_weight > 1e-4:
        if torch.allclose(alpha, torch.softmax(scores * mask, dim=1), atol=1e-5):
            hint = ("multiplying the scores by the mask is not enough: a padded position then scores 0 and still gets "
                    "weight exp(0); add (μ − 1)·10⁴ so it scores −10⁴")
        else:
            hint = "padding must get zero attention weight: add (μ − 1)·10⁴ to the scores before the softmax"
        raise ExerciseFailure(f"padded positions receive {pad_weight:.3f} of the attention mass — {hint} ({on}).")
    expect_close(sig_m, want_sig, "sig_m (the masked raw scores, 0 on padding)", on)
    expect_close(alpha, want_alpha, "alpha", on, rtol=1e-4, atol=1e-6)
    return correct("padding gets exactly zero weight and sig_m is the masked raw score, as in the student.")


__all__ = ["check_bounded_kd", "check_xai_loss", "check_masked_attention", "reference_xai_loss",
           "reference_masked_attention"]
