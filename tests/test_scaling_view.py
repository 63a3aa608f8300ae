"""The "Running at scale" chapter's tables: shard plans, speed-ups, and the 1e8 store arithmetic."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from dixtill_lib import scaling_view as sv


def _scaling():
    base = {"method": "scaling/distill", "step": "distill", "threads_per_process": 1, "batch_size": 32,
            "device": "cpu", "hardware_id": "cpu x", "load_before": [0.1, 0, 0], "load_after": [0.9, 0, 0]}
    return {"provenance": {}, "rows": [
        {**base, "processes": 1, "samples_per_second": 1000.0, "speedup_vs_1_process": 1.0},
        {**base, "processes": 2, "samples_per_second": 1500.0, "speedup_vs_1_process": 1.5},
        {**base, "processes": 4, "samples_per_second": 2500.0, "speedup_vs_1_process": 2.5}]}


def test_shard_plan_gives_every_row_to_one_process():
    plan = sv.shard_plan(9543, processes=4, part_size=256)
    assert plan["n_rows"].sum() == 9543 and plan["n_parts"].sum() == 38
    assert list(plan.index) == [0, 1, 2, 3]


def test_speedup_per_added_process():
    got = sv.speedup_per_added_process(_scaling())
    assert got.iloc[0]["processes"] == 4 and got.iloc[0]["gain per added process"] == pytest.approx(0.5)
    table = sv.scaling_table(_scaling())
    assert list(table["processes"]) == [1, 2, 4] and table["load (1 min)"][0] == "0.10 → 0.90"
    assert sv.gpu_rows(_scaling()) == [] and sv.gpu_rows(None) == []


def test_store_arithmetic_for_1e8_entries():
    rows = [{"index": "flat", "n": 1_000_000, "bytes": 1_536_000_045, "bytes_per_entry": 1536.0,
             "build_seconds": 1.0, "query_ms_batch": 20.0, "query_ms_single": 30.0, "recall_at_10": 1.0},
            {"index": "ivfpq", "n": 1_000_000, "bytes": 60_000_000, "bytes_per_entry": 60.0,
             "build_seconds": 9.0, "query_ms_batch": 0.2, "query_ms_single": 0.3, "recall_at_10": 0.6}]
    ex = sv.extrapolate_store({"rows": rows}, 1e8).set_index("index")
    assert ex.loc["flat", "memory at 1e+08"] == "153.6 GB" and not ex.loc["flat", "fits in 24 GiB RAM"]
    assert ex.loc["ivfpq", "memory at 1e+08"] == "6.0 GB" and ex.loc["ivfpq", "fits in 24 GiB RAM"]
    assert ex.loc["flat", "est. query ms at 1e+08"] == pytest.approx(2000.0)   # linear in n
    assert ex.loc["ivfpq", "est. query ms at 1e+08"] == pytest.approx(2.0)     # ∝ √n
    assert isinstance(sv.store_table({"rows": rows}), pd.DataFrame)


def test_missing_results_load_as_none_and_scratch_cache_is_restored(isolated_cache):
    assert sv.load("no-such-result") is None
    before = os.environ["DIXTILL_CACHE"]
    with sv.scratch_cache() as tmp:
        assert os.environ["DIXTILL_CACHE"] == str(tmp) != before
    assert os.environ["DIXTILL_CACHE"] == before
