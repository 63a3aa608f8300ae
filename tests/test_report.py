"""Report helpers on small synthetic result files: loading (missing / malformed), provenance, seed
summaries with t-intervals, comparison with the paper, Pareto fronts and the plots."""
from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from dixtill_lib import report  # noqa: E402
from dixtill_lib.results import ResultsError  # noqa: E402

PROV = {"git_commit": "0123456789abcdef0123", "date": "2026-11-25T08:00:00+00:00",
        "hardware": {"cpu": "Test CPU", "cpu_count": 2, "torch_threads": 2}, "torch": "2.13.0",
        "transformers": "5.23.0", "mode": "full", "seeds": [0, 1, 2], "config": {"epochs": 15, "tau": 5}}


def distill_rows():
    rows = []
    for seed, (ce, dx) in enumerate([(0.70, 0.78), (0.72, 0.80), (0.74, 0.79)]):
        rows.append({"method": "ce", "seed": seed, "accuracy": ce + 0.05, "macro_f1": ce, "mcc": ce - 0.1,
                     "f1_0": 0.6, "f1_1": 0.7, "f1_2": 0.9, "params": 250_000, "size_bytes": 1_000_000})
        rows.append({"method": "dixtill", "seed": seed, "accuracy": dx + 0.05, "macro_f1": dx, "mcc": dx - 0.1,
                     "feature_agreement_k3": 0.5, "f1_0": 0.7, "f1_1": 0.75, "f1_2": 0.9,
                     "params": 250_000, "size_bytes": 1_000_000})
    for tau, f1 in [(1, 0.76), (3, 0.78)]:
        rows.append({"method": f"dixtill_T{tau}", "seed": 0, "accuracy": 0.8, "macro_f1": f1, "mcc": 0.6})
    return rows


def write(tmp_path, name, obj):
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(obj))
    return p


def test_missing_file_gives_none_and_a_notice(tmp_path):
    assert report.load_result("distillation", tmp_path) is None
    note = report.missing_notice("distillation")
    html = note._repr_html_()
    assert "not yet committed" in html and "python -m dixtill_lib distill --full" in html
    assert all(v is None for v in report.load_all(tmp_path).values())


