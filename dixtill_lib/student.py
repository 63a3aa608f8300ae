"""The DiXtill student: GloVe-50 embeddings → BiLSTM(50) → masked additive attention → linear.

It is *self-explaining*: besides the class logits, :meth:`BiLSTMAttentionStudent.forward` returns the
masked raw attention scores ``sig_m`` (one number per word, 0 on padding). DiXtill trains ``sig_m`` to
point the same way as the teacher's Integrated-Gradients word attributions, and reads it out as the
student's explanation.

Everything mirrors the authors' Keras notebook (METHODS.md §1.5, §1.6, §3):

* :class:`Vocab` is a Keras ``Tokenizer(num_words=20000, filters='', lower=True, oov_token='<UNK>')``:
  id 0 = padding, id 1 = ``<UNK>``, then words by decreasing training frequency (ties: first seen
  first). Texts are already cleaned, so a word is ``text.split()[i]`` and word *i* lines up with the
  teacher's attribution *i*. One deliberate difference: the embedding matrix has ``len(vocab)`` rows
  (at most ``max_size``), whereas Keras allocated rows for every word ever seen and then mapped the
  rare ones to ``<UNK>`` anyway; on our data (18,146 distinct training words) nothing is capped.
* Sequences are padded and truncated at the *end* (``padding='post', truncating='post'``); the mask
  μ is 1 on real words (including ``<UNK>``) and 0 on padding.
* The BiLSTM runs over the padding (no packing), exactly as in Keras; the attention then gives padding
  exactly zero weight (scores −10,000 before the softmax) and ``sig_m = 0`` there.
* Keras initialisation (Glorot-uniform kernels, orthogonal recurrent weights, zero biases, forget-gate
  bias 1) is the default; ``init="torch"`` keeps PyTorch's defaults instead.

Saved students (``save_student`` / ``load_student``) are folders holding ``model.pt`` (the state_dict),
``vocab.json``, ``config.json`` and a checksum manifest. The compression/bench step loads them with::

    model, vocab, cfg = load_student(path)
    proba = predict_proba(model, vocab, texts)        # (n, 3) numpy array

or, equivalently, ``StudentClassifier.load(path).predict_proba(texts)``.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .io import atomic_path, verify_manifest, write_json_atomic, write_manifest

PAD = "<PAD>"
UNK = "<UNK>"
PAD_ID, UNK_ID = 0, 1

#: The authors' ``Tokenizer(num_words=20000)``.
MAX_VOCAB = 20_000


class StudentError(ValueError):
    """Bad input to the student (texts, vocabulary, saved folder); the message says how to fix it."""


# ---------------------------------------------------------------- vocabulary

@dataclass(frozen=True)
class Vocab:
    """Word ↔ id map. ``words[0]`` is padding, ``words[1]`` is ``<UNK>``, then words by frequency.

    ``aliases`` (our addition, empty by default) maps words *outside* the vocabulary to the id of a word
    inside it, read in its place: :func:`with_glove_aliases` fills it with each GloVe word's nearest
    vocabulary word. It adds no embedding rows (``len`` counts ``words`` only)."""
    words: tuple[str, ...]
    aliases: dict[str, int] = field(default_factory=dict)
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.words) < 2 or self.words[0] != PAD or self.words[1] != UNK:
            raise StudentError(f"A Vocab must start with {PAD!r}, {UNK!r}; got {list(self.words[:2])}.")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})
        clash = [w for w in self.aliases if w in self.index]
        bad = [w for w, i in self.aliases.items() if not 2 <= i < len(self.words)]
        if clash or bad:
            raise StudentError(f"Vocab aliases must map words outside the vocabulary to word ids 2..{len(self.words) - 1}; "
                               f"{len(clash)} alias(es) are vocabulary words (first {clash[:1]}), {len(bad)} point "
                               f"outside it (first {bad[:1]}). Build them with with_glove_aliases(vocab, top).")

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int = MAX_VOCAB) -> "Vocab":
        """Fit on (cleaned) training texts: lower-cased whitespace words, most frequent first, ties in
        order of first appearance (like Keras), keeping at most ``max_size`` ids (pad and UNK included)."""
        texts = _check_texts(texts)
        if max_size < 3:
            raise StudentError(f"max_size must be at least 3 (pad, <UNK>, one word); got {max_size}.")
        counts = word_counts(texts)
        ranked = sorted(counts, key=lambda w: -counts[w])  # sorted() is stable: ties keep first-seen order
        ranked = [w for w in ranked if w not in (PAD, UNK)]
        return cls((PAD, UNK, *ranked[: max_size - 2]))

    def ids(self, text: str) -> list[int]:
        """Word ids of one text (an alias reads as its vocabulary word, other unknown words → 1), no padding."""
        index, aliases = self.index, self.aliases
        return [index.get(w) or aliases.get(w, UNK_ID) for w in text.lower().split()]  # id 0 is never a word

    def encode(self, texts: Sequence[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, mask)``, both of shape (n, max_len): ids int64 post-padded/truncated with 0; mask
        float32, 1 on real words (``<UNK>`` included) and 0 on padding."""
        texts = _check_texts(texts)
        if max_len < 1:
            raise StudentError(f"max_len must be positive, got {max_len}.")
        ids = np.zeros((len(texts), max_len), dtype=np.int64)
        for i, t in enumerate(texts):
            row = self.ids(t)[:max_len]
            ids[i, : len(row)] = row
        return ids, (ids != PAD_ID).astype(np.float32)

    def oov_rate(self, texts: Sequence[str]) -> float:
        """Fraction of words of ``texts`` that map to ``<UNK>``."""
        ids = [i for t in _check_texts(texts) for i in self.ids(t)]
        return float(np.mean([i == UNK_ID for i in ids])) if ids else 0.0

    # -- persistence
    def to_json(self) -> dict[str, Any]:
        """``{"format", "words"}``, plus ``"aliases"`` only when there are any (older files stay as they were)."""
        return {"format": "dixtill-vocab/1", "words": list(self.words),
                **({"aliases": dict(self.aliases)} if self.aliases else {})}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Vocab":
        if (obj.get("format") != "dixtill-vocab/1" or not isinstance(obj.get("words"), list)
                or not isinstance(obj.get("aliases", {}), dict)):
            raise StudentError("Not a dixtill vocabulary file (expected format 'dixtill-vocab/1' with 'words' "
                               "and optionally an 'aliases' object).")
        return cls(tuple(obj["words"]), {str(w): int(i) for w, i in obj.get("aliases", {}).items()})

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        p = Path(path)
        if not p.is_file():
            raise StudentError(f"No vocabulary file {p}; build one with Vocab.build(train_texts).save(path).")
        return cls.from_json(json.loads(p.read_text()))


