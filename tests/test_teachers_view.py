"""Both teachers' tables side by side: merging <step>.json with <step>_smollm2.json, missing teacher = minilm."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from dixtill_lib import teachers_view as tv


def _result(rows, step="x"):
    return {"provenance": {"git_commit": "c", "date": "d", "hardware": {}, "torch": "t", "transformers": "t",
                           "mode": "full", "seeds": [0], "config": {}}, "rows": rows}


def _bench_rows(teacher=None, f1=0.8, student_f1=0.79, ratio=150.0, speed=20.0):
    rows = [{"method": "teacher", "family": "teacher", "size_bytes": 500e6, "compression_ratio": 1.0, "macro_f1": f1,
             "speedup_b32": 1.0, "latency_ms_b32": 1000.0},
            {"method": "student-dixtill", "family": "student", "size_bytes": 500e6 / ratio, "compression_ratio": ratio,
             "macro_f1": student_f1, "speedup_b32": speed, "latency_ms_b32": 1000.0 / speed}]
    if teacher:
        for r in rows:
            r["teacher"] = teacher
    return rows


def test_merged_rows_tag_the_teacher():
    results = {"compression": _result(_bench_rows()), "compression_smollm2": _result(_bench_rows("smollm2"))}
    rows = tv.merged_rows(results, "compression")
    assert [r["teacher"] for r in rows] == ["minilm", "minilm", "smollm2", "smollm2"]
    assert tv.has_teacher(results)["compression"] and not tv.has_teacher(results)["distillation"]
    assert not tv.has_teacher({"compression": _result(_bench_rows())})["compression"]
    # the SmolLM2 file alone is found too (a book cell keyed on the MiniLM file would miss it)
    only_llm = {"compression_smollm2": results["compression_smollm2"]}
    assert tv.step_files(only_llm, "compression") == ["compression_smollm2"]
    assert tv.step_files(results, "compression") == ["compression", "compression_smollm2"]
    assert [r["teacher"] for r in tv.merged_rows(only_llm, "compression")] == ["smollm2", "smollm2"]


def test_targets_table_against_the_llm_teacher():
    results = {"compression_smollm2": _result(_bench_rows("smollm2", f1=0.84, student_f1=0.80, ratio=141.2, speed=9.0))}
    t = tv.targets_table(results, "smollm2")
    assert t["met by"].tolist() == ["dixtill", "dixtill", "none"]          # 0.80 / 0.84 = 0.952 < 0.97
    assert abs(t.loc["macro-F1 / teacher macro-F1", "dixtill"] - 0.952) < 1e-3
    assert tv.targets_table({}, "smollm2").empty
    # a DiXtill student with a transfer set in the same run gets its own column
    rows = results["compression_smollm2"]["rows"]
    rows.append({**rows[1], "method": "student-dixtill_aug", "macro_f1": 0.82})
    t = tv.targets_table(results, "smollm2")
    assert list(t.columns[:2]) == ["dixtill", "dixtill_aug"]
    assert t["met by"].tolist() == ["all", "all", "dixtill_aug"]  # 0.82 / 0.84 = 0.976
    # seven rounds with frequency word dropout, read with aliases: the student the next SmolLM2 run benches
    rows.append({**rows[1], "method": "student-dixtill_augbalx7_ema_rare25_alias20k", "macro_f1": 0.83})
    t = tv.targets_table(results, "smollm2")
    assert list(t.columns[:3]) == ["dixtill", "dixtill_aug", "dixtill_augbalx7_ema_rare25_alias20k"]
    assert t["met by"].tolist()[-1] == "dixtill_aug, dixtill_augbalx7_ema_rare25_alias20k"
    # five rounds of the same recipe is a column too, in round order, and 0.79 / 0.84 = 0.940 misses
    rows.append({**rows[1], "method": "student-dixtill_augbalx5_ema_rare25_alias20k", "macro_f1": 0.79})
    t = tv.targets_table(results, "smollm2")
    assert list(t.columns[2:4]) == ["dixtill_augbalx5_ema_rare25_alias20k", "dixtill_augbalx7_ema_rare25_alias20k"]
    assert t["met by"].tolist()[-1] == "dixtill_aug, dixtill_augbalx7_ema_rare25_alias20k"


def test_targets_table_of_a_second_bench_run():
    """A bench run against another copy of the teacher lives in its own file (``targets_smollm2.json``): read
    with ``step="targets"``, its ratios are against its own teacher row, not the ``compression`` file's."""
    rows = _bench_rows("smollm2", f1=0.83, student_f1=0.80, ratio=141.2, speed=900.0)
    rows[1]["method"] = "student-dixtill_augbalx5_ema_alias20k"
    rows.append({**rows[1], "method": "student-dixtill_augbalx5_ema", "macro_f1": 0.79})
    results = {"compression_smollm2": _result(_bench_rows("smollm2", f1=0.70, student_f1=0.69)),
               "targets_smollm2": _result(rows)}
    t = tv.targets_table(results, "smollm2", step="targets")
    assert list(t.columns[:2]) == ["dixtill_augbalx5_ema", "dixtill_augbalx5_ema_alias20k"]  # recipe order
    assert t.loc["macro-F1 / teacher macro-F1", "dixtill_augbalx5_ema_alias20k"] == round(0.80 / 0.83, 3)
    assert t["met by"].tolist() == ["all", "all", "none"]
    assert list(tv.targets_table(results, "smollm2").columns[:1]) == ["dixtill"]  # the compression file's run
    assert len(tv.compression_table(results, step="targets")) == 3


