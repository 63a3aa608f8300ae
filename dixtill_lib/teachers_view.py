"""Both teachers side by side (issue 8): the MiniLM encoder (offline default, 22.7 M parameters) and the
SmolLM2-135M decoder LLM, each with its own distilled students, PTQ and head-pruned copies.

Rows of the default teacher live in ``results/<step>.json`` (rows without a ``teacher`` field are
MiniLM's); rows of another teacher in ``results/<step>_<teacher>.json`` (written by
``python -m dixtill_lib <step> --full --teacher smollm2``). :func:`merged_rows` joins them, every row
tagged with its teacher key (:func:`dixtill_lib.results.row_teacher`)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import report
from .augment import AugmentConfig
from .distill import DistillConfig, alias_suffix, recipe_suffix
from .results import row_teacher

#: Teacher key -> label used in the tables.
TEACHER_LABELS: dict[str, str] = {"minilm": "MiniLM-L6 (22.7 M, encoder)", "smollm2": "SmolLM2-135M (decoder LLM)"}
#: The other teachers whose result files may exist (``<step>_<teacher>.json``).
EXTRA_TEACHERS: tuple[str, ...] = ("smollm2",)
#: The rows of the transfer-set experiment (``distill --augment``): each student without a transfer set, with
#: the uniform one (``_aug``), the class-balanced one (``_augbal``) and three rounds of it (``_augbalx3``), that
#: last one kept as its weight average (``_augbalx3_ema``, ``distill --ema``), and one, five, seven and nine rounds,
#: averaged too; last, seven rounds with word dropout (``_unk10``, ``--unk-rate 0.1``) or with the fitted tweets 4× per epoch
#: (``_gold4``, ``--gold-repeat 4``); and three rounds of which each epoch shows a fresh third (``_sub33``,
#: ``--transfer-fraction 0.33``: the cost per epoch of one round); last, one, five and seven rounds (averaged) and
#: the third of three read with GloVe aliases for unknown words (``_alias20k``, ``--glove-aliases 20000``); and one,
#: five and seven rounds (averaged) with frequency word dropout (``_rare25``, ``--rare-unk 0.25``), without and
#: with those aliases.
_AVERAGED_ROUNDS = (1, 3, 5, 7, 9)
_EMA = recipe_suffix(DistillConfig(ema=0.999))
_SEVEN_ROUND_TRIES = tuple(recipe_suffix(DistillConfig(ema=0.999, **kw)) for kw in ({"unk_rate": 0.1}, {"gold_repeat": 4}))
_A_THIRD_PER_EPOCH = recipe_suffix(DistillConfig(ema=0.999, transfer_fraction=0.33))
TRANSFER_SETS: tuple[str, ...] = ("", *(c.row_suffix() for c in (AugmentConfig(), AugmentConfig(balance=True))),
                                  AugmentConfig(balance=True, rounds=3).row_suffix(),
                                  *(AugmentConfig(balance=True, rounds=r).row_suffix() + _EMA for r in _AVERAGED_ROUNDS),
                                  *(AugmentConfig(balance=True, rounds=7).row_suffix() + t for t in _SEVEN_ROUND_TRIES),
                                  AugmentConfig(balance=True, rounds=3).row_suffix() + _A_THIRD_PER_EPOCH)
#: The book's choice of aliases: GloVe's 20,000 most frequent words (with them the student's vocabulary file
#: still keeps it 127x smaller than the SmolLM2 teacher; chapter 7).
ALIASES = alias_suffix(DistillConfig(glove_aliases=20_000))
TRANSFER_SETS += tuple(s + ALIASES for s in (AugmentConfig(balance=True).row_suffix() + _EMA,
                                             AugmentConfig(balance=True, rounds=5).row_suffix() + _EMA,
                                             AugmentConfig(balance=True, rounds=7).row_suffix() + _EMA,
                                             AugmentConfig(balance=True, rounds=3).row_suffix() + _A_THIRD_PER_EPOCH))
_RARE = recipe_suffix(DistillConfig(ema=0.999, rare_unk=0.25))
TRANSFER_SETS += tuple(AugmentConfig(balance=True, rounds=r).row_suffix() + _RARE + a
                       for r in (1, 5, 7) for a in ("", ALIASES))
TRANSFER_METHODS: tuple[str, ...] = ("teacher", *(m + s for m in ("kd", "dixtill") for s in TRANSFER_SETS))
#: How ``results/transfer_smollm2.json`` is made: the students without and with the transfer set, from one teacher.
TRANSFER_COMMAND = ("python -m dixtill_lib distill --full --teacher smollm2 --methods kd,dixtill --seeds 0,1,2 "
                    "--temperatures '' --no-ablation --temperature 2 --out results/transfer_smollm2.json --merge, "
                    "then the same with --augment 4, --augment 4 --balance, --augment 4 --balance --rounds 3 "
                    "and --augment 4 --balance --rounds 3 (or 5, 7 or 9) --ema 0.999; the README lists each run "
                    "(seven rounds also with --unk-rate 0.1 or --gold-repeat 4)")
#: The issue's targets for the DiXtill student, from the paper's Table 3/4 (against FinBERT).
PAPER_TARGETS = {"compression_ratio": 127.0, "speedup_b32": 8.7, "f1_ratio": 0.97}


def step_files(results: dict[str, Any], step: str) -> list[str]:
    """The loaded result files of ``step``: ``step`` itself and each ``f"{step}_{teacher}"``, those present."""
    return [n for n in (step, *(f"{step}_{t}" for t in EXTRA_TEACHERS)) if results.get(n) is not None]


def merged_rows(results: dict[str, Any], step: str) -> list[dict[str, Any]]:
    """Rows of ``results[step]`` and of every ``results[f"{step}_{teacher}"]``, each with ``teacher`` set to
    its teacher key (a missing field means ``"minilm"``)."""
    return [{**r, "teacher": row_teacher(r)} for name in step_files(results, step) for r in results[name]["rows"]]


def has_teacher(results: dict[str, Any], teacher: str = "smollm2") -> dict[str, bool]:
    """Which steps have rows of ``teacher`` (e.g. ``{"teacher": True, "distillation": False, ...}``)."""
    steps = ("teacher", "explain", "distillation", "transfer", "pruning", "compression")
    return {s: any(r["teacher"] == teacher for r in merged_rows(results, s)) for s in steps}


def teacher_table(results: dict[str, Any]) -> pd.DataFrame:
    """Validation quality of each teacher next to the paper's FinBERT (Table 1) — one row per teacher."""
    recs = []
    for r in merged_rows(results, "teacher"):
        recs.append({"teacher": TEACHER_LABELS.get(r["teacher"], r["teacher"]), "params (M)": r.get("params", np.nan) / 1e6,
                     **{report.METRIC_LABELS[m]: r.get(m) for m in report.CLASSIFICATION}})
    frame = pd.DataFrame(recs)
    paper = {"teacher": "FinBERT (paper, hub only; ~110 M)", "params (M)": 110.0,
             **{report.METRIC_LABELS[m]: float(report.PAPER_TEACHER.iloc[0][m]) for m in report.CLASSIFICATION}}
    frame = pd.concat([frame, pd.DataFrame([paper])], ignore_index=True).set_index("teacher")
    return frame.astype(float).round(3)


