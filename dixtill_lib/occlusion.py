"""Leave-one-word-out (occlusion) word attributions of a teacher: an explanation without gradients.

For a text ``x`` with student words ``w_1 … w_n`` (``x.split()``) and the explained class ``t``::

    score(w_i) = p_t(x) − p_t(x without w_i)

where ``x without w_i`` is the other words joined by single spaces and tokenised afresh. The scores live on
the student's words from the start (no word-piece merging), and each is exactly the drop in the teacher's
probability that deleting that word causes. Like IG's, they are then divided by their L2 norm, signs kept,
so the two can replace each other in DiXtill's explanation loss.

Why a second explainer: Integrated Gradients did not converge on the SmolLM2 teacher (chapter 7). Along the
straight path from the baseline to the tweet, the predicted probability of the 30-layer decoder jumps between
about 0 and 1 within a few per cent of the path, so 4 (or 50) quadrature points miss where the change
happens. Occlusion asks the teacher only about real, shorter tweets. It is the erasure idea ERASER's
comprehensiveness is built on (which deletes several top words at once), so it is related to that metric,
not identical to it.

Cost: one forward pass per word plus one for the whole tweet, no backward pass: for 13-word tweets about
what 4-step IG costs (4 forward + 4 backward passes). A one-word tweet cannot lose its word (an empty text is
not a tweet): its probability without the word is taken as ``1 / num_labels``, which after L2 normalisation
gives the one word the score +1 whenever the teacher prefers its class to chance, as it does for the class
it predicts.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

#: Bump when the recipe changes so old cache entries are not reused.
OCCLUSION_VERSION = "occlusion-v1"


@dataclass(frozen=True)
class OcclusionConfig:
    """How occlusion attributions are computed.

    - ``target``: ``"predicted"`` (the teacher's predicted class, as for IG) or ``"true"`` (the label).
    - ``normalise``: ``"l2"`` (as IG in DiXtill) or ``"none"`` (raw probability drops).
    - ``batch_size``: texts per teacher forward pass (does not change the numbers).
    """
    target: str = "predicted"
    normalise: str = "l2"
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.target not in ("predicted", "true"):
            raise ValueError(f"OcclusionConfig.target must be 'predicted' or 'true', got {self.target!r}.")
        if self.normalise not in ("l2", "none"):
            raise ValueError(f"OcclusionConfig.normalise must be 'l2' or 'none', got {self.normalise!r}.")
        if self.batch_size < 1:
            raise ValueError("OcclusionConfig.batch_size must be >= 1.")

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change the numbers (the cache key), with the recipe's version."""
        d = asdict(self)
        d.pop("batch_size")
        return {"explainer": OCCLUSION_VERSION, **d}


def without_each_word(text: str) -> list[str]:
    """``text`` with each of its whitespace words deleted in turn (one text per word, in order); a one-word
    text gives ``[""]``."""
    words = text.split()
    return [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]


def word_drops(predict_proba: Callable[[list[str]], np.ndarray], texts: Sequence[str], num_labels: int,
               labels: Sequence[int] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Raw occlusion scores: for each text, ``p_t(text) − p_t(text without word i)`` for every word ``i`` of
    ``text.split()`` (float64), and the targets ``t`` (the class predicted for the whole text, or ``labels``).
    ``predict_proba(list of texts) -> (n, num_labels)`` is called once, on the texts and all their deletions;
    an empty deletion (one-word text) counts as ``1 / num_labels`` for every class."""
    variants: list[str] = list(texts)           # the whole texts first, then every one-word deletion
    owner: list[int] = []
    for i, t in enumerate(texts):
        for v in without_each_word(t):
            variants.append(v)
            owner.append(i)
    real = [j for j, v in enumerate(variants) if v]
    proba = np.full((len(variants), num_labels), 1.0 / num_labels)
    proba[real] = predict_proba([variants[j] for j in real])
    n = len(texts)
    targets = np.asarray(labels, dtype=np.int64) if labels is not None else proba[:n].argmax(1).astype(np.int64)
    owner_a = np.asarray(owner, dtype=np.int64)
    drops = proba[owner_a, targets[owner_a]] - proba[n:][np.arange(len(owner_a)), targets[owner_a]]
    bounds = np.cumsum([0] + [len(t.split()) for t in texts])
    return [drops[a:b] for a, b in zip(bounds[:-1], bounds[1:])], targets


def attribute(teacher, texts: Sequence[str], cfg: OcclusionConfig = OcclusionConfig(),
              labels: Sequence[int] | None = None, progress: bool = True):
    """Occlusion word attributions of ``texts`` (see the module docstring) as
    :class:`dixtill_lib.explain.Attributions`; ``deltas`` are all 0 (occlusion has no convergence gap)."""
    from .explain import Attributions, _check

    texts = _check(texts, labels, cfg)
    t0 = time.perf_counter()
    drops, targets = word_drops(lambda v: teacher.predict_proba(v, batch_size=cfg.batch_size, progress=progress),
                                texts, teacher.num_labels, labels if cfg.target == "true" else None)
    scores = []
    for s in drops:
        if cfg.normalise == "l2" and np.linalg.norm(s) > 0:
            s = s / np.linalg.norm(s)
        scores.append(s.astype(np.float32))
    return Attributions(scores, np.zeros(len(texts), np.float32), targets, time.perf_counter() - t0)
