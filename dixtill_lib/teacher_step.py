"""CLI step ``teacher``: fine-tune (or load from cache) the teacher and evaluate it on the valid split."""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from .config import get_mode
from .data import mode_splits
from .results import teacher_results_path, write_results
from .tables import format_table
from .teacher import evaluate, get_teacher, teacher_config, teacher_train_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default=None, help="'minilm' (default), a local folder, or a hub id "
                   "(e.g. nickmuchi/finbert-tone-finetuned-fintwitter-classification with --epochs 0)")
    p.add_argument("--epochs", type=int, default=None, help="override the mode's epochs (0 = no fine-tuning)")


def run_step(args: argparse.Namespace) -> Path:
    mode = get_mode(args.mode)
    which = getattr(args, "teacher", None) or "minilm"
    rows = []
    for seed in args.seeds:
        overrides = {"seed": seed}
        if getattr(args, "source", None):
            overrides["source"] = args.source
        if getattr(args, "epochs", None) is not None:
            overrides["epochs"] = args.epochs
        cfg = teacher_config(which, mode, **overrides)
        train, valid = mode_splits(mode, data_dir_=args.data_dir, seed=29)
        t0 = time.perf_counter()
        teacher = get_teacher(cfg, teacher_train_set(train, cfg), device=args.device)
        seconds = time.perf_counter() - t0
        metrics = evaluate(teacher, valid)
        rows.append({"method": "teacher", "teacher": which, "model": teacher.name, "seed": seed, **metrics,
                     "params": teacher.num_parameters(), "n_train": cfg.train_size or len(train),
                     "n_eval": len(valid), "train_seconds": round(seconds, 1),
                     "history": getattr(teacher, "history", None)})
    print(format_table(rows, ["method", "model", "seed", "accuracy", "macro_f1", "mcc", "macro_auc", "n_eval"]))
    return write_results("teacher", rows, mode=mode, seeds=args.seeds, config=asdict(cfg),
                         path=teacher_results_path("teacher", which, mode, args.out),
                         data={"task": "tfns", "train": train.name, "eval": valid.name,
                               "eval_split": "hub 'validation' split (the paper's test set)"})