EXPLAINER_LABELS = {"ig": "IG", "occlusion": "occlusion"}


def explanation_table(results: dict[str, Any], n_steps: int = 4) -> pd.DataFrame:
    """How trustworthy each teacher's explanations are (the DiXtill student's L_XAI target), one row per
    (teacher, explainer) of its ``explain`` file: for IG the mean |convergence delta| at ``n_steps`` on the
    valid split and the cosine and top-3 agreement of ``n_steps`` with 50 steps (32 valid tweets); for every
    explainer ERASER comprehensiveness / sufficiency (AOPC, 300 valid tweets) next to random word scores on
    the same tweets (higher comprehensiveness and lower sufficiency than random = more faithful). Occlusion
    (:mod:`dixtill_lib.occlusion`) has no steps and no convergence gap: those cells are empty."""
    recs = []
    all_rows = merged_rows(results, "explain")
    for t in dict.fromkeys(r["teacher"] for r in all_rows):
        by = {(r["method"], r.get("split"), r.get("n_steps")): r for r in all_rows if r["teacher"] == t}
        random = by.get(("faithfulness/random", "valid", None), {})
        for name, label in EXPLAINER_LABELS.items():
            faith = by.get((f"faithfulness/{name}", "valid", None))
            if faith is None:
                continue
            valid = by.get(("ig", "valid", n_steps), {}) if name == "ig" else {}
            study = by.get(("ig_steps", None, n_steps), {}) if name == "ig" else {}
            recs.append({"teacher": TEACHER_LABELS.get(t, t), "explanation": label,
                         f"mean |delta|, {n_steps} steps": valid.get("mean_abs_delta"),
                         f"cos({n_steps} vs 50 steps)": study.get("cosine_to_ref"),
                         f"top-3 agreement ({n_steps} vs 50)": study.get("top3_agreement_to_ref"),
                         "comprehensiveness": faith.get("comprehensiveness"),
                         "comprehensiveness random": random.get("comprehensiveness"),
                         "sufficiency": faith.get("sufficiency"),
                         "sufficiency random": random.get("sufficiency")})
    if not recs:
        return pd.DataFrame()
    return pd.DataFrame(recs).set_index(["teacher", "explanation"]).astype(float).round(3)


