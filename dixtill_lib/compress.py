"""Post-training int8 quantisation (PTQ), on-disk size, and the ``compress`` step: PTQ plus the
attention-head-pruning sweep of the teacher, evaluated without retraining.

PTQ is PyTorch *dynamic* quantisation — int8 weights, activations quantised per batch at run time —
which is verbatim the paper's definition. In torch 2.13 ``torch.ao.quantization.quantize_dynamic`` still
works (fbgemm/x86 kernels) but emits a DeprecationWarning pointing to torchao's ``quantize_``; we
silence it here. torchao 0.18's CPU ``Int8DynamicActivationInt8WeightConfig`` was measured on the MiniLM
teacher: same file size, **no** speed-up without ``torch.compile`` (0.82 s vs 0.81 s per 32×64 batch,
1 thread, against 0.42 s for ``quantize_dynamic``), so we do not depend on it.

``python -m dixtill_lib compress`` writes ``results[/quick]/pruning.json`` (quality and size of the
teacher, PTQ and every pruning level, for each importance rule). The latency table with every model,
students included, is ``bench`` → ``compression.json`` (see :mod:`dixtill_lib.bench`)."""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import cache_dir, get_mode
from .data import Dataset, stratified_subset
from .heads import (GRANULARITIES, IMPORTANCE_METHODS, ahp_name, head_counts, head_importance, keep_mask,
                    kv_head_counts, pruned_teacher, valid_keep_levels)
from .io import cached_arrays, hash_texts, stable_hash
from .metrics import classification_metrics


