"""Reading committed result files for the book: provenance boxes, seed summaries with confidence
intervals, the papers' published numbers side by side, and the plots of the full-scale chapter.

Everything here tolerates result files that do not exist yet (``load_result`` returns ``None`` and
:func:`notice` says so) and rows that lack some columns (those columns are skipped), but a file that
exists and is malformed raises :class:`~dixtill_lib.results.ResultsError` — a broken committed
result is a bug to fix, not something to hide."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .config import results_dir
from .metrics import mean_ci
from .results import ResultsError, validate

#: Canonical result name -> file stems tried in order (the CLI step name is the second spelling).
RESULT_FILES: dict[str, tuple[str, ...]] = {
    "teacher": ("teacher",),
    "explain": ("explain", "explanations"),
    "distillation": ("distillation", "distill"),
    "compression": ("compression", "bench"),
    "pruning": ("pruning",),
    "retrikt": ("retrikt",),
}

#: Metric columns shown in the tables, in display order, with their labels.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "Acc", "macro_f1": "Macro-F1", "mcc": "MCC", "macro_auc": "Macro-AUC",
    "agreement_cosine": "cos(σ_T, σ_S)", "agreement_spearman": "Spearman ρ",
    "feature_agreement_k3": "feature agr.@3", "sign_agreement_k3": "sign agr.@3",
    "comprehensiveness": "comprehensiveness", "sufficiency": "sufficiency",
}
CLASSIFICATION = ("accuracy", "macro_f1", "mcc", "macro_auc")
AGREEMENT = ("feature_agreement_k3", "sign_agreement_k3", "agreement_cosine", "agreement_spearman")
FAITHFULNESS = ("comprehensiveness", "sufficiency")

# ------------------------------------------------------------------ the papers' numbers (METHODS.md §1.13)

#: DiXtill Table 1 (test set). Index = the paper's method name.
PAPER_KD = pd.DataFrame(
    {"accuracy": [0.802, 0.827, 0.816, 0.843, 0.855], "macro_f1": [0.725, 0.762, 0.752, 0.789, 0.810],
     "mcc": [0.618, 0.655, 0.642, 0.689, 0.721], "macro_auc": [0.901, 0.916, 0.907, 0.926, 0.949]},
    index=["Student w/o distillation", "Distillation with KL", "Distillation with MSE", "DiXtill",
           "Teacher (FinBERT)"])
#: DiXtill Table 2: DiXtill at temperature τ = 1..5 (index = τ).
PAPER_TEMPERATURE = pd.DataFrame(
    {"accuracy": [0.834, 0.835, 0.838, 0.840, 0.843], "macro_f1": [0.775, 0.778, 0.782, 0.779, 0.789],
     "mcc": [0.671, 0.678, 0.677, 0.679, 0.688], "macro_auc": [0.924, 0.923, 0.925, 0.926, 0.926]},
    index=pd.Index([1, 2, 3, 4, 5], name="τ"))
#: DiXtill Tables 3+4: size (MB), time for one batch of 32 (s), ratios, and quality of compressed models.
PAPER_COMPRESSION = pd.DataFrame(
    {"size_mb": [365.0, 182.5, 3.45, 439.0], "compression_ratio": [1.20, 2.40, 127.0, 1.0],
     "seconds_b32": [0.28, 0.40, 0.07, 0.61], "speedup_b32": [2.18, 1.52, 8.7, 1.0],
     "accuracy": [0.832, 0.852, 0.843, 0.855], "macro_f1": [0.743, 0.808, 0.789, 0.810],
     "mcc": [0.652, 0.719, 0.689, 0.721], "macro_auc": [0.938, 0.948, 0.926, 0.949]},
    index=["AHP-6", "PTQ (dynamic int8)", "DiXtill", "Teacher (FinBERT)"])
#: The paper's teacher and its model card (evaluated on its own eval set).
PAPER_TEACHER = pd.DataFrame(
    {"accuracy": [0.855, 0.884], "macro_f1": [0.810, 0.8838], "mcc": [0.721, np.nan], "macro_auc": [0.949, np.nan]},
    index=["FinBERT (DiXtill paper, Table 1)", "FinBERT model card (its eval set)"])

#: Our distillation method names -> the paper's Table 1 rows.
PAPER_NAME = {"ce": "Student w/o distillation", "kd": "Distillation with KL", "tang": "Distillation with MSE",
              "dixtill": "DiXtill", "teacher": "Teacher (FinBERT)"}


# ------------------------------------------------------------------ loading

def result_path(name: str, directory: str | os.PathLike | None = None, mode: str = "full") -> Path | None:
    """The existing file for result ``name`` (canonical name, alias or stem), or ``None``."""
    root = Path(directory) if directory is not None else results_dir(mode)
    stems = RESULT_FILES.get(name, (name,))
    for stem in stems:
        p = root / f"{stem}.json"
        if p.is_file():
            return p
    return None


def load_result(name: str, directory: str | os.PathLike | None = None, mode: str = "full") -> dict[str, Any] | None:
    """Load and validate a result file; ``None`` if it does not exist yet.

    Raises :class:`ResultsError` if the file exists but is not valid JSON or breaks the schema."""
    p = result_path(name, directory, mode)
    if p is None:
        return None
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p} is not valid JSON ({exc}); rerun the step that wrote it.") from exc
    obj = validate(obj, str(p))
    obj.setdefault("_path", str(p))
    return obj


def load_all(directory: str | os.PathLike | None = None, mode: str = "full") -> dict[str, dict[str, Any] | None]:
    """Every known result (``None`` where missing) plus any other ``*.json`` in the folder."""
    out: dict[str, dict[str, Any] | None] = {name: load_result(name, directory, mode) for name in RESULT_FILES}
    root = Path(directory) if directory is not None else results_dir(mode)
    known = {s for stems in RESULT_FILES.values() for s in stems}
    for p in sorted(root.glob("*.json")):
        if p.stem not in known:
            out[p.stem] = load_result(p.stem, root)
    return out


def rows_frame(result: dict[str, Any] | Sequence[dict[str, Any]] | None) -> pd.DataFrame:
    """The result rows as a DataFrame (nested values such as confusion matrices are kept as objects)."""
    if result is None:
        return pd.DataFrame()
    rows = result["rows"] if isinstance(result, dict) else list(result)
    return pd.DataFrame(list(rows))


# ------------------------------------------------------------------ provenance

def _hardware_text(hw: Any) -> str:
    if not isinstance(hw, dict):
        return str(hw)
    parts = [str(hw.get("gpu") or hw.get("cpu") or "?")]
    if hw.get("cpu_count"):
        parts.append(f"{hw['cpu_count']} cores")
    if hw.get("torch_threads"):
        parts.append(f"{hw['torch_threads']} torch threads")
    return ", ".join(parts)


def _config_text(cfg: Any, limit: int = 400) -> str:
    if isinstance(cfg, dict):
        text = ", ".join(f"{k}={v}" for k, v in cfg.items())
    else:
        text = str(cfg)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provenance_frame(results: dict[str, Any] | dict[str, dict[str, Any] | None]) -> pd.DataFrame:
    """Provenance as a table: one column per result (pass one result, or ``{name: result}``), one row
    per field (commit, date, hardware, seeds, mode, library versions, config)."""
    if "provenance" in results:
        results = {"result": results}
    cols = {}
    for name, res in results.items():
        if res is None:
            continue
        prov = res["provenance"]
        cols[name] = {
            "file": Path(res.get("_path", "")).name or "—",
            "git commit": str(prov.get("git_commit", "?"))[:12] + ("-dirty" if str(prov.get("git_commit", "")).endswith("-dirty") else ""),
            "date": prov.get("date", "?"),
            "hardware": _hardware_text(prov.get("hardware")),
            "mode": prov.get("mode", "?"),
            "seeds": ", ".join(str(s) for s in prov.get("seeds", [])),
            "torch / transformers": f"{prov.get('torch', '?')} / {prov.get('transformers', '?')}",
            "config": _config_text(prov.get("config", {})),
            "rows": len(res.get("rows", [])),
        }
    return pd.DataFrame(cols)


class Notice:
    """An admonition box that renders in the HTML book, in Jupyter, and as plain text."""

    def __init__(self, title: str, body: str, kind: str = "warning"):
        self.title, self.body, self.kind = title, body, kind

    def _repr_html_(self) -> str:
        return (f'<div class="admonition {self.kind}"><p class="admonition-title">{html.escape(self.title)}</p>'
                f"<p>{self.body}</p></div>")

    def __repr__(self) -> str:
        return f"[{self.kind}] {self.title}: {self.body}"


def writing_step(name: str) -> str:
    """The CLI step that writes ``results/<name>.json`` (e.g. ``"distillation"`` -> ``"distill"``)."""
    return {"distillation": "distill", "compression": "bench", "pruning": "compress"}.get(
        name, RESULT_FILES.get(name, (name,))[0])


def missing_notice(name: str, mode: str = "full", command: str | None = None, shows: str = "nothing") -> Notice:
    """The admonition shown when ``results/<name>.json`` has not been committed yet; ``command`` is what
    writes it (default: the CLI step of that name), ``shows`` what the section shows instead."""
    stems = RESULT_FILES.get(name, (name,))
    command = command or f"python -m dixtill_lib {writing_step(name)} --{mode}"
    return Notice("Full-scale results not yet committed",
                  f"<code>results/{stems[0]}.json</code> does not exist yet, so this section shows {html.escape(shows)}. "
                  f"Create it with <code>{html.escape(command)}</code> and commit the file.",
                  kind="warning")


def provenance_notice(result: dict[str, Any]) -> Notice:
    """A compact one-box provenance summary for a result."""
    prov = result["provenance"]
    commit = str(prov.get("git_commit", "?"))
    body = (f"file <code>{html.escape(Path(result.get('_path', '')).name)}</code> · commit <code>{html.escape(commit[:12])}"
            f"{'-dirty' if commit.endswith('-dirty') else ''}</code> · {html.escape(str(prov.get('date', '?')))} · "
            f"{html.escape(_hardware_text(prov.get('hardware')))} · mode <b>{html.escape(str(prov.get('mode', '?')))}</b> · "
            f"seeds {html.escape(', '.join(str(s) for s in prov.get('seeds', [])))} · torch {html.escape(str(prov.get('torch', '?')))}")
    return Notice("Provenance", body, kind="note")


# ------------------------------------------------------------------ summaries

def seed_summary(rows: Iterable[dict[str, Any]] | pd.DataFrame, metrics: Sequence[str] = CLASSIFICATION,
                 by: Sequence[str] | str = "method", alpha: float = 0.05) -> pd.DataFrame:
    """Mean and Student-t interval over seeds for each group of ``by``.

    Columns: ``n`` (rows in the group) and, per metric present in the rows, ``<m>`` (mean), ``<m>_lo``,
    ``<m>_hi``. Metrics absent from the rows are skipped; groups keep their first-appearance order."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    by = [by] if isinstance(by, str) else list(by)
    if frame.empty:
        return pd.DataFrame(columns=[*by, "n"]).set_index(by)
    missing_keys = [k for k in by if k not in frame.columns]
    if missing_keys:
        raise ResultsError(f"rows lack the grouping column(s) {missing_keys}; present: {sorted(frame.columns)}.")
    present = [m for m in metrics if m in frame.columns]
    records = []
    for key, group in frame.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rec: dict[str, Any] = dict(zip(by, key))
        rec["n"] = len(group)
        for m in present:
            values = pd.to_numeric(group[m], errors="coerce").dropna().to_numpy()
            if len(values) == 0:
                rec[m] = rec[f"{m}_lo"] = rec[f"{m}_hi"] = np.nan
            else:
                rec[m], rec[f"{m}_lo"], rec[f"{m}_hi"] = mean_ci(values, alpha)
        records.append(rec)
    return pd.DataFrame(records).set_index(by)