def word_counts(texts: Iterable[str]) -> Counter:
    """How often each word occurs in ``texts``; a word is what :class:`Vocab` reads (lower-cased, split on
    whitespace)."""
    return Counter(w for t in texts for w in t.lower().split())


def _check_texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        raise StudentError("Pass a list of texts, not a single string (wrap it: [text]).")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise StudentError(f"{len(bad)} non-string text(s), first at position {bad[0]}: {texts[bad[0]]!r}.")
    return texts


# ---------------------------------------------------------------- embeddings

@lru_cache(maxsize=1)
def _glove() -> tuple[dict[str, int], np.ndarray]:
    from .assets import load_glove

    return load_glove()


def glove_matrix(vocab: Vocab, dim: int = 50) -> tuple[np.ndarray, int]:
    """``(matrix, n_missing)``: row i = the GloVe 6B-50d vector of word i; words GloVe lacks (and the
    pad and ``<UNK>`` rows) stay zero, as in the authors' code. ``n_missing`` counts real words only."""
    word_to_row, vectors = _glove()
    if vectors.shape[1] != dim:
        raise StudentError(f"GloVe vectors have {vectors.shape[1]} dimensions but emb_dim={dim}; use emb_dim=50.")
    out = np.zeros((len(vocab), dim), dtype=np.float32)
    rows = [(i, word_to_row.get(w)) for i, w in enumerate(vocab.words) if i >= 2]
    found = [(i, r) for i, r in rows if r is not None]
    if found:
        ii, rr = map(np.asarray, zip(*found))
        order = np.argsort(rr)  # sorted reads are faster on the memory-mapped file
        out[ii[order]] = np.asarray(vectors[rr[order]], dtype=np.float32)
    return out, len(rows) - len(found)