@dataclass(frozen=True)
class CompressConfig:
    """Sizes of the calibration / evaluation sets and the pruning sweep.

    ``calib_size`` train tweets (stratified) score the heads (``ablation_calib_size`` for the costly
    ablation rule, a subset of the same tweets); ``eval_size`` valid tweets (None = all) evaluate every
    compressed model; ``importance`` lists the scoring rules run — the first is the default (used by
    ``bench``) and is evaluated at every ``keep`` level (heads kept per layer), the others at ``other_keep``.
    ``granularity``: for a grouped-query-attention teacher (SmolLM2), how heads are removed
    (:data:`~dixtill_lib.heads.GRANULARITIES`; rows ``ahp-<k>`` remove query heads within groups, rows
    ``ahp-<k>-group`` whole groups, the default that ``bench`` times); only levels the granularity can realise
    are evaluated. Ignored for multi-head attention (MiniLM)."""
    calib_size: int = 512
    eval_size: int | None = None
    keep: tuple[int, ...] = (12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    importance: tuple[str, ...] = ("gradient", "ablation")
    other_keep: tuple[int, ...] = (9, 6, 3)
    ablation_calib_size: int | None = 128
    batch_size: int = 32
    seed: int = 29
    granularity: tuple[str, ...] = GRANULARITIES

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "CompressConfig":
        """Full: the whole valid split; the default (first) rule on every level with 512 calibration
        tweets; the ablation rule (72 forward passes) on 128 of them and on ``other_keep`` levels only.
        Quick: 128 calibration tweets, 300 valid tweets, 4 levels, the gradient rule only."""
        base = cls() if get_mode(mode) == "full" else cls(calib_size=128, eval_size=300,
                                                          keep=(9, 6, 3, 1), importance=("gradient",))
        return replace(base, **overrides)


# ---------------------------------------------------------------- PTQ

def quantize_dynamic_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced by a dynamically quantised int8 linear
    (weights int8 per tensor, activations quantised per batch). CPU only; embeddings and LayerNorm stay fp32."""
    q = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
        return torch.ao.quantization.quantize_dynamic(q, {torch.nn.Linear}, dtype=torch.qint8)


def quantized_teacher(teacher, name: str | None = None):
    """A :class:`~dixtill_lib.teacher.Teacher` around :func:`quantize_dynamic_int8` of its model (on CPU)."""
    from .teacher import Teacher

    return Teacher(quantize_dynamic_int8(teacher.model), teacher.tokenizer, max_length=teacher.max_length,
                   name=name or f"{teacher.name}-int8", device="cpu")


# ---------------------------------------------------------------- size

def save_state_dict(model: torch.nn.Module, path: str | os.PathLike) -> int:
    """``torch.save(model.state_dict(), file)`` (atomically); return the file's size in bytes."""
    from .io import atomic_path

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: the archive's inner
            torch.save(model.state_dict(), f)                  # name (hence size) ignores the path
    return os.path.getsize(path)


def serialized_size(model: torch.nn.Module, path: str | os.PathLike | None = None) -> int:
    """Bytes of the model's serialised ``state_dict`` — measured from a real file (``path``, or a
    temporary file deleted afterwards). Same serialisation for every model, so ratios are fair."""
    if path is not None:
        return save_state_dict(model, path)
    with tempfile.TemporaryDirectory() as d:
        return save_state_dict(model, Path(d) / "model.pt")


def num_parameters(model: torch.nn.Module) -> int:
    """Parameters of a model, counting the int8 weights of dynamically quantised linears too."""
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if hasattr(m, "_packed_params") and hasattr(m, "weight") and callable(m.weight):
            w, b = m._weight_bias()
            n += w.numel() + (b.numel() if b is not None else 0)
    return int(n)


def compression_ratio(reference_bytes: float, model_bytes: float) -> float:
    """``C_ratio = S_teacher / S_compressed`` (paper §1.10); > 1 means smaller."""
    if reference_bytes <= 0 or model_bytes <= 0:
        raise ValueError(f"Sizes must be positive, got {reference_bytes} and {model_bytes}.")
    return float(reference_bytes) / float(model_bytes)


def performance_drop(reference: float, compressed: float) -> float:
    """``P_drop = 1 − P_c / P_r`` (paper §1.10): the relative loss of a metric; negative = improved."""
    if reference == 0:
        raise ValueError("The reference metric is 0; the relative drop is undefined.")
    return 1.0 - float(compressed) / float(reference)


# ---------------------------------------------------------------- evaluation

def predict_proba_cached(key_parts: tuple, model_fn, ds: Dataset, progress: bool = False) -> np.ndarray:
    """Class probabilities of ``model_fn(texts)`` on ``ds``, cached under ``compressed_proba`` by
    ``key_parts`` (which must identify the model) + the data."""
    key = stable_hash(*key_parts, hash_texts(ds.texts))
    return cached_arrays("compressed_proba", key, lambda: {"proba": model_fn(ds.texts)})["proba"]


def quality(ds: Dataset, proba: np.ndarray) -> dict[str, float]:
    m = classification_metrics(ds.labels, proba, ds.num_labels)
    return {k: m[k] for k in ("accuracy", "macro_f1", "mcc", "macro_auc")}


def calibration_set(train: Dataset, cfg: CompressConfig) -> Dataset:
    """The stratified train subset used to score heads (never the evaluation split)."""
    return train if cfg.calib_size >= len(train) else stratified_subset(train, cfg.calib_size, cfg.seed)


def importance_calibration(calib: Dataset, method: str, cfg: CompressConfig) -> Dataset:
    """The calibration tweets for ``method``: all of ``calib``, or for ``"ablation"`` a stratified
    ``cfg.ablation_calib_size`` subset of them (it needs one pass per head)."""
    n = cfg.ablation_calib_size
    if method != "ablation" or n is None or n >= len(calib):
        return calib
    return stratified_subset(calib, n, cfg.seed)


def eval_set(valid: Dataset, cfg: CompressConfig) -> Dataset:
    return valid if cfg.eval_size is None or cfg.eval_size >= len(valid) else \
        stratified_subset(valid, cfg.eval_size, cfg.seed)


def cached_importance(teacher, calib: Dataset, method: str, batch_size: int = 32,
                      progress: bool = True) -> np.ndarray:
    """:func:`~dixtill_lib.heads.head_importance`, cached by teacher fingerprint + calibration data."""
    key = stable_hash("head-importance", method, teacher.fingerprint(), hash_texts(calib.texts),
                      calib.labels.tolist())
    return cached_arrays("head_importance", key, lambda: {
        "importance": head_importance(teacher, calib, method, batch_size=batch_size, progress=progress)})["importance"]


@dataclass
class SweepResult:
    """Rows (one per model) plus the importance matrices and timings of :func:`compression_sweep`."""
    rows: list[dict[str, Any]]
    importance: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def compression_sweep(teacher, train: Dataset, valid: Dataset, cfg: CompressConfig,
                      progress: bool = True) -> SweepResult:
    """Evaluate the fp32 teacher, its PTQ int8 copy and AHP-k for every ``cfg.keep`` and importance rule
    (no retraining). Each row: method, family, importance, heads_kept_per_layer, params, size_bytes
    (real file), compression_ratio, accuracy, macro_f1, mcc, macro_auc, p_drop_macro_f1."""
    calib, ev = calibration_set(train, cfg), eval_set(valid, cfg)
    fp = teacher.fingerprint()
    seconds: dict[str, float] = {}
    rows: list[dict[str, Any]] = []

    def add(method: str, family: str, t, imp: str | None = None, kept: int | None = None,
            granularity: str | None = None) -> None:
        t0 = time.perf_counter()
        proba = predict_proba_cached((fp, method, imp, teacher.max_length), lambda x: t.predict_proba(
            x, batch_size=cfg.batch_size, progress=False), ev)
        q = quality(ev, proba)
        seconds[f"eval:{method}:{imp}"] = round(time.perf_counter() - t0, 2)
        rows.append({"method": method, "family": family, "importance": imp,
                     "heads_kept_per_layer": kept, "params": num_parameters(t.model),
                     "size_bytes": serialized_size(t.model), **q})
        if granularity is not None:
            rows[-1]["granularity"] = granularity

    H, G = head_counts(teacher.model)[0], kv_head_counts(teacher.model)[0]
    grans: tuple[str | None, ...] = tuple(cfg.granularity) if G != H else (None,)
    add("teacher", "teacher", teacher, kept=H)
    add("ptq-int8", "ptq", quantized_teacher(teacher), kept=H)
    importance: dict[str, np.ndarray] = {}
    for i, imp in enumerate(cfg.importance):
        t0 = time.perf_counter()
        importance[imp] = cached_importance(teacher, importance_calibration(calib, imp, cfg), imp, cfg.batch_size,
                                            progress=progress)
        seconds[f"importance:{imp}"] = round(time.perf_counter() - t0, 2)
        for gran in grans:
            for k in valid_keep_levels(teacher.model, cfg.keep if i == 0 else cfg.other_keep, gran or "query"):
                method = ahp_name(k, gran)
                mask = keep_mask(importance[imp], k, G, gran or "query")
                add(method, "ahp", pruned_teacher(teacher, mask), imp=imp, kept=k, granularity=gran)
    ref = rows[0]
    for r in rows:
        r["compression_ratio"] = compression_ratio(ref["size_bytes"], r["size_bytes"])
        r["p_drop_macro_f1"] = performance_drop(ref["macro_f1"], r["macro_f1"])
        r["n_eval"] = len(ev)
        r["n_calib"] = len(importance_calibration(calib, r["importance"], cfg)) if r["importance"] else 0
    return SweepResult(rows, importance, seconds)


# ---------------------------------------------------------------- the CLI step

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-size", type=int, default=None, help="train tweets used to score heads")
    p.add_argument("--eval-size", type=int, default=None, help="valid tweets evaluated (default: mode's)")
    p.add_argument("--importance", default=None, help=f"comma-separated rules from {IMPORTANCE_METHODS}")
    add_keep_argument(p)


def add_keep_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", default=None, help="AHP levels (heads kept per layer), e.g. 11,9,6,3,1 "
                   "(default: the mode's; full = every level)")