def test_targets_table_counts_the_vocabulary_file_when_the_run_recorded_it():
    """An aliased student reads a vocab.json twice the plain one's: the size target is checked with it too."""
    rows = _bench_rows("smollm2", f1=0.83, student_f1=0.80, ratio=141.0, speed=900.0)
    rows[1].update(method="student-dixtill_augbalx5_ema_rare25", vocab_bytes=200_000)
    rows.append({**rows[1], "method": "student-dixtill_augbalx5_ema_rare25_alias20k", "vocab_bytes": 420_000})
    t = tv.targets_table({"targets_smollm2": _result(rows)}, "smollm2", step="targets")
    assert t.index.tolist() == ["size ratio (teacher / student)", "size ratio (teacher / student + vocab.json)",
                                "speed-up, batch 32 (CPU)", "macro-F1 / teacher macro-F1"]
    student = 500e6 / 141.0
    with_vocab = t.loc["size ratio (teacher / student + vocab.json)"]
    assert with_vocab["dixtill_augbalx5_ema_rare25"] == round(500e6 / (student + 200_000), 3)   # 133.5
    assert with_vocab["dixtill_augbalx5_ema_rare25_alias20k"] == round(500e6 / (student + 420_000), 3)  # 126.2
    assert with_vocab["met by"] == "dixtill_augbalx5_ema_rare25" and with_vocab["target (≥)"] == 127.0
    del rows[2]["vocab_bytes"]                                # an older run without the sizes: no such row
    assert len(tv.targets_table({"targets_smollm2": _result(rows)}, "smollm2", step="targets")) == 3


def test_distillation_table_ratio_per_own_teacher():
    base = [{"method": "teacher", "seed": None, "macro_f1": 0.8, "accuracy": 0.85},
            {"method": "dixtill", "seed": 0, "macro_f1": 0.76, "accuracy": 0.8},
            {"method": "dixtill", "seed": 1, "macro_f1": 0.78, "accuracy": 0.8}]
    llm = copy.deepcopy(base)
    for r in llm:
        r["teacher"] = "smollm2"
        r["macro_f1"] += 0.05
    table = tv.distillation_table({"distillation": _result(base), "distillation_smollm2": _result(llm)})
    assert list(table.index.get_level_values(0).unique()) == [tv.TEACHER_LABELS["minilm"], tv.TEACHER_LABELS["smollm2"]]
    assert table["F1 / teacher F1"].tolist() == ["1.000", f"{0.77 / 0.8:.3f}", "1.000", f"{0.82 / 0.85:.3f}"]