def path_plot(results: dict[str, Any]):
    """One panel per teacher: the explained class's probability along IG's straight-line path (rows ``ig_path``
    of its ``explain`` file), one line per valid tweet, IG's 4 Gauss–Legendre points marked. A smooth path is
    what 4 points can integrate; a path that jumps, or jumps back, is not. Returns the axes."""
    import matplotlib.pyplot as plt

    rows = [r for r in merged_rows(results, "explain") if r["method"] == "ig_path"]
    if not rows:
        raise ValueError("No ig_path rows: run `python -m dixtill_lib explain --full --path-profile 8 --merge` "
                         "(and with --teacher smollm2).")
    _, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows), 3.6), sharey=True, squeeze=False)
    nodes = (np.polynomial.legendre.leggauss(4)[0] + 1) / 2  # captum's gausslegendre points on [0, 1]
    for ax, r in zip(axes[0], rows):
        alphas, probs = np.asarray(r["alphas"]), np.asarray(r["p_target"])
        for p in probs:
            ax.plot(alphas, p, lw=1.2, alpha=0.8)
        for x in nodes:
            ax.axvline(x, color="grey", ls=":", lw=1)
        ax.set_title(f"{TEACHER_LABELS.get(r['teacher'], r['teacher'])}\nmean largest jump between "
                     f"neighbouring points {r['mean_max_jump']:.2f}", fontsize=10)
        ax.set_xlabel("alpha (0 = baseline, 1 = tweet)")
    axes[0][0].set_ylabel("probability of the explained class")
    plt.tight_layout()
    return axes[0]


def distillation_table(results: dict[str, Any],
                       methods: tuple[str, ...] = ("teacher", "dixtill", "dixtill_occlusion", "kd", "tang", "ce"),
                       metrics: tuple[str, ...] = (*report.CLASSIFICATION, "agreement_cosine", "feature_agreement_k3"),
                       step: str = "distillation") -> pd.DataFrame:
    """Mean ± 95 % CI over seeds per (teacher, method), plus each student's macro-F1 as a share of its own
    teacher's (the paper: DiXtill keeps 0.789 / 0.810 = 97.4 %). ``step="transfer"``: the same for the
    transfer-set experiment (:data:`TRANSFER_METHODS`, ``results/transfer_<teacher>.json``)."""
    rows = [r for r in merged_rows(results, step) if r["method"] in methods]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    present = [m for m in metrics if m in frame.columns]
    summary = report.seed_summary(frame, present, by=["teacher", "method"])
    shown = report.format_summary(summary, present)
    teacher_f1 = {t: float(summary.loc[(t, "teacher"), "macro_f1"]) for t in summary.index.get_level_values(0)
                  if (t, "teacher") in summary.index}
    shown["F1 / teacher F1"] = [f"{summary.loc[(t, m), 'macro_f1'] / teacher_f1[t]:.3f}" if t in teacher_f1 else "—"
                                for t, m in summary.index]
    teachers = list(dict.fromkeys([*TEACHER_LABELS, *summary.index.get_level_values(0)]))
    shown = shown.loc[[(t, m) for t in teachers for m in methods if (t, m) in summary.index]]
    return shown.rename(index=TEACHER_LABELS, level=0)