def format_summary(summary: pd.DataFrame, metrics: Sequence[str] | None = None, digits: int = 3) -> pd.DataFrame:
    """``mean ± half-width`` strings for display (just the mean when there is a single seed)."""
    metrics = [m for m in (metrics or METRIC_LABELS) if m in summary.columns]
    out = pd.DataFrame(index=summary.index)
    if "n" in summary.columns:
        out["seeds"] = summary["n"]
    for m in metrics:
        def cell(r, m=m):
            if pd.isna(r[m]):
                return "—"
            half = (r[f"{m}_hi"] - r[f"{m}_lo"]) / 2
            return f"{r[m]:.{digits}f}" if half == 0 or pd.isna(half) else f"{r[m]:.{digits}f} ± {half:.{digits}f}"
        out[METRIC_LABELS.get(m, m)] = summary.apply(cell, axis=1)
    return out


def compare_with_paper(summary: pd.DataFrame, paper: pd.DataFrame, names: dict[str, str] | None = None,
                       metrics: Sequence[str] = CLASSIFICATION, digits: int = 3) -> pd.DataFrame:
    """One row per method: our mean (± CI) next to the paper's number for each metric.

    ``names`` maps our method names (the summary index) to the paper's row names; methods without a
    paper counterpart get "—" in the paper columns."""
    names = names if names is not None else PAPER_NAME
    ours = format_summary(summary, metrics, digits)
    rows = []
    for method in summary.index:
        key = method[0] if isinstance(method, tuple) else method
        paper_row = names.get(key)
        rec: dict[str, Any] = {"method": method, "paper's name": paper_row or "—"}
        for m in metrics:
            if m not in summary.columns:
                continue
            label = METRIC_LABELS.get(m, m)
            rec[f"{label} (ours)"] = ours.loc[method, label]
            value = paper.loc[paper_row, m] if paper_row in paper.index and m in paper.columns else np.nan
            rec[f"{label} (paper)"] = "—" if pd.isna(value) else f"{value:.{digits}f}"
        rows.append(rec)
    return pd.DataFrame(rows).set_index("method")


