"""A transfer set for distillation: new tweets made from the training tweets and labelled by the teacher
(Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple neural networks", §3.3).

Why: a fine-tuned teacher has fitted its own training tweets, so its logits on them are close to one-hot and
KD on them carries little more than the labels (measured for SmolLM2 in chapter 7). On perturbed tweets it
was never trained on, its probabilities say how much each change matters: the knowledge KD is meant to move.

Each new text comes from one training text, word by word (Tang et al.'s rules, two of them adapted):

* with probability ``p_drop`` the word is **deleted** (Tang: replaced by ``[MASK]``; SmolLM2 has no mask
  token, and to the student a mask would be one more unknown word);
* else with probability ``p_swap`` it is **replaced by one of its** ``neighbours`` **nearest GloVe
  neighbours** among the student's vocabulary (Tang: a random word with the same part-of-speech tag, which
  needs a tagger's downloaded data; TinyBERT also swaps GloVe neighbours). A neighbour can flip the
  sentiment ("rises" → "falls"): that is fine, the teacher labels the new text;
* then, with probability ``p_ngram``, only a random **n-gram** (n uniform in 1..5) of the result is kept.

``copies`` distinct new texts are drawn per training text (Tang: 10 to 20); a draw equal to a training text
or to an earlier draw is dropped and drawn again (at most ``tries`` draws per copy). With ``balance`` (our
addition, not Tang's) a text of a rarer gold class gets proportionally more copies — ``copies`` for the most
frequent class, ``copies * n_most / n_class`` (rounded) for the others — so every class sends about as many
new texts to the teacher: the metric is macro-F1, and the uniform draw shifts the set further toward the
majority class (deleting words and keeping n-grams makes tweets neutral). ``rounds`` repeats the whole
draw with seeds ``seed``, ``seed + 1``, ...: ``rounds`` × ``copies`` per text, whose first round is the
one-round set.

The teacher's logits label the new texts, round by round (so a bigger set reuses a smaller one's cached
logits); the hard label for cross-entropy is the teacher's argmax, and they have no teacher explanation,
so DiXtill's explanation term skips them (:func:`dixtill_lib.distill.xai_loss`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

AUGMENT_VERSION = "augment-v1"


@dataclass(frozen=True)
class AugmentConfig:
    """How the transfer set is drawn (Tang et al.'s values for the probabilities)."""
    copies: int = 4
    p_drop: float = 0.1
    p_swap: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    neighbours: int = 10
    tries: int = 10
    seed: int = 29
    balance: bool = False
    rounds: int = 1

    def __post_init__(self) -> None:
        if min(self.copies, self.neighbours, self.tries, self.max_ngram, self.rounds) < 1:
            raise ValueError(f"AugmentConfig needs copies, neighbours, tries, max_ngram and rounds >= 1; got {self}.")
        for name in ("p_drop", "p_swap", "p_ngram"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {getattr(self, name)}.")
        if self.p_drop + self.p_swap > 1.0:
            raise ValueError(f"AugmentConfig: p_drop + p_swap must be at most 1, got {self.p_drop + self.p_swap}.")

    def row_suffix(self) -> str:
        """How students trained on this set name their rows and folders: ``_aug``, ``_augbal`` (balanced),
        then ``x<rounds>`` when there are several rounds (``_augbalx3``)."""
        return "_aug" + ("bal" if self.balance else "") + (f"x{self.rounds}" if self.rounds > 1 else "")


def config_record(cfg: AugmentConfig) -> dict[str, Any]:
    """The config as a dict for keys and provenance; ``balance`` and ``rounds`` appear only when not at their
    defaults, so the keys of sets drawn before they existed do not change."""
    rec = asdict(cfg)
    for name, default in (("balance", False), ("rounds", 1)):
        if rec[name] == default:
            del rec[name]
    return rec


def copies_per_text(labels: Sequence[int] | np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """How many new texts to draw from each text: ``cfg.copies`` each, or with ``cfg.balance`` ``cfg.copies``
    times (count of the most frequent label / count of this text's label), rounded."""
    labels = np.asarray(labels, dtype=np.int64)
    if not cfg.balance:
        return np.full(len(labels), cfg.copies, dtype=np.int64)
    counts = np.bincount(labels)
    per_class = np.rint(cfg.copies * counts.max() / np.maximum(counts, 1)).astype(np.int64)
    return per_class[labels]


def glove_neighbours(words: Sequence[str], vectors: np.ndarray, k: int = 10,
                     chunk: int = 2048) -> dict[str, tuple[str, ...]]:
    """For every word with a (non-zero) vector, its ``k`` nearest other words by cosine, nearest first.
    ``vectors[i]`` belongs to ``words[i]`` (e.g. :func:`dixtill_lib.student.glove_matrix` of the student's
    vocabulary, whose pad, ``<UNK>`` and missing words are zero rows and so never chosen)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(words) != len(vectors):
        raise ValueError(f"glove_neighbours: {len(words)} words but {len(vectors)} vectors.")
    norms = np.linalg.norm(vectors, axis=1)
    rows = np.flatnonzero(norms > 0)
    unit = vectors[rows] / norms[rows, None]
    k = min(k, len(rows) - 1)
    out: dict[str, tuple[str, ...]] = {}
    if k < 1:
        return out
    for s in range(0, len(rows), chunk):
        sims = unit[s:s + chunk] @ unit.T
        sims[np.arange(len(sims)), s + np.arange(len(sims))] = -np.inf  # a word is not its own neighbour
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        for r, cols in enumerate(np.take_along_axis(top, order, axis=1)):
            out[words[rows[s + r]]] = tuple(words[rows[c]] for c in cols)
    return out


def augment_words(words: Sequence[str], rng: np.random.Generator, cfg: AugmentConfig,
                  neighbours: dict[str, tuple[str, ...]]) -> list[str]:
    """One draw of Tang et al.'s rules on a list of words (may come back empty or unchanged)."""
    out: list[str] = []
    for w in words:
        x = rng.random()
        if x < cfg.p_drop:
            continue
        if x < cfg.p_drop + cfg.p_swap and w in neighbours:
            near = neighbours[w]
            out.append(near[rng.integers(len(near))])
        else:
            out.append(w)
    if len(out) > 1 and rng.random() < cfg.p_ngram:
        n = int(rng.integers(1, min(cfg.max_ngram, len(out)) + 1))
        start = int(rng.integers(0, len(out) - n + 1))
        out = out[start:start + n]
    return out


@dataclass(frozen=True)
class TransferSet:
    """New texts, the training text each came from (its index), and the teacher's logits on them."""
    texts: list[str]
    source: np.ndarray
    logits: np.ndarray
    config: AugmentConfig

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labels(self) -> np.ndarray:
        """The teacher's predicted class: the hard label cross-entropy uses for a new text."""
        return self.logits.argmax(1)

    def key(self) -> str:
        """What determines the set (texts, config) and its labels (the logits): part of a student's training key."""
        import hashlib

        from .io import hash_texts, stable_hash

        labels = hashlib.sha256(np.round(self.logits, 4).astype(np.float32).tobytes()).hexdigest()[:16]
        return stable_hash(AUGMENT_VERSION, hash_texts(self.texts), config_record(self.config), labels)

    def summary(self) -> dict[str, Any]:
        """Size and class balance (by the teacher's labels), for the result file's provenance."""
        return {"n": len(self), "per_source": round(len(self) / max(1, len(set(self.source.tolist()))), 3),
                "teacher_label_counts": np.bincount(self.labels, minlength=self.logits.shape[1]).tolist(),
                "config": config_record(self.config), "version": AUGMENT_VERSION}


def transfer_rounds(texts: Sequence[str], cfg: AugmentConfig, neighbours: dict[str, tuple[str, ...]],
                    labels: Sequence[int] | np.ndarray | None = None) -> list[tuple[list[str], np.ndarray]]:
    """One ``(new_texts, source)`` per round (``cfg.rounds``; round ``r`` is seeded with ``cfg.seed + r``):
    up to ``cfg.copies`` distinct new texts per text of ``texts`` (per label with ``cfg.balance``, which
    needs the texts' gold ``labels``), none equal to one of ``texts`` or to a text of an earlier round;
    ``source[j]`` is the index of the text that ``new_texts[j]`` was made from. A round does not depend on
    the rounds after it, so the first rounds of a bigger set are a smaller set."""
    if cfg.balance and (labels is None or len(labels) != len(texts)):
        raise ValueError("AugmentConfig(balance=True) draws copies per gold label: pass one label per text "
                         f"(got {'none' if labels is None else len(labels)} for {len(texts)} texts).")
    want = copies_per_text(labels if labels is not None else np.zeros(len(texts), np.int64), cfg)
    seen = set(texts)
    parts = []
    for r in range(cfg.rounds):
        rng = np.random.default_rng(cfg.seed + r)
        out: list[str] = []
        source: list[int] = []
        for i, text in enumerate(texts):
            words = text.split()
            made = 0
            for _ in range(int(want[i]) * cfg.tries):
                if made == want[i]:
                    break
                new = " ".join(augment_words(words, rng, cfg, neighbours))
                if new and new not in seen:
                    seen.add(new)
                    out.append(new)
                    source.append(i)
                    made += 1
        parts.append((out, np.asarray(source, dtype=np.int64)))
    return parts


def transfer_texts(texts: Sequence[str], cfg: AugmentConfig, neighbours: dict[str, tuple[str, ...]],
                   labels: Sequence[int] | np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """``(new_texts, source)`` of all rounds of :func:`transfer_rounds`, in order."""
    return _joined(transfer_rounds(texts, cfg, neighbours, labels))


def _joined(parts: list[tuple[list[str], np.ndarray]]) -> tuple[list[str], np.ndarray]:
    return [t for new, _ in parts for t in new], np.concatenate([src for _, src in parts])


def build_transfer_set(teacher: Any, texts: Sequence[str], vocab_words: Sequence[str], vectors: np.ndarray,
                       cfg: AugmentConfig | None = None, label_names: tuple[str, ...] = ("0", "1", "2"),
                       progress: bool = True, labels: Sequence[int] | np.ndarray | None = None) -> TransferSet:
    """Draw the transfer set from ``texts`` (the rows the student fits, never its held-out rows) with GloVe
    neighbours from the student's vocabulary, and label it with the teacher's logits (cached like every
    teacher's logits, :func:`dixtill_lib.teacher.teacher_logits`). ``labels``: the texts' gold labels, needed
    with ``cfg.balance``."""
    from .data import Dataset
    from .teacher import teacher_logits

    cfg = cfg or AugmentConfig()
    neighbours = glove_neighbours(vocab_words, vectors, cfg.neighbours)
    parts = transfer_rounds(list(texts), cfg, neighbours, labels)
    new, source = _joined(parts)
    if not new:
        raise ValueError("The transfer set came out empty: every draw repeated a training text. Raise "
                         "AugmentConfig.p_drop / p_swap / p_ngram or copies.")
    logits = [teacher_logits(teacher, Dataset(p, np.zeros(len(p), dtype=np.int64), label_names,
                                              name=f"transfer set, round {r + 1}"), progress=progress)
              for r, (p, _) in enumerate(parts) if p]  # cached per round: adding rounds labels only the new ones
    return TransferSet(new, source, np.concatenate(logits).astype(np.float32), cfg)