#: The columns of :func:`unknown_words_table`: row field -> label.
UNKNOWN_WORD_COLUMNS: dict[str, str] = {
    "valid_unk_rate": "valid words read as <UNK>", "macro_f1": "macro-F1",
    "macro_f1_with_unknown": "macro-F1, tweets with an unknown word",
    "macro_f1_without_unknown": "macro-F1, tweets without one"}


def unknown_words_table(results: dict[str, Any], step: str = "transfer") -> pd.DataFrame:
    """Where the students lose to their teacher: mean macro-F1 over seeds on the valid tweets that hold a word
    outside the student's vocabulary and on the rest, per (teacher, method), for the rows that carry the split
    (``distill`` writes it since GloVe aliases, ``_alias<N>k``), next to the teacher on the same tweets; the last
    column is each student's overall macro-F1 as a share of its teacher's."""
    rows = [r for r in merged_rows(results, step) if "macro_f1_with_unknown" in r]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    cols = [c for c in UNKNOWN_WORD_COLUMNS if c in frame.columns]
    means = frame.groupby(["teacher", "method"], sort=False)[cols].mean()
    means.insert(0, "seeds", frame.groupby(["teacher", "method"], sort=False).size())
    teacher_f1 = {t: means.loc[(t, "teacher"), "macro_f1"] for t, m in means.index if m == "teacher"}
    means["F1 / teacher F1"] = [means.loc[(t, m), "macro_f1"] / teacher_f1[t] if t in teacher_f1 else np.nan
                                for t, m in means.index]
    n = frame.groupby(["teacher"], sort=False)["n_with_unknown"].first()
    means = means.rename(columns=UNKNOWN_WORD_COLUMNS).round(3)
    means.index = pd.MultiIndex.from_tuples(
        [(f"{TEACHER_LABELS.get(t, t)} ({int(n[t])} of the valid tweets have an unknown word)", m) for t, m in means.index],
        names=["teacher", "method"])
    return means


def compression_table(results: dict[str, Any], step: str = "compression") -> pd.DataFrame:
    """Size, latency and quality of every model of each teacher's ``bench`` table, ratios relative to that
    teacher (:func:`dixtill_lib.report.size_latency_table` per teacher, stacked). ``step``: the files read,
    ``<step>.json`` and ``<step>_<teacher>.json`` (e.g. ``"targets"`` for a second bench run written with
    ``bench --out results/targets_<teacher>.json``)."""
    rows = merged_rows(results, step)
    if not rows:
        return pd.DataFrame()
    parts = []
    for t in dict.fromkeys(r["teacher"] for r in rows):
        part = report.size_latency_table([r for r in rows if r["teacher"] == t])
        part.index = pd.MultiIndex.from_product([[TEACHER_LABELS.get(t, t)], part.index], names=["teacher", "model"])
        parts.append(part)
    return pd.concat(parts)


#: The DiXtill students the targets table looks for: the paper's recipe, and with each transfer set.
DIXTILL_STUDENTS: tuple[str, ...] = tuple(f"student-dixtill{s}" for s in TRANSFER_SETS)


