"""Chapter 5 tables, plots and widget on synthetic rows (no models)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from dixtill_lib import compress_view as cv


def _rows():
    base = {"latency_ms_b1_q25": 0.0, "latency_ms_b1_q75": 0.0, "latency_ms_b32_q25": 0.0,
            "latency_ms_b32_q75": 0.0, "n_seeds": 1, "macro_f1_std": 0.0}
    spec = [("teacher", "teacher", None, 12, 90e6, 30.0, 400.0, 0.80),
            ("ptq-int8", "ptq", None, 12, 58e6, 15.0, 200.0, 0.79),
            ("ahp-6", "ahp", "gradient", 6, 84e6, 25.0, 300.0, 0.75),
            ("ahp-1", "ahp", "gradient", 1, 78e6, 20.0, 250.0, 0.40),
            ("student-dixtill", "student", None, None, 3.6e6, 4.0, 40.0, 0.78)]
    rows = []
    for m, fam, imp, k, size, b1, b32, f1 in spec:
        rows.append({**base, "method": m, "family": fam, "importance": imp, "heads_kept_per_layer": k,
                     "size_bytes": size, "params": size / 4, "latency_ms_b1": b1, "latency_ms_b32": b32,
                     "accuracy": f1 + 0.05, "macro_f1": f1, "mcc": f1 - 0.1})
    t = rows[0]
    for r in rows:
        r["compression_ratio"] = t["size_bytes"] / r["size_bytes"]
        r["speedup_b1"] = t["latency_ms_b1"] / r["latency_ms_b1"]
        r["speedup_b32"] = t["latency_ms_b32"] / r["latency_ms_b32"]
        r["p_drop_macro_f1"] = 1 - r["macro_f1"] / t["macro_f1"]
    return rows


def test_comparison_table_units():
    t = cv.comparison_table(_rows())
    assert t.loc["teacher", "size (MB)"] == 90.0 and t.loc["student-dixtill", "C_ratio"] == 25.0
    assert t.loc["student-dixtill", "speedup b32"] == 10.0 and "IQR b1" in t.columns
    assert cv.comparison_table([]).empty


def test_budget_filter_and_plots():
    rows = _rows()
    fit = cv.within_budget(rows, 260.0)
    assert list(fit["method"]) == ["ptq-int8", "ahp-1", "student-dixtill"][::1] or \
        list(fit["method"]) == ["ptq-int8", "student-dixtill", "ahp-1"]
    assert fit["method"].iloc[0] == "ptq-int8"  # best macro-F1 within 260 ms
    ax = cv.budget_plot(rows, 100.0)
    assert "student-dixtill" in ax.get_title()
    ax = cv.budget_plot(rows, 1.0)
    assert "nothing fits" in ax.get_title()
    axes = cv.pareto_pair(rows)
    assert axes[0].get_xscale() == "log" and axes[1].get_xscale() == "log"
    ax = cv.pruning_curve_plot(rows)
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1, 6, 12] and list(line.get_ydata()) == [0.40, 0.75, 0.80]
    cv.importance_heatmap(np.random.default_rng(0).random((2, 12)), keep=6)
    assert not cv.pruning_table(rows).empty


def test_widget_builds():
    pytest.importorskip("ipywidgets")
    w = cv.latency_budget_widget(_rows())
    slider = w.children[0]
    assert slider.value == slider.options[-1] >= 400.0
    slider.value = slider.options[0]  # triggers a redraw without error


def test_targets_and_verdict():
    t = cv.targets_table(_rows())
    assert t.loc["compression_ratio", "met"] and t.loc["speedup_b32", "met"] and not t.loc["speedup_b1", "met"]
    assert t.loc["f1_fraction", "measured"] == pytest.approx(0.975)
    lines = cv.verdict(_rows())
    assert "25.0× smaller" in lines[0] and "ptq-int8 (0.790" in lines[2]
    assert "No distilled student" in cv.verdict(_rows()[:2])[0]
    other = [dict(r, method="student-kd") if r["method"] == "student-dixtill" else r for r in _rows()]
    lines = cv.verdict(other)
    assert "not in these rows" in lines[0] and "student-kd" in lines[0] and "student-kd is 25.0×" in lines[1]
    assert cv.targets_table(_rows()[:2]).empty


def test_paper_tables_and_notice():
    assert cv.PAPER_TABLES.loc["DiXtill", "C_ratio"] == 127.0
    assert cv.PAPER_TABLES.loc["PTQ (dynamic int8)", "P_drop (F1)"] == pytest.approx(1 - 0.808 / 0.810)
    assert "bench --full" in cv.missing_notice("compression")._repr_html_()
    assert "compress --full" in cv.missing_notice("pruning")._repr_html_()
