"""The one comparison table: every model's size, parameters, CPU latency and quality, measured in one run.

Models: the fp32 teacher, its PTQ int8 copy, each AHP-k level (structurally pruned, no retraining),
each distilled student found under ``<cache>/students/<mode>/<method>_seed<k>/`` (written by
``python -m dixtill_lib distill``), and any extra :class:`Candidate` (e.g. the RetriKT tiny model, via a
``bench_candidates(mode)`` function in :mod:`dixtill_lib.retrikt` when it exists).

Protocol (the paper gives none):

* **size** — ``os.path.getsize`` of ``torch.save(model.state_dict())`` written to
  ``<cache>/bench/<mode>/<method>.pt``; the same serialisation for every model (tokenizer/vocabulary
  files excluded for all). ``compression_ratio`` = teacher bytes / model bytes.
* **latency** — end to end from raw (cleaned) strings to class probabilities (``predict_proba``:
  tokenisation/vocabulary lookup + forward + softmax), on a fixed list of the first 32 valid tweets;
  batch 1 cycles through them one at a time, batch 32 sends all 32 (each model pads as it needs: the
  teacher to the longest in the batch, the student to its fixed ``max_len``). ``torch.set_num_threads``
  is fixed (default 1) and recorded. After ``warmup`` untimed calls, the models are timed **round-robin**
  (one call of each model per round, in a freshly shuffled order, ``repeats`` rounds) so slow drifts of a
  shared machine, and the cold caches after a large model, hit every model alike; we report the median and the inter-quartile range. ``speedup`` = teacher median / model
  median from the same run. ``os.getloadavg()`` before and after is stored in the provenance: numbers
  measured while other jobs use the CPU are noisier — rerun on a quiet machine for final figures.
* **quality** — accuracy, macro-F1, MCC, macro-AUC on the same valid tweets for every model; students
  with several seeds report the mean (and ``*_std``) over seeds; their latency is timed on the first seed.

``python -m dixtill_lib bench`` writes ``results[/quick]/compression.json``; ``compress`` writes the
quality-only pruning curve to ``pruning.json``."""
from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .compress import (CompressConfig, add_keep_argument, cached_importance,
                       calibration_set, compression_ratio, eval_set, importance_calibration, num_parameters,
                       parse_keep, performance_drop, predict_proba_cached, quality, quantized_teacher,
                       save_state_dict, step_teacher)
from .config import cache_dir, get_mode
from .data import Dataset
from .distill import student_root  # where distill saved each teacher's students
from .heads import (DEFAULT_GRANULARITY, ahp_name, head_counts, keep_mask, kv_head_counts, pruned_teacher,
                    valid_keep_levels)

ROW_FIELDS: tuple[str, ...] = (
    "method", "family", "params", "size_bytes", "compression_ratio", "latency_ms_b1", "latency_ms_b32",
    "speedup_b1", "speedup_b32", "accuracy", "macro_f1", "mcc",
    # spread / context fields
    "latency_ms_b1_q25", "latency_ms_b1_q75", "latency_ms_b32_q25", "latency_ms_b32_q75",
    "macro_auc", "p_drop_macro_f1", "n_seeds", "accuracy_std", "macro_f1_std", "mcc_std", "n_eval")


