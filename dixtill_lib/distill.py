"""Distilling the teacher into the BiLSTM+attention student: the four losses, one trainer, evaluation,
and the CLI step ``distill``.

Methods (``METHODS``):

* ``ce``      — the student alone, cross-entropy on the labels (the paper's "Student w/o distillation");
* ``kd``      — Hinton et al. (2015): ``(1−α)·CE + α·τ²·KL(p_T(τ) ‖ p_S(τ))``, α = 0.9, τ = 5;
* ``tang``    — Tang et al. (2019): ``(1−α)·CE + α·‖z_T − z_S‖²`` on logits; α = 0.9 is *our* choice
  (the DiXtill paper does not give the weight);
* ``dixtill`` — the authors' code: ``0.1·CE + 0.9·(1 − exp(−τ²·KL̄)) + 0.9·½(1 − cos(σ_T, σm))``, KL̄ the
  batch-mean KL, σ_T the teacher's IG word attributions, σm the student's masked attention scores.

Training follows the authors' notebook: SGD lr 0.01, momentum 0.99 (paper text: 0.9), batch 32,
15 epochs, the last 10 % of the training split held out (Keras ``validation_split``), and the weights of
the epoch with the lowest held-out *total* loss restored. Training is seeded: same seed, same thread
count → bit-identical weights and metrics on CPU.

Where trained students go (read by the ``bench`` step through :func:`dixtill_lib.student.load_student`)::

    <cache_dir()>/students/<mode>/<method>_seed<k>/{model.pt, vocab.json, config.json, dixtill-manifest.json}

(students of a non-default teacher, ``--teacher smollm2``, go to ``students/<mode>_smollm2/``).

with ``<method>`` one of ``ce``, ``kd``, ``tang``, ``dixtill``, ``dixtill_T1`` … ``dixtill_T4`` (``dixtill_T5``
is the ``dixtill`` run itself and is not saved twice) and ``dixtill_random_emb``. A later run of the same
mode overwrites the folder (atomically); ``config.json`` records the teacher fingerprint and the config.
While a student trains, ``<method>_seed<k>.ckpt-<training key>.pt`` beside its folder holds the state after
its last finished epoch, so ``--resume`` continues an interrupted run there (bit-identical to an uninterrupted
one); it is deleted once the student is saved.

``--explainer occlusion`` takes the teacher's explanations from leave-one-word-out occlusion
(:mod:`dixtill_lib.occlusion`) instead of IG, for training and for the agreement metrics; every row and
student folder of such a run is named ``<method>_occlusion`` (e.g. ``dixtill_occlusion``).

``--augment COPIES`` also trains every student on a transfer set (:mod:`dixtill_lib.augment`): COPIES new,
teacher-labelled texts per fitted training tweet; rows and student folders are named ``<method>_aug``
(``--balance``: ``_augbal``; ``--rounds R``: then ``x<R>``, see :meth:`~dixtill_lib.augment.AugmentConfig.row_suffix`).
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import parallel
from .augment import AugmentConfig, TransferSet, build_transfer_set
from .config import cache_dir, get_mode
from .data import Dataset, holdout_split
from .student import (PAD_ID, UNK_ID, BiLSTMAttentionStudent, StudentConfig, Vocab, build_student, count_parameters,
                      glove_matrix, save_student, size_bytes, with_glove_aliases, word_counts)

METHODS: tuple[str, ...] = ("ce", "kd", "tang", "dixtill")
#: The paper's Table 1 row for each method.
PAPER_NAMES = {"ce": "Student w/o distillation", "kd": "Distillation with KL", "tang": "Distillation with MSE",
               "dixtill": "DiXtill", "teacher": "Teacher (FinBERT)"}

Parts = dict[str, torch.Tensor]


# ================================================================ losses (plain functions on tensors)

def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Parts]:
    """Mean cross-entropy on the hard labels (the student trained alone)."""
    ce = F.cross_entropy(logits, labels)
    return ce, {"ce": ce}


def kl_per_sample(teacher_logits: torch.Tensor, student_logits: torch.Tensor, T: float) -> torch.Tensor:
    """``KL(p_T(τ) ‖ p_S(τ))`` per example, with ``p(τ) = softmax(z/τ)`` (shape (B,))."""
    log_p_t = F.log_softmax(teacher_logits / T, dim=1)
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)


def kd_kl_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, T: float = 5.0,
               alpha: float = 0.9) -> tuple[torch.Tensor, Parts]:
    """Hinton et al. (2015): ``(1−α)·CE + α·τ²·KL̄``. The τ² keeps the soft-target gradients at the same
    scale as the hard-label ones when τ changes."""
    ce = F.cross_entropy(logits, labels)
    kl = kl_per_sample(teacher_logits, logits, T).mean()
    kd = T ** 2 * kl
    return (1 - alpha) * ce + alpha * kd, {"ce": ce, "kd": kd}


def kd_mse_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                alpha: float = 0.9) -> tuple[torch.Tensor, Parts]:
    """Tang et al. (2019): ``(1−α)·CE + α·mean_b ‖z_T − z_S‖²₂`` (squared L2 over classes, mean over the
    batch). α = 0.9 is our choice: the DiXtill paper does not give the weight it used."""
    ce = F.cross_entropy(logits, labels)
    mse = ((teacher_logits - logits) ** 2).sum(1).mean()
    return (1 - alpha) * ce + alpha * mse, {"ce": ce, "kd": mse}


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Keras ``l2_normalize``: ``x / sqrt(max(Σx², eps))`` — a zero vector stays zero."""
    return x * torch.rsqrt(torch.clamp((x * x).sum(-1, keepdim=True), min=eps))


