"""Tables, plots and the latency-budget widget of chapter 5 (compression baselines and trade-offs).
Every function takes result rows (from :mod:`dixtill_lib.compress` / :mod:`dixtill_lib.bench` or the
committed ``pruning.json`` / ``compression.json``) and tolerates missing columns."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

#: The DiXtill paper, Tables 3 and 4 (FinBERT teacher, BERT-base, batch of 32; METHODS.md §1.13).
PAPER_TABLES = pd.DataFrame(
    {"size (MB)": [439.0, 182.5, 365.0, 3.45], "C_ratio": [1.0, 2.40, 1.20, 127.0],
     "s, batch 32": [0.61, 0.40, 0.28, 0.07], "speedup b32": [1.0, 1.52, 2.18, 8.7],
     "Acc": [0.855, 0.852, 0.832, 0.843], "Macro-F1": [0.810, 0.808, 0.743, 0.789],
     "MCC": [0.721, 0.719, 0.652, 0.689], "Macro-AUC": [0.949, 0.948, 0.938, 0.926]},
    index=pd.Index(["Teacher (FinBERT)", "PTQ (dynamic int8)", "AHP-6", "DiXtill"], name="paper"))
PAPER_TABLES["P_drop (F1)"] = 1 - PAPER_TABLES["Macro-F1"] / PAPER_TABLES.loc["Teacher (FinBERT)", "Macro-F1"]

#: Targets for our full run against the MiniLM teacher (the issue's acceptance numbers).
TARGETS = {"compression_ratio": 25.0, "speedup_b1": 10.0, "speedup_b32": 8.7, "f1_fraction": 0.97}

FAMILY_COLORS = {"teacher": "black", "ptq": "tab:purple", "ahp": "tab:orange", "student": "tab:blue",
                 "retrikt": "tab:green"}


def missing_notice(name: str):
    """The admonition shown when ``results/<name>.json`` (``compression`` or ``pruning``) is not committed:
    the chapter then shows its quick-mode numbers."""
    from .report import missing_notice as notice

    return notice(name, shows="the quick-mode numbers only")


def _frame(rows: Iterable[dict[str, Any]] | pd.DataFrame | None) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame()
    return rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def comparison_table(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """One line per model: size (MB), parameters (M), C_ratio, latency (ms) at batch 1 / 32 with IQR,
    speed-ups, Acc / Macro-F1 / MCC and the relative F1 drop. Columns absent from ``rows`` are skipped."""
    f = _frame(rows)
    if f.empty:
        return f
    out = pd.DataFrame(index=pd.Index(f["method"], name="method"))
    v = f.set_index("method")
    if "size_bytes" in v:
        out["size (MB)"] = (v["size_bytes"] / 1e6).round(2)
    if "params" in v:
        out["params (M)"] = (v["params"] / 1e6).round(3)
    if "compression_ratio" in v:
        out["C_ratio"] = v["compression_ratio"].round(2)
    for b in ("b1", "b32"):
        col = f"latency_ms_{b}"
        if col in v:
            out[f"ms, batch {b[1:]}"] = v[col].round(2)
            if f"{col}_q25" in v:
                out[f"IQR {b}"] = [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(v[f"{col}_q25"], v[f"{col}_q75"])]
        if f"speedup_{b}" in v:
            out[f"speedup {b}"] = v[f"speedup_{b}"].round(2)
    for c, label in (("accuracy", "Acc"), ("macro_f1", "Macro-F1"), ("mcc", "MCC")):
        if c in v:
            out[label] = v[c].round(3)
    if "macro_f1_std" in v and (v.get("n_seeds", pd.Series(1, index=v.index)) > 1).any():
        out["F1 sd (seeds)"] = v["macro_f1_std"].round(3)
    if "p_drop_macro_f1" in v:
        out["P_drop (F1)"] = v["p_drop_macro_f1"].round(3)
    return out


def pruning_table(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """The ``compress`` sweep as a table indexed by (importance rule, heads kept per layer)."""
    f = _frame(rows)
    if f.empty:
        return f
    f["importance"] = f["importance"].fillna("—")
    cols = [c for c in ("size_bytes", "compression_ratio", "accuracy", "macro_f1", "mcc", "p_drop_macro_f1")
            if c in f]
    t = f.set_index(["method", "importance"])[cols]
    if "size_bytes" in t:
        t = t.assign(size_bytes=(t["size_bytes"] / 1e6).round(2)).rename(columns={"size_bytes": "size (MB)"})
    return t.round(3)


def pruning_curve_plot(rows: Iterable[dict[str, Any]] | pd.DataFrame, metric: str = "macro_f1", ax=None,
                       title: str = ""):
    """``metric`` against heads kept per layer, one line per importance rule; the fp32 teacher and PTQ
    as horizontal reference lines (AHP-12 = the teacher)."""
    import matplotlib.pyplot as plt

    f = _frame(rows)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4))
    if f.empty or metric not in f:
        ax.text(0.5, 0.5, "no pruning rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    teacher = f[f["family"] == "teacher"]
    t_val = float(teacher[metric].iloc[0]) if len(teacher) else np.nan
    heads = int(teacher["heads_kept_per_layer"].iloc[0]) if len(teacher) and "heads_kept_per_layer" in f \
        and pd.notna(teacher["heads_kept_per_layer"].iloc[0]) else 12
    ahp = f[f["family"] == "ahp"]
    for (imp, g), marker in zip(ahp.groupby("importance", sort=False), "os^v"):
        g = g.sort_values("heads_kept_per_layer")
        xs = list(g["heads_kept_per_layer"]) + [heads]
        ys = list(g[metric]) + [t_val]
        ax.plot(xs, ys, marker=marker, label=f"AHP, {imp} importance")
    ax.axhline(t_val, color="black", ls="--", lw=1, label="fp32 teacher")
    ptq = f[f["family"] == "ptq"]
    if len(ptq):
        ax.axhline(float(ptq[metric].iloc[0]), color="tab:purple", ls=":", lw=1.5, label="PTQ int8")
    ax.set_xlabel("heads kept per layer (AHP-k)")
    ax.set_ylabel(metric.replace("_", "-"))
    ax.set_xticks(range(1, heads + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return ax


def importance_heatmap(importance: np.ndarray | Sequence[Sequence[float]], keep: int | None = None, ax=None,
                       title: str = "head importance"):
    """(layers × heads) importance as a heat map; with ``keep``, the heads AHP-``keep`` removes are crossed."""
    import matplotlib.pyplot as plt

    from .heads import keep_mask

    imp = np.asarray(importance, dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * imp.shape[0] + 1.2))
    im = ax.imshow(imp, cmap="viridis", aspect="auto")
    ax.figure.colorbar(im, ax=ax, fraction=0.03)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(imp.shape[1]))
    ax.set_yticks(range(imp.shape[0]))
    if keep is not None:
        mask = keep_mask(imp, keep)
        ys, xs = np.nonzero(~mask)
        ax.scatter(xs, ys, marker="x", color="white", s=30)
        title = f"{title}  (× = pruned by AHP-{keep})"
    ax.set_title(title)
    return ax


def pareto_pair(rows: Iterable[dict[str, Any]] | pd.DataFrame, batch: str = "b32", axes=None, title: str = ""):
    """Two Pareto plots, macro-F1 vs size (MB) and vs latency (ms at ``batch``), log x, every method."""
    import matplotlib.pyplot as plt

    from .report import pareto_plot

    f = _frame(rows)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    pareto_plot(f, x="size_bytes", y="macro_f1", ax=axes[0], x_scale=1e-6, x_label="size on disk (MB, log)")
    pareto_plot(f, x=f"latency_ms_{batch}", y="macro_f1", ax=axes[1],
                x_label=f"CPU latency, batch {batch[1:]} (ms, log)")
    axes[0].set_title(f"{title} macro-F1 vs size".strip())
    axes[1].set_title(f"{title} macro-F1 vs latency".strip())
    axes[0].figure.tight_layout()
    return axes


def within_budget(rows: Iterable[dict[str, Any]] | pd.DataFrame, budget_ms: float, batch: str = "b32") -> pd.DataFrame:
    """The rows whose median latency at ``batch`` is at most ``budget_ms``, best macro-F1 first."""
    f = _frame(rows)
    col = f"latency_ms_{batch}"
    if f.empty or col not in f:
        return f
    return f[f[col] <= budget_ms].sort_values("macro_f1", ascending=False)


def budget_plot(rows: Iterable[dict[str, Any]] | pd.DataFrame, budget_ms: float, batch: str = "b32", ax=None):
    """Macro-F1 vs latency (log x) with the models over ``budget_ms`` greyed out and the budget drawn."""
    import matplotlib.pyplot as plt

    f = _frame(rows)
    col = f"latency_ms_{batch}"
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4))
    ok = f[col] <= budget_ms
    for fam, g in f[ok].groupby("family"):
        ax.scatter(g[col], g["macro_f1"], color=FAMILY_COLORS.get(fam, "tab:gray"), label=fam, zorder=3)
    ax.scatter(f.loc[~ok, col], f.loc[~ok, "macro_f1"], color="lightgray", label="over budget", zorder=2)
    for _, r in f.iterrows():
        ax.annotate(r["method"], (r[col], r["macro_f1"]), textcoords="offset points", xytext=(3, 3), fontsize=7,
                    color="black" if r[col] <= budget_ms else "gray")
    ax.axvline(budget_ms, color="tab:red", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"CPU latency, batch {batch[1:]} (ms, log)")
    ax.set_ylabel("macro-F1")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    best = within_budget(f, budget_ms, batch)
    ax.set_title(f"budget {budget_ms:.3g} ms: best = {best['method'].iloc[0]}" if len(best)
                 else f"budget {budget_ms:.3g} ms: nothing fits")
    return ax


def latency_budget_widget(rows: Iterable[dict[str, Any]] | pd.DataFrame, batch: str = "b32"):
    """An ipywidgets slider (log-spaced latency budgets) that filters the models to those within the
    budget and redraws :func:`budget_plot` and the table. Returns the widget (display it after the
    static fallback)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    f = _frame(rows)
    col = f"latency_ms_{batch}"
    lats = np.sort(f[col].to_numpy(dtype=float))
    options = [float(f"{x:.3g}") for x in np.geomspace(lats[0] * 0.9, lats[-1] * 1.1, 25)]
    slider = widgets.SelectionSlider(options=options, value=options[-1], description=f"budget b{batch[1:]} (ms)",
                                     continuous_update=False, layout=widgets.Layout(width="70%"),
                                     style={"description_width": "initial"})
    out = widgets.Output()

    def redraw(change=None):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6.4, 4))
            budget_plot(f, slider.value, batch, ax=ax)
            plt.show()
            display(comparison_table(within_budget(f, slider.value, batch)))

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, out])


