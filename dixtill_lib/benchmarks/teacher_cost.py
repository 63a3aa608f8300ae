"""What a full-scale run with a given teacher costs on this machine, measured, not guessed.

    python -m dixtill_lib.benchmarks.teacher_cost [--teacher smollm2|minilm] [--threads 1,2] [--batches 2]

Times, per thread count, on length-bucketed batches of 32 train tweets (the way fine-tuning and IG batch
them): a forward pass, a training step (forward + backward + AdamW) and one 4-step IG batch. It then
prints the measured seconds per padded token-row and the estimated hours of each full-mode stage:
(a) fine-tuning (3 epochs on the train split), (b) IG over train + valid, (c) teacher logits, and
(d) the compress evaluation (6 models on the valid split). ``os.getloadavg()`` is printed too, because
on a shared machine every number scales with the load. The packaged teacher's pretrained weights are
used with a fresh head, which costs the same as the fine-tuned one."""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def _batches(texts: list[str], tok, n: int, size: int = 32, seed: int = 0) -> list[list[str]]:
    """``n`` batches drawn like fine-tuning draws them (length-bucketed), so padding is realistic."""
    from ..teacher import _length_bucketed_batches

    rng = np.random.Generator(np.random.PCG64(seed))
    idx = _length_bucketed_batches(texts, size, rng)[:n]
    return [[texts[i] for i in b] for b in idx]


def measure(teacher: str = "smollm2", threads: int = 1, n_batches: int = 2, seed: int = 0) -> dict:
    from ..data import load_task
    from ..explain import IGConfig, attribute
    from ..teacher import Teacher, teacher_config

    torch.set_num_threads(threads)
    cfg = teacher_config(teacher, "full")
    t = Teacher.load(cfg.source, num_labels=3, max_length=cfg.max_length)
    train, valid = load_task("tfns")
    batches = _batches(list(train.texts), t.tokenizer, n_batches, seed=seed)
    mean_tokens = float(np.mean([len(x) for x in t.tokenizer(list(train.texts), truncation=True,
                                                              max_length=cfg.max_length)["input_ids"]]))
    rows = [int(t.encode(b)["input_ids"].numel()) for b in batches]       # padded token-rows per batch
    model = t.model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    fwd, step, ig = [], [], []
    for b in batches:
        enc = t.encode(b)
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.eval()(**enc)
            fwd.append(time.perf_counter() - t0)
        model.train()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, torch.zeros(len(b), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step.append(time.perf_counter() - t0)
        model.eval()
        t0 = time.perf_counter()
        attribute(t, b, IGConfig(n_steps=4), progress=False)
        ig.append(time.perf_counter() - t0)
    per_row = {k: float(np.sum(v) / np.sum(rows)) for k, v in (("forward", fwd), ("train_step", step), ("ig4", ig))}
    # padded token-rows of the full data: length-bucketed batches pad little, so ≈ mean length × tweets
    n_train, n_all = len(train), len(train) + len(valid)
    tokens_per_tweet = float(np.sum(rows) / sum(len(b) for b in batches))
    est = {"fine_tune_3_epochs_h": 3 * n_train * tokens_per_tweet * per_row["train_step"] / 3600,
           "ig_4_steps_train_valid_h": n_all * tokens_per_tweet * per_row["ig4"] / 3600,
           "logits_train_valid_h": n_all * tokens_per_tweet * per_row["forward"] / 3600,
           "compress_eval_6_models_valid_h": 6 * len(valid) * tokens_per_tweet * per_row["forward"] / 3600}
    return {"teacher": t.name, "params": t.num_parameters(), "threads": threads, "batches": len(batches),
            "mean_tokens_per_tweet": round(mean_tokens, 1), "padded_tokens_per_tweet": round(tokens_per_tweet, 1),
            "s_forward_b32": float(np.mean(fwd)), "s_train_step_b32": float(np.mean(step)),
            "s_ig4_b32": float(np.mean(ig)), "ms_per_token_row": {k: round(v * 1000, 3) for k, v in per_row.items()},
            "estimate_hours": {k: round(v, 2) for k, v in est.items()}, "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="smollm2", choices=("minilm", "smollm2"))
    p.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    p.add_argument("--batches", type=int, default=2, help="length-bucketed batches of 32 timed per setting")
    a = p.parse_args(argv)
    for th in [int(x) for x in a.threads.split(",") if x.strip()]:
        r = measure(a.teacher, th, a.batches)
        print(f"{r['teacher']} ({r['params'] / 1e6:.1f} M params), {th} thread(s), load {r['loadavg']}: "
              f"batch 32 forward {r['s_forward_b32']:.2f} s, train step {r['s_train_step_b32']:.2f} s, "
              f"4-step IG {r['s_ig4_b32']:.2f} s ({r['padded_tokens_per_tweet']} padded tokens/tweet)")
        print("  estimated hours:", ", ".join(f"{k} {v}" for k, v in r["estimate_hours"].items()), flush=True)


if __name__ == "__main__":
    main()