def cosine_keras(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity as Keras computes it: 0 when either vector is all zeros."""
    return (l2_normalize(a) * l2_normalize(b)).sum(-1)


def xai_loss(teacher_expl: torch.Tensor, sig_m: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``L_XAI = ½·(1 − mean_b cos(σ_T, σm))``: 0 when the student's scores point like the teacher's,
    ½ when orthogonal, 1 when opposite. ``rows`` (0/1 per example): average over the examples that have a
    teacher explanation only (the others, e.g. transfer-set texts, give no term); ½ when none has one."""
    cos = cosine_keras(teacher_expl, sig_m)
    if rows is None:
        return 0.5 * (1 - cos.mean())
    return 0.5 * (1 - (cos * rows).sum() / rows.sum().clamp(min=1))


def bounded_kd(teacher_logits: torch.Tensor, student_logits: torch.Tensor, T: float = 5.0,
               paper_form: bool = False) -> torch.Tensor:
    """DiXtill's bounded KD term. Code form (default): ``1 − exp(−τ²·KL̄)`` with KL̄ the *batch-mean* KL.
    ``paper_form=True``: the paper's ``1 − exp(−KL)`` per example (no τ²), averaged over the batch."""
    kl = kl_per_sample(teacher_logits, student_logits, T)
    if paper_form:
        return (1 - torch.exp(-kl)).mean()
    return 1 - torch.exp(-(T ** 2) * kl.mean())


def dixtill_loss(logits: torch.Tensor, sig_m: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                 teacher_expl: torch.Tensor, T: float = 5.0, weights: tuple[float, float, float] = (0.1, 0.9, 0.9),
                 paper_form: bool = False, has_expl: torch.Tensor | None = None) -> tuple[torch.Tensor, Parts]:
    """The authors' ``DistillerXAI`` loss: ``w_ce·CE + w_kd·L_KD + w_xai·L_XAI`` with (0.1, 0.9, 0.9).
    ``teacher_expl`` is the teacher's word attributions padded with zeros to the student's ``max_len``;
    ``has_expl`` marks the rows that have one (see :func:`xai_loss`; ``None`` = all)."""
    ce = F.cross_entropy(logits, labels)
    kd = bounded_kd(teacher_logits, logits, T, paper_form)
    xai = xai_loss(teacher_expl, sig_m, has_expl)
    w_ce, w_kd, w_xai = weights
    return w_ce * ce + w_kd * kd + w_xai * xai, {"ce": ce, "kd": kd, "xai": xai}


# ================================================================ configuration

@dataclass(frozen=True)
class DistillConfig:
    """Training recipe. Defaults = the authors' notebook (full mode); ``for_mode("quick")`` trains fewer
    epochs on the quick subset. ``momentum=0.9`` gives the paper's text; ``paper_kd=True`` the paper's
    ``1 − exp(−KL)``. ``threads``: torch CPU threads while training (1 is fastest for this small
    recurrent model on a shared 2-core machine; ``None`` leaves torch's setting).

    Our additions (off by default, so the authors' recipe and the keys of students trained before them are
    unchanged): ``select="macro_f1"`` restores the epoch with the best held-out macro-F1 (the metric the book
    reports) instead of the lowest held-out loss; ``ema=d`` keeps an exponential moving average of the weights
    (``w̄ ← d·w̄ + (1 − d)·w`` after every step), and evaluates, selects and returns the averaged weights;
    ``schedule="cosine"`` decays the learning rate from ``lr`` to 0 over all steps; ``optimizer="adam"`` trains
    with Adam at ``lr`` (``momentum`` is then unused); ``unk_rate=p`` is word dropout (Iyyer et al. 2015): in every
    training batch each word becomes ``<UNK>`` with probability p, so the student learns the unknown-word
    embedding it meets on new tweets (the vocabulary holds every training word, so without it ``<UNK>`` is never
    trained); ``rare_unk=α`` is frequency word dropout instead (Kiperwasser & Goldberg 2016, their α = 0.25): a word
    seen c times in the training tweets becomes ``<UNK>`` with probability α / (α + c), so mostly the rare words a new
    tweet is likely not to share (a hapax 0.2 of the time, a word seen 100 times 0.0025); ``gold_repeat=k``
    shows the fitted tweets (true labels, teacher explanations) k times per epoch, so a
    large transfer set does not drown them; ``transfer_fraction=f`` shows each epoch a fresh random share f of the
    transfer set (drawn without replacement, seeded), so many cached rounds cost per epoch what a few do and each
    new tweet is seen about f × epochs times; ``glove_aliases=n`` changes evaluation only (the trained weights
    are the same): an unknown word among GloVe's n most frequent is read as its nearest vocabulary word
    (:func:`~dixtill_lib.student.with_glove_aliases`). Chapter 7 reports what each did."""
    epochs: int = 15
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.99
    temperature: float = 5.0
    alpha: float = 0.9                                   # kd / tang: weight of the distillation term
    weights: tuple[float, float, float] = (0.1, 0.9, 0.9)  # dixtill: CE, KD, XAI
    paper_kd: bool = False
    holdout: float = 0.1
    restore_best: bool = True
    select: str = "loss"                                 # "loss" | "macro_f1": which held-out score picks the epoch
    ema: float = 0.0                                     # weight-average decay per step; 0 = off
    schedule: str = "constant"                           # "constant" | "cosine": learning rate over the steps
    optimizer: str = "sgd"                               # "sgd" (authors) | "adam" (lr and betas: torch's Adam)
    unk_rate: float = 0.0                                # word dropout: P(a training word is read as <UNK>)
    rare_unk: float = 0.0                                # frequency word dropout: a word seen c times is <UNK> w.p. α/(α+c)
    gold_repeat: int = 1                                 # each epoch shows the fitted (true-label) rows this often
    transfer_fraction: float = 1.0                       # share of the transfer set drawn afresh for each epoch
    threads: int | None = 1
    # evaluation
    glove_aliases: int = 0                               # read unknown words among GloVe's N most frequent as their nearest vocabulary word
    ig_steps: int = 10                                   # IG steps for the baseline students' explanations
    agreement_ks: tuple[int, ...] = (1, 2, 3, 4, 5)
    faithfulness: bool = True

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "DistillConfig":
        """Full: 15 epochs (authors). Quick: 8 epochs on the 1,200-tweet subset.

        Student IG uses 10 Gauss–Legendre steps in both modes: on the BiLSTM student, 10-step attributions
        agree with 50-step ones to a cosine above 0.9999 (same top-3 words), at a fifth of the cost."""
        base = cls() if get_mode(mode) == "full" else cls(epochs=8)
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"DistillConfig needs epochs >= 1 and batch_size >= 1, got {self.epochs}, {self.batch_size}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be a fraction in (0, 1), got {self.holdout}.")
        if self.select not in ("loss", "macro_f1"):
            raise ValueError(f"select must be 'loss' or 'macro_f1', got {self.select!r}.")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be a decay in [0, 1) (0 = off), got {self.ema}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}.")
        if self.gold_repeat < 1:
            raise ValueError(f"gold_repeat must be a whole number >= 1 (1 = each row once), got {self.gold_repeat}.")
        if not 0 < self.transfer_fraction <= 1:
            raise ValueError(f"transfer_fraction must be a share in (0, 1] (1 = every transfer row each epoch), "
                             f"got {self.transfer_fraction}.")
        if self.glove_aliases < 0:
            raise ValueError(f"glove_aliases must be a number of GloVe words >= 0 (0 = off), got {self.glove_aliases}.")
        if not 0 <= self.unk_rate < 1:
            raise ValueError(f"unk_rate must be a probability in [0, 1) (0 = off), got {self.unk_rate}.")
        if self.rare_unk < 0:
            raise ValueError(f"rare_unk is frequency word dropout's alpha, >= 0 (0 = off), got {self.rare_unk}.")
        if self.rare_unk and self.unk_rate:
            raise ValueError(f"choose one word dropout: unk_rate={self.unk_rate} (every word alike) or "
                             f"rare_unk={self.rare_unk} (by frequency), not both.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}.")


def loss_for(method: str, cfg: DistillConfig) -> Callable[..., tuple[torch.Tensor, Parts]]:
    """``fn(logits, sig_m, labels, teacher_logits, teacher_expl, has_expl=None) -> (total, parts)`` for a method
    (``has_expl``: which rows have a teacher explanation; only DiXtill reads it)."""
    T = cfg.temperature
    if method == "ce":
        return lambda z, s, y, zt, e, h=None: ce_loss(z, y)
    if method == "kd":
        return lambda z, s, y, zt, e, h=None: kd_kl_loss(z, y, zt, T, cfg.alpha)
    if method == "tang":
        return lambda z, s, y, zt, e, h=None: kd_mse_loss(z, y, zt, cfg.alpha)
    if method == "dixtill":
        return lambda z, s, y, zt, e, h=None: dixtill_loss(z, s, y, zt, e, T, cfg.weights, cfg.paper_kd, h)
    raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")


# ================================================================ training

@dataclass
class TrainedStudent:
    """A trained student and its training record."""
    model: BiLSTMAttentionStudent
    vocab: Vocab
    method: str
    seed: int
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def cosine_factor(step: int, total: int) -> float:
    """Learning-rate factor of step ``step`` (0-based) of ``total``: ``(1 + cos(π·step/total)) / 2``, from 1 to ~0."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


#: ``DistillConfig.schedule`` → learning-rate factor of a step, given the total number of steps.
SCHEDULES: dict[str, Callable[[int, int], float]] = {"constant": lambda step, total: 1.0, "cosine": cosine_factor}


#: ``DistillConfig.optimizer`` → the optimizer of some parameters at ``cfg.lr``: the authors' SGD with momentum,
#: or torch's Adam with its default betas.
OPTIMIZERS: dict[str, Callable[[Any, "DistillConfig"], torch.optim.Optimizer]] = {
    "sgd": lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum),
    "adam": lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr),
}


def make_optimizer(params: Any, cfg: "DistillConfig") -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names (see :data:`OPTIMIZERS`), at ``cfg.lr``."""
    return OPTIMIZERS[cfg.optimizer](params, cfg)


