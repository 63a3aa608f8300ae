"""``python -m dixtill_lib <step> [--quick|--full] [--seed N] [--device cpu|cuda]``.

The same command runs on N processes with ``accelerate launch [--cpu] --num_processes N -m dixtill_lib <step>``
(see :mod:`dixtill_lib.parallel`).

Every step lives in its own module as ``run_step(args) -> pathlib.Path`` (the result file it wrote) and
may add options with ``add_arguments(parser)``. Full runs write ``results/<step>.json``; quick runs
write ``results/quick/<step>.json``."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .config import DEFAULT_SEED

#: step name -> (module, one-line help). Modules are imported only when their step runs.
STEPS: dict[str, tuple[str, str]] = {
    "teacher": ("dixtill_lib.teacher_step", "fine-tune and evaluate the teacher"),
    "explain": ("dixtill_lib.explain", "Integrated-Gradients word attributions of the teacher"),
    "distill": ("dixtill_lib.distill", "train the CE / KD / Tang / DiXtill students"),
    "compress": ("dixtill_lib.compress", "int8 quantisation and attention-head pruning of the teacher"),
    "bench": ("dixtill_lib.bench", "size / latency / quality table of every model"),
    "retrikt": ("dixtill_lib.retrikt", "RetriKT: soft prompts, PPO, knowledge store, tiny model"),
    "book": ("dixtill_lib.book", "build the Jupyter Book (quick mode by default)"),
}


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dixtill_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True, metavar="step")
    for name, (module, help_) in STEPS.items():
        p = sub.add_parser(name, help=help_)
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                          help="CPU-feasible subset (default, or $DIXTILL_MODE)")
        mode.add_argument("--full", dest="mode", action="store_const", const="full", help="full-scale run")
        p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
        p.add_argument("--seeds", type=parse_seeds, default=None, help="several seeds, e.g. 0,1,2")
        p.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
        p.add_argument("--data-dir", default=None, help="data folder (default $DIXTILL_DATA, else the hub)")
        p.add_argument("--out", default=None, help="result file (default results[/quick]/<step>.json)")
        p.add_argument("--teacher-dir", default=None,
                       help="use this saved teacher folder (Teacher.save) instead of the mode's default teacher")
        p.add_argument("--note", default=None,
                       help="free text recorded as provenance['note'] in the result file (how/why this run was made)")
        p.add_argument("--merge", action="store_true",
                       help="merge the rows into the existing result file (same method/seed/... rows are replaced): "
                            "for seeds run as separate jobs, e.g. a Slurm array")
        p.add_argument("--teacher", default="minilm", choices=("minilm", "smollm2"),
                       help="named teacher: minilm (packaged encoder, default) or smollm2 (packaged decoder LLM); "
                            "non-default teachers write results[/quick]/<step>_<teacher>.json")
        p.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (on a busy shared machine 1 is often faster than 2; bench: "
                            "threads while timing, default 1)")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_missing=module)
            continue
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"step {args.step!r} is not available in this version ({args._missing} missing)", file=sys.stderr)
        return 2
    args.mode = args.mode or os.environ.get("DIXTILL_MODE", "quick")
    args.seeds = args.seeds or [args.seed]
    if args.note:
        from . import results

        results.RUN_NOTE = args.note
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from . import parallel
    from .results import merging

    args.device = parallel.launch_device(args.device)  # N GPUs: each process its own cuda:<local rank>
    if not parallel.is_main_process():  # N processes: one progress log (errors still go to stderr)
        sys.stdout = open(os.devnull, "w")
    module = importlib.import_module(STEPS[args.step][0])
    with merging(args.merge):
        path = module.run_step(args)
    if path is not None and parallel.is_main_process():
        print(f"wrote {path}")
    return 0
