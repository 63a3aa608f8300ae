"""Batched vs one-sentence-at-a-time Integrated Gradients on the same teacher and tweets.

    python -m dixtill_lib.benchmarks.ig_batching [--teacher minilm|quick|full] [--n 64] [--n-steps 16]
                                                 [--threads N] [--write]

Prints both throughputs, their ratio (target: batched >= 5x faster) and the largest absolute difference of
the word scores (target: <= 1e-4). ``--write`` stores the numbers with provenance in the committed
``results/ig_benchmark.json`` (chapter 3 reads it).
``--teacher minilm`` (default) uses the packaged MiniLM with an untrained head: the same network and cost
as the fine-tuned teacher, no training needed."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def load_teacher(which: str):
    from ..teacher import Teacher, default_teacher

    if which == "minilm":
        from ..teacher import TeacherConfig

        return Teacher.load("minilm", max_length=TeacherConfig.for_mode("full").max_length)
    return default_teacher(which, progress=False)[0]


def run(which: str = "minilm", n: int = 64, n_steps: int = 16, batch_size: int = 32, threads: int | None = None,
        seed: int = 0) -> dict:
    from ..data import load_split, stratified_subset
    from ..explain import IGConfig, attribute, word_attributions_loop

    if threads:
        torch.set_num_threads(threads)
    teacher = load_teacher(which)
    texts = stratified_subset(load_split("tfns", "valid"), n, seed=seed).texts
    cfg = IGConfig(n_steps=n_steps, batch_size=batch_size)
    attribute(teacher, texts[:4], cfg, progress=False)  # warm-up
    t0 = time.perf_counter()
    batched = attribute(teacher, texts, cfg, progress=False)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = word_attributions_loop(teacher, texts, cfg)
    t_loop = time.perf_counter() - t0
    diff = max(float(np.abs(a - b).max()) for a, b in zip(batched.scores, loop.scores))
    return {"method": "ig_batching", "teacher": teacher.name, "n": n, "n_steps": n_steps, "batch_size": batch_size,
            "internal_batch_size": cfg.internal_batch_size, "threads": torch.get_num_threads(),
            "batched_seconds": round(t_batched, 2), "loop_seconds": round(t_loop, 2),
            "batched_sentences_per_second": round(n / t_batched, 3), "loop_sentences_per_second": round(n / t_loop, 3),
            "speedup": round(t_loop / t_batched, 2), "max_abs_diff": diff,
            "max_abs_delta_diff": float(np.abs(batched.deltas - loop.deltas).max()),
            "same_targets": bool(np.array_equal(batched.targets, loop.targets))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", choices=("minilm", "quick", "full"), default="minilm")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--n-steps", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--write", action="store_true", help="write results[/quick]/ig_benchmark.json")
    import sys

    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    row = run(a.teacher, a.n, a.n_steps, a.batch_size, a.threads)
    print(f"{row['teacher']}: {a.n} tweets, {a.n_steps} IG steps, {row['threads']} thread(s)")
    print(f"  batched ({a.batch_size}/call): {row['batched_seconds']:8.2f} s  "
          f"{row['batched_sentences_per_second']:7.2f} sentences/s")
    print(f"  one at a time:       {row['loop_seconds']:8.2f} s  {row['loop_sentences_per_second']:7.2f} sentences/s")
    print(f"  speed-up {row['speedup']:.2f}x (target >= 5x); max |difference| {row['max_abs_diff']:.2e} "
          f"(target <= 1e-4); same targets: {row['same_targets']}")
    if a.write:
        from ..results import write_results

        print("wrote", write_results("ig_benchmark", [row], mode="full", seeds=[0], config=vars(a),
                                     command="python -m dixtill_lib.benchmarks.ig_batching " + " ".join(argv or [])))


if __name__ == "__main__":
    main()