class WeightAverage:
    """Exponential moving average of a module's floating-point weights (``DistillConfig.ema``)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        live = {k: v for k, v in module.state_dict().items() if v.is_floating_point()}
        self.shadow = {k: v.detach().clone() for k, v in live.items()}
        self._pairs = [(self.shadow[k], v) for k, v in live.items()]  # state_dict tensors share the weights' storage

    @torch.no_grad()
    def update(self) -> None:
        """One step of ``w̄ ← d·w̄ + (1 − d)·w`` for the module given at construction."""
        for avg, w in self._pairs:
            avg.lerp_(w, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        module.load_state_dict({**module.state_dict(), **self.shadow})

    @contextmanager
    def swapped_in(self, module: torch.nn.Module) -> Iterator[None]:
        """Inside the block ``module`` has the averaged weights; afterwards its own again."""
        own = copy.deepcopy(module.state_dict())
        self.copy_to(module)
        try:
            yield
        finally:
            module.load_state_dict(own)


def word_dropout(ids: torch.Tensor, mask: torch.Tensor, rate: float | torch.Tensor,
                 gen: torch.Generator) -> torch.Tensor:
    """``ids`` with each real word (``mask`` 1) replaced by ``<UNK>`` with probability ``rate``; pads stay.
    ``rate`` is one probability for every word, or a tensor of one per vocabulary id (:func:`frequency_rates`)."""
    p = rate[ids.cpu()] if isinstance(rate, torch.Tensor) else rate
    drop = (torch.rand(ids.shape, generator=gen) < p).to(ids.device) & (mask > 0)
    return ids.masked_fill(drop, UNK_ID)


def frequency_rates(vocab: Vocab, texts: Sequence[str], alpha: float) -> torch.Tensor:
    """Per-id word-dropout probabilities α / (α + c), c = the word's count in ``texts`` (Kiperwasser &
    Goldberg 2016); 0 for padding and ``<UNK>``, 1 for a vocabulary word ``texts`` never holds."""
    counts = word_counts(texts)
    c = torch.tensor([float(counts.get(w, 0)) for w in vocab.words], dtype=torch.float64)
    rates = alpha / (alpha + c)
    rates[[PAD_ID, UNK_ID]] = 0.0
    return rates.float()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _tensors(vocab: Vocab, texts: Sequence[str], labels, logits, expl, max_len: int) -> dict[str, torch.Tensor]:
    ids, mask = vocab.encode(texts, max_len)
    e = np.asarray(expl, dtype=np.float32) if isinstance(expl, np.ndarray) and np.ndim(expl) == 2 \
        else _pad(expl, max_len)
    if e.shape != (len(texts), max_len):
        raise ValueError(f"teacher explanations have shape {e.shape}, expected ({len(texts)}, {max_len}).")
    return {"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask),
            "y": torch.as_tensor(np.asarray(labels), dtype=torch.long),
            "zt": torch.as_tensor(np.asarray(logits), dtype=torch.float32), "e": torch.from_numpy(e)}


def _pad(scores: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    out = np.zeros((len(scores), max_len), dtype=np.float32)
    for i, s in enumerate(scores):
        s = np.asarray(s, dtype=np.float32)[:max_len]
        out[i, :len(s)] = s
    return out


def _check_inputs(texts, labels, teacher_logits, teacher_expl) -> None:
    n = len(texts)
    if len(labels) != n or len(teacher_logits) != n or len(teacher_expl) != n:
        raise ValueError(f"texts, labels, teacher logits and teacher explanations must have the same length; got "
                         f"{n}, {len(labels)}, {len(teacher_logits)}, {len(teacher_expl)}.")
    if isinstance(teacher_expl, np.ndarray) and teacher_expl.ndim == 2:
        return  # already padded to max_len: alignment was the caller's job
    bad = [i for i, (t, e) in enumerate(zip(texts, teacher_expl)) if len(e) != len(t.split())]
    if bad:
        i = bad[0]
        raise ValueError(f"{len(bad)} teacher explanation(s) do not have one score per word, first at {i}: "
                         f"{len(teacher_expl[i])} scores for {len(texts[i].split())} words. Compute them on the same "
                         f"cleaned texts (dixtill_lib.explain.explain_dataset).")


@torch.no_grad()
def _evaluate_loss(model, loss_fn, data: dict[str, torch.Tensor], batch_size: int = 256,
                   run: "parallel.Runner | None" = None) -> dict[str, float]:
    """Size-weighted mean loss parts and accuracy on ``data``; with an active runner each process evaluates its
    contiguous slice and the sums are added up over processes (every process gets the same numbers)."""
    model.eval()
    n = len(data["y"])
    lo, hi = (0, n) if run is None or not run.active else parallel.shard_range(n, run.rank, run.world_size)
    sums: dict[str, float] = {}
    n_classes = int(data["zt"].shape[1])
    counts = torch.zeros(3, n_classes)  # per class: true positives, predicted, true
    for s in range(lo, hi, batch_size):
        b = {k: v[s:min(s + batch_size, hi)] for k, v in data.items()}
        z, sig = model(b["ids"], b["mask"])
        total, parts = loss_fn(z, sig, b["y"], b["zt"], b["e"], b.get("has_e"))
        m = len(b["y"])
        for k, v in {"total": total, **parts, **_monitors(z, sig, b)}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * m
        pred = z.argmax(1)
        counts[0] += torch.bincount(pred[pred == b["y"]], minlength=n_classes).float().cpu()
        counts[1] += torch.bincount(pred, minlength=n_classes).float().cpu()
        counts[2] += torch.bincount(b["y"], minlength=n_classes).float().cpu()
    if run is not None and run.active:
        sums = run.sum_over_processes(sums)
        counts = run.sum_tensor_over_processes(counts).float()
    out = {k: v / n for k, v in sums.items()}
    out["accuracy"] = int(counts[0].sum()) / n  # the true positives of all classes are the correct predictions
    denom = counts[1] + counts[2]  # F1 = 2·tp / (predicted + true); 0 for a class never predicted nor present
    out["macro_f1"] = float(torch.where(denom > 0, 2 * counts[0] / denom.clamp(min=1), torch.zeros(()))
                            .mean())
    return out


def _monitors(z, sig, b) -> dict[str, torch.Tensor]:
    """Quantities logged for every method (not optimised unless the loss uses them): the explanation
    alignment 1 − cos and the KL to the teacher at τ = 1."""
    return {"cos_to_teacher": cosine_keras(b["e"], sig.detach()).mean(),
            "kl_to_teacher": kl_per_sample(b["zt"], z.detach(), 1.0).mean()}


def train_student(method: str, texts: Sequence[str], labels, teacher_logits, teacher_expl, vocab: Vocab,
                  cfg: DistillConfig | None = None, student_cfg: StudentConfig | None = None, seed: int = 0,
                  embeddings: np.ndarray | None = None, progress: bool = True,
                  transfer: TransferSet | None = None, checkpoint: str | Path | None = None) -> TrainedStudent:
    """Train one student with ``method``'s loss on the training texts.

    ``teacher_logits``: (n, C); ``teacher_expl``: ragged per-word attributions (or an (n, max_len)
    array), needed only by ``dixtill`` (pass zeros otherwise). The last ``cfg.holdout`` of the rows is
    held out (Keras-style, :func:`dixtill_lib.data.holdout_split`), the rest shuffled each epoch (seeded);
    the epoch with the best held-out score is restored (``cfg.select``: the lowest total loss, the authors' rule, or
    the highest macro-F1); with ``cfg.ema`` those scores, and the weights returned, are the weight average's.
    ``embeddings``: a precomputed GloVe matrix
    for ``vocab`` (saves the lookup when training many students). ``transfer``: extra teacher-labelled texts
    (:mod:`dixtill_lib.augment`) trained on with the fitted rows, each made from one of those rows (never from a
    held-out one); their hard label is the teacher's argmax and they have no explanation term.
    ``checkpoint``: a file written after every epoch (one process only); if it exists, training resumes after its
    epoch with the same weights and record as an uninterrupted run. The caller keys it to the recipe
    (:func:`run_one` puts the training key in its name) and deletes it once the student is saved."""
    cfg = cfg or DistillConfig()
    student_cfg = student_cfg or StudentConfig()
    texts = list(texts)
    labels = np.asarray(labels)
    _check_inputs(texts, labels, teacher_logits, teacher_expl)
    loss_fn = loss_for(method, cfg)
    fit_ds, val_ds = holdout_split(Dataset(texts, labels, tuple(str(i) for i in range(int(labels.max()) + 1))),
                                   cfg.holdout)
    n_fit = len(fit_ds)
    data = _tensors(vocab, texts, labels, teacher_logits, teacher_expl, student_cfg.max_len)
    fit = {k: v[:n_fit] for k, v in data.items()}
    val = {k: v[n_fit:] for k, v in data.items()}
    if cfg.transfer_fraction < 1 and (transfer is None or not len(transfer)):
        raise ValueError(f"transfer_fraction={cfg.transfer_fraction} draws from a transfer set, but there is none; "
                         f"build one (distill --augment COPIES) or leave transfer_fraction at 1.")
    if transfer is not None and len(transfer):
        if int(transfer.source.max()) >= n_fit:
            raise ValueError(f"the transfer set has texts made from held-out rows (source index up to "
                             f"{int(transfer.source.max())}, but only the first {n_fit} rows are fitted); build it "
                             f"from the fitted rows: dixtill_lib.data.holdout_split(train, {cfg.holdout})[0].")
        extra = _tensors(vocab, transfer.texts, transfer.labels, transfer.logits,
                         np.zeros((len(transfer), student_cfg.max_len), np.float32), student_cfg.max_len)
        fit = {k: torch.cat([fit[k], extra[k]]) for k in fit}
        fit["has_e"] = torch.cat([torch.ones(n_fit), torch.zeros(len(transfer))])
    n_rows = len(fit["y"])  # the fitted rows plus the transfer set
    if student_cfg.embeddings == "random":
        embeddings = None
    t0 = time.perf_counter()
    run = parallel.runner()  # inactive in one process: plain PyTorch, bit-identical to the one-process loop
    with _torch_threads(cfg.threads):
        model, info = build_student(vocab, student_cfg, seed=seed, embeddings=embeddings)
        opt = make_optimizer(model.parameters(), cfg)
        net = model                           # the plain module (state dicts, evaluation)
        model, opt = run.prepare(model, opt)  # N processes: DDP model on this process's device
        if run.active:
            val = {k: v.to(run.device) for k, v in val.items()}
        rng = np.random.Generator(np.random.PCG64(seed))
        # gold_repeat k: the fitted rows k times per epoch (k = 1: every row once, the authors' epoch);
        # transfer_fraction f < 1: a fresh draw of round(f · n) of the n transfer rows each epoch
        n_transfer = n_rows - n_fit
        n_drawn = n_transfer if cfg.transfer_fraction == 1 else max(1, round(cfg.transfer_fraction * n_transfer))
        n_seen = cfg.gold_repeat * n_fit + n_drawn
        rows = (np.concatenate([np.arange(n_rows), *[np.arange(n_fit)] * (cfg.gold_repeat - 1)])
                if cfg.gold_repeat > 1 else None)
        steps = -(-n_seen // cfg.batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: SCHEDULES[cfg.schedule](i, cfg.epochs * steps))  # stepped once per batch

        fitted_rows = np.tile(np.arange(n_fit), cfg.gold_repeat)  # what a drawn epoch shows besides its draw

        def epoch_rows() -> np.ndarray | None:
            """The rows this epoch shows, unshuffled (None: each row once)."""
            if n_drawn == n_transfer:
                return rows
            return np.concatenate([fitted_rows, n_fit + np.sort(rng.choice(n_transfer, n_drawn, replace=False))])

        def epoch_batches() -> list[torch.Tensor]:
            shown = epoch_rows()
            perm = torch.from_numpy(rng.permutation(n_rows) if shown is None else shown[rng.permutation(n_seen)])
            return [perm[s:s + cfg.batch_size] for s in range(0, n_seen, cfg.batch_size)]

        batches = run.batches(fit, parallel.EpochBatches(epoch_batches, cfg.batch_size, steps))
        history: list[dict[str, float]] = []
        best, best_state, best_epoch = float("inf"), None, 0
        averaged = WeightAverage(net, cfg.ema) if cfg.ema else None
        unk_gen = torch.Generator().manual_seed(seed)  # its own stream: the shuffles are the same with and without
        # word dropout: one rate for every word, one per vocabulary id (by frequency), or None (off)
        drop_rate = frequency_rates(vocab, texts, cfg.rare_unk) if cfg.rare_unk else (cfg.unk_rate or None)
        ckpt = _EpochCheckpoint(checkpoint if not run.active else None, net, opt, schedule, rng, unk_gen, averaged)
        start, history, (best, best_state, best_epoch), done_seconds = ckpt.load(history, (best, best_state, best_epoch))
        bar = tqdm(total=cfg.epochs * steps, initial=start * steps, desc=f"{method} seed {seed}",
                   disable=not (progress and run.is_main), leave=False, mininterval=2.0)
        t0 -= done_seconds  # train_seconds counts the epochs of the earlier sitting too
        for epoch in range(start + 1, cfg.epochs + 1):
            te = time.perf_counter()
            model.train()
            sums: dict[str, float] = {}
            for b in batches:  # a fresh shuffle each epoch; N processes: this process's slice of each global batch
                ids = b["ids"] if drop_rate is None else word_dropout(b["ids"], b["mask"], drop_rate, unk_gen)
                with run.autocast():
                    z, sig = model(ids, b["mask"])
                    total, parts = loss_fn(z, sig, b["y"], b["zt"], b["e"], b.get("has_e"))
                opt.zero_grad(set_to_none=True)
                run.backward(total)
                opt.step()
                schedule.step()
                if averaged is not None:
                    averaged.update()
                for k, v in {"total": total, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(b["y"])
                bar.update(1)
            sums = run.sum_over_processes(sums)
            if not np.isfinite(sums["total"]):
                raise FloatingPointError(f"{method} seed {seed}: the loss became {sums['total']} in epoch {epoch}; "
                                         f"lower the learning rate (DistillConfig(lr=...)) or the momentum.")
            rec: dict[str, float] = {"epoch": epoch}
            rec.update({f"train_{k}": v / n_seen for k, v in sums.items()})
            with averaged.swapped_in(net) if averaged is not None else nullcontext():
                rec.update({f"val_{k}": v for k, v in _evaluate_loss(net, loss_fn, val, run=run).items()})
                score = rec["val_total"] if cfg.select == "loss" else -rec["val_macro_f1"]
                if score < best:
                    best, best_epoch = score, epoch
                    best_state = copy.deepcopy(net.state_dict()) if cfg.restore_best else None
            rec["seconds"] = time.perf_counter() - te
            history.append(rec)
            ckpt.save(history, (best, best_state, best_epoch), time.perf_counter() - t0)
            bar.set_postfix(epoch=epoch, val=f"{rec['val_total']:.3f}", f1=f"{rec['val_macro_f1']:.3f}")
        bar.close()
        if cfg.restore_best and best_state is not None:
            net.load_state_dict(best_state)
        elif averaged is not None:  # no restore: the averaged weights of the last epoch
            averaged.copy_to(net)
    model = net.to("cpu").eval() if run.active else net
    model.eval()
    info.update(n_fit=n_fit, n_holdout=len(val_ds), n_transfer=len(transfer) if transfer is not None else 0,
                n_truncated=int(sum(len(t.split()) > student_cfg.max_len for t in texts)))
    return TrainedStudent(model, vocab, method, seed, history, best_epoch if cfg.restore_best else cfg.epochs,
                          time.perf_counter() - t0, info)


class _EpochCheckpoint:
    """Everything :func:`train_student` carries from one epoch to the next, saved to one file (atomically) after
    each epoch and restored before the first: weights, optimizer, schedule, both random streams, the torch RNG,
    the weight average and the best epoch so far. ``path=None``: neither saves nor loads."""

    def __init__(self, path, net, opt, schedule, rng: np.random.Generator, unk_gen: torch.Generator,
                 averaged: WeightAverage | None) -> None:
        self.path = Path(path) if path is not None else None
        self.net, self.opt, self.schedule, self.rng, self.unk_gen, self.averaged = (
            net, opt, schedule, rng, unk_gen, averaged)

    def save(self, history: list[dict], best: tuple, seconds: float) -> None:
        if self.path is None:
            return
        from .io import atomic_path

        state = {"epoch": len(history), "history": history, "best": best, "seconds": seconds,
                 "net": self.net.state_dict(), "opt": self.opt.state_dict(), "schedule": self.schedule.state_dict(),
                 "rng": self.rng.bit_generator.state, "unk_gen": self.unk_gen.get_state(),
                 "torch_rng": torch.get_rng_state(),
                 "shadow": self.averaged.shadow if self.averaged is not None else None}
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)

    def load(self, history: list[dict], best: tuple) -> tuple[int, list[dict], tuple, float]:
        """``(epochs done, history, best, seconds so far)``; the given start values when there is no file."""
        if self.path is None or not self.path.is_file():
            return 0, history, best, 0.0
        before = copy.deepcopy((self.net.state_dict(), self.opt.state_dict(), self.schedule.state_dict()))
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
            self.net.load_state_dict(state["net"])
            self.opt.load_state_dict(state["opt"])
            self.schedule.load_state_dict(state["schedule"])
            if (state["shadow"] is None) != (self.averaged is None):
                raise ValueError("weight averaging differs from this run")
            if self.averaged is not None:
                for k, v in state["shadow"].items():
                    self.averaged.shadow[k].copy_(v)
            rng_state, unk_state, torch_state = state["rng"], state["unk_gen"], state["torch_rng"]
            epoch, done, best, seconds = int(state["epoch"]), list(state["history"]), state["best"], state["seconds"]
        except Exception as exc:  # noqa: BLE001 - corrupt or from another recipe: start over, loudly
            import warnings

            self.net.load_state_dict(before[0])  # undo a partial restore
            self.opt.load_state_dict(before[1])
            self.schedule.load_state_dict(before[2])

            warnings.warn(f"Ignoring unusable student checkpoint {self.path} ({type(exc).__name__}: {exc}); "
                          f"training from scratch.")
            return 0, history, best, 0.0
        self.rng.bit_generator.state = rng_state
        self.unk_gen.set_state(unk_state)
        torch.set_rng_state(torch_state)
        print(f"student: resumed from {self.path} after epoch {epoch}", flush=True)
        return epoch, done, best, float(seconds)


# ================================================================ student explanations and evaluation

def student_ig(model: BiLSTMAttentionStudent, vocab: Vocab, texts: Sequence[str], n_steps: int = 20,
               batch_size: int = 64, targets: Sequence[int] | None = None, progress: bool = False) -> list[np.ndarray]:
    """Integrated Gradients of the student (for students without a trained self-explanation).

    Same recipe as the teacher's (:mod:`dixtill_lib.explain`): captum ``LayerIntegratedGradients`` on the
    embedding layer, baseline = every word replaced by the pad id 0 (the real mask is kept), target = the
    predicted class, output = its softmax probability; per word: sum over the embedding dimension, then
    divide by the L2 norm over the sentence. Student tokens are words, so no merging is needed; words
    beyond ``max_len`` get 0."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    ids, mask = vocab.encode(list(texts), model.cfg.max_len)

    def forward(x, m):
        return torch.softmax(model(x, m)[0], dim=1)

    lig = LayerIntegratedGradients(forward, model.emb)
    out: list[np.ndarray] = []
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for s in tqdm(range(0, len(ids), batch_size), desc="student IG", disable=not progress, leave=False):
            x, m = torch.from_numpy(ids[s:s + batch_size]), torch.from_numpy(mask[s:s + batch_size])
            with torch.no_grad():
                tg = model(x, m)[0].argmax(1) if targets is None else torch.as_tensor(targets[s:s + batch_size])
            attr = lig.attribute(x, baselines=torch.zeros_like(x), target=tg, additional_forward_args=(m,),
                                 n_steps=n_steps, internal_batch_size=len(x) * n_steps)
            a = attr.sum(-1).detach().double().numpy()
            norm = np.linalg.norm(a, axis=1, keepdims=True)
            out += list((a / np.where(norm > 0, norm, 1.0)).astype(np.float32))
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    return [_fit(v, len(t.split())) for v, t in zip(out, texts)]


