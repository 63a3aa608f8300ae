"""Teacher explanations: batched word-level Integrated Gradients (IG), cached, aligned 1:1 with the
student's words, plus the CLI step ``explain``.

What is computed (DiXtill's recipe, METHODS.md §1.4, reproduced with captum directly instead of
transformers-interpret, and batched):

1. captum ``LayerIntegratedGradients`` on the teacher's input word-embedding layer
   (``model.get_input_embeddings()``); forward output ``softmax(logits)[target]`` with the attention mask.
2. Baseline = the input with every non-special token replaced by the pad token: for BERT exactly
   ``[CLS] + [PAD]*n + [SEP]`` as in transformers-interpret; for a decoder LLM (SmolLM2, no special
   tokens added) every token becomes the pad = eos embedding. Only the word embeddings are interpolated;
   position and token-type embeddings are the real ones on both ends of the path, and so is everything
   else the model reads from the input ids — which matters for a decoder classifier, whose pooled
   position is found from the ids (the last non-pad token): along the whole path, baseline included,
   it is the real last token. ``F(baseline)`` is therefore computed by feeding the real ids with the
   embedding layer's output swapped for the baseline's (the path's own end point), not by feeding the
   baseline ids (for BERT the two are identical).
3. Per token: sum over the hidden dimension, then divide by the L2 norm over all real tokens of the
   sentence *including* the special tokens (the authors' normalisation). Signs are kept.
4. Word pieces are merged into the **student's words** ``text.split()``: each piece goes to the
   whitespace word containing its first non-space character (fast-tokenizer offsets, so no ``##``
   assumptions: works for WordPiece and for byte-level BPE, whose ``Ġ``-pieces' offsets include the
   leading space and whose byte pieces of one emoji share that character's offsets); a word's score is
   the mean of its pieces; special tokens and whitespace-only pieces are dropped; a word with no
   surviving piece (truncated, or removed by the normaliser) gets 0.

Batching: sentences are sorted by token length and padded per batch; pad positions carry the same id in
input and baseline (so their attribution is exactly 0) and are masked out of attention, so a batched
result equals the one-sentence-at-a-time result up to float rounding (see
``python -m dixtill_lib.benchmarks.ig_batching``).
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import get_mode
from .io import cached_arrays, hash_texts, stable_hash
from . import occlusion
from .occlusion import OcclusionConfig

#: Padded tokens per forward/backward pass for a decoder-LLM teacher (SmolLM2): bounds IG's memory to ~2 GB
#: and, measured on 2 CPU cores, was also faster than one 128-row pass (23 s vs 26–33 s per 4-step batch of 32).
DECODER_TOKENS_PER_PASS = 1024

#: Bump when the attribution recipe changes so old cache entries are not reused.
IG_VERSION = "ig-v1"


@dataclass(frozen=True)
class IGConfig:
    """How attributions are computed.

    - ``n_steps``: points on the straight-line path (50 in the paper / transformers-interpret).
    - ``method``: captum's quadrature rule (``"gausslegendre"`` is captum's default).
    - ``baseline``: ``"pad"`` = non-special tokens replaced by ``[PAD]`` (the only option implemented).
    - ``target``: ``"predicted"`` (the teacher's predicted class, as the authors) or ``"true"`` (the label).
    - ``internal_batch_size``: at most this many (sentence, step) rows per forward/backward: bounds memory.
    - ``tokens_per_pass``: also at most this many padded tokens per forward/backward (but at least one
      step of the whole batch): bounds memory for long inputs and deep models — a 4-step batch of 32
      64-token tweets through SmolLM2's 30 layers in one pass peaks at ~12 GB (6.4 GB with 4096 tokens
      per pass); ``None`` = no bound (the default; the ``explain`` step uses
      :data:`DECODER_TOKENS_PER_PASS` for a decoder teacher).
    - ``batch_size``: sentences per captum call.
    - ``normalise``: ``"l2"`` (authors) or ``"none"``.

    ``batch_size``, ``internal_batch_size`` and ``tokens_per_pass`` do not change the numbers (only how
    the path points are chunked), so they are not part of the cache key.
    """
    n_steps: int = 50
    method: str = "gausslegendre"
    baseline: str = "pad"
    target: str = "predicted"
    internal_batch_size: int = 512
    batch_size: int = 32
    normalise: str = "l2"
    tokens_per_pass: int | None = None

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "IGConfig":
        """4 Gauss–Legendre steps in both modes instead of the paper's 50, because of cost: on the
        shared 2-core CPU the book was built on, one MiniLM forward+backward costs ~40 ms per tweet and
        step, so 50 steps over the 11,927 full-scale tweets would take ~6 h; 4 steps took 29 min.
        The ``explain`` step records the convergence delta and the agreement of 2/4/8/16 steps with
        50 steps on 32 validation tweets, so the cost of the cut is measured, not assumed.
        Override with ``IGConfig.for_mode(mode, n_steps=50)`` (or ``explain --n-steps 50``) on a GPU."""
        base = cls(n_steps=4)
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        if self.n_steps < 1:
            raise ValueError(f"IGConfig.n_steps must be >= 1, got {self.n_steps}.")
        if self.baseline != "pad":
            raise ValueError(f"IGConfig.baseline={self.baseline!r}: only 'pad' is implemented.")
        if self.target not in ("predicted", "true"):
            raise ValueError(f"IGConfig.target must be 'predicted' or 'true', got {self.target!r}.")
        if self.normalise not in ("l2", "none"):
            raise ValueError(f"IGConfig.normalise must be 'l2' or 'none', got {self.normalise!r}.")
        if self.batch_size < 1 or self.internal_batch_size < 1:
            raise ValueError("IGConfig.batch_size and internal_batch_size must be >= 1.")

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change the numbers (the cache key)."""
        d = asdict(self)
        d.pop("batch_size")
        d.pop("internal_batch_size")
        d.pop("tokens_per_pass")
        return d