def targets_table(results: dict[str, Any], teacher: str = "smollm2",
                  students: Sequence[str] = DIXTILL_STUDENTS, step: str = "compression") -> pd.DataFrame:
    """The issue's targets for the DiXtill student against ``teacher``, measured in one ``bench`` run:
    ≥ 127× smaller and ≥ 8.7× faster at batch 32 (the paper's figures against FinBERT), macro-F1 ≥ 0.97 ×
    the teacher's. One column per DiXtill student of ``students`` in that run (named without ``student-``),
    and ``met by``: those that reach the target (``all``, or ``none``). When the run recorded the students'
    ``vocab.json`` sizes, a second size row counts that file with the student's weights (the teacher's weights
    alone): the file an aliased student (``_alias20k``) needs is twice the plain one. Empty when that teacher's
    compression table or its DiXtill students do not exist yet. ``step`` as in :func:`compression_table`."""
    rows = [r for r in merged_rows(results, step) if r["teacher"] == teacher]
    by = {r["method"]: r for r in rows}
    present = [m for m in students if m in by]
    if "teacher" not in by or not present:
        return pd.DataFrame()
    t = by["teacher"]
    labels = {"compression_ratio": "size ratio (teacher / student)", "speedup_b32": "speed-up, batch 32 (CPU)",
              "f1_ratio": "macro-F1 / teacher macro-F1"}
    paper = {"compression_ratio": 127.0, "speedup_b32": 8.7, "f1_ratio": 0.789 / 0.810}
    ours = {m.removeprefix("student-"): {"compression_ratio": by[m]["compression_ratio"], "speedup_b32": by[m]["speedup_b32"],
                                         "f1_ratio": by[m]["macro_f1"] / t["macro_f1"]} for m in present}
    target = dict(PAPER_TARGETS)
    if all("vocab_bytes" in by[m] for m in present):  # the same size target, with the vocabulary file counted
        labels = {"compression_ratio": labels["compression_ratio"],
                  "with_vocab": "size ratio (teacher / student + vocab.json)", **labels}
        paper["with_vocab"], target["with_vocab"] = paper["compression_ratio"], target["compression_ratio"]
        for m in present:
            ours[m.removeprefix("student-")]["with_vocab"] = t["size_bytes"] / (by[m]["size_bytes"] + by[m]["vocab_bytes"])
    out = []
    for k, label in labels.items():
        row: dict[str, Any] = {"target": label}
        row.update({name: round(float(v[k]), 3) for name, v in ours.items()})
        met = [name for name, v in ours.items() if v[k] >= target[k]]
        row.update({"target (≥)": target[k], "paper vs FinBERT": round(paper[k], 3),
                    "met by": "all" if len(met) == len(ours) > 1 else ", ".join(met) or "none"})
        out.append(row)
    return pd.DataFrame(out).set_index("target")


def pruning_table(results: dict[str, Any], teacher: str = "smollm2") -> pd.DataFrame:
    """``teacher``'s pruning rows (quality and size of every AHP level and granularity, no latency)."""
    rows = [r for r in merged_rows(results, "pruning") if r["teacher"] == teacher]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    cols = [c for c in ("method", "granularity", "importance", "heads_kept_per_layer", "params", "size_bytes",
                        "compression_ratio", *report.CLASSIFICATION, "p_drop_macro_f1") if c in frame.columns]
    frame = frame[cols].copy()
    frame["size (MB)"] = (frame.pop("size_bytes") / 1e6).round(1)
    frame["params (M)"] = (frame.pop("params") / 1e6).round(2)
    return frame.set_index("method").round(3)


def missing_notice(teacher: str = "smollm2", step: str | None = None) -> "report.Notice":
    """The admonition shown while ``teacher``'s result files are missing: ``step`` names the one a section
    needs (``"distillation"``, ``"compression"``, ...); ``None`` = the whole pipeline."""
    if step is None:
        body = (f"Run <code>python -m dixtill_lib {{teacher,explain,distill,bench,compress}} --full --teacher {teacher}</code> "
                f"(see the README) to create <code>results/&lt;step&gt;_{teacher}.json</code>; the tables appear here "
                "once those files are committed.")
    else:
        body = (f"<code>results/{step}_{teacher}.json</code> does not exist yet: it is written by "
                f"<code>python -m dixtill_lib {report.writing_step(step)} --full --teacher {teacher}</code> (see the README "
                "for the order of the steps and their options). This table appears once that file is committed.")
    return report.Notice(f"{TEACHER_LABELS.get(teacher, teacher)}: results not yet committed", body)
