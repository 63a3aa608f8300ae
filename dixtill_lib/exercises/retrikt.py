"""Checkers for the RetriKT chapter's exercises: the retrieval mixture p_ret, GAE, and PPO's clipped objective."""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import ExerciseFailure, correct, expect_close


def reference_retrieval_proba(sims: np.ndarray, neighbour_soft: np.ndarray, temperature: float) -> np.ndarray:
    """``p_ret = Σ_i softmax(sim_i / T) · p_T(·|x̂_i)``."""
    z = np.asarray(sims, float) / temperature
    w = np.exp(z - z.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return np.einsum("nk,nkc->nc", w, np.asarray(neighbour_soft, float))


def reference_gae(rewards: np.ndarray, values: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Advantages of one finished sequence (value after the last step = 0)."""
    adv, last = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        nxt = values[t + 1] if t + 1 < len(values) else 0.0
        last = rewards[t] + gamma * nxt - values[t] + gamma * lam * last
        adv[t] = last
    return adv


def reference_clipped_objective(ratio: np.ndarray, adv: np.ndarray, eps: float) -> float:
    """PPO's clipped surrogate (to maximise): ``mean_t min(ρ_t A_t, clip(ρ_t, 1−ε, 1+ε) A_t)``."""
    ratio, adv = np.asarray(ratio, float), np.asarray(adv, float)
    return float(np.mean(np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)))


def _call(fn: Callable, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - report the student's error plainly
        raise ExerciseFailure(f"Your function raised {type(exc).__name__}: {exc}") from exc


def check_retrieval_proba(fn: Callable) -> str:
    """``fn(sims (n, k), neighbour_soft (n, k, C), temperature) -> (n, C)``."""
    rng = np.random.default_rng(3)
    cases = [(np.array([[0.9, 0.5]]), np.array([[[1.0, 0.0], [0.0, 1.0]]]), 0.2, "two neighbours, T=0.2"),
             (rng.uniform(0.2, 0.9, (4, 5)), rng.dirichlet(np.ones(3), (4, 5)), 0.05, "4 queries, 5 neighbours, T=0.05"),
             (np.array([[0.8, 0.8, 0.1]]), np.eye(3)[None], 1.0, "tied similarities, T=1")]
    for sims, soft, T, what in cases:
        got = _call(fn, sims.copy(), soft.copy(), T)
        want = reference_retrieval_proba(sims, soft, T)
        if np.shape(got) == want.shape and np.allclose(got, soft.mean(1), atol=1e-4) and not np.allclose(want, soft.mean(1)):
            raise ExerciseFailure(f"You averaged the neighbours' labels equally ({what}): weight them by "
                                  f"softmax(similarity / T).")
        expect_close(got, want, "p_ret", what, rtol=1e-4, atol=1e-6)
    return correct("p_ret is a similarity-weighted vote of the teacher's soft labels; small T trusts the nearest.")


def check_gae(fn: Callable) -> str:
    """``fn(rewards (T,), values (T,), gamma, lam) -> advantages (T,)`` for one finished sequence."""
    cases = [(np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.6, 0.7]), 1.0, 0.5, "r=[0,0,1], V=[.5,.6,.7], γ=1, λ=.5"),
             (np.array([1.0, 1.0]), np.zeros(2), 0.5, 1.0, "r=[1,1], V=0, γ=.5, λ=1"),
             (np.array([0.2, -0.1, 0.0, 1.0]), np.array([0.1, 0.3, 0.2, 0.4]), 0.9, 0.8, "4 steps, γ=.9, λ=.8")]
    for r, v, g, lam, what in cases:
        got = _call(fn, r.copy(), v.copy(), g, lam)
        want = reference_gae(r, v, g, lam)
        td0 = reference_gae(r, v, g, 0.0)
        if np.shape(got) == want.shape and np.allclose(got, td0) and not np.allclose(want, td0):
            raise ExerciseFailure(f"Your advantages equal the one-step TD errors δ_t ({what}): add γλ·A_(t+1).")
        expect_close(got, want, "advantages", what)
    return correct("GAE trades bias (λ→0, one-step TD) against variance (λ→1, Monte-Carlo return − V).")


def check_clipped_objective(fn: Callable) -> str:
    """``fn(ratio (T,), advantages (T,), eps) -> float`` — the surrogate to *maximise*."""
    cases = [(np.array([1.0, 1.0]), np.array([2.0, -3.0]), 0.1, "ρ=1 (first epoch)"),
             (np.array([3.0, 0.1, 3.0, 0.1]), np.array([1.0, -2.0, -1.0, 3.0]), 0.2, "ρ far outside the clip range"),
             (np.array([1.5, 0.5, 1.1, 0.7]), np.array([1.0, 1.0, -1.0, -1.0]), 0.2, "ρ=[1.5,.5,1.1,.7], A=[1,1,-1,-1]")]
    for ratio, adv, eps, what in cases:
        got = _call(fn, ratio.copy(), adv.copy(), eps)
        want = reference_clipped_objective(ratio, adv, eps)
        if np.isclose(float(np.asarray(got)), -want) and not np.isclose(want, 0):
            raise ExerciseFailure(f"Wrong sign ({what}): return the objective to maximise, not the loss.")
        wrong_max = float(np.mean(np.maximum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)))
        if np.isclose(float(np.asarray(got)), wrong_max) and not np.isclose(want, wrong_max):
            raise ExerciseFailure(f"You took the max of the clipped and unclipped terms ({what}): PPO takes the "
                                  f"*min*, a pessimistic bound.")
        expect_close(np.asarray(got, float), want, "clipped objective", what)
    return correct("Clipping removes the incentive to move ρ beyond 1±ε in the direction the advantage favours.")