@dataclass(frozen=True)
class BenchConfig:
    """What is benchmarked and how long. ``keep``: AHP-k levels (heads kept per layer); ``importance``:
    the head-scoring rule (see :mod:`dixtill_lib.heads`); ``repeats_*``: timed rounds per batch size."""
    threads: int = 1
    n_sentences: int = 32
    warmup: int = 3
    repeats_b1: int = 100
    repeats_b32: int = 30
    keep: tuple[int, ...] = (11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    importance: str = "gradient"
    #: how heads are removed in a grouped-query-attention teacher (``"group"`` or ``"query"``, see heads.py)
    granularity: str = DEFAULT_GRANULARITY
    calib_size: int = 512
    eval_size: int | None = None
    students: bool = True
    #: student methods put in the table (temperature / ablation variants share the architecture); None = all
    student_methods: tuple[str, ...] | None = ("ce", "kd", "tang", "dixtill")
    seed: int = 29

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "BenchConfig":
        """Full: every pruning level, 100 / 30 timed rounds, the whole valid split. Quick: 3 levels,
        15 / 5 rounds, the quick compress subsets (so quality comes from its cache)."""
        q = CompressConfig.for_mode("quick")
        base = cls() if get_mode(mode) == "full" else cls(
            repeats_b1=15, repeats_b32=5, warmup=2, keep=(9, 6, 3), calib_size=q.calib_size,
            eval_size=q.eval_size)
        return replace(base, **overrides)

    def compress_config(self) -> CompressConfig:
        return CompressConfig(calib_size=self.calib_size, eval_size=self.eval_size, seed=self.seed,
                              importance=(self.importance,))


@dataclass
class Candidate:
    """One model in the table. ``predict_proba(texts) -> (n, C)``; ``module``: the torch module whose
    ``state_dict`` is its size; ``seeds``: more ``predict_proba`` functions (other training seeds) averaged
    for quality only; ``cache_key``: identifies the model for the prediction cache (None = no cache)."""
    method: str
    family: str
    predict_proba: Callable[[list[str]], np.ndarray]
    module: torch.nn.Module
    cache_key: tuple | None = None
    seeds: list[Callable[[list[str]], np.ndarray]] = field(default_factory=list)
    seed_keys: list[tuple | None] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- candidates

def teacher_candidates(teacher, train: Dataset, cfg: BenchConfig, progress: bool = True) -> list[Candidate]:
    """fp32 teacher, PTQ int8, and AHP-k for every ``cfg.keep`` (heads scored on the calibration set)."""
    fp = teacher.fingerprint()

    def wrap(t):
        return lambda texts: t.predict_proba(list(texts), batch_size=32, progress=False)

    out = [Candidate("teacher", "teacher", wrap(teacher), teacher.model, (fp, "teacher", None, teacher.max_length),
                     info={"model": teacher.name}),
           Candidate("ptq-int8", "ptq", wrap(q := quantized_teacher(teacher)), q.model,
                     (fp, "ptq-int8", None, teacher.max_length))]
    levels = valid_keep_levels(teacher.model, cfg.keep, cfg.granularity)
    G = kv_head_counts(teacher.model)[0]
    if levels:
        ccfg = cfg.compress_config()
        calib = importance_calibration(calibration_set(train, ccfg), cfg.importance, ccfg)
        imp = cached_importance(teacher, calib, cfg.importance, progress=progress)  # shared with `compress`
        gqa = G != head_counts(teacher.model)[0]
        for k in levels:
            p = pruned_teacher(teacher, keep_mask(imp, k, G, cfg.granularity))
            name = ahp_name(k, cfg.granularity if gqa else None)
            info: dict[str, Any] = {"importance": cfg.importance, "heads_kept_per_layer": k}
            if gqa:
                info["granularity"] = cfg.granularity
            out.append(Candidate(name, "ahp", wrap(p), p.model, (fp, name, cfg.importance, teacher.max_length),
                                 info=info))
    return out


_STUDENT_DIR = re.compile(r"^(?P<method>.+)_seed(?P<seed>\d+)$")


def find_students(mode: str | None = None, root: Path | None = None, teacher: str = "minilm") -> dict[str, list[Path]]:
    """``{method: [folder per seed, sorted by seed]}`` of saved students (``<method>_seed<k>/model.pt``)."""
    root = Path(root) if root else student_root(mode, teacher)
    found: dict[str, list[tuple[int, Path]]] = {}
    if root.is_dir():
        for d in sorted(root.iterdir()):
            m = _STUDENT_DIR.match(d.name)
            if m and (d / "model.pt").is_file():
                found.setdefault(m["method"], []).append((int(m["seed"]), d))
    return {k: [p for _, p in sorted(v)] for k, v in sorted(found.items())}


def student_candidates(mode: str | None = None, root: Path | None = None,
                       methods: Sequence[str] | None = None, teacher: str = "minilm") -> list[Candidate]:
    """One :class:`Candidate` per student method (all seeds for quality, the first seed for latency);
    ``methods`` keeps only those methods (None = every saved one)."""
    from .io import file_sha256
    from .student import StudentError, load_student
    from .student import predict_proba as student_proba

    out = []
    for method, folders in find_students(mode, root, teacher).items():
        if methods is not None and method not in methods:
            continue
        fns, keys, first = [], [], None
        for d in folders:
            try:
                model, vocab, _ = load_student(d)
            except StudentError as exc:  # a corrupt folder is skipped, not fatal
                print(f"bench: skipping {d}: {exc}")
                continue
            fns.append(lambda texts, m=model, v=vocab: student_proba(m, v, list(texts), batch_size=256))
            # the vocabulary too: an aliased copy (distill --glove-aliases) has the same weights, other inputs
            keys.append(("student", file_sha256(d / "model.pt"), file_sha256(d / "vocab.json")))
            if first is None:  # the timed model: the first folder that loads
                first, first_dir = model, d
        if fns:
            # the vocabulary file is not in size_bytes (weights only, as for the teacher); an aliased copy's is larger
            out.append(Candidate(f"student-{method}", "student", fns[0], first, keys[0], seeds=fns[1:],
                                 seed_keys=keys[1:], info={"seed_dirs": [d.name for d in folders],
                                                           "vocab_bytes": (first_dir / "vocab.json").stat().st_size}))
    return out


def extra_candidates(mode: str | None = None) -> list[Candidate]:
    """Models other steps contribute: ``dixtill_lib.retrikt.bench_candidates(mode)`` when defined."""
    try:
        import dixtill_lib.retrikt as retrikt
    except ImportError:
        return []
    fn = getattr(retrikt, "bench_candidates", None)
    return list(fn(mode)) if callable(fn) else []


# ---------------------------------------------------------------- timing

def latency_sentences(valid: Dataset, n: int = 32) -> list[str]:
    """The fixed timing input: the first ``n`` tweets of the valid split (file order)."""
    if len(valid) < n:
        raise ValueError(f"Need at least {n} valid tweets for the latency input, got {len(valid)}.")
    return list(valid.texts[:n])


def time_round_robin(fns: dict[str, Callable[[list[str]], Any]], batches: list[list[str]], repeats: int,
                     warmup: int = 3, progress: bool = True, desc: str = "latency",
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Seconds per call of every function: ``warmup`` untimed calls each, then ``repeats`` rounds in
    which every function is called once on ``batches[round % len(batches)]``, in an order shuffled
    every round (seeded), so no model always pays for following a large one (cold caches)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1.")
    for fn in fns.values():
        for w in range(warmup):
            fn(batches[w % len(batches)])
    times = {name: np.zeros(repeats) for name in fns}
    names = list(fns)
    rng = np.random.default_rng(seed)
    for r in tqdm(range(repeats), desc=desc, disable=not progress, leave=False):
        batch = batches[r % len(batches)]
        for i in rng.permutation(len(names)):
            name = names[i]
            t0 = time.perf_counter()
            fns[name](batch)
            times[name][r] = time.perf_counter() - t0
    return times


def summarize_ms(seconds: np.ndarray) -> dict[str, float]:
    q25, med, q75 = np.percentile(np.asarray(seconds) * 1000.0, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75)}


# ---------------------------------------------------------------- the table

@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    meta: dict[str, Any]


def benchmark(candidates: list[Candidate], valid: Dataset, cfg: BenchConfig, mode: str | None = None,
              progress: bool = True) -> BenchResult:
    """Measure every candidate (the first must be the reference teacher) and return the table rows."""
    if not candidates or candidates[0].family != "teacher":
        raise ValueError("The first candidate must be the fp32 teacher: every ratio is relative to it.")
    names = [c.method for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"Duplicate method names in the benchmark: {names}.")
    ev = eval_set(valid, cfg.compress_config())
    size_dir = cache_dir() / "bench" / get_mode(mode)
    rows: list[dict[str, Any]] = []
    for c in tqdm(candidates, desc="quality + size", disable=not progress, leave=False):
        per_seed = [quality(ev, _proba(fn, key, ev)) for fn, key in
                    zip([c.predict_proba, *c.seeds], [c.cache_key, *c.seed_keys])]
        q = {k: float(np.mean([s[k] for s in per_seed])) for k in per_seed[0]}
        spread = {f"{k}_std": float(np.std([s[k] for s in per_seed], ddof=1)) if len(per_seed) > 1 else 0.0
                  for k in ("accuracy", "macro_f1", "mcc")}
        path = size_dir / f"{c.method}.pt"
        size = save_state_dict(c.module, path)
        if size != os.path.getsize(path):  # pragma: no cover - a defensive invariant
            raise RuntimeError(f"size of {path} changed while measuring")
        rows.append({"method": c.method, "family": c.family, "params": num_parameters(c.module),
                     "size_bytes": size, **q, **spread, "n_seeds": len(per_seed), "n_eval": len(ev), **c.info})

    sentences = latency_sentences(valid, cfg.n_sentences)
    fns = {c.method: c.predict_proba for c in candidates}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    load_before = os.getloadavg()
    try:
        t0 = time.perf_counter()
        b1 = time_round_robin(fns, [[s] for s in sentences], cfg.repeats_b1, cfg.warmup, progress, "latency b=1")
        b32 = time_round_robin(fns, [sentences], cfg.repeats_b32, cfg.warmup, progress, "latency b=32")
        timing_s = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads_before)
    load_after = os.getloadavg()

    ref = rows[0]
    ref_b1, ref_b32 = summarize_ms(b1[ref["method"]]), summarize_ms(b32[ref["method"]])
    for r in rows:
        s1, s32 = summarize_ms(b1[r["method"]]), summarize_ms(b32[r["method"]])
        r.update({"compression_ratio": compression_ratio(ref["size_bytes"], r["size_bytes"]),
                  "latency_ms_b1": s1["median"], "latency_ms_b1_q25": s1["q25"], "latency_ms_b1_q75": s1["q75"],
                  "latency_ms_b32": s32["median"], "latency_ms_b32_q25": s32["q25"],
                  "latency_ms_b32_q75": s32["q75"],
                  "speedup_b1": ref_b1["median"] / s1["median"], "speedup_b32": ref_b32["median"] / s32["median"],
                  "p_drop_macro_f1": performance_drop(ref["macro_f1"], r["macro_f1"])})
    rows = [{k: r.get(k) for k in ROW_FIELDS} | {k: v for k, v in r.items() if k not in ROW_FIELDS} for r in rows]
    meta = {"torch_threads": cfg.threads, "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after], "cpu_count": os.cpu_count(),
            "timing_seconds": round(timing_s, 1), "latency_input": f"first {len(sentences)} valid tweets",
            "latency_scope": "predict_proba on raw cleaned strings (tokenise + forward + softmax)",
            "size_measure": "os.path.getsize of torch.save(model.state_dict()) (tokenizer/vocab excluded)",
            "eval_split": f"valid ({len(ev)} tweets)"}
    return BenchResult(rows, meta)