def parse_keep(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        keep = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SystemExit(f"--keep expects comma-separated integers, got {text!r}.") from None
    if not keep or any(k < 1 for k in keep):
        raise SystemExit(f"--keep levels must be positive head counts, got {text!r}.")
    return keep


def step_teacher(args: argparse.Namespace, mode: str):
    """``(teacher, train, valid)`` for a CLI step (CPU: latency and int8 are CPU measurements);
    ``args.teacher`` names the teacher (default ``"minilm"``)."""
    from .teacher import default_teacher

    return default_teacher(mode, data_dir=args.data_dir, device="cpu", teacher_dir=getattr(args, "teacher_dir", None),
                           teacher=getattr(args, "teacher", None) or "minilm")


def config_from_args(args: argparse.Namespace, mode: str) -> CompressConfig:
    over: dict[str, Any] = {"seed": args.seed}
    if getattr(args, "calib_size", None):
        over["calib_size"] = args.calib_size
    if getattr(args, "eval_size", None):
        over["eval_size"] = args.eval_size
    if getattr(args, "importance", None):
        rules = tuple(s.strip() for s in args.importance.split(",") if s.strip())
        bad = [r for r in rules if r not in IMPORTANCE_METHODS]
        if bad:
            raise SystemExit(f"--importance: unknown rule(s) {bad}; choose from {IMPORTANCE_METHODS}.")
        over["importance"] = rules
    if parse_keep(getattr(args, "keep", None)):
        over["keep"] = parse_keep(args.keep)
    return CompressConfig.for_mode(mode, **over)


def run_step(args: argparse.Namespace) -> Path:
    from .results import teacher_results_path, write_results
    from .tables import format_table

    mode = get_mode(args.mode)
    which = getattr(args, "teacher", None) or "minilm"
    cfg = config_from_args(args, mode)
    teacher, train, valid = step_teacher(args, mode)
    t0 = time.perf_counter()
    res = compression_sweep(teacher, train, valid, cfg)
    total = time.perf_counter() - t0
    for r in res.rows:
        r["teacher"] = which
    print(format_table(res.rows, ["method", "importance", "params", "size_bytes", "compression_ratio",
                                  "accuracy", "macro_f1", "mcc", "p_drop_macro_f1"]))
    return write_results("pruning", res.rows, mode=mode, seeds=[cfg.seed], config=asdict(cfg),
                         path=teacher_results_path("pruning", which, mode, args.out),
                         teacher=teacher.name, teacher_fingerprint=teacher.fingerprint(),
                         teacher_dir=getattr(args, "teacher_dir", None) or "default_teacher(mode)",
                         head_importance={k: v.round(6).tolist() for k, v in res.importance.items()},
                         default_importance=cfg.importance[0], seconds={"total": round(total, 1), **res.seconds},
                         size_measure="os.path.getsize of torch.save(model.state_dict())",
                         eval_split=f"valid ({res.rows[0]['n_eval']} tweets)",
                         calib_split=f"train stratified subset ({cfg.calib_size} tweets, seed {cfg.seed}; "
                                     f"ablation rule: {cfg.ablation_calib_size} of them)",
                         ptq="torch.ao.quantization.quantize_dynamic(nn.Linear, qint8)",
                         attention={"query_heads": head_counts(teacher.model)[0],
                                    "kv_heads": kv_head_counts(teacher.model)[0],
                                    "granularity": list(cfg.granularity) if kv_head_counts(teacher.model)[0]
                                    != head_counts(teacher.model)[0] else None})


def cache_root() -> Path:
    return cache_dir() / "compressed"