def _fit(v: np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)[:n]
    return np.pad(v, (0, n - len(v))) if len(v) < n else v


def agreement_metrics(teacher_expl: Sequence[np.ndarray], student_expl: Sequence[np.ndarray],
                      ks: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[str, float]:
    """Flat dict ``agreement_cosine, agreement_spearman, feature_agreement_k<k>, sign_agreement_k<k>``
    (means over texts) from :func:`dixtill_lib.agreement.agreement_table`."""
    from . import agreement

    table = agreement.agreement_table(list(teacher_expl), list(student_expl), ks=tuple(ks))
    return _flatten_agreement(table, ks)


def _flatten_agreement(table: Any, ks: Sequence[int]) -> dict[str, float]:
    """Accept the agreement module's summary as a mapping or a one-row/mean-able DataFrame."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        rec = table.mean(numeric_only=True).to_dict() if len(table) != 1 else table.iloc[0].to_dict()
    elif isinstance(table, pd.Series):
        rec = table.to_dict()
    else:
        rec = dict(table)
    out: dict[str, float] = {}
    for key, val in rec.items():
        k = str(key)
        if k in ("cosine", "agreement_cosine", "cos"):
            out["agreement_cosine"] = float(val)
        elif k in ("spearman", "agreement_spearman", "rank_correlation"):
            out["agreement_spearman"] = float(val)
        else:
            for kind in ("feature", "sign"):
                for kk in ks:
                    if k in (f"{kind}_agreement_k{kk}", f"{kind}_agreement@{kk}", f"{kind}@{kk}", f"{kind}_k{kk}"):
                        out[f"{kind}_agreement_k{kk}"] = float(val)
    return out


def faithfulness_metrics(proba_fn: Callable[[list[str]], np.ndarray], texts: Sequence[str],
                         scores: Sequence[np.ndarray], run: "parallel.Runner | None" = None) -> dict[str, float]:
    """ERASER comprehensiveness and sufficiency (AOPC) of word scores, via :mod:`dixtill_lib.faithfulness`.
    With an active runner the per-text erasure scores are computed on slices and gathered (same means)."""
    import warnings

    from .faithfulness import aopc, erasure_scores

    if run is None or not run.active:
        res = aopc(proba_fn, list(texts), list(scores))
        return {"comprehensiveness": float(res["comprehensiveness"]), "sufficiency": float(res["sufficiency"])}
    texts, scores = list(texts), list(scores)

    def rows(ix: list[int]) -> list[np.ndarray]:
        comp, suff, _ = erasure_scores(proba_fn, [texts[i] for i in ix], [scores[i] for i in ix])
        return list(np.concatenate([comp, suff], axis=1))

    both = np.asarray(run.map_rows(rows, range(len(texts))))
    half = both.shape[1] // 2
    with warnings.catch_warnings():  # same NaN handling as faithfulness.aopc
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"comprehensiveness": float(np.nanmean(both[:, :half])), "sufficiency": float(np.nanmean(both[:, half:]))}


def evaluate_student(trained: TrainedStudent, valid: Dataset, teacher_valid_expl: Sequence[np.ndarray],
                     cfg: DistillConfig | None = None, explanations: Sequence[str] | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """Quality and explanation metrics on ``valid`` (also split by tweets with an unknown word,
    :func:`unknown_word_split`).

    ``explanations``: which student explanations to compare with the teacher's IG — ``"attention"`` (σm)
    and/or ``"ig"`` (IG on the student). Default: both for ce/kd/tang, attention only for DiXtill. The
    *primary* one (σm for DiXtill, IG for the others, as in the paper) fills the unprefixed columns
    ``agreement_*``, ``comprehensiveness``, ``sufficiency``; every one also gets prefixed columns
    (``attn_…``, ``ig_…``)."""
    cfg = cfg or DistillConfig()
    with _torch_threads(cfg.threads):
        return _evaluate_student(trained, valid, teacher_valid_expl, cfg, explanations, progress)


def _evaluate_student(trained, valid, teacher_valid_expl, cfg, explanations, progress) -> dict[str, Any]:
    from .metrics import classification_metrics
    from .student import explain as student_attention
    from .student import predict_proba

    model, vocab = trained.model, trained.vocab
    base = trained.method.split("_")[0]
    if explanations is None:
        explanations = ("attention",) if base == "dixtill" else ("attention", "ig")
    t0 = time.perf_counter()
    run = parallel.runner()  # N processes: each evaluates a slice of the texts, gathered in order
    proba = np.asarray(run.map_rows(lambda t: predict_proba(model, vocab, t), valid.texts))
    row: dict[str, Any] = classification_metrics(valid.labels, proba, valid.num_labels)
    row.update(unknown_word_split(vocab, valid.texts, valid.labels, proba))  # the split ignores aliases
    primary = "attention" if base == "dixtill" or "ig" not in explanations else "ig"
    row["explanation"] = {"attention": "sigma_m", "ig": "student_ig"}[primary]

    def proba_fn(t: list[str]) -> np.ndarray:
        return predict_proba(model, vocab, t)

    for kind in explanations:
        if kind == "attention":
            expl = run.map_rows(lambda t: student_attention(model, vocab, t), valid.texts)
        elif kind == "ig":
            expl = run.map_rows(lambda t: student_ig(model, vocab, t, n_steps=cfg.ig_steps,
                                                     progress=progress and run.is_main), valid.texts)
        else:
            raise ValueError(f"Unknown explanation {kind!r}; use 'attention' or 'ig'.")
        metrics = agreement_metrics(teacher_valid_expl, expl, cfg.agreement_ks)
        if cfg.faithfulness:
            metrics.update(faithfulness_metrics(proba_fn, valid.texts, expl, run=run))
        prefix = {"attention": "attn_", "ig": "ig_"}[kind]
        row.update({prefix + k: v for k, v in metrics.items()})
        if kind == primary:
            row.update(metrics)
    row["eval_seconds"] = round(time.perf_counter() - t0, 2)
    return row


# ================================================================ the pipeline (step + chapter)

@dataclass
class DistillInputs:
    """Everything the students are trained and evaluated on (built once, shared by all runs)."""
    mode: str
    train: Dataset
    valid: Dataset
    train_logits: np.ndarray
    valid_logits: np.ndarray
    train_expl: list[np.ndarray]
    valid_expl: list[np.ndarray]
    vocab: Vocab
    glove: np.ndarray
    glove_missing: int
    teacher_name: str = "teacher"
    teacher_fingerprint: str = ""
    teacher_metrics: dict[str, Any] = field(default_factory=dict)
    teacher_params: int = 0
    teacher_size_bytes: int = 0
    has_explanations: bool = True        # False: zero vectors stand in (train-only runs of ce/kd/tang)
    teacher_key: str = "minilm"          # the named teacher (--teacher): "minilm" or "smollm2"
    explainer: str = "ig"                # where the teacher's explanations come from: "ig" or "occlusion"
    transfer: TransferSet | None = None  # extra teacher-labelled texts (dixtill_lib.augment); None = none


def prepare_inputs(mode: str | None = None, data_dir: str | None = None, device: str = "cpu",
                   progress: bool = True, ig_cfg: Any = None, explanations: bool = True,
                   teacher_dir: str | None = None, teacher: str = "minilm",
                   augment: AugmentConfig | None = None, holdout: float = DistillConfig.holdout) -> DistillInputs:
    """The mode's teacher (cached), its logits and word attributions on train and valid (cached; IG, or
    occlusion when ``ig_cfg`` is an :class:`~dixtill_lib.occlusion.OcclusionConfig`), the student vocabulary
    (train words) and the GloVe matrix for it. ``explanations=False`` skips the
    attributions (all-zero vectors instead): enough to *train* ce/kd/tang students, not to evaluate them.
    ``teacher_dir``: use this cached teacher folder instead of :func:`~dixtill_lib.teacher.default_teacher`;
    ``teacher``: the named teacher (``"minilm"`` or ``"smollm2"``). ``augment``: also draw a transfer set
    (:mod:`dixtill_lib.augment`) from the rows a student fits (all but the last ``holdout`` of the training
    split) and label it with the teacher (cached)."""
    from . import explain
    from .metrics import classification_metrics, softmax
    from .teacher import default_teacher, teacher_logits

    mode = get_mode(mode)
    teacher_key = teacher
    teacher, train, valid = default_teacher(mode, data_dir=data_dir, device=device, progress=progress,
                                            teacher_dir=teacher_dir, teacher=teacher_key)
    ig_cfg = ig_cfg or explain.IGConfig.for_mode(mode)
    tr_logits = teacher_logits(teacher, train, progress=progress)
    va_logits = teacher_logits(teacher, valid, progress=progress)
    if explanations:
        tr_expl = explain.explain_dataset(teacher, train, ig_cfg, progress=progress).scores
        va_expl = explain.explain_dataset(teacher, valid, ig_cfg, progress=progress).scores
    else:
        tr_expl = [np.zeros(len(t.split()), np.float32) for t in train.texts]
        va_expl = [np.zeros(len(t.split()), np.float32) for t in valid.texts]
    vocab = Vocab.build(train.texts)
    glove, missing = glove_matrix(vocab)
    transfer = None
    if augment is not None:
        fitted = holdout_split(train, holdout)[0]
        transfer = build_transfer_set(teacher, fitted.texts, vocab.words, glove, augment, train.label_names,
                                      progress=progress, labels=fitted.labels)
    tm = classification_metrics(valid.labels, softmax(va_logits), valid.num_labels)
    return DistillInputs(mode, train, valid, tr_logits, va_logits, list(tr_expl), list(va_expl), vocab, glove,
                         missing, teacher.name, teacher.fingerprint(), tm, teacher.num_parameters(),
                         size_bytes(teacher.model), has_explanations=explanations, teacher_key=teacher_key,
                         explainer=explain.explainer_name(ig_cfg), transfer=transfer)


def student_root(mode: str | None = None, teacher: str = "minilm") -> Path:
    """``<cache>/students/<mode>/`` for the default teacher, ``<cache>/students/<mode>_<teacher>/`` else."""
    sub = get_mode(mode) if teacher == "minilm" else f"{get_mode(mode)}_{teacher}"
    return cache_dir() / "students" / sub


def student_dir(mode: str, name: str, seed: int, teacher: str = "minilm") -> Path:
    """``<student_root(mode, teacher)>/<name>_seed<seed>/`` — where the step saves each trained student."""
    return student_root(mode, teacher) / f"{name}_seed{seed}"


#: DistillConfig fields that do not change the trained weights (evaluation and speed settings).
EVAL_ONLY_FIELDS = ("threads", "ig_steps", "agreement_ks", "faithfulness", "glove_aliases")


@lru_cache(maxsize=2)
def _aliased_vocab(words: tuple[str, ...], top: int) -> Vocab:
    """:func:`~dixtill_lib.student.with_glove_aliases` once per vocabulary and ``top``: every seed of a run
    shares the same vocabulary, and the cosine search over GloVe's ``top`` words is the slow part."""
    return with_glove_aliases(Vocab(words), top)


