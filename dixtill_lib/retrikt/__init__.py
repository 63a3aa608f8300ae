"""RetriKT (Liu et al., 2023): retrieval-based knowledge transfer from an LLM to an extremely small model.

Modules: :mod:`.generator` (frozen SmolLM2 + per-class PEFT soft prompts, SFT, sampling), :mod:`.ppo` (PPO over a
soft prompt), :mod:`.store` (faiss knowledge store, sentence encoder, retrieval), :mod:`.tiny` (the ~1 % model),
:mod:`.experiment` (the pipeline). This module is also the CLI step ``python -m dixtill_lib retrikt``.
Heavy imports happen inside functions, so ``--help`` stays fast."""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: quick tfns; full tfns,sst2)")
    p.add_argument("--ks", default=None, help="comma-separated shots per class, e.g. 8,16,32")
    p.add_argument("--n-per-class", type=int, default=None, help="generations per class and prompt")
    p.add_argument("--ppo-iterations", type=int, default=None, help="PPO iterations per class prompt")
    p.add_argument("--generator", default=None, help="'smollm2' (packaged, default), a local folder or a hub id")
    p.add_argument("--log", default=None, help="also append progress lines to this file")
    p.add_argument("--teacher-wait", type=float, default=None, metavar="MIN",
                   help="full mode: minutes to wait for the book's full tfns teacher, then use the quick one")


def config_from_args(args: argparse.Namespace):
    from ..config import get_mode
    from .experiment import RetriKTConfig

    mode = get_mode(args.mode)
    over = {}
    if getattr(args, "tasks", None):
        over["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if getattr(args, "ks", None):
        over["ks"] = tuple(int(k) for k in args.ks.split(","))
    if getattr(args, "n_per_class", None):
        over["n_per_class"] = args.n_per_class
    if getattr(args, "generator", None):
        over["generator"] = args.generator
    if getattr(args, "teacher_wait", None) is not None:
        over["teacher_wait_minutes"] = args.teacher_wait
    if args.seeds and args.seeds != [args.seed]:
        over["seeds"] = tuple(args.seeds)
    cfg = RetriKTConfig.for_mode(mode, **over)
    if getattr(args, "ppo_iterations", None):
        cfg = replace(cfg, ppo=replace(cfg.ppo, iterations=args.ppo_iterations))
    return mode, cfg


def run_step(args: argparse.Namespace) -> Path:
    import torch

    from ..results import write_results
    from ..tables import format_table
    from .experiment import run_task, store_diagnostics
    from .generator import load_generator
    from .store import SentenceEncoder

    mode, cfg = config_from_args(args)
    log_path = getattr(args, "log", None)

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        if log_path:
            with open(log_path, "a") as f:
                f.write(line + "\n")

    log(f"retrikt {mode}: tasks={cfg.tasks} ks={cfg.ks} seeds={cfg.seeds} n_per_class={cfg.n_per_class} "
        f"ppo_iterations={cfg.ppo.iterations} threads={torch.get_num_threads()}")
    t0 = time.perf_counter()
    gen = load_generator(cfg.generator, args.device)
    enc = SentenceEncoder(device=args.device)
    tfns_teacher = None
    if getattr(args, "teacher_dir", None):
        from ..teacher import load_teacher_dir

        tfns_teacher = load_teacher_dir(args.teacher_dir, device=args.device)
        tfns_teacher.name = f"{tfns_teacher.name} ({Path(args.teacher_dir).name})"
    runs = []
    for task in cfg.tasks:
        given = tfns_teacher if task == "tfns" else None
        run = run_task(task, cfg, mode, args.data_dir, args.device, progress=True, generator=gen, encoder=enc,
                       teacher=given, log=log)
        if given is not None:
            run.teacher_info = {"teacher": given.name, "teacher_train": f"book full teacher loaded from "
                                f"--teacher-dir {args.teacher_dir}"}
        runs.append(run)
    rows = [r for run in runs for r in run.rows]
    print(format_table(rows, ["method", "task", "k", "seed", "accuracy", "macro_f1", "mcc", "params", "store_size"]))
    ppo = [dict(h, task=run.task) for run in runs for h in run.prompts["ppo_history"]]
    out = write_results("retrikt", rows, mode=mode, seeds=list(cfg.seeds), config=asdict(cfg), path=args.out,
                        store_diagnostics=store_diagnostics(runs), ppo_history=ppo,
                        teachers={run.task: run.teacher_info for run in runs},
                        stage_seconds={run.task: {k: round(v, 1) for k, v in run.seconds.items()} for run in runs},
                        samples={run.task: run.samples for run in runs},
                        nll_before_after={run.task: run.prompts["nll_before_after"].tolist() for run in runs},
                        total_seconds=round(time.perf_counter() - t0, 1))
    log(f"wrote {out}")
    return out