def with_glove_aliases(vocab: Vocab, top: int, chunk: int = 4096) -> Vocab:
    """``vocab`` plus an alias for each of GloVe's ``top`` most frequent words that it lacks: the vocabulary
    word whose GloVe vector is closest in cosine (vocabulary words without a GloVe vector are never chosen).

    Our addition, used at inference only: every training word is in the vocabulary, so training never
    meets an alias, while about 10 % of the words of new tweets are unknown. With aliases a new tweet's
    "regulations" is read as "rules" and "pursuing" as "pursue" instead of as ``<UNK>`` (but GloVe
    neighbours can also be opposites: "sellers" is read as "buyers"). The embedding matrix is unchanged."""
    if top < 0:
        raise StudentError(f"top must be a number of GloVe words >= 0 (0 = no aliases), got {top}.")
    word_to_row, vectors = _glove()
    known, _ = glove_matrix(vocab, vectors.shape[1])
    norms = np.linalg.norm(known, axis=1)
    cand = np.flatnonzero(norms > 0)                       # vocabulary ids that have a GloVe vector
    if top == 0 or len(cand) == 0:
        return Vocab(vocab.words)
    keys = known[cand] / norms[cand, None]
    row_to_word = {r: w for w, r in word_to_row.items() if r < top}
    rows = [r for r in sorted(row_to_word) if row_to_word[r] not in vocab.index]
    aliases: dict[str, int] = {}
    for s in range(0, len(rows), chunk):
        block = np.asarray(vectors[rows[s:s + chunk]], dtype=np.float32)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        best = cand[(block @ keys.T).argmax(1)]
        aliases.update({row_to_word[r]: int(i) for r, i in zip(rows[s:s + chunk], best)})
    return Vocab(vocab.words, aliases)


def random_matrix(vocab_size: int, dim: int = 50, seed: int = 0) -> np.ndarray:
    """Keras ``Embedding`` default initialisation, uniform(−0.05, 0.05): the "no GloVe" ablation."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(vocab_size, dim, generator=g) * 0.1 - 0.05).numpy()


# ---------------------------------------------------------------- the model

@dataclass(frozen=True)
class StudentConfig:
    """Student shape. ``max_len``: the authors padded to 150 tokens; our longest cleaned tweet has 33
    words (train 31, valid 33) and the unpacked BiLSTM's cost is linear in ``max_len``, so we default
    to 40 — nothing is truncated, and a training step is 2–4× cheaper than at 150 (one CPU thread: 25 vs
    100 ms on a quiet machine, 50 vs 103 ms on a busy one; ``python -m dixtill_lib.benchmarks.student_step``).
    The only effect of the shorter padding is that the backward LSTM reads 7–39 trailing pads instead of
    117–149 before the first word. ``max_len=150`` restores the authors' value.
    ``attn_size``: 50 as in the authors' code (``Dense(50)``); the paper's text implies 100."""
    vocab_size: int = 0
    emb_dim: int = 50
    hidden: int = 50
    attn_size: int = 50
    num_labels: int = 3
    max_len: int = 40
    embeddings: str = "glove"      # "glove" | "random"
    init: str = "keras"            # "keras" | "torch"

    def __post_init__(self) -> None:
        if self.embeddings not in ("glove", "random"):
            raise StudentError(f"embeddings must be 'glove' or 'random', got {self.embeddings!r}.")
        if self.init not in ("keras", "torch"):
            raise StudentError(f"init must be 'keras' or 'torch', got {self.init!r}.")
        for name in ("emb_dim", "hidden", "attn_size", "num_labels", "max_len"):
            if getattr(self, name) < 1:
                raise StudentError(f"StudentConfig.{name} must be positive, got {getattr(self, name)}.")

    @classmethod
    def paper(cls, **overrides: Any) -> "StudentConfig":
        """The paper's text: max_len 150 and a 100×100 attention projection."""
        return replace(cls(max_len=150, attn_size=100), **overrides)


