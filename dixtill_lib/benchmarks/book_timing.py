"""Book build time: a cold quick-mode build (fresh execution cache and fresh model cache), then a rebuild
that re-reads every page from the execution cache. Prints per-chapter seconds and both totals against
the targets (cold ≤ 10 min, cached rebuild ≤ 1 min on 2 CPU cores).

    python -m dixtill_lib.benchmarks.book_timing [--keep DIR] [--mode quick] [--out results/book_timing.json]

With ``--out`` the per-chapter rows, both totals and the machine's load average are written as a results
file (the book's first chapter shows it). Time on a quiet machine: other jobs on 2 shared cores can make
a chapter several times slower (torch's threads then wait on each other).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from ..book import build_book, build_env, chapter_timings
from ..config import REPO_ROOT

COLD_TARGET_S = 600.0
CACHED_TARGET_S = 60.0
#: per-chapter quick-mode budgets from the project conventions (cold cache, 2 cores)
CHAPTER_TARGET_S = {"03_explaining_the_teacher": 90.0, "04_distillation": 90.0, "05_compression": 90.0,
                    "06_retrikt": 150.0}


def verdict(seconds: float, target: float) -> str:
    return f"{seconds:7.1f} s  (target ≤ {target:.0f} s, ratio {seconds / target:.2f}) {'OK' if seconds <= target else 'OVER'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="build into this folder and keep it (default: a temp dir)")
    parser.add_argument("--mode", default="quick")
    parser.add_argument("--out", default=None, help="also write the timings as a results file (JSON)")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dixtill-book-timing-"))
    out, cache = work / "out", work / "model-cache"
    for p in (out, cache):                 # cold means cold: no execution cache, no cached teacher
        shutil.rmtree(p, ignore_errors=True)
    load_before = os.getloadavg()
    env = build_env(args.mode, {"DIXTILL_CACHE": str(cache)})
    env.setdefault("DIXTILL_DATA", os.environ.get("DIXTILL_DATA", str(REPO_ROOT.parent / "shared" / "data")))
    try:
        cold = build_book(REPO_ROOT, args.mode, path_output=out, env=env, echo=False)
        rows = chapter_timings(cold)
        warm = build_book(REPO_ROOT, args.mode, path_output=out, env=env, echo=False, fresh_env=True)
        warm_rows = {r["method"]: r for r in chapter_timings(warm)}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'chapter':28s} {'cold (s)':>9s}  status    cached rebuild")
    for r in rows:
        secs = "—" if r["seconds"] is None else f"{r['seconds']:.1f}"
        target = CHAPTER_TARGET_S.get(r["method"])
        flag = "" if target is None or r["seconds"] is None else (" OK" if r["seconds"] <= target else f" OVER {target:.0f} s")
        print(f"{r['method']:28s} {secs:>9s}  {r['status']:9s} {warm_rows[r['method']]['status']}{flag}")
    executed = sum(r["seconds"] or 0 for r in rows)
    print(f"\nsum of chapter execution times: {executed:.1f} s")
    print(f"cold build (exit {cold.returncode}, {len(cold.warnings)} warnings):   {verdict(cold.seconds, COLD_TARGET_S)}")
    print(f"cached rebuild (exit {warm.returncode}, {len(warm.warnings)} warnings): {verdict(warm.seconds, CACHED_TARGET_S)}")
    if args.out:
        write_timings(args.out, args.mode, rows, warm_rows, cold, warm, load_before)
        print(f"wrote {args.out}")
    return 0 if cold.returncode == 0 and warm.returncode == 0 else 1


def write_timings(path: str, mode: str, rows, warm_rows, cold, warm, load_before) -> None:
    """Chapter rows plus two total rows, with the targets and the load average before/after the builds."""
    from ..results import write_results

    out = [{"method": r["method"], "chapter": r["method"], "seconds": r["seconds"], "status": r["status"],
            "cached_status": warm_rows[r["method"]]["status"], "target_seconds": CHAPTER_TARGET_S.get(r["method"])}
           for r in rows]
    out += [{"method": "cold build", "seconds": round(cold.seconds, 1), "target_seconds": COLD_TARGET_S,
             "exit_code": cold.returncode, "warnings": len(cold.warnings)},
            {"method": "cached rebuild", "seconds": round(warm.seconds, 1), "target_seconds": CACHED_TARGET_S,
             "exit_code": warm.returncode, "warnings": len(warm.warnings)}]
    write_results("book_timing", out, mode=mode, seeds=[], config={"mode": mode, "torch_threads": "default"},
                  path=path, load_average_before=[round(x, 2) for x in load_before],
                  load_average_after=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    raise SystemExit(main())
