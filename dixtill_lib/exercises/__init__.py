"""Checkers for the book's course exercises. Each ``check_<name>(student_fn)`` runs the student's
function on small inputs, compares with the reference, and either returns a short "Correct" message or
raises :class:`ExerciseFailure` saying *what* is wrong and *on which input*.

Chapters import checkers from the submodule named after the chapter, e.g.
``from dixtill_lib.exercises.distill import check_xai_loss``."""
from __future__ import annotations

from typing import Any

import numpy as np


class ExerciseFailure(AssertionError):
    """The submitted answer is wrong; the message explains how."""


def expect_close(got: Any, want: Any, what: str, on: str, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    """Raise :class:`ExerciseFailure` unless ``got`` ≈ ``want`` (shapes first, then values)."""
    g = np.asarray(_to_numpy(got), dtype=float)
    w = np.asarray(_to_numpy(want), dtype=float)
    if g.shape != w.shape:
        raise ExerciseFailure(f"{what}: expected shape {w.shape}, got {g.shape} (input: {on}).")
    if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
        i = np.unravel_index(np.nanargmax(np.abs(g - w)), g.shape) if g.ndim else ()
        raise ExerciseFailure(f"{what}: expected {np.round(w[i], 6)}, got {np.round(g[i], 6)}"
                              f"{f' at index {tuple(int(x) for x in i)}' if g.ndim else ''} (input: {on}).")


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def correct(message: str) -> str:
    return f"Correct! {message}"
