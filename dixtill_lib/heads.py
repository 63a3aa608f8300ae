"""Attention-head pruning (AHP) of a BERT-style teacher, written out because transformers 5 removed
``prune_heads`` and BERT no longer honours ``head_mask``.

Three pieces, each usable alone:

* **masking** — :func:`head_mask_hooks` registers a forward-pre-hook on every layer's
  ``attention.output.dense`` that multiplies its input (the concatenated per-head contexts) by a
  per-head gate. A gate of 0 removes the head; a gate that requires grad gives Michel et al.'s
  importance score as its gradient.
* **importance** — :func:`head_importance` scores every (layer, head): ``"gradient"`` (Michel et al.
  2019, |∂loss/∂gate| accumulated over a calibration set, one forward+backward pass) or ``"ablation"``
  (the DiXtill paper's rule: mask each head alone and measure how much the calibration loss grows;
  L·H forward passes).
* **structural pruning** — :func:`prune_heads` slices query/key/value (output rows) and
  ``attention.output.dense`` (input columns) with ``transformers.pytorch_utils.prune_linear_layer`` and
  updates the attention module's bookkeeping, so the pruned model is really smaller and faster.
  With the same heads, masked and sliced models give the same logits.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Dataset

ImportanceMethod = Literal["gradient", "ablation"]
IMPORTANCE_METHODS: tuple[str, ...] = ("gradient", "ablation")


def encoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer layers of a BERT-family classifier (``model.<base>.encoder.layer``)."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(layers[0], "attention"):
        raise TypeError(f"{type(model).__name__} is not a BERT-style encoder (no encoder.layer[i].attention); "
                        "head pruning supports BERT/MiniLM classifiers.")
    return list(layers)


def head_counts(model: torch.nn.Module) -> list[int]:
    """Number of attention heads currently in each layer."""
    return [int(layer.attention.self.num_attention_heads) for layer in encoder_layers(model)]


def head_dim(model: torch.nn.Module) -> int:
    return int(encoder_layers(model)[0].attention.self.attention_head_size)


# ---------------------------------------------------------------- masking

def head_mask_hook(gate: torch.Tensor, head_size: int):
    """A forward-pre-hook for ``attention.output.dense`` that scales head ``h``'s slice
    ``[h*head_size, (h+1)*head_size)`` of the input by ``gate[h]``."""
    def hook(module, args):
        x = args[0]
        scale = gate.to(x.dtype).repeat_interleave(head_size)  # (H*d,) — head-major layout
        return (x * scale, *args[1:])
    return hook


@contextmanager
def head_mask_hooks(model: torch.nn.Module, gates: torch.Tensor | np.ndarray) -> Iterator[torch.Tensor]:
    """Within the block, head ``h`` of layer ``l`` is scaled by ``gates[l, h]`` (0 = removed).
    ``gates`` may require grad (Michel importance). Yields the gate tensor; hooks are removed on exit."""
    layers = encoder_layers(model)
    gates = torch.as_tensor(gates) if not isinstance(gates, torch.Tensor) else gates
    counts = head_counts(model)
    if gates.ndim != 2 or gates.shape[0] != len(layers) or any(gates.shape[1] != c for c in counts):
        raise ValueError(f"gates must have shape (layers, heads) = ({len(layers)}, {counts[0]}); got "
                         f"{tuple(gates.shape)}. Masking needs an unpruned model with equal heads per layer.")
    d = head_dim(model)
    handles = [layer.attention.output.dense.register_forward_pre_hook(head_mask_hook(gates[i], d))
               for i, layer in enumerate(layers)]
    try:
        yield gates
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- importance

def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def _mean_loss(teacher, texts: list[str], labels: torch.Tensor, batch_size: int) -> float:
    total = 0.0
    for sl in _batches(len(texts), batch_size):
        enc = teacher.encode(texts[sl]).to(teacher.device)
        logits = teacher.model(**enc).logits
        total += float(torch.nn.functional.cross_entropy(logits, labels[sl].to(logits.device), reduction="sum"))
    return total / len(texts)


def head_importance(teacher, calib: Dataset, method: ImportanceMethod = "gradient", batch_size: int = 32,
                    progress: bool = True) -> np.ndarray:
    """Importance of every head, shape (layers, heads); larger = more important.

    ``"gradient"`` (Michel et al. 2019): ``I[l,h] = Σ_batches |∂ CE / ∂ gate[l,h]|`` at gate = 1,
    then each layer scaled to unit L2 norm (their normalisation; it does not change the ranking within a
    layer). ``"ablation"`` (the DiXtill paper's rule): ``I[l,h] = loss(head l,h masked) − loss(all heads)``
    on the calibration set — the mean cross-entropy, a smooth stand-in for "drop in performance"."""
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"Unknown importance method {method!r}; use one of {IMPORTANCE_METHODS}.")
    if len(calib) == 0:
        raise ValueError("The calibration set is empty; pass a few hundred labelled training texts.")
    model = teacher.model.eval()
    L, H = len(encoder_layers(model)), head_counts(model)[0]
    labels = torch.as_tensor(calib.labels)
    texts = list(calib.texts)
    if method == "gradient":
        gates = torch.ones(L, H, requires_grad=True, device=teacher.device)
        scores = torch.zeros(L, H)
        requires = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            with head_mask_hooks(model, gates):
                for sl in tqdm(_batches(len(texts), batch_size), desc="head importance (gradient)",
                               disable=not progress, leave=False):
                    enc = teacher.encode(texts[sl]).to(teacher.device)
                    logits = model(**enc).logits
                    loss = torch.nn.functional.cross_entropy(logits, labels[sl].to(logits.device))
                    (grad,) = torch.autograd.grad(loss, gates)
                    scores += grad.detach().abs().cpu()
        finally:
            for p, r in zip(model.parameters(), requires):
                p.requires_grad_(r)
        scores = scores / scores.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return scores.numpy().astype(np.float64)
    scores = np.zeros((L, H))
    with torch.inference_mode():
        base = _mean_loss(teacher, texts, labels, batch_size)
        gates = torch.ones(L, H, device=teacher.device)
        with head_mask_hooks(model, gates):
            bar = tqdm(total=L * H, desc="head importance (ablation)", disable=not progress, leave=False)
            for l in range(L):
                for h in range(H):
                    gates[l, h] = 0.0
                    scores[l, h] = _mean_loss(teacher, texts, labels, batch_size) - base
                    gates[l, h] = 1.0
                    bar.update(1)
            bar.close()
    return scores


def keep_mask(importance: np.ndarray, keep: int) -> np.ndarray:
    """Boolean (layers, heads) mask keeping the ``keep`` most important heads of every layer
    (AHP-``keep``); ties broken by the lower head index."""
    imp = np.asarray(importance, dtype=float)
    if imp.ndim != 2:
        raise ValueError(f"importance must be a (layers, heads) matrix, got shape {imp.shape}.")
    L, H = imp.shape
    if not 1 <= keep <= H:
        raise ValueError(f"keep must be between 1 and {H} heads per layer, got {keep}.")
    mask = np.zeros((L, H), dtype=bool)
    for l in range(L):
        order = np.lexsort((np.arange(H), -imp[l]))  # most important first, then lower index
        mask[l, order[:keep]] = True
    return mask


def heads_to_prune(mask: np.ndarray) -> dict[int, list[int]]:
    """``{layer: [head, ...]}`` of the heads a keep-mask removes."""
    return {l: [int(h) for h in np.flatnonzero(~row)] for l, row in enumerate(np.asarray(mask, dtype=bool))}


# ---------------------------------------------------------------- structural pruning

def prune_heads(model: torch.nn.Module, prune: dict[int, list[int]]) -> torch.nn.Module:
    """Remove heads **in place**: ``prune = {layer: [heads to remove]}`` (indices into the current heads).
    Slices q/k/v output rows and the output projection's input columns, then updates
    ``num_attention_heads`` / ``all_head_size`` (``attention_head_size`` and ``scaling`` are unchanged).
    A layer must keep at least one head. Returns ``model``."""
    from transformers.pytorch_utils import prune_linear_layer

    layers = encoder_layers(model)
    for l, heads in prune.items():
        if not 0 <= l < len(layers):
            raise ValueError(f"Layer {l} does not exist (the model has {len(layers)} layers).")
        att = layers[l].attention
        n, d = int(att.self.num_attention_heads), int(att.self.attention_head_size)
        heads = sorted(set(int(h) for h in heads))
        if any(not 0 <= h < n for h in heads):
            raise ValueError(f"Layer {l} has heads 0..{n - 1}; cannot prune {heads}.")
        if len(heads) >= n:
            raise ValueError(f"Pruning {heads} would remove every head of layer {l}; keep at least one.")
        if not heads:
            continue
        keep = [h for h in range(n) if h not in heads]
        index = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep]).long()
        att.self.query = prune_linear_layer(att.self.query, index, dim=0)
        att.self.key = prune_linear_layer(att.self.key, index, dim=0)
        att.self.value = prune_linear_layer(att.self.value, index, dim=0)
        att.output.dense = prune_linear_layer(att.output.dense, index, dim=1)
        att.self.num_attention_heads = len(keep)
        att.self.all_head_size = len(keep) * d
    return model.eval()


def pruned_teacher(teacher, mask: np.ndarray, name: str | None = None):
    """A new :class:`~dixtill_lib.teacher.Teacher` whose model is a structurally pruned deep copy
    (the original is untouched). ``mask``: boolean (layers, heads), True = keep."""
    from .teacher import Teacher

    model = prune_heads(copy.deepcopy(teacher.model), heads_to_prune(mask))
    kept = int(np.asarray(mask).sum(1).max())
    return Teacher(model, teacher.tokenizer, max_length=teacher.max_length,
                   name=name or f"{teacher.name}-ahp{kept}", device=teacher.device)