def alias_suffix(cfg: DistillConfig) -> str:
    """``_alias<N/1000>k`` for a student evaluated with GloVe aliases (``--glove-aliases N``), else ``""``."""
    n = cfg.glove_aliases
    return "" if not n else (f"_alias{n // 1000}k" if n % 1000 == 0 else f"_alias{n}")


def recipe_suffix(cfg: DistillConfig) -> str:
    """How our additions to the recipe name rows and students: ``_ema`` (weight average, ``--ema``), then
    ``_unk10`` (word dropout 0.1, ``--unk-rate``) or ``_rare25`` (frequency word dropout α = 0.25, ``--rare-unk``),
    then ``_gold4`` (fitted rows 4× per epoch, ``--gold-repeat``), then
    ``_sub33`` (a third of the transfer set per epoch, ``--transfer-fraction``); nothing at the defaults."""
    return (("_ema" if cfg.ema else "") + (f"_unk{round(100 * cfg.unk_rate):d}" if cfg.unk_rate else "")
            + (f"_rare{round(100 * cfg.rare_unk):d}" if cfg.rare_unk else "")
            + (f"_gold{cfg.gold_repeat}" if cfg.gold_repeat > 1 else "")
            + (f"_sub{round(100 * cfg.transfer_fraction):d}" if cfg.transfer_fraction < 1 else ""))