# ------------------------------------------------------------------ Pareto fronts

def pareto_mask(cost: Sequence[float], quality: Sequence[float]) -> np.ndarray:
    """True for points no other point beats (lower-or-equal cost and higher-or-equal quality, one strictly)."""
    c = np.asarray(cost, dtype=float)
    q = np.asarray(quality, dtype=float)
    keep = np.ones(len(c), dtype=bool)
    for i in range(len(c)):
        dominated = (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        keep[i] = not dominated.any() and np.isfinite(c[i]) and np.isfinite(q[i])
    return keep


def pareto_plot(rows: Iterable[dict[str, Any]] | pd.DataFrame, x: str = "size_bytes", y: str = "macro_f1",
                label: str = "method", ax=None, logx: bool = True, x_scale: float = 1.0, x_label: str | None = None,
                reference: pd.DataFrame | None = None, ref_x: str | None = None, ref_y: str | None = None):
    """Scatter of ``y`` (higher is better) against ``x`` (lower is better, log scale) averaged over seeds,
    with the Pareto front drawn as a step line. Rows lacking ``x`` or ``y`` are skipped.

    ``reference`` (e.g. :data:`PAPER_COMPRESSION`) adds the paper's points as hollow markers."""
    import matplotlib.pyplot as plt

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    if frame.empty or x not in frame.columns or y not in frame.columns:
        ax.text(0.5, 0.5, f"no rows with both {x} and {y}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    pts = (frame[[label, x, y]].assign(**{x: lambda d: pd.to_numeric(d[x], errors="coerce"),
                                           y: lambda d: pd.to_numeric(d[y], errors="coerce")})
           .dropna().groupby(label, sort=False).mean())
    xs = pts[x].to_numpy() * x_scale
    ys = pts[y].to_numpy()
    front = pareto_mask(xs, ys)
    ax.scatter(xs[~front], ys[~front], color="tab:gray", zorder=3, label="dominated")
    ax.scatter(xs[front], ys[front], color="tab:blue", zorder=4, label="Pareto-optimal (ours)")
    order = np.argsort(xs[front])
    ax.step(xs[front][order], ys[front][order], where="post", color="tab:blue", alpha=0.6)
    for name, xi, yi in zip(pts.index, xs, ys):
        ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if reference is not None and ref_x and ref_y and {ref_x, ref_y} <= set(reference.columns):
        ax.scatter(reference[ref_x], reference[ref_y], facecolors="none", edgecolors="tab:red", zorder=3,
                   label="paper (FinBERT teacher)")
        for name, xi, yi in zip(reference.index, reference[ref_x], reference[ref_y]):
            ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7,
                        color="tab:red")
    if logx:
        from matplotlib import ticker

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(x_label or x)
    ax.set_ylabel(METRIC_LABELS.get(y, y))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return ax