def targets_table(rows: Iterable[dict[str, Any]] | pd.DataFrame, student: str = "student-dixtill") -> pd.DataFrame:
    """The DiXtill student against the targets (≥25× smaller, ≥10× faster at batch 1, ≥8.7× at batch 32,
    macro-F1 ≥ 0.97 × teacher). Empty when the student row is missing."""
    f = _frame(rows)
    if f.empty or student not in set(f["method"]):
        return pd.DataFrame()
    s = f.set_index("method").loc[student]
    t = f[f["family"] == "teacher"].iloc[0]
    measured = {"compression_ratio": s["compression_ratio"], "speedup_b1": s["speedup_b1"],
                "speedup_b32": s["speedup_b32"], "f1_fraction": s["macro_f1"] / t["macro_f1"]}
    return pd.DataFrame({"target (≥)": TARGETS, "measured": {k: round(float(v), 3) for k, v in measured.items()},
                         "met": {k: bool(measured[k] >= TARGETS[k]) for k in TARGETS}})


def verdict(rows: Iterable[dict[str, Any]] | pd.DataFrame, student: str = "student-dixtill") -> list[str]:
    """Plain sentences: where the distilled student beats the teacher-derived baselines and where it loses.
    Without a ``student`` row, the best student present (by macro-F1) is used and the fact is said."""
    f = _frame(rows)
    students = f[f["family"] == "student"] if "family" in f else f.iloc[0:0]
    if f.empty or students.empty:
        return ["No distilled student in these rows yet: run `python -m dixtill_lib distill` then `bench`."]
    lines: list[str] = []
    if student not in set(f["method"]):
        best = students.sort_values("macro_f1", ascending=False)["method"].iloc[0]
        lines.append(f"{student} is not in these rows yet (rerun `bench` after `distill`); using the best "
                     f"student present, {best}.")
        student = best
    v = f.set_index("method")
    s, t = v.loc[student], v[v["family"] == "teacher"].iloc[0]
    base = v[v["family"].isin(["ptq", "ahp"])]
    lines += [f"{student} is {s['compression_ratio']:.1f}× smaller and {s['speedup_b1']:.1f}× / "
             f"{s['speedup_b32']:.1f}× faster (batch 1 / 32) than the teacher, at {s['macro_f1']:.3f} macro-F1 "
             f"vs {t['macro_f1']:.3f} (relative drop {s['p_drop_macro_f1'] * 100:.1f} %)."]
    if len(base):
        smaller = (base["size_bytes"] > s["size_bytes"]).all()
        faster = (base["latency_ms_b32"] > s["latency_ms_b32"]).all()
        better = base[base["macro_f1"] > s["macro_f1"]]
        lines.append(f"It is {'smaller' if smaller else 'not smaller'} and {'faster' if faster else 'not faster'} "
                     f"than every PTQ/pruned teacher.")
        if len(better):
            lines.append("Higher macro-F1 than the student: " + ", ".join(
                f"{m} ({r['macro_f1']:.3f}, {r['compression_ratio']:.2f}× smaller, {r['speedup_b32']:.2f}× faster)"
                for m, r in better.sort_values("macro_f1", ascending=False).iterrows()) + ".")
        else:
            lines.append("No PTQ or pruned teacher reaches its macro-F1.")
    return lines