def test_transfer_table_reads_the_transfer_files():
    rows = [{"method": "teacher", "seed": None, "macro_f1": 0.8, "teacher": "smollm2"},
            {"method": "kd", "seed": 0, "macro_f1": 0.72, "teacher": "smollm2"},
            {"method": "kd_aug", "seed": 0, "macro_f1": 0.78, "teacher": "smollm2"},
            {"method": "kd_aug", "seed": 1, "macro_f1": 0.80, "teacher": "smollm2"}]
    results = {"distillation_smollm2": _result(rows[:2]), "transfer_smollm2": _result(rows)}
    assert tv.has_teacher(results)["transfer"]
    table = tv.distillation_table(results, tv.TRANSFER_METHODS, step="transfer")
    assert [m for _, m in table.index] == ["teacher", "kd", "kd_aug"]    # in TRANSFER_METHODS order
    assert table["F1 / teacher F1"].tolist() == ["1.000", "0.900", f"{0.79 / 0.8:.3f}"]
    assert "kd_aug" not in [m for _, m in tv.distillation_table(results).index]  # the distillation file has none


def test_transfer_table_puts_the_minilm_block_first_each_against_its_own_teacher():
    third = "dixtill_augbalx3_ema_sub33"   # three rounds, a fresh third of them per epoch
    minilm = [{"method": "teacher", "seed": None, "macro_f1": 0.82},
              {"method": third, "seed": 0, "macro_f1": 0.779},
              {"method": "dixtill_augbal_ema", "seed": 0, "macro_f1": 0.77},
              {"method": "dixtill", "seed": 0, "macro_f1": 0.74}]
    llm = [{"method": "teacher", "seed": None, "macro_f1": 0.8, "teacher": "smollm2"},
           {"method": "dixtill", "seed": 0, "macro_f1": 0.7, "teacher": "smollm2"}]
    results = {"transfer": _result(minilm), "transfer_smollm2": _result(llm)}
    assert tv.has_teacher(results, "minilm")["transfer"]
    table = tv.distillation_table(results, tv.TRANSFER_METHODS, step="transfer")
    assert list(table.index) == [(tv.TEACHER_LABELS["minilm"], m) for m in ("teacher", "dixtill", "dixtill_augbal_ema", third)] \
        + [(tv.TEACHER_LABELS["smollm2"], m) for m in ("teacher", "dixtill")]
    assert table["F1 / teacher F1"].tolist() == ["1.000", f"{0.74 / 0.82:.3f}", f"{0.77 / 0.82:.3f}",
                                                 f"{0.779 / 0.82:.3f}", "1.000", "0.875"]


def test_unknown_words_table_splits_each_row_and_divides_by_its_own_teacher():
    split = {"n_with_unknown": 1500, "n_without_unknown": 888}
    rows = [{"method": "teacher", "seed": None, "macro_f1": 0.82, "macro_f1_with_unknown": 0.81,
             "macro_f1_without_unknown": 0.84, **split},
            *({"method": "dixtill_augbal_ema", "seed": s, "macro_f1": f, "valid_unk_rate": 0.102,
               "macro_f1_with_unknown": f - 0.02, "macro_f1_without_unknown": 0.83, **split}
              for s, f in ((0, 0.79), (1, 0.80))),
            {"method": "dixtill_augbal_ema_alias20k", "seed": 0, "macro_f1": 0.81, "valid_unk_rate": 0.073,
             "macro_f1_with_unknown": 0.80, "macro_f1_without_unknown": 0.83, **split},
            {"method": "dixtill", "seed": 0, "macro_f1": 0.7}]                  # an older row without the split
    table = tv.unknown_words_table({"transfer": _result(rows)})
    label = f"{tv.TEACHER_LABELS['minilm']} (1500 of the valid tweets have an unknown word)"
    assert list(table.index) == [(label, m) for m in ("teacher", "dixtill_augbal_ema", "dixtill_augbal_ema_alias20k")]
    assert table["seeds"].tolist() == [1, 2, 1]
    assert table["macro-F1, tweets with an unknown word"].tolist() == [0.81, 0.775, 0.8]
    assert table["F1 / teacher F1"].tolist() == [1.0, round(0.795 / 0.82, 3), round(0.81 / 0.82, 3)]
    assert tv.unknown_words_table({"transfer": _result(rows[-1:])}).empty