# ------------------------------------------------------------------ bar plots

def metric_bars(summary: pd.DataFrame, metrics: Sequence[str], ax=None, title: str = "", ylim=None):
    """Grouped bars (one group per metric, one bar per method) with the seed CI as error bars."""
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in summary.columns]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 2), 3.8))
    if summary.empty or not metrics:
        ax.text(0.5, 0.5, "no data for " + ", ".join(metrics) if metrics else "no metrics",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    n = len(summary)
    width = 0.8 / n
    xs = np.arange(len(metrics))
    for i, (method, row) in enumerate(summary.iterrows()):
        means = np.array([row[m] for m in metrics], dtype=float)
        lo = np.array([row[f"{m}_lo"] for m in metrics], dtype=float)
        hi = np.array([row[f"{m}_hi"] for m in metrics], dtype=float)
        err = np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)])
        ax.bar(xs + (i - (n - 1) / 2) * width, np.nan_to_num(means), width, yerr=err, capsize=2,
               label=str(method if not isinstance(method, tuple) else " ".join(map(str, method))))
    ax.set_xticks(xs, [METRIC_LABELS.get(m, m) for m in metrics])
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(n, 4), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return ax


def per_class_f1(rows: Iterable[dict[str, Any]] | pd.DataFrame, label_names: Sequence[str] = ("Bearish", "Bullish", "Neutral"),
                 by: Sequence[str] | str = "method") -> pd.DataFrame:
    """Seed-mean F1 per class (columns = class names) for rows carrying ``f1_0``, ``f1_1``, …."""
    cols = [f"f1_{k}" for k in range(len(label_names))]
    summary = seed_summary(rows, cols, by=by)
    present = [c for c in cols if c in summary.columns]
    return summary[present].rename(columns={f"f1_{k}": name for k, name in enumerate(label_names)})