@dataclass(frozen=True)
class Attributions:
    """Word attributions of many sentences.

    - ``scores[i]``: float32 vector with one entry per word of ``texts[i].split()``;
    - ``deltas[i]``: captum's convergence delta ``sum(raw token attributions) - (F(x) - F(baseline))``
      (before normalisation, in probability units: small |delta| = the path integral converged);
    - ``targets[i]``: the class that was explained;
    - ``seconds``: wall time of the computation (0 for a cache hit is *not* reported: the stored
      value is the time of the original computation).
    """
    scores: list[np.ndarray]
    deltas: np.ndarray
    targets: np.ndarray
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.scores)

    def padded(self, max_len: int) -> np.ndarray:
        return pad_attributions(self.scores, max_len)

    def to_arrays(self) -> dict[str, np.ndarray]:
        lengths = np.array([len(s) for s in self.scores], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(self.scores).astype(np.float32) if len(self.scores) else np.zeros(0, np.float32)
        return {"flat": flat, "offsets": offsets, "deltas": self.deltas.astype(np.float32),
                "targets": self.targets.astype(np.int64), "seconds": np.array(self.seconds, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Attributions":
        flat, off = arrays["flat"], arrays["offsets"]
        scores = [flat[off[i]:off[i + 1]].copy() for i in range(len(off) - 1)]
        return cls(scores, arrays["deltas"], arrays["targets"], float(arrays.get("seconds", 0.0)))


# ---------------------------------------------------------------- word alignment

def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of ``text.split()`` (the student's words)."""
    spans, start = [], None
    for i, ch in enumerate(text):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def piece_to_word(text: str, offsets: Sequence[tuple[int, int]], special: Sequence[int]) -> np.ndarray:
    """For each token, the index of the whitespace word containing its first non-space character,
    or -1 for special tokens and pieces that cover no character."""
    char_word = np.full(len(text), -1, dtype=np.int64)
    for w, (s, e) in enumerate(word_spans(text)):
        char_word[s:e] = w
    out = np.full(len(offsets), -1, dtype=np.int64)
    for t, ((s, e), sp) in enumerate(zip(offsets, special)):
        if sp or e <= s:
            continue
        hits = char_word[s:e]
        hits = hits[hits >= 0]
        if hits.size:
            out[t] = hits[0]
    return out


def merge_to_words(token_scores: np.ndarray, token_word: np.ndarray, n_words: int) -> np.ndarray:
    """Mean of the pieces' scores per word (the authors' merge rule); 0.0 for words without pieces."""
    token_scores = np.asarray(token_scores, dtype=np.float64)
    keep = token_word >= 0
    sums = np.bincount(token_word[keep], weights=token_scores[keep], minlength=n_words)[:n_words]
    counts = np.bincount(token_word[keep], minlength=n_words)[:n_words]
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).astype(np.float32)


def pad_attributions(scores: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Stack ragged word-score vectors into ``(n, max_len)``, right-padded with 0 (longer ones truncated):
    the student's explanation target."""
    out = np.zeros((len(scores), max_len), dtype=np.float32)
    for i, s in enumerate(scores):
        s = np.asarray(s, dtype=np.float32)[:max_len]
        out[i, :len(s)] = s
    return out


# ---------------------------------------------------------------- IG core

@dataclass
class _Encoded:
    input_ids: list[list[int]]
    special: list[list[int]]
    token_word: list[np.ndarray]
    n_words: list[int]


def _encode(tokenizer, texts: list[str], max_length: int) -> _Encoded:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("Word alignment needs a *fast* tokenizer (offset mapping); load the teacher with "
                        "AutoTokenizer.from_pretrained(..., use_fast=True).")
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    token_word = [piece_to_word(t, o, s) for t, o, s in
                  zip(texts, enc["offset_mapping"], enc["special_tokens_mask"])]
    return _Encoded(enc["input_ids"], enc["special_tokens_mask"], token_word, [len(t.split()) for t in texts])


def _pad_id(tokenizer) -> int:
    pid = tokenizer.pad_token_id
    if pid is None:
        pid = tokenizer.eos_token_id
    if pid is None:
        raise ValueError("The teacher's tokenizer has neither a pad nor an eos token: set tokenizer.pad_token.")
    return int(pid)


@contextmanager
def _frozen(model) -> Iterator[None]:
    """Parameters need no gradients for IG: switch them off (faster backward), restore afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def _ig_batch(teacher, lig, ids: list[list[int]], special: list[list[int]], targets: list[int] | None,
              cfg: IGConfig, pad_id: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Raw token attributions (summed over the hidden dim, unnormalised), deltas and targets for
    one padded batch."""
    B, L = len(ids), max(len(x) for x in ids)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    baseline = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, (x, sp) in enumerate(zip(ids, special)):
        input_ids[i, :len(x)] = torch.tensor(x)
        baseline[i, :len(x)] = torch.tensor([t if s else pad_id for t, s in zip(x, sp)])
        mask[i, :len(x)] = 1
    dev = teacher.device
    input_ids, baseline, mask = input_ids.to(dev), baseline.to(dev), mask.to(dev)
    with torch.no_grad():  # F(x) and F(baseline) in one pass: the predicted class and the convergence gap
        probs = _endpoint_probs(teacher.model, input_ids, baseline, mask)
    if targets is None:
        targets = probs[:B].argmax(-1).tolist()
    target_t = torch.tensor(targets, dtype=torch.long, device=dev)
    rows_ = torch.arange(B, device=dev)
    gap = probs[:B][rows_, target_t] - probs[B:][rows_, target_t]
    rows_per_pass = cfg.internal_batch_size
    if cfg.tokens_per_pass:
        rows_per_pass = min(rows_per_pass, cfg.tokens_per_pass // L)
    attr = lig.attribute(inputs=input_ids, baselines=baseline, target=target_t,
                         additional_forward_args=(mask,), n_steps=cfg.n_steps, method=cfg.method,
                         internal_batch_size=max(rows_per_pass, B))
    # captum's convergence delta (same formula as return_convergence_delta=True, without its 2 extra passes)
    delta = attr.detach().float().sum(dim=(1, 2)) - gap
    tok = attr.sum(-1).detach().float().cpu().numpy()
    rows = [tok[i, :len(x)] for i, x in enumerate(ids)]
    return rows, delta.detach().float().cpu().numpy(), np.asarray(targets, dtype=np.int64)


def _endpoint_probs(model, input_ids: torch.Tensor, baseline: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Class probabilities at both ends of the IG path, shape (2B, C): rows ``:B`` the input, rows ``B:``
    the baseline. Both are fed the *real* ids, the baseline half with the embedding layer's output replaced
    by the baseline's embeddings — exactly what captum does along the path (see the module docstring)."""
    emb = model.get_input_embeddings()
    B = input_ids.shape[0]
    base_emb = emb(baseline)

    def swap(module, args, output):
        return torch.cat([output[:B], base_emb.to(output.dtype)])

    handle = emb.register_forward_hook(swap)
    try:
        logits = model(input_ids=torch.cat([input_ids, input_ids]), attention_mask=torch.cat([mask, mask])).logits
    finally:
        handle.remove()
    return torch.softmax(logits.float(), dim=-1)


def path_probs(teacher, texts: Sequence[str], alphas: Sequence[float] = tuple(np.linspace(0, 1, 21)),
               cfg: IGConfig = IGConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The explained class's probability at points ``alphas`` of IG's straight-line path, from the baseline
    (``alpha=0``) to the text (``alpha=1``): the function whose integral IG approximates with ``n_steps``
    points. Returns ``(probs (n, len(alphas)), targets (n,))``; the target is the class predicted at
    ``alpha=1`` (``cfg.target="predicted"``). One text at a time, no padding, the same embedding swap as
    the convergence check (module docstring, point 2). A smooth curve is what few steps can integrate; a
    curve that jumps between 0 and 1 within a few per cent of the path is not."""
    if cfg.target != "predicted":
        raise ValueError("path_probs explains the predicted class: use IGConfig(target='predicted').")
    texts = _check(texts, None, cfg)
    enc = _encode(teacher.tokenizer, texts, teacher.max_length)
    pad_id = _pad_id(teacher.tokenizer)
    model, dev = teacher.model.eval(), teacher.device
    emb = model.get_input_embeddings()
    a = torch.tensor(list(alphas), dtype=torch.float32, device=dev)[:, None, None]
    out = np.zeros((len(texts), len(a)), dtype=np.float32)
    targets = np.zeros(len(texts), dtype=np.int64)
    for i, (x, sp) in enumerate(zip(enc.input_ids, enc.special)):
        ids = torch.tensor([x], device=dev)
        base = torch.tensor([[t if s else pad_id for t, s in zip(x, sp)]], device=dev)
        with torch.no_grad():
            xe, be = emb(ids), emb(base)
            path = be + a * (xe - be)                                        # (A, L, D)
            handle = emb.register_forward_hook(lambda m, args, o: path.to(o.dtype))
            try:
                rep_ids = ids.expand(len(a), -1)
                logits = model(input_ids=rep_ids, attention_mask=torch.ones_like(rep_ids)).logits
            finally:
                handle.remove()
        p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        targets[i] = int(p[-1].argmax())
        out[i] = p[:, targets[i]]
    return out, targets


def path_rows(teacher, valid, n: int, seed: int, cfg: IGConfig = IGConfig(), points: int = 21) -> list[dict[str, Any]]:
    """One ``ig_path`` result row: :func:`path_probs` of ``n`` random valid tweets (their indices stored, not
    their texts) at ``points`` evenly spaced alphas, and the mean over tweets of the largest change between
    neighbouring points (``mean_max_jump``: near 0 for a smooth path, near 1 when it flips)."""
    idx = np.sort(np.random.default_rng(seed + 2).permutation(len(valid))[:min(n, len(valid))])
    alphas = np.linspace(0, 1, points)
    probs, targets = path_probs(teacher, [valid.texts[i] for i in idx], alphas, cfg)
    jumps = np.abs(np.diff(probs, axis=1)).max(axis=1)
    return [{"method": "ig_path", "split": "valid", "n": len(idx), "valid_index": idx.tolist(),
             "alphas": [round(float(x), 4) for x in alphas], "targets": targets.tolist(),
             "p_target": np.round(probs, 4).tolist(), "mean_max_jump": float(jumps.mean()),
             "median_max_jump": float(np.median(jumps))}]


def _make_lig(teacher):
    from captum.attr import LayerIntegratedGradients

    model = teacher.model

    def forward(input_ids, attention_mask):
        return torch.softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), dim=-1)

    return LayerIntegratedGradients(forward, model.get_input_embeddings())


def _finish(text_scores: list[np.ndarray], enc: _Encoded, cfg: IGConfig) -> list[np.ndarray]:
    out = []
    for i, tok in enumerate(text_scores):
        tok = np.asarray(tok, dtype=np.float64)
        if cfg.normalise == "l2":
            norm = np.linalg.norm(tok)
            tok = tok / norm if norm > 0 else tok
        out.append(merge_to_words(tok, enc.token_word[i], enc.n_words[i]))
    return out


def _check(texts: Sequence[str], labels, cfg: "ExplainerConfig") -> list[str]:
    """The texts as a list (one clear error for bad ones), and the labels a ``target="true"`` config needs."""
    from .teacher import check_texts

    texts = check_texts(texts, before="explaining")
    if cfg.target == "true":
        if labels is None or len(labels) != len(texts):
            raise ValueError(f"{type(cfg).__name__}(target='true') needs `labels`, one per text.")
    return texts


def attribute(teacher, texts: Sequence[str], cfg: IGConfig = IGConfig(), labels: Sequence[int] | None = None,
              progress: bool = True) -> Attributions:
    """Batched IG word attributions of ``texts`` (see the module docstring), with deltas and targets."""
    texts = _check(texts, labels, cfg)
    t0 = time.perf_counter()
    enc = _encode(teacher.tokenizer, texts, teacher.max_length)
    pad_id = _pad_id(teacher.tokenizer)
    teacher.model.eval()
    lig = _make_lig(teacher)
    order = np.argsort([len(x) for x in enc.input_ids], kind="stable")
    raw: list[np.ndarray | None] = [None] * len(texts)
    deltas = np.zeros(len(texts), dtype=np.float32)
    targets = np.zeros(len(texts), dtype=np.int64)
    with _frozen(teacher.model), tqdm(total=len(texts), desc="integrated gradients", disable=not progress,
                                      leave=False) as bar:
        for s in range(0, len(texts), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            tg = [int(labels[i]) for i in idx] if cfg.target == "true" else None
            rows, d, t = _ig_batch(teacher, lig, [enc.input_ids[i] for i in idx], [enc.special[i] for i in idx],
                                   tg, cfg, pad_id)
            for j, i in enumerate(idx):
                raw[i] = rows[j]
            deltas[idx], targets[idx] = d, t
            bar.update(len(idx))
    scores = _finish(raw, enc, cfg)  # type: ignore[arg-type]
    return Attributions(scores, deltas, targets, time.perf_counter() - t0)


def word_attributions(teacher, texts: Sequence[str], cfg: IGConfig = IGConfig(), progress: bool = True,
                      labels: Sequence[int] | None = None) -> list[np.ndarray]:
    """One float32 vector per text with ``len(text.split())`` IG scores (batched; not cached).
    Use :func:`attribute` for deltas/targets and :func:`explain_dataset` for the cached version."""
    return attribute(teacher, texts, cfg, labels=labels, progress=progress).scores


def word_attributions_loop(teacher, texts: Sequence[str], cfg: IGConfig = IGConfig(),
                           labels: Sequence[int] | None = None, progress: bool = False) -> Attributions:
    """Reference implementation: one sentence per captum call, no padding (the way transformers-interpret
    is used in the authors' notebook). Same recipe as :func:`attribute`; used by tests and the benchmark."""
    texts = _check(texts, labels, cfg)
    t0 = time.perf_counter()
    enc = _encode(teacher.tokenizer, texts, teacher.max_length)
    pad_id = _pad_id(teacher.tokenizer)
    teacher.model.eval()
    lig = _make_lig(teacher)
    raw, deltas, targets = [], [], []
    with _frozen(teacher.model):
        for i in tqdm(range(len(texts)), desc="IG (one at a time)", disable=not progress, leave=False):
            tg = [int(labels[i])] if cfg.target == "true" else None
            rows, d, t = _ig_batch(teacher, lig, [enc.input_ids[i]], [enc.special[i]], tg, cfg, pad_id)
            raw.append(rows[0])
            deltas.append(d[0])
            targets.append(t[0])
    return Attributions(_finish(raw, enc, cfg), np.asarray(deltas, np.float32), np.asarray(targets, np.int64),
                        time.perf_counter() - t0)


# ---------------------------------------------------------------- cached, per data set

#: The two explainers of the teacher: Integrated Gradients (DiXtill's) or leave-one-word-out occlusion.
ExplainerConfig = IGConfig | OcclusionConfig
EXPLAINERS: tuple[str, ...] = ("ig", "occlusion")


def explainer_config(name: str, mode: str | None = None, **ig_overrides: Any) -> ExplainerConfig:
    """The config of the explainer ``name`` (:data:`EXPLAINERS`); ``ig_overrides`` go to
    :meth:`IGConfig.for_mode` (occlusion takes only ``batch_size`` from them)."""
    if name == "ig":
        return IGConfig.for_mode(mode, **ig_overrides)
    if name == "occlusion":
        return OcclusionConfig(**{k: v for k, v in ig_overrides.items() if k == "batch_size"})
    raise ValueError(f"Unknown explainer {name!r}; choose one of {EXPLAINERS}.")


def explainer_name(cfg: ExplainerConfig) -> str:
    return "occlusion" if isinstance(cfg, OcclusionConfig) else "ig"


def attribute_with(teacher, texts: Sequence[str], cfg: ExplainerConfig, labels: Sequence[int] | None = None,
                   progress: bool = True) -> Attributions:
    """:func:`attribute` (IG) or :func:`dixtill_lib.occlusion.attribute`, by the type of ``cfg``."""
    if isinstance(cfg, OcclusionConfig):
        return occlusion.attribute(teacher, texts, cfg, labels=labels, progress=progress)
    return attribute(teacher, texts, cfg, labels=labels, progress=progress)


def attribution_key(teacher, ds, cfg: ExplainerConfig) -> str:
    labels = ds.labels.tolist() if cfg.target == "true" else None
    return stable_hash(IG_VERSION, teacher.fingerprint(), teacher.max_length, hash_texts(ds.texts),
                       cfg.cache_fields(), labels)


#: Large data sets are computed and cached in parts of this many texts, so an interrupted run resumes.
PART_SIZE = 256


def explain_dataset(teacher, ds, cfg: ExplainerConfig | None = None, progress: bool = True) -> Attributions:
    """IG (or, with an :class:`~dixtill_lib.occlusion.OcclusionConfig`, occlusion) word attributions for every
    text of ``ds`` (a :class:`dixtill_lib.data.Dataset`), cached under ``<cache>/attributions/`` by teacher
    fingerprint, text hash and the settings that change numbers.
    ``cfg=None`` uses ``IGConfig.for_mode()`` (the current mode). Data sets larger than
    :data:`PART_SIZE` are computed in cached parts (``attributions-parts/``): rerunning after an
    interruption only computes the missing parts."""
    cfg = cfg or IGConfig.for_mode()
    from . import parallel

    if parallel.is_distributed():  # each process takes a block of the same parts; the main process merges
        arrays = _sharded(teacher, ds, cfg, progress)
    else:
        arrays = cached_arrays("attributions", attribution_key(teacher, ds, cfg),
                               lambda: _compute_in_parts(teacher, ds, cfg, progress).to_arrays())
    out = Attributions.from_arrays(arrays)
    if len(out) != len(ds):
        raise RuntimeError(f"Cached attributions hold {len(out)} rows for a data set of {len(ds)}; delete "
                           f"the cache entry under <cache>/attributions/.")
    return out


def _compute_in_parts(teacher, ds, cfg: ExplainerConfig, progress: bool) -> Attributions:
    if len(ds) <= PART_SIZE:
        return attribute_with(teacher, ds.texts, cfg, labels=ds.labels, progress=progress)
    parts = []
    with tqdm(total=len(ds), desc=f"{explainer_name(cfg)} {ds.name or 'data'}", disable=not progress) as bar:
        for s in range(0, len(ds), PART_SIZE):
            part = ds.select(np.arange(s, min(s + PART_SIZE, len(ds))))
            arrays = cached_arrays("attributions-parts", attribution_key(teacher, part, cfg),
                                   lambda: attribute_with(teacher, part.texts, cfg, labels=part.labels,
                                                          progress=False).to_arrays())
            parts.append(Attributions.from_arrays(arrays))
            bar.update(len(part))
    return Attributions([v for p in parts for v in p.scores], np.concatenate([p.deltas for p in parts]),
                        np.concatenate([p.targets for p in parts]), float(sum(p.seconds for p in parts)))


def _sharded(teacher, ds, cfg: ExplainerConfig, progress: bool) -> dict[str, np.ndarray]:
    """The attributions of ``ds`` computed by all processes of a launch: the same :data:`PART_SIZE` parts (and
    part cache keys) as the one-process path, so parts written by either are reused by the other."""
    from .parallel import sharded_cache

    def part(lo: int, hi: int):
        return ds.select(np.arange(lo, hi))

    def compute(lo: int, hi: int) -> dict[str, np.ndarray]:
        p = part(lo, hi)
        return attribute_with(teacher, p.texts, cfg, labels=p.labels, progress=False).to_arrays()

    def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        atts = [Attributions.from_arrays(a) for a in parts]
        return Attributions([v for a in atts for v in a.scores], np.concatenate([a.deltas for a in atts]),
                            np.concatenate([a.targets for a in atts]), float(sum(a.seconds for a in atts))).to_arrays()

    return sharded_cache("attributions", attribution_key(teacher, ds, cfg), len(ds), compute, part_size=PART_SIZE,
                         parts_namespace="attributions-parts",
                         part_key=lambda lo, hi: attribution_key(teacher, part(lo, hi), cfg), merge=merge,
                         progress=progress, desc=f"{explainer_name(cfg)} {ds.name or 'data'}")


def steps_study(teacher, texts: Sequence[str], steps: Sequence[int] = (2, 4, 8, 16, 50),
                base: IGConfig | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """How many IG steps are enough? For each step count: |convergence delta| statistics and the
    agreement (cosine, top-3 feature agreement) of the word scores with the largest step count."""
    from .agreement import agreement_table

    base = base or IGConfig()
    runs = {n: attribute(teacher, texts, replace(base, n_steps=n), progress=progress) for n in steps}
    ref = runs[max(steps)].scores
    rows = []
    for n, att in runs.items():
        agr = agreement_table(ref, att.scores, ks=(3,))
        d = np.abs(att.deltas)
        rows.append({"method": "ig_steps", "n_steps": int(n), "n": len(texts), "ref_steps": int(max(steps)),
                     "mean_abs_delta": float(d.mean()), "median_abs_delta": float(np.median(d)),
                     "max_abs_delta": float(d.max()), "cosine_to_ref": agr["cosine"],
                     "top3_agreement_to_ref": agr["feature_agreement@3"], "seconds": round(att.seconds, 2)})
    return rows


# ---------------------------------------------------------------- CLI step

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--explainer", choices=EXPLAINERS, default="ig",
                   help="Integrated Gradients (DiXtill's, default) or leave-one-word-out occlusion "
                        "(dixtill_lib.occlusion)")
    p.add_argument("--n-steps", type=int, default=None, help="override the mode's IG steps")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per captum call")
    p.add_argument("--tokens-per-pass", type=int, default=None,
                   help=f"padded tokens per forward/backward (memory bound; default: none, {DECODER_TOKENS_PER_PASS} "
                        "for a decoder teacher)")
    p.add_argument("--faithfulness", type=int, default=300,
                   help="valid tweets on which to measure comprehensiveness/sufficiency (0 = skip)")
    p.add_argument("--steps-study", type=int, default=32,
                   help="valid tweets on which to compare 2/4/8/16/50 IG steps (0 = skip; IG only)")
    p.add_argument("--path-profile", type=int, default=8,
                   help="valid tweets whose probability along IG's path is recorded at 21 points (0 = skip; IG only)")


def run_step(args: argparse.Namespace) -> Path:
    """Attributions (cached) for the mode's train and valid splits with the default teacher: rows ``ig`` (or
    ``occlusion``), their faithfulness against random scores, and (IG) the steps study."""
    from .results import teacher_results_path, write_results
    from .tables import format_table
    from .teacher import default_teacher, pools_last_token

    mode = get_mode(args.mode)
    overrides = {k: v for k, v in (("n_steps", getattr(args, "n_steps", None)),
                                   ("batch_size", getattr(args, "batch_size", None)),
                                   ("tokens_per_pass", getattr(args, "tokens_per_pass", None))) if v is not None}
    which = getattr(args, "teacher", None) or "minilm"
    teacher, train, valid = default_teacher(mode, data_dir=args.data_dir, device=args.device,
                                            teacher_dir=getattr(args, "teacher_dir", None), teacher=which)
    if pools_last_token(teacher.model):
        overrides.setdefault("tokens_per_pass", DECODER_TOKENS_PER_PASS)
    explainer = getattr(args, "explainer", None) or "ig"
    cfg = explainer_config(explainer, mode, **overrides)
    rows: list[dict[str, Any]] = []
    for split, ds in (("train", train), ("valid", valid)):
        t0 = time.perf_counter()
        att = explain_dataset(teacher, ds, cfg)
        wall = time.perf_counter() - t0
        seconds = att.seconds or wall
        rows.append({"method": explainer, "teacher": which, "split": split, "n": len(ds),
                     "n_steps": getattr(cfg, "n_steps", None),
                     "mean_abs_delta": float(np.mean(np.abs(att.deltas))),
                     "median_abs_delta": float(np.median(np.abs(att.deltas))),
                     "p95_abs_delta": float(np.percentile(np.abs(att.deltas), 95)),
                     "mean_words": float(np.mean([len(s) for s in att.scores])),
                     "seconds": round(seconds, 1), "sentences_per_second": round(len(ds) / seconds, 2),
                     "cache_hit_seconds": round(wall, 2)})
    n_faith = int(getattr(args, "faithfulness", 0) or 0)
    if n_faith > 0:
        rows += _faithfulness_rows(teacher, valid, cfg, n_faith, args.seeds[0])
    n_study = int(getattr(args, "steps_study", 0) or 0)
    if n_study > 0 and explainer == "ig":
        idx = np.sort(np.random.default_rng(args.seeds[0] + 1).permutation(len(valid))[:min(n_study, len(valid))])
        steps = sorted({2, 4, cfg.n_steps, 16, 50})
        rows += steps_study(teacher, [valid.texts[i] for i in idx], steps, base=cfg)
    n_path = int(getattr(args, "path_profile", 0) or 0)
    if n_path > 0 and explainer == "ig":
        rows += path_rows(teacher, valid, n_path, args.seeds[0], cfg)
    print(format_table(rows, ["method", "split", "n", "n_steps", "mean_abs_delta", "seconds",
                              "sentences_per_second", "comprehensiveness", "sufficiency"]))
    for r in rows:
        r.setdefault("teacher", which)
    return write_results("explain", rows, mode=mode, seeds=args.seeds, config=asdict(cfg),
                         path=teacher_results_path("explain", which, mode, args.out),
                         teacher={"name": teacher.name, "fingerprint": teacher.fingerprint(),
                                  "max_length": teacher.max_length,
                                  "dir": getattr(args, "teacher_dir", None) or "default_teacher(mode)"},
                         data={"train": train.name, "valid": valid.name})


def _faithfulness_rows(teacher, valid, cfg: ExplainerConfig, n: int, seed: int) -> list[dict[str, Any]]:
    """ERASER comprehensiveness/sufficiency (AOPC over 10–50 % deletions) of the explainer vs random word scores."""
    from .faithfulness import aopc, random_scores

    sub_idx = np.sort(np.random.default_rng(seed).permutation(len(valid))[:min(n, len(valid))])
    att = explain_dataset(teacher, valid, cfg, progress=False)
    texts = [valid.texts[i] for i in sub_idx]
    scores = [att.scores[i] for i in sub_idx]

    def proba(t: list[str]) -> np.ndarray:
        return teacher.predict_proba(t, progress=False)

    rows = []
    for name, sc in ((explainer_name(cfg), scores), ("random", random_scores(texts, seed=seed))):
        res = aopc(proba, texts, sc)
        rows.append({"method": f"faithfulness/{name}", "split": "valid", "n": len(texts),
                     "comprehensiveness": res["comprehensiveness"], "sufficiency": res["sufficiency"],
                     "ratios": list(res["ratios"]),
                     "comprehensiveness_by_ratio": res["comprehensiveness_by_ratio"],
                     "sufficiency_by_ratio": res["sufficiency_by_ratio"]})
    return rows