class BiLSTMAttentionStudent(nn.Module):
    """``forward(ids, mask) -> (logits, sig_m)``; see METHODS.md §1.6 for the Keras mapping.

    ``H = BiLSTM(E(ids))``; ``σ = w2ᵀ tanh(W1 H)``; ``sig_m = σ·μ``;
    ``α = softmax(sig_m + (μ−1)·10⁴)``; ``logits = W_out Σ_t α_t H_t + b``."""

    def __init__(self, cfg: StudentConfig, embeddings: np.ndarray | torch.Tensor | None = None):
        super().__init__()
        if cfg.vocab_size < 2:
            raise StudentError("StudentConfig.vocab_size is not set: use replace(cfg, vocab_size=len(vocab)).")
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)  # no padding_idx: row 0 is trainable, as in Keras
        self.lstm = nn.LSTM(cfg.emb_dim, cfg.hidden, batch_first=True, bidirectional=True)
        self.W1 = nn.Linear(2 * cfg.hidden, cfg.attn_size, bias=False)
        self.w2 = nn.Linear(cfg.attn_size, 1, bias=False)
        self.out = nn.Linear(2 * cfg.hidden, cfg.num_labels)
        if cfg.init == "keras":
            keras_init_(self)
        if embeddings is not None:
            emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
            if tuple(emb.shape) != (cfg.vocab_size, cfg.emb_dim):
                raise StudentError(f"Embedding matrix has shape {tuple(emb.shape)}, expected "
                                   f"({cfg.vocab_size}, {cfg.emb_dim}).")
            with torch.no_grad():
                self.emb.weight.copy_(emb)

    def scores(self, embedded: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """From embeddings (B, L, E): ``(logits, sig_m)`` (used by IG on the embedding output)."""
        H, _ = self.lstm(embedded)                                       # (B, L, 2h), runs over pads
        sig = self.w2(torch.tanh(self.W1(H))).squeeze(-1)                # (B, L) raw attention scores
        sig_m = sig * mask
        alpha = torch.softmax(sig_m + (mask - 1.0) * 1e4, dim=1)         # pads get weight 0
        return self.out((alpha.unsqueeze(-1) * H).sum(1)), sig_m

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            mask = (ids != PAD_ID).float()
        return self.scores(self.emb(ids), mask.to(torch.float32))

    @torch.no_grad()
    def attention(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights α (B, L) — for plots; the explanation used by DiXtill is ``sig_m``."""
        if mask is None:
            mask = (ids != PAD_ID).float()
        H, _ = self.lstm(self.emb(ids))
        sig_m = self.w2(torch.tanh(self.W1(H))).squeeze(-1) * mask
        return torch.softmax(sig_m + (mask - 1.0) * 1e4, dim=1)


def keras_init_(model: BiLSTMAttentionStudent) -> None:
    """Keras defaults: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases, LSTM forget-gate
    bias 1 (``unit_forget_bias``; torch has two bias vectors, so it goes on ``bias_ih`` only), and
    uniform(−0.05, 0.05) embeddings (overwritten by GloVe when given)."""
    with torch.no_grad():
        nn.init.uniform_(model.emb.weight, -0.05, 0.05)
        h = model.lstm.hidden_size
        for name, p in model.lstm.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)
            elif name.startswith("weight_hh"):
                for g in range(4):  # Keras draws one orthogonal (h, 4h) matrix; per-gate blocks are close enough
                    nn.init.orthogonal_(p[g * h:(g + 1) * h])
            else:
                p.zero_()
                if name.startswith("bias_ih"):
                    p[h:2 * h] = 1.0
        for lin in (model.W1, model.w2, model.out):
            nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(model.out.bias)


def build_student(vocab: Vocab, cfg: StudentConfig | None = None, seed: int = 0,
                  embeddings: np.ndarray | None = None) -> tuple[BiLSTMAttentionStudent, dict[str, Any]]:
    """A fresh student for ``vocab`` (seeded): GloVe or random embeddings as ``cfg.embeddings`` says.
    Returns ``(model, info)`` with ``info["glove_missing"]`` (words without a GloVe vector)."""
    cfg = replace(cfg or StudentConfig(), vocab_size=len(vocab))
    info: dict[str, Any] = {"vocab_size": len(vocab)}
    if embeddings is None and cfg.embeddings == "glove":
        embeddings, info["glove_missing"] = glove_matrix(vocab, cfg.emb_dim)
    torch.manual_seed(seed)
    model = BiLSTMAttentionStudent(cfg, embeddings)
    if cfg.embeddings == "random" and embeddings is None:
        with torch.no_grad():  # drawn from its own generator so the rest of the init is the same as with GloVe
            model.emb.weight.copy_(torch.as_tensor(random_matrix(len(vocab), cfg.emb_dim, seed)))
    return model, info


# ---------------------------------------------------------------- size

def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_parameters(vocab_size: int, emb_dim: int = 50, hidden: int = 50, attn_size: int = 50,
                        num_labels: int = 3, keras: bool = False) -> int:
    """Closed-form parameter count. ``keras=True`` counts one LSTM bias per gate (Keras) instead of
    PyTorch's two, i.e. 8·hidden fewer: for the authors' V=4,168 that gives their 254,153."""
    n_bias = 1 if keras else 2
    lstm = 2 * (4 * hidden * (emb_dim + hidden) + n_bias * 4 * hidden)
    return vocab_size * emb_dim + lstm + 2 * hidden * attn_size + attn_size + 2 * hidden * num_labels + num_labels


def size_bytes(model: nn.Module) -> int:
    """Bytes of the serialised ``state_dict`` (``torch.save``) — the model-file size, not a param estimate."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


# ---------------------------------------------------------------- inference helpers

def _batches(n: int, batch_size: int) -> Iterable[slice]:
    for s in range(0, n, batch_size):
        yield slice(s, min(n, s + batch_size))


@torch.inference_mode()
def student_logits(model: BiLSTMAttentionStudent, vocab: Vocab, texts: Sequence[str],
                   batch_size: int = 256) -> np.ndarray:
    """Logits (n, num_labels) for raw *cleaned* texts."""
    model.eval()
    ids, mask = vocab.encode(texts, model.cfg.max_len)
    out = np.zeros((len(ids), model.cfg.num_labels), dtype=np.float32)
    for sl in _batches(len(ids), batch_size):
        out[sl] = model(torch.from_numpy(ids[sl]), torch.from_numpy(mask[sl]))[0].numpy()
    return out


def predict_proba(model: BiLSTMAttentionStudent, vocab: Vocab, texts: Sequence[str],
                  batch_size: int = 256) -> np.ndarray:
    """Class probabilities (softmax of the logits), shape (n, num_labels)."""
    return torch.softmax(torch.from_numpy(student_logits(model, vocab, texts, batch_size)), dim=1).numpy()


@torch.inference_mode()
def explain(model: BiLSTMAttentionStudent, vocab: Vocab, texts: Sequence[str],
            batch_size: int = 256) -> list[np.ndarray]:
    """The student's self-explanation ``sig_m`` per text: one signed score per word
    (length ``len(text.split())``; words beyond ``max_len`` get 0 because the student never saw them)."""
    model.eval()
    ids, mask = vocab.encode(texts, model.cfg.max_len)
    out: list[np.ndarray] = []
    for sl in _batches(len(ids), batch_size):
        sig = model(torch.from_numpy(ids[sl]), torch.from_numpy(mask[sl]))[1].numpy()
        out += list(sig)
    return [_fit(s, len(t.split())) for s, t in zip(out, texts)]


def _fit(v: np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)[:n]
    return np.pad(v, (0, n - len(v))) if len(v) < n else v


@dataclass
class StudentClassifier:
    """A trained student with its vocabulary: ``predict_proba`` / ``predict`` / ``explain`` on texts."""
    model: BiLSTMAttentionStudent
    vocab: Vocab
    name: str = "student"

    @classmethod
    def load(cls, path: str | Path) -> "StudentClassifier":
        model, vocab, _ = load_student(path)
        return cls(model, vocab, Path(path).name)

    @property
    def cfg(self) -> StudentConfig:
        return self.model.cfg

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return student_logits(self.model, self.vocab, texts)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return predict_proba(self.model, self.vocab, texts)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.logits(texts).argmax(1)

    def explain(self, texts: Sequence[str]) -> list[np.ndarray]:
        return explain(self.model, self.vocab, texts)

    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def size_bytes(self) -> int:
        return size_bytes(self.model)


# ---------------------------------------------------------------- save / load

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.pt", "vocab.json", "config.json"


def save_student(model: BiLSTMAttentionStudent, vocab: Vocab, path: str | Path,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.pt`` + ``vocab.json`` + ``config.json`` (+ checksums) into the folder ``path``,
    atomically. ``extra`` (JSON-able: method, seed, teacher, metrics…) is stored in ``config.json``."""
    if len(vocab) != model.cfg.vocab_size:
        raise StudentError(f"Vocabulary has {len(vocab)} words but the model was built for {model.cfg.vocab_size}.")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        torch.save(model.state_dict(), tmp / MODEL_FILE)
        (tmp / VOCAB_FILE).write_text(json.dumps(vocab.to_json()))
        (tmp / CONFIG_FILE).write_text(json.dumps({"student": asdict(model.cfg), **(extra or {})}, indent=1,
                                                  default=str))
        write_manifest(tmp)
    return path


def load_student(path: str | Path) -> tuple[BiLSTMAttentionStudent, Vocab, StudentConfig]:
    """``(model, vocab, cfg)`` from a folder written by :func:`save_student` (model in eval mode, CPU).
    Raises :class:`StudentError` when the folder is missing or fails its checksums."""
    path = Path(path)
    if not (path / MODEL_FILE).is_file():
        raise StudentError(f"No saved student in {path}: run `python -m dixtill_lib distill` first "
                           f"(students go to <cache>/students/<mode>/<method>_seed<k>/).")
    if verify_manifest(path) is None:
        raise StudentError(f"Saved student {path} failed its checksum and was deleted; rerun the distill step.")
    meta = json.loads((path / CONFIG_FILE).read_text())
    cfg = StudentConfig(**meta["student"])
    vocab = Vocab.from_json(json.loads((path / VOCAB_FILE).read_text()))
    model = BiLSTMAttentionStudent(replace(cfg, init="torch"))
    model.load_state_dict(torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True))
    model.cfg = cfg
    return model.eval(), vocab, cfg


def student_metadata(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a saved student (its config plus whatever ``extra`` was saved)."""
    return json.loads((Path(path) / CONFIG_FILE).read_text())


def describe_layers(model: BiLSTMAttentionStudent) -> list[dict[str, Any]]:
    """One row per layer: name, PyTorch module, output shape, parameters — the chapter's table."""
    c = model.cfg
    rows = [
        ("embedding", f"Embedding({c.vocab_size}, {c.emb_dim})", f"(B, {c.max_len}, {c.emb_dim})", model.emb),
        ("BiLSTM", f"LSTM({c.emb_dim}, {c.hidden}, bidirectional)", f"(B, {c.max_len}, {2 * c.hidden})", model.lstm),
        ("attention W1 + tanh", f"Linear({2 * c.hidden}, {c.attn_size}, bias=False)", f"(B, {c.max_len}, {c.attn_size})",
         model.W1),
        ("attention score w2", f"Linear({c.attn_size}, 1, bias=False)", f"(B, {c.max_len})  = σ, masked → σm", model.w2),
        ("masked softmax + sum", "—", f"(B, {2 * c.hidden})", None),
        ("output", f"Linear({2 * c.hidden}, {c.num_labels})", f"(B, {c.num_labels})", model.out),
    ]
    return [{"layer": n, "module": m, "output shape": s, "params": count_parameters(mod) if mod is not None else 0}
            for n, m, s, mod in rows]


__all__ = ["Vocab", "StudentConfig", "BiLSTMAttentionStudent", "StudentClassifier", "StudentError", "build_student",
           "glove_matrix", "with_glove_aliases", "random_matrix", "keras_init_", "count_parameters", "expected_parameters", "size_bytes",
           "student_logits", "predict_proba", "explain", "save_student", "load_student", "student_metadata",
           "describe_layers", "word_counts", "MAX_VOCAB", "PAD_ID", "UNK_ID"]