def per_class_f1_plot(table: pd.DataFrame, ax=None, title: str = "per-class F1 (mean over seeds)"):
    """Bars of :func:`per_class_f1` output: one group per class, one bar per method."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    if table.empty or table.shape[1] == 0:
        ax.text(0.5, 0.5, "no per-class F1 in these rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    table.T.plot.bar(ax=ax, rot=0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(table), 4))
    return ax


def temperature_table(summary: pd.DataFrame, prefix: str = "dixtill_T", metric: str = "macro_f1") -> pd.DataFrame:
    """Rows ``dixtill_T1 … dixtill_T5`` of a distillation summary as a τ-indexed table beside the paper's Table 2."""
    taus = {}
    for method in summary.index:
        key = method[0] if isinstance(method, tuple) else method
        if isinstance(key, str) and key.startswith(prefix):
            try:
                taus[int(float(key[len(prefix):]))] = method
            except ValueError:
                continue
    out = pd.DataFrame(index=pd.Index(sorted(taus), name="τ"))
    if metric in summary.columns and taus:
        out["ours"] = [summary.loc[taus[t], metric] for t in out.index]
        out["ours_lo"] = [summary.loc[taus[t], f"{metric}_lo"] for t in out.index]
        out["ours_hi"] = [summary.loc[taus[t], f"{metric}_hi"] for t in out.index]
    out["paper"] = [PAPER_TEMPERATURE.loc[t, metric] if t in PAPER_TEMPERATURE.index else np.nan for t in out.index]
    return out


def temperature_plot(table: pd.DataFrame, metric: str = "macro_f1", ax=None):
    """Our DiXtill metric against τ (with seed CI) and the paper's Table 2."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.4))
    if table.empty:
        ax.text(0.5, 0.5, "no dixtill_T* rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    if "ours" in table.columns:
        ax.errorbar(table.index, table["ours"], yerr=[table["ours"] - table["ours_lo"], table["ours_hi"] - table["ours"]],
                    marker="o", capsize=3, label="ours (MiniLM teacher)")
    ax.plot(table.index, table["paper"], marker="s", linestyle="--", color="tab:red", label="paper (FinBERT teacher)")
    ax.set_xlabel("temperature τ")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_xticks(list(table.index))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# ------------------------------------------------------------------ generic and RetriKT helpers

def present_keys(rows: Iterable[dict[str, Any]] | pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """The grouping columns among ``candidates`` that the rows actually have."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return [c for c in candidates if c in frame.columns]