#: Fields added after students were saved: left out of the key at these defaults, so old keys still match.
LATER_FIELDS = {"select": "loss", "ema": 0.0, "schedule": "constant", "optimizer": "sgd", "unk_rate": 0.0,
                "gold_repeat": 1, "transfer_fraction": 1.0, "rare_unk": 0.0}


def training_key(inputs: DistillInputs, method: str, seed: int, cfg: DistillConfig, student_cfg: StudentConfig) -> str:
    """Everything that determines a trained student: data, teacher, loss, seed, training and student config."""
    from .io import hash_texts, stable_hash

    train_cfg = {k: v for k, v in asdict(cfg).items()
                 if k not in EVAL_ONLY_FIELDS and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
    teacher = inputs.teacher_fingerprint if method != "ce" else None  # CE never sees the teacher
    # only DiXtill trains on explanations; IG keys stay as they were before occlusion existed
    other_expl = (inputs.explainer,) if method == "dixtill" and inputs.explainer != "ig" else ()
    transfer = (inputs.transfer.key(),) if inputs.transfer is not None else ()  # keys without one are unchanged
    return stable_hash(hash_texts(inputs.train.texts), inputs.train.labels.tolist(), teacher,
                       method, seed, train_cfg, asdict(student_cfg), len(inputs.vocab), *other_expl, *transfer)


def _load_saved(path: Path, key: str) -> tuple[BiLSTMAttentionStudent, dict[str, Any]] | None:
    """The student saved at ``path`` if it was trained with ``key``; else ``None``."""
    from .student import StudentError, load_student, student_metadata

    if not (path / "config.json").is_file():
        return None
    try:
        meta = student_metadata(path)
        if meta.get("training_key") != key:
            return None
        model, _, _ = load_student(path)
    except (StudentError, OSError, ValueError, KeyError):
        return None
    return model, meta


def run_one(inputs: DistillInputs, method: str, seed: int, cfg: DistillConfig | None = None,
            student_cfg: StudentConfig | None = None, name: str | None = None, evaluate: bool = True,
            save: bool = False, resume: bool = False, progress: bool = True) -> tuple[TrainedStudent, dict[str, Any]]:
    """Train ``method`` with ``seed`` on ``inputs`` and return ``(trained, row)`` (the result row).

    ``save=True`` writes the student to :func:`student_dir`; ``resume=True`` first looks there and reuses
    a student trained with exactly the same data, teacher, loss, seed and configs (its training record
    comes from the saved ``config.json``; the row says ``resumed: true``).

    With ``cfg.glove_aliases`` the student is trained (or reused) as ``name`` and evaluated with the aliased
    vocabulary; the row is ``name`` + :func:`alias_suffix`, and ``save`` also writes that copy of the student
    (same weights, aliased ``vocab.json``) to its own folder, for ``bench`` and ``compress``."""
    cfg = cfg or DistillConfig.for_mode(inputs.mode)
    student_cfg = student_cfg or StudentConfig()
    name = name or method
    row_name = name + alias_suffix(cfg)
    where = student_dir(inputs.mode, name, seed, inputs.teacher_key)
    key = training_key(inputs, method, seed, cfg, student_cfg)
    hit = _load_saved(where, key) if resume else None
    # saving: a checkpoint after every epoch, named by the key, so an interrupted run resumes (with --resume)
    checkpoint = where.with_name(f"{where.name}.ckpt-{key}.pt") if save and parallel.is_main_process() else None
    if checkpoint is not None and not resume:
        checkpoint.unlink(missing_ok=True)
    if hit is not None:
        model, meta = hit
        trained = TrainedStudent(model, inputs.vocab, name, seed, meta["history"], meta["best_epoch"],
                                 meta["train_seconds"], meta.get("info", {}))
    else:
        trained = train_student(method, inputs.train.texts, inputs.train.labels, inputs.train_logits,
                                inputs.train_expl, inputs.vocab, cfg, student_cfg, seed=seed,
                                embeddings=inputs.glove, progress=progress, transfer=inputs.transfer,
                                checkpoint=checkpoint)
    trained.method = row_name
    vocab = inputs.vocab
    if cfg.glove_aliases:
        vocab = trained.vocab = _aliased_vocab(inputs.vocab.words, cfg.glove_aliases)
    row: dict[str, Any] = {"method": row_name, "seed": seed,
                           "valid_unk_rate": round(vocab.oov_rate(inputs.valid.texts), 5)}  # valid words read as <UNK>
    if cfg.glove_aliases:
        row.update({"glove_aliases": cfg.glove_aliases, "n_aliases": len(vocab.aliases)})
    if evaluate:
        row.update(evaluate_student(trained, inputs.valid, inputs.valid_expl, cfg, progress=progress))
    history = [{k: round(float(v), 5) for k, v in h.items()} for h in trained.history]
    trained_with_expl = meta.get("has_explanations") is True if hit is not None else inputs.has_explanations
    if not trained_with_expl:  # the cosine monitor was computed against zero vectors: meaningless, drop it
        history = [{k: v for k, v in h.items() if "cos_to_teacher" not in k} for h in history]
    row.update({"params": count_parameters(trained.model), "size_bytes": size_bytes(trained.model),
                "best_epoch": trained.best_epoch, "epochs": cfg.epochs, "train_seconds": round(trained.seconds, 1),
                "temperature": cfg.temperature if method in ("kd", "dixtill") else None,
                "embeddings": student_cfg.embeddings, "max_len": student_cfg.max_len, "teacher": inputs.teacher_key,
                "teacher_model": inputs.teacher_name, "n_transfer": trained.info.get("n_transfer", 0),
                "n_truncated": trained.info.get("n_truncated"), "resumed": hit is not None, "history": history})
    if inputs.transfer is not None:  # in the row, so it survives merging runs into one result file
        row["transfer_set"] = inputs.transfer.summary()
    extra = {"method": name, "loss": method, "seed": seed, "mode": inputs.mode,
             "teacher": inputs.teacher_name, "teacher_key": inputs.teacher_key, "teacher_fingerprint": inputs.teacher_fingerprint,
             "training_key": key, "distill_config": asdict(cfg), "history": history,
             "has_explanations": inputs.has_explanations,
             "best_epoch": trained.best_epoch, "train_seconds": round(trained.seconds, 1), "info": trained.info}
    scores = {"metrics": {k: row.get(k) for k in ("accuracy", "macro_f1", "mcc", "macro_auc")}}
    if save and hit is None and parallel.is_main_process():  # N processes: one copy, written once
        save_student(trained.model, inputs.vocab, where, extra={**extra, **({} if cfg.glove_aliases else scores)})
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # saved (or reused): the epochs' checkpoint is done with
    if cfg.glove_aliases:
        where = student_dir(inputs.mode, row_name, seed, inputs.teacher_key)
        if save and parallel.is_main_process():  # the aliased copy: cheap, so rewritten on every run
            save_student(trained.model, vocab, where, extra={**extra, "method": row_name, **scores})
    if save or hit is not None:
        row["path"] = str(where)
    return trained, row


def unknown_word_split(vocab: Vocab, texts: Sequence[str], labels: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy and macro-F1 on the tweets with at least one word outside ``vocab.words`` (aliases do not count
    as known) and on the rest, so every row of one vocabulary splits the same tweets: where is the gap?"""
    from .metrics import classification_metrics

    has = np.array([any(w not in vocab.index for w in t.lower().split()) for t in texts])
    out: dict[str, Any] = {"n_with_unknown": int(has.sum()), "n_without_unknown": int((~has).sum())}
    for part, sel in (("with_unknown", has), ("without_unknown", ~has)):
        m = classification_metrics(np.asarray(labels)[sel], np.asarray(proba)[sel], proba.shape[1]) if sel.any() else {}
        out.update({f"{k}_{part}": m.get(k, float("nan")) for k in ("accuracy", "macro_f1")})
    return out


def teacher_row(inputs: DistillInputs) -> dict[str, Any]:
    """The teacher's valid metrics as a result row (``method="teacher"``), for side-by-side tables."""
    from .metrics import softmax

    split = unknown_word_split(inputs.vocab, inputs.valid.texts, inputs.valid.labels, softmax(inputs.valid_logits))
    return {"method": "teacher", "seed": None, **inputs.teacher_metrics, **split, "params": inputs.teacher_params,
            "size_bytes": inputs.teacher_size_bytes, "teacher": inputs.teacher_key, "teacher_model": inputs.teacher_name}


# ================================================================ targets (chapter + report)

#: The paper's ordering on macro-F1 (Table 1), best first.
PAPER_RANKING = ("teacher", "dixtill", "kd", "tang", "ce")


def method_means(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, float]:
    """Mean of ``metric`` per method over seeds (rows without the metric are skipped)."""
    out: dict[str, list[float]] = {}
    for r in rows:
        v = r.get(metric)
        if v is not None and np.isfinite(float(v)):
            out.setdefault(r["method"], []).append(float(v))
    return {m: float(np.mean(v)) for m, v in out.items()}


def targets_table(rows: Sequence[dict[str, Any]]) -> "Any":
    """Did the paper's claims reproduce? One row per target with our number, the paper's, and a verdict:

    1. macro-F1 ranking teacher > DiXtill > KD-KL > KD-MSE > CE (each adjacent pair checked);
    2. DiXtill keeps ≥ 97 % of the teacher's macro-F1 (paper: 0.789 / 0.810 = 97.4 %);
    3. DiXtill's explanations agree with the teacher's more than the KD baselines' (paper Fig. 4; we use
       feature and sign agreement@3 and the cosine)."""
    import pandas as pd

    f1 = method_means(rows, "macro_f1")
    paper_f1 = {"teacher": 0.810, "dixtill": 0.789, "kd": 0.762, "tang": 0.752, "ce": 0.725}
    recs = []
    for a, b in zip(PAPER_RANKING, PAPER_RANKING[1:]):
        if a in f1 and b in f1:
            recs.append({"target": f"macro-F1: {a} > {b}", "ours": f"{f1[a]:.3f} vs {f1[b]:.3f}",
                         "paper": f"{paper_f1[a]:.3f} vs {paper_f1[b]:.3f}", "reproduced": f1[a] > f1[b],
                         "gap (ours)": round(f1[a] - f1[b], 4)})
    if "teacher" in f1 and "dixtill" in f1:
        ratio = f1["dixtill"] / f1["teacher"]
        recs.append({"target": "DiXtill macro-F1 ≥ 0.97 × teacher", "ours": f"{ratio:.3f}",
                     "paper": f"{0.789 / 0.810:.3f}", "reproduced": ratio >= 0.97, "gap (ours)": round(ratio - 0.97, 4)})
    for metric in ("feature_agreement_k3", "sign_agreement_k3", "agreement_cosine"):
        means = method_means(rows, metric)
        for other in ("kd", "tang", "ce"):
            if "dixtill" in means and other in means:
                recs.append({"target": f"{metric}: dixtill > {other}",
                             "ours": f"{means['dixtill']:.3f} vs {means[other]:.3f}",
                             "paper": "higher (Fig. 4, no numbers)" if other != "ce" else "not reported",
                             "reproduced": means["dixtill"] > means[other],
                             "gap (ours)": round(means["dixtill"] - means[other], 4)})
    return pd.DataFrame(recs).set_index("target") if recs else pd.DataFrame()


# ================================================================ CLI step

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    from .explain import EXPLAINERS

    p.add_argument("--explainer", choices=EXPLAINERS, default="ig",
                   help="the teacher's explanations: IG (default) or occlusion (rows and students <method>_occlusion)")
    p.add_argument("--augment", type=int, default=0, metavar="COPIES",
                   help="also train on a transfer set of COPIES teacher-labelled new texts per training tweet "
                        "(Tang et al. 2019; dixtill_lib.augment); rows and students <method>_aug. Default 0 = off")
    p.add_argument("--balance", action="store_true",
                   help="with --augment: COPIES for the most frequent class and proportionally more per tweet of a "
                        "rarer one (AugmentConfig.balance); rows and students <method>_augbal")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --augment: repeat the draw R times with seeds 29, 30, ... (R x COPIES per tweet; the "
                        "teacher labels only rounds not cached yet); rows and students <method>_aug[bal]x<R>")
    p.add_argument("--temperature", type=float, default=None,
                   help="τ of the kd and dixtill losses (default 5, the paper's); rows record it")
    p.add_argument("--temperatures", default="1,2,3,4,5",
                   help="DiXtill temperature sweep (rows dixtill_T<k>); empty string = no sweep")
    p.add_argument("--sweep-seeds", default=None,
                   help="seeds for the temperature sweep and the random-embedding ablation (default: the first seed)")
    p.add_argument("--no-ablation", action="store_true", help="skip the GloVe-vs-random-embedding ablation")
    p.add_argument("--epochs", type=int, default=None, help="override the mode's epochs")
    p.add_argument("--max-len", type=int, default=None, help="student sequence length (default 40; authors 150)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (code 0.99, paper 0.9)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size (authors 32; split over the processes of an accelerate launch)")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (authors 0.01)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="evaluate, select and keep an exponential moving average of the weights with this decay per "
                        "step (DistillConfig.ema; our addition); rows and students <name>_ema")
    p.add_argument("--unk-rate", type=float, default=None, metavar="P",
                   help="word dropout: each training word is read as <UNK> with probability P (DistillConfig.unk_rate; "
                        "our addition); rows and students <name>_unk<100·P>, e.g. _unk10")
    p.add_argument("--rare-unk", type=float, default=None, metavar="ALPHA",
                   help="frequency word dropout (Kiperwasser & Goldberg 2016; they use 0.25): a training word seen c "
                        "times is read as <UNK> with probability ALPHA/(ALPHA+c) (DistillConfig.rare_unk; our "
                        "addition); rows and students <name>_rare<100·ALPHA>, e.g. _rare25")
    p.add_argument("--gold-repeat", type=int, default=None, metavar="K",
                   help="show the fitted (true-label) tweets K times per epoch next to a transfer set "
                        "(DistillConfig.gold_repeat; our addition); rows and students <name>_gold<K>")
    p.add_argument("--transfer-fraction", type=float, default=None, metavar="F",
                   help="each epoch, show a fresh random share F of the transfer set (DistillConfig.transfer_fraction; "
                        "our addition); rows and students <name>_sub<100·F>, e.g. _sub33")
    p.add_argument("--glove-aliases", type=int, default=None, metavar="N",
                   help="evaluate with an alias for each unknown word among GloVe's N most frequent: its nearest "
                        "vocabulary word (DistillConfig.glove_aliases; our addition; training is unchanged, saved "
                        "students are reused with --resume); rows and students <name>_alias<N/1000>k, e.g. _alias20k")
    p.add_argument("--paper-kd", action="store_true", help="use the paper's 1-exp(-KL) instead of the code's")
    p.add_argument("--attn-size", type=int, default=None, help="attention projection size (code 50, paper 100)")
    p.add_argument("--no-save", action="store_true", help="do not save the trained students")
    p.add_argument("--train-only", action="store_true",
                   help="only train and save ce/kd/tang students (no teacher explanations needed); evaluate later "
                        "with --resume")
    p.add_argument("--resume", action="store_true",
                   help="reuse saved students trained with the same data/teacher/config, and continue a student "
                        "interrupted mid-training after its last finished epoch (restart an interrupted run)")


def _int_list(text: str | None) -> list[int]:
    return [int(s) for s in (text or "").split(",") if s.strip()]


def run_step(args: argparse.Namespace) -> Path:
    """Train and evaluate every student; write ``results[/quick]/distillation.json``."""
    from .explain import explainer_config
    from .results import teacher_results_path, write_results
    from .tables import format_table

    mode = get_mode(args.mode)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {','.join(METHODS)}.")
    seeds = list(args.seeds)
    sweep_seeds = _int_list(args.sweep_seeds) or seeds[:1]
    temps = _int_list(args.temperatures)
    over = {k: v for k, v in (("epochs", args.epochs), ("momentum", args.momentum),
                              ("temperature", getattr(args, "temperature", None)),
                              ("batch_size", getattr(args, "batch_size", None)), ("lr", getattr(args, "lr", None)),
                              ("ema", getattr(args, "ema", None)), ("unk_rate", getattr(args, "unk_rate", None)),
                              ("rare_unk", getattr(args, "rare_unk", None)),
                              ("gold_repeat", getattr(args, "gold_repeat", None)),
                              ("transfer_fraction", getattr(args, "transfer_fraction", None)),
                              ("glove_aliases", getattr(args, "glove_aliases", None)))
            if v is not None}
    if args.paper_kd:
        over["paper_kd"] = True
    cfg = DistillConfig.for_mode(mode, **over)
    s_over = {k: v for k, v in (("max_len", args.max_len), ("attn_size", args.attn_size)) if v is not None}
    scfg = replace(StudentConfig(), **s_over)
    train_only = bool(getattr(args, "train_only", False))
    if train_only and "dixtill" in methods:
        raise SystemExit("--train-only trains without teacher explanations: use it with --methods ce,kd,tang.")
    t_start = time.perf_counter()
    teacher_dir = getattr(args, "teacher_dir", None)
    which = getattr(args, "teacher", None) or "minilm"
    explainer = getattr(args, "explainer", None) or "ig"
    copies = getattr(args, "augment", 0) or 0
    balance = bool(getattr(args, "balance", False))
    rounds = getattr(args, "rounds", 1) or 1
    if (balance or rounds != 1) and copies < 1:
        raise SystemExit("--balance and --rounds shape the transfer set of --augment COPIES: give --augment too.")
    augment = AugmentConfig(copies=copies, balance=balance, rounds=rounds) if copies > 0 else None
    inputs = prepare_inputs(mode, data_dir=args.data_dir, device=args.device, explanations=not train_only,
                            teacher_dir=teacher_dir, teacher=which, ig_cfg=explainer_config(explainer, mode),
                            augment=augment, holdout=cfg.holdout)
    prep_seconds = time.perf_counter() - t_start
    print(f"distill: {len(inputs.train)} train / {len(inputs.valid)} valid tweets, vocabulary {len(inputs.vocab)} "
          f"({inputs.glove_missing} words without GloVe), teacher {inputs.teacher_name}"
          + (f", transfer set {len(inputs.transfer)} texts" if inputs.transfer is not None else "")
          + f"; inputs ready in {prep_seconds:.0f}s", flush=True)
    save = not args.no_save
    rows: list[dict[str, Any]] = [teacher_row(inputs)]
    plan: list[tuple[str, str, int, DistillConfig, StudentConfig]] = []
    suffix = (("" if explainer == "ig" else f"_{explainer}") + ("" if augment is None else augment.row_suffix())
              + recipe_suffix(cfg))
    for seed in seeds:
        plan += [(m, m + suffix, seed, cfg, scfg) for m in methods]
    if train_only:
        for i, (loss, name, seed, c, sc) in enumerate(plan, 1):
            t0 = time.perf_counter()
            _, row = run_one(inputs, loss, seed, c, sc, name=name, evaluate=False, save=True,
                             resume=getattr(args, "resume", False))
            print(f"[{i}/{len(plan)}] trained {name} seed {seed} ({'reused' if row['resumed'] else 'new'}), best epoch "
                  f"{row['best_epoch']}, {time.perf_counter() - t0:.0f}s -> {row['path']}", flush=True)
        print("train-only: no result file written; rerun without --train-only (with --resume) to evaluate.")
        return student_root(mode, which)
    if "dixtill" in methods or temps:
        for seed in sweep_seeds:
            for T in temps:
                plan.append(("dixtill", f"dixtill_T{T}{suffix}", seed, replace(cfg, temperature=float(T)), scfg))
            if not args.no_ablation:
                plan.append(("dixtill", f"dixtill_random_emb{suffix}", seed, cfg, replace(scfg, embeddings="random")))
    done: dict[tuple, dict[str, Any]] = {}
    plan_info = {"methods": methods, "explainer": explainer, "augment_copies": copies, "augment_balance": balance,
                 "augment_rounds": rounds, "ema": cfg.ema, "unk_rate": cfg.unk_rate, "rare_unk": cfg.rare_unk,
                 "gold_repeat": cfg.gold_repeat, "transfer_fraction": cfg.transfer_fraction,
                 "glove_aliases": cfg.glove_aliases, "seeds": seeds, "temperature_sweep": temps,
                 "sweep_seeds": sweep_seeds, "random_embedding_ablation": not args.no_ablation, "n_runs": len(plan),
                 "order": [f"{name}/seed{seed}" for _, name, seed, _, _ in plan],
                 "note": "dixtill_T5 rows are the dixtill runs of the same seed (identical config; training is "
                         "deterministic) and carry same_run_as='dixtill'."}

    def write(complete: bool) -> Path:
        return write_results(
            "distillation", rows, mode=mode, seeds=seeds, path=teacher_results_path("distillation", which, mode, args.out),
            config={"distill": asdict(cfg), "student": asdict(replace(scfg, vocab_size=len(inputs.vocab)))},
            teacher={"key": which, "name": inputs.teacher_name, "fingerprint": inputs.teacher_fingerprint,
                     "dir": teacher_dir or "default_teacher(mode)"},
            data={"train": inputs.train.name, "n_train": len(inputs.train), "valid": inputs.valid.name,
                  "n_valid": len(inputs.valid), "vocab_size": len(inputs.vocab),
                  "glove_missing": inputs.glove_missing, "eval_split": "hub 'validation' split (the paper's test set)",
                  **({"transfer_set": inputs.transfer.summary()} if inputs.transfer is not None else {})},
            plan={**plan_info, "completed_runs": len(rows) - 1}, complete=complete,
            students_dir=str(student_root(mode, which)), total_seconds=round(time.perf_counter() - t_start, 1))

    for i, (loss, name, seed, c, sc) in enumerate(plan, 1):
        key = (loss, seed, asdict(c).__repr__(), asdict(sc).__repr__())
        if key in done:  # e.g. dixtill_T5 == dixtill with the same seed: training is deterministic
            row = {**done[key], "method": name, "same_run_as": done[key]["method"]}
            row.pop("path", None)
        else:
            t0 = time.perf_counter()
            _, row = run_one(inputs, loss, seed, c, sc, name=name, save=save, resume=getattr(args, "resume", False))
            done[key] = row
            print(f"[{i}/{len(plan)}] {name} seed {seed}: macro-F1 {row['macro_f1']:.4f}, acc {row['accuracy']:.4f}, "
                  f"cos {row.get('agreement_cosine', float('nan')):.3f}, best epoch {row['best_epoch']}, "
                  f"{time.perf_counter() - t0:.0f}s (elapsed {time.perf_counter() - t_start:.0f}s)", flush=True)
        rows.append(row)
        if i < len(plan):
            write(complete=False)  # a partial file survives an interrupted run (provenance says how far it got)
    print(format_table(rows, ["method", "seed", "accuracy", "macro_f1", "mcc", "macro_auc", "agreement_cosine",
                              "feature_agreement_k3", "sign_agreement_k3", "best_epoch", "train_seconds"]))
    return write(complete=True)