def test_teacher_table_has_paper_row():
    rows = [{"method": "teacher", "params": 22.7e6, "accuracy": 0.87, "macro_f1": 0.83, "mcc": 0.75, "macro_auc": 0.95}]
    t = tv.teacher_table({"teacher": _result(rows)})
    assert t.index[-1].startswith("FinBERT") and t.loc[t.index[-1], "Macro-F1"] == 0.81


def test_missing_notice_names_the_missing_file_and_command():
    html = tv.missing_notice("smollm2", "compression")._repr_html_()
    assert "results/compression_smollm2.json" in html and "dixtill_lib bench --full --teacher smollm2" in html
    whole = tv.missing_notice("smollm2")._repr_html_()
    assert "--teacher smollm2" in whole and "SmolLM2-135M" in whole


def test_explanation_table_one_row_per_teacher_and_explainer():
    def rows(teacher, delta, cos, comp):
        out = [{"method": "ig", "split": "valid", "n_steps": 4, "mean_abs_delta": delta},
               {"method": "ig_steps", "n_steps": 4, "cosine_to_ref": cos, "top3_agreement_to_ref": 0.5},
               {"method": "ig_steps", "n_steps": 50, "cosine_to_ref": 1.0, "top3_agreement_to_ref": 1.0},
               {"method": "faithfulness/ig", "split": "valid", "comprehensiveness": comp, "sufficiency": 0.1},
               {"method": "faithfulness/random", "split": "valid", "comprehensiveness": 0.12, "sufficiency": 0.2}]
        for r in out:
            if teacher:
                r["teacher"] = teacher
        return out
    llm = rows("smollm2", 1.79, 0.12, 0.18) + [
        {"method": "occlusion", "split": "valid", "n_steps": None, "mean_abs_delta": 0.0, "teacher": "smollm2"},
        {"method": "faithfulness/occlusion", "split": "valid", "comprehensiveness": 0.4, "sufficiency": 0.05,
         "teacher": "smollm2"}]
    t = tv.explanation_table({"explain": _result(rows(None, 0.46, 0.84, 0.28)), "explain_smollm2": _result(llm)})
    mini, smol = tv.TEACHER_LABELS["minilm"], tv.TEACHER_LABELS["smollm2"]
    assert list(t.index) == [(mini, "IG"), (smol, "IG"), (smol, "occlusion")]
    assert t["cos(4 vs 50 steps)"].tolist()[:2] == [0.84, 0.12] and np.isnan(t["cos(4 vs 50 steps)"].iloc[2])
    assert t["comprehensiveness"].tolist() == [0.28, 0.18, 0.4]
    assert t["comprehensiveness random"].tolist() == [0.12, 0.12, 0.12] and t["mean |delta|, 4 steps"].iloc[1] == 1.79
    assert np.isnan(t["mean |delta|, 4 steps"].iloc[2])
    assert tv.explanation_table({}).empty


def test_path_plot_one_panel_per_teacher():
    import matplotlib

    matplotlib.use("Agg")

    def row(teacher, jump):
        r = {"method": "ig_path", "split": "valid", "n": 2, "alphas": [0.0, 0.5, 1.0],
             "p_target": [[0.1, 0.2, 0.9], [0.5, 0.6, 0.7]], "mean_max_jump": jump}
        return {**r, "teacher": teacher} if teacher else r

    axes = tv.path_plot({"explain": _result([row(None, 0.4)]), "explain_smollm2": _result([row("smollm2", 0.7)])})
    assert len(axes) == 2 and len(axes[0].lines) == 2 + 4  # two tweets + IG's 4 quadrature points
    assert "0.70" in axes[1].get_title() and "SmolLM2" in axes[1].get_title()
    with pytest.raises(ValueError, match="--path-profile"):
        tv.path_plot({"explain": _result([])})