def numeric_metrics(rows: Iterable[dict[str, Any]] | pd.DataFrame,
                    exclude: Sequence[str] = ("seed", "k", "n_train", "n_eval", "epoch")) -> list[str]:
    """Columns holding numbers (not nested lists or strings), in row order, minus bookkeeping ones."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    out = []
    for c in frame.columns:
        if c in exclude or c == "method":
            continue
        values = frame[c].dropna()
        if len(values) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                               for v in values):
            out.append(c)
    return out


def k_curve_plot(summary: pd.DataFrame, metric: str = "accuracy", ax=None, title: str = ""):
    """``metric`` against k (examples per class) for each method, with the seed CI as error bars.
    ``summary`` is indexed by (method, k) or (method, task, k); pass one task at a time."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.6))
    names = list(summary.index.names)
    if summary.empty or metric not in summary.columns or "k" not in names or "method" not in names:
        ax.text(0.5, 0.5, f"no {metric} by k", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    flat = summary.reset_index()
    for method, group in flat.groupby("method", sort=False):
        group = group.sort_values("k")
        ax.errorbar(group["k"], group[metric], yerr=[group[metric] - group[f"{metric}_lo"],
                                                    group[f"{metric}_hi"] - group[metric]],
                    marker="o", capsize=3, label=str(method))
    ax.set_xscale("log", base=2)
    ks = sorted(flat["k"].dropna().unique())
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def size_latency_table(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Seed means of the compression columns, with sizes in MB, latencies in ms, and the ratios."""
    cols = ["size_bytes", "params", "compression_ratio", "latency_ms_b1", "latency_ms_b32", "speedup_b1",
            "speedup_b32", "accuracy", "macro_f1", "mcc", "macro_auc"]
    s = seed_summary(rows, cols)
    out = pd.DataFrame(index=s.index)
    if "size_bytes" in s.columns:
        out["size (MB)"] = (s["size_bytes"] / 1e6).round(2)
    if "params" in s.columns:
        out["params (M)"] = (s["params"] / 1e6).round(3)
    for c, label in [("compression_ratio", "C_ratio"), ("latency_ms_b1", "ms, batch 1"),
                     ("latency_ms_b32", "ms, batch 32"), ("speedup_b1", "speedup b1"), ("speedup_b32", "speedup b32")]:
        if c in s.columns:
            out[label] = s[c].round(2)
    shown = format_summary(s, [m for m in CLASSIFICATION if m in s.columns])
    return out.join(shown.drop(columns=["seeds"], errors="ignore"))


def pruning_plot(rows: Iterable[dict[str, Any]] | pd.DataFrame, metric: str = "macro_f1", ax=None):
    """Attention-head pruning sweep: ``metric`` against heads kept per layer, one line per importance
    rule, with the unpruned teacher (and int8 PTQ, if present) as horizontal references — the paper's Fig. 3a."""
    import matplotlib.pyplot as plt

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.8))
    need = {"method", "heads_kept_per_layer", metric}
    if frame.empty or not need <= set(frame.columns):
        ax.text(0.5, 0.5, f"no pruning sweep ({', '.join(sorted(need - set(frame.columns)))} missing)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    ahp = frame[frame["method"].astype(str).str.startswith("ahp")]
    rule = "importance" if "importance" in ahp.columns else None
    for name, group in (ahp.groupby(rule, sort=False) if rule else [("AHP", ahp)]):
        group = group.sort_values("heads_kept_per_layer")
        ax.plot(group["heads_kept_per_layer"], group[metric], marker="o", label=f"AHP, importance = {name}")
    for method, style in (("teacher", "-"), ("ptq-int8", ":")):
        ref = frame[frame["method"] == method]
        if len(ref):
            ax.axhline(float(ref[metric].iloc[0]), color="k", linestyle=style, alpha=0.6, label=method)
    ax.set_xlabel("attention heads kept per layer")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
