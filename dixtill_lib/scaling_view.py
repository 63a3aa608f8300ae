"""Tables and plots for the "Running at scale" chapter: shard plans, the measured scaling table
(``results/scaling.json``), the knowledge-store index figures (``results/store_scaling.json``) and the
arithmetic that extrapolates them to 1e8 entries. Nothing here recomputes a measurement."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .parallel import part_ranges, shard_range
from .results import ResultsError, load_results


def load(name: str) -> dict[str, Any] | None:
    """A committed full-mode result file, or ``None`` when it does not exist yet."""
    from .config import results_dir

    try:
        return {**load_results(name, mode="full"), "_path": str(results_dir("full") / f"{name}.json")}
    except ResultsError:
        return None


@contextmanager
def scratch_cache() -> Iterator[Path]:
    """A throw-away ``$DIXTILL_CACHE`` for demonstrations (restored afterwards), so a demo starts cold every time."""
    import os
    import tempfile

    old = os.environ.get("DIXTILL_CACHE")
    with tempfile.TemporaryDirectory(prefix="dixtill-demo-") as tmp:
        os.environ["DIXTILL_CACHE"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("DIXTILL_CACHE", None)
            else:
                os.environ["DIXTILL_CACHE"] = old


def shard_plan(n: int, processes: int, part_size: int) -> pd.DataFrame:
    """Which rows each process computes when ``n`` rows are cut into parts of ``part_size`` (as
    :func:`dixtill_lib.parallel.sharded_cache` does)."""
    parts = part_ranges(n, part_size)
    rows = []
    for r in range(processes):
        lo, hi = shard_range(len(parts), r, processes)
        mine = parts[lo:hi]
        rows.append({"process (rank)": r, "parts": f"{lo}–{hi - 1}" if mine else "—", "n_parts": len(mine),
                     "rows": f"{mine[0][0]}–{mine[-1][1] - 1}" if mine else "—",
                     "n_rows": sum(b - a for a, b in mine)})
    return pd.DataFrame(rows).set_index("process (rank)")


SCALING_COLUMNS = {"step": "step", "device": "device", "hardware_id": "hardware", "processes": "processes",
                   "threads_per_process": "threads / process", "batch_size": "global batch",
                   "samples_per_second": "samples / s", "speedup_vs_1_process": "speed-up", "load": "load (1 min)"}


def scaling_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per measured configuration: throughput and speed-up over one process, with its hardware and the
    1-minute load average before → after the run."""
    rows = []
    for r in result["rows"]:
        rec = {k: r.get(k) for k in SCALING_COLUMNS if k != "load"}
        lb, la = r.get("load_before"), r.get("load_after")
        rec["load"] = f"{lb[0]:.2f} → {la[0]:.2f}" if lb and la else "—"
        rows.append(rec)
    df = pd.DataFrame(rows).rename(columns=SCALING_COLUMNS)
    return df.sort_values(["step", "device", "global batch", "threads / process", "processes"]).reset_index(drop=True)


def speedup_per_added_process(result: dict[str, Any]) -> pd.DataFrame:
    """For every (step, batch, threads, device) group: speed-up at the largest process count and the gain per
    added process, ``(speed-up − 1) / (N − 1)`` (1.0 = perfect linear scaling)."""
    df = pd.DataFrame(result["rows"])
    out = []
    for key, g in df.groupby(["step", "device", "batch_size", "threads_per_process"]):
        top = g.loc[g["processes"].idxmax()]
        n = int(top["processes"])
        if n > 1:
            s = float(top["speedup_vs_1_process"])
            out.append({"step": key[0], "device": key[1], "global batch": key[2], "threads / process": key[3],
                        "processes": n, "speed-up": round(s, 2), "gain per added process": round((s - 1) / (n - 1), 2)})
    return pd.DataFrame(out)


def scaling_plot(result: dict[str, Any], ax=None):
    """Bars of samples/s per configuration, grouped by step and batch size."""
    import matplotlib.pyplot as plt

    df = pd.DataFrame(result["rows"])
    df["config"] = df.apply(lambda r: f"{r['step']}\nbatch {r['batch_size']}, {r['device']}", axis=1)
    table = df.pivot_table(index="config", columns="processes", values="samples_per_second", aggfunc="max")
    ax = ax or plt.subplots(figsize=(8, 3.5))[1]
    table.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("training examples / s")
    ax.set_xlabel("")
    ax.legend(title="processes")
    ax.set_title("data-parallel throughput (higher is better)")
    return ax


def gpu_rows(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [r for r in (result or {}).get("rows", []) if str(r.get("device", "cpu")).startswith("cuda")]


STORE_COLUMNS = {"n": "entries", "index": "index", "bytes": "memory", "bytes_per_entry": "bytes / entry",
                 "build_seconds": "build (s)", "query_ms_batch": "query ms (batch)",
                 "query_ms_single": "query ms (one)", "recall_at_10": "recall@10"}


def store_table(result: dict[str, Any]) -> pd.DataFrame:
    """The measured index figures, memory in MiB."""
    df = pd.DataFrame(result["rows"])[list(STORE_COLUMNS)].rename(columns=STORE_COLUMNS)
    df["memory"] = (df["memory"] / 2 ** 20).map(lambda v: f"{v:,.1f} MiB")
    return df.sort_values(["entries", "index"]).reset_index(drop=True)


def extrapolate_store(result: dict[str, Any], n_target: float = 1e8, dim: int = 384) -> pd.DataFrame:
    """The paper arithmetic for ``n_target`` entries from the largest measured store of each index kind:
    memory = bytes/entry × n (PQ codes and graph links grow linearly); query time scales with what each index
    scans — flat: all n vectors (× n_target/n); IVF-PQ with nlist ∝ √n and fixed nprobe: the probed cells hold
    ∝ n/nlist ∝ √n entries (× √(n_target/n)); HNSW: ∝ log n hops (× log n_target / log n). Not measured."""
    df = pd.DataFrame(result["rows"])
    out = []
    for kind, g in df.groupby("index"):
        top = g.loc[g["n"].idxmax()]
        n = float(top["n"])
        ratio = n_target / n
        time_factor = {"flat": ratio, "ivf": np.sqrt(ratio), "ivfpq": np.sqrt(ratio),
                       "hnsw": np.log(n_target) / np.log(n), "hnswpq": np.log(n_target) / np.log(n)}.get(kind, ratio)
        mem = float(top["bytes_per_entry"]) * n_target
        out.append({"index": kind, "measured at": f"{int(n):,}", "bytes / entry": top["bytes_per_entry"],
                    f"memory at {n_target:.0e}": f"{mem / 1e9:,.1f} GB",
                    "fits in 24 GiB RAM": mem < 24 * 2 ** 30,
                    "query-time factor": f"× {time_factor:,.1f}",
                    f"est. query ms at {n_target:.0e}": round(float(top["query_ms_batch"]) * time_factor, 2)})
    flat_bytes = 4 * dim * n_target
    out.append({"index": "flat (formula)", "measured at": "—", "bytes / entry": 4 * dim,
                f"memory at {n_target:.0e}": f"{flat_bytes / 1e9:,.1f} GB", "fits in 24 GiB RAM": False,
                "query-time factor": "× n", f"est. query ms at {n_target:.0e}": None})
    return pd.DataFrame(out)