def _proba(fn, key, ev: Dataset) -> np.ndarray:
    return predict_proba_cached(key, fn, ev) if key is not None else np.asarray(fn(list(ev.texts)))


def run_bench(teacher, train: Dataset, valid: Dataset, cfg: BenchConfig, mode: str | None = None,
              progress: bool = True, extra: list[Candidate] | None = None, teacher_key: str = "minilm") -> BenchResult:
    """Build all candidates (teacher, PTQ, AHP levels, saved students of ``teacher_key``'s distillation,
    extras) and benchmark them. Other steps' extra models (RetriKT) belong to the default teacher only."""
    cands = teacher_candidates(teacher, train, cfg, progress=progress)
    if cfg.students:
        cands += student_candidates(mode, methods=cfg.student_methods, root=student_root(mode, teacher_key))
    if teacher_key == "minilm":
        cands += extra_candidates(mode)
    cands += list(extra or [])
    return benchmark(cands, valid, cfg, mode=mode, progress=progress)


# ---------------------------------------------------------------- the CLI step

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=None, help="timed rounds at batch 32 (batch 1: ×10/3)")
    p.add_argument("--no-students", action="store_true", help="only the teacher, PTQ and pruning rows")
    p.add_argument("--students", default=None, metavar="METHODS",
                   help="comma-separated saved student methods to put in the table, e.g. kd_aug,dixtill_aug "
                        "(default: ce,kd,tang,dixtill)")
    add_keep_argument(p)