def test_alias_file_names_are_found(tmp_path):
    write(tmp_path, "distill", {"provenance": PROV, "rows": distill_rows()})
    res = report.load_result("distillation", tmp_path)
    assert res is not None and len(res["rows"]) == 8
    assert res["_path"].endswith("distill.json")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"rows": [{"method": "x"}]}), "provenance"),
    (json.dumps({"provenance": PROV, "rows": []}), "non-empty"),
    (json.dumps({"provenance": PROV, "rows": [{"accuracy": 0.5}]}), "method"),
    (json.dumps({"provenance": PROV, "rows": [{"method": "x", "macro_f1": 1.7}]}), "outside"),
])
def test_malformed_files_raise_a_clear_results_error(tmp_path, content, message):
    (tmp_path / "compression.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        report.load_result("compression", tmp_path)
    with pytest.raises(ResultsError, match="compression.json"):
        report.load_all(tmp_path)


def test_unknown_extra_files_are_loaded_too(tmp_path):
    write(tmp_path, "ablation_extra", {"provenance": PROV, "rows": [{"method": "a", "accuracy": 0.5}]})
    everything = report.load_all(tmp_path)
    assert everything["ablation_extra"]["rows"][0]["method"] == "a"


def test_provenance_frame_shows_commit_hardware_seeds_and_config(tmp_path):
    write(tmp_path, "teacher", {"provenance": PROV, "rows": [{"method": "teacher", "accuracy": 0.88}]})
    res = report.load_result("teacher", tmp_path)
    frame = report.provenance_frame({"teacher": res, "retrikt": None})
    assert list(frame.columns) == ["teacher"]
    col = frame["teacher"]
    assert col["git commit"] == "0123456789ab"
    assert col["seeds"] == "0, 1, 2"
    assert "Test CPU" in col["hardware"] and "2 cores" in col["hardware"]
    assert "epochs=15" in col["config"] and col["mode"] == "full"
    assert "0123456789ab" in report.provenance_notice(res)._repr_html_()


def test_seed_summary_mean_and_t_interval():
    s = report.seed_summary(distill_rows(), ["macro_f1", "accuracy", "feature_agreement_k3", "not_there"])
    assert list(s.index[:2]) == ["ce", "dixtill"]            # first-appearance order
    assert s.loc["ce", "n"] == 3
    assert s.loc["ce", "macro_f1"] == pytest.approx(0.72)
    # t(0.975, 2) = 4.3027; sd = 0.02 -> half-width 4.3027 * 0.02 / sqrt(3)
    half = 4.302653 * 0.02 / np.sqrt(3)
    assert s.loc["ce", "macro_f1_hi"] - 0.72 == pytest.approx(half, rel=1e-4)
    assert s.loc["ce", "macro_f1_lo"] == pytest.approx(0.72 - half, rel=1e-4)
    assert "not_there" not in s.columns
    assert np.isnan(s.loc["ce", "feature_agreement_k3"])          # column exists for other methods only
    assert s.loc["dixtill_T1", "macro_f1_lo"] == s.loc["dixtill_T1", "macro_f1"]  # one seed: no interval
    shown = report.format_summary(s, ["macro_f1"])
    assert shown.loc["ce", "Macro-F1"] == f"0.720 ± {half:.3f}"
    assert shown.loc["dixtill_T1", "Macro-F1"] == "0.760"


def test_seed_summary_groups_by_several_keys_and_rejects_missing_keys():
    rows = [{"method": "tiny", "task": t, "k": k, "seed": s, "accuracy": 0.5 + 0.1 * k / 8}
            for t in ("tfns", "sst2") for k in (8, 16) for s in range(2)]
    s = report.seed_summary(rows, ["accuracy"], by=["method", "task", "k"])
    assert len(s) == 4 and (s["n"] == 2).all()
    assert s.loc[("tiny", "sst2", 16), "accuracy"] == pytest.approx(0.7)
    with pytest.raises(ResultsError, match="grouping"):
        report.seed_summary(rows, ["accuracy"], by="store_size")


def test_compare_with_paper_puts_paper_numbers_beside_ours():
    s = report.seed_summary(distill_rows(), report.CLASSIFICATION)
    table = report.compare_with_paper(s, report.PAPER_KD)
    assert table.loc["dixtill", "Macro-F1 (paper)"] == "0.789"
    assert table.loc["ce", "Acc (paper)"] == "0.802"
    assert table.loc["dixtill_T1", "paper's name"] == "—"
    assert "Macro-AUC (ours)" not in table.columns                   # absent from our rows


def test_pareto_mask():
    cost = [1, 2, 3, 4, 2]
    qual = [0.5, 0.7, 0.6, 0.9, 0.7]
    # (3, 0.6) is dominated by (2, 0.7); equal points do not dominate each other
    assert report.pareto_mask(cost, qual).tolist() == [True, True, False, True, True]
    assert report.pareto_mask([1, np.nan], [0.5, 0.9]).tolist() == [True, False]


def test_plots_draw_and_tolerate_missing_columns():
    rows = [{"method": "teacher", "size_bytes": 9e7, "macro_f1": 0.84, "latency_ms_b32": 400},
            {"method": "ptq", "size_bytes": 4e7, "macro_f1": 0.83, "latency_ms_b32": 300},
            {"method": "ahp6", "size_bytes": 8e7, "macro_f1": 0.80, "latency_ms_b32": 350},
            {"method": "dixtill", "size_bytes": 1e6, "macro_f1": 0.78}]
    ax = report.pareto_plot(rows, reference=report.PAPER_COMPRESSION, ref_x="size_mb", ref_y="macro_f1",
                            x_scale=1e-6)
    assert ax.get_xscale() == "log"
    blue = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(blue).round(3))) == [(1.0, 0.78), (40.0, 0.83), (90.0, 0.84)]
    ax = report.pareto_plot(rows, x="latency_ms_b32")                   # dixtill lacks latency: skipped
    assert len(ax.texts) == 3
    ax = report.pareto_plot(rows, x="latency_ms_b1")                    # column absent everywhere
    assert not ax.axison
    s = report.seed_summary(distill_rows(), report.AGREEMENT)
    ax = report.metric_bars(s, report.AGREEMENT)
    assert len(ax.patches) == len(s)                                     # one present metric x methods
    f1 = report.per_class_f1(distill_rows())
    assert list(f1.columns) == ["Bearish", "Bullish", "Neutral"]
    assert f1.loc["dixtill", "Bearish"] == pytest.approx(0.7)
    report.per_class_f1_plot(f1)


def test_temperature_table_matches_taus_with_paper():
    s = report.seed_summary(distill_rows())
    t = report.temperature_table(s)
    assert list(t.index) == [1, 3]
    assert t.loc[3, "ours"] == pytest.approx(0.78) and t.loc[3, "paper"] == pytest.approx(0.782)
    report.temperature_plot(t)


def test_pruning_plot_draws_one_line_per_importance_rule_and_references():
    rows = [{"method": "teacher", "heads_kept_per_layer": 12, "macro_f1": 0.84},
            {"method": "ptq-int8", "heads_kept_per_layer": 12, "macro_f1": 0.835}]
    rows += [{"method": f"ahp-{k}", "importance": imp, "heads_kept_per_layer": k, "macro_f1": 0.4 + 0.04 * k}
             for imp in ("ablation", "gradient") for k in (1, 3, 6, 9)]
    ax = report.pruning_plot(rows)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["AHP, importance = ablation", "AHP, importance = gradient", "teacher", "ptq-int8"]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 3, 6, 9]
    assert not report.pruning_plot([{"method": "teacher", "macro_f1": 0.8}]).axison