def run_step(args: argparse.Namespace) -> Path:
    from .results import teacher_results_path, write_results
    from .tables import format_table

    mode = get_mode(args.mode)
    which = getattr(args, "teacher", None) or "minilm"
    over: dict[str, Any] = {"seed": args.seed}
    if getattr(args, "threads", None):
        over["threads"] = args.threads
    if getattr(args, "repeats", None):
        over["repeats_b32"], over["repeats_b1"] = args.repeats, max(1, round(args.repeats * 10 / 3))
    if getattr(args, "no_students", False):
        over["students"] = False
    if getattr(args, "students", None):
        over["student_methods"] = tuple(m.strip() for m in args.students.split(",") if m.strip())
    if parse_keep(getattr(args, "keep", None)):
        over["keep"] = parse_keep(args.keep)
    cfg = BenchConfig.for_mode(mode, **over)
    teacher, train, valid = step_teacher(args, mode)
    res = run_bench(teacher, train, valid, cfg, mode=mode, teacher_key=which)
    for r in res.rows:
        r["teacher"] = which
    n_students = sum(r["family"] == "student" for r in res.rows)
    if cfg.students and not n_students:
        print(f"bench: no saved students under {student_root(mode, which)}; the table has the teacher rows only "
              f"(run `python -m dixtill_lib distill --{mode} --teacher {which}` first).")
    print(format_table(res.rows, ["method", "params", "size_bytes", "compression_ratio", "latency_ms_b1",
                                  "latency_ms_b32", "speedup_b1", "speedup_b32", "macro_f1", "mcc"]))
    return write_results("compression", res.rows, mode=mode, seeds=[cfg.seed], config=asdict(cfg),
                         path=teacher_results_path("compression", which, mode, args.out),
                         teacher=teacher.name, teacher_fingerprint=teacher.fingerprint(),
                         teacher_dir=getattr(args, "teacher_dir", None) or "default_teacher(mode)",
                         students_found=n_students, **res.meta)
