"""Showing word attributions: coloured HTML heatmaps (red = pushes away from the explained class,
green = pushes towards it), an ipywidgets explorer with a static fallback, and small plots for
chapter 3. No computation lives here beyond calling :mod:`dixtill_lib.explain`."""
from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np


def _colour(score: float, vmax: float) -> str:
    a = 0.0 if vmax <= 0 else min(abs(score) / vmax, 1.0) * 0.85
    rgb = "34,139,34" if score > 0 else "220,20,60"
    return f"rgba({rgb},{a:.2f})"


def heatmap_html(words: Sequence[str], scores: Sequence[float], label: str = "", vmax: float | None = None) -> str:
    """One sentence as HTML: each word on a background whose colour is the sign of its score and whose
    strength is |score| / vmax (default: the sentence's largest |score|). Hover shows the value."""
    scores = np.asarray(scores, dtype=float)
    if len(words) != len(scores):
        raise ValueError(f"{len(words)} words but {len(scores)} scores.")
    vmax = float(np.abs(scores).max()) if vmax is None and len(scores) else (vmax or 0.0)
    spans = " ".join(
        f'<span title="{s:+.3f}" style="background:{_colour(s, vmax)};padding:1px 3px;border-radius:3px;'
        f'line-height:1.9">{html.escape(w)}</span>' for w, s in zip(words, scores))
    head = f'<span style="color:#555;font-size:85%;margin-right:8px">{html.escape(label)}</span>' if label else ""
    return f'<div style="font-family:monospace;margin:3px 0">{head}{spans}</div>'


LEGEND = ('<div style="font-size:85%;color:#555;margin-top:4px">'
          '<span style="background:rgba(34,139,34,0.7);padding:1px 6px">&nbsp;</span> supports the explained class '
          '&nbsp; <span style="background:rgba(220,20,60,0.7);padding:1px 6px">&nbsp;</span> speaks against it '
          '&nbsp; (colour strength = |score| relative to the sentence\'s largest; hover a word for its value)</div>')


def heatmaps(texts: Sequence[str], scores: Sequence[np.ndarray], labels: Sequence[str] | None = None):
    """Several sentences as one ``IPython.display.HTML`` block with a legend."""
    from IPython.display import HTML

    labels = list(labels) if labels is not None else [""] * len(texts)
    body = "".join(heatmap_html(t.split(), s, lab) for t, s, lab in zip(texts, scores, labels))
    return HTML(body + LEGEND)


def explain_one(teacher, text: str, cfg, label_names: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Clean ``text``, explain it, and return (HTML heatmap, facts: predicted class, probability, delta)."""
    from .data import clean_text
    from .explain import attribute

    cleaned = clean_text(text)
    if not cleaned.strip():
        return "<i>Nothing left after cleaning: type some words.</i>", {}
    att = attribute(teacher, [cleaned], cfg, progress=False)
    proba = teacher.predict_proba([cleaned], progress=False)[0]
    t = int(att.targets[0])
    label = f"{label_names[t]} p={proba[t]:.2f}"
    facts = {"text": cleaned, "predicted": label_names[t], "probability": float(proba[t]),
             "delta": float(att.deltas[0])}
    return heatmap_html(cleaned.split(), att.scores[0], label) + LEGEND, facts


def explorer(teacher, cfg, examples: Sequence[str], label_names: Sequence[str]):
    """An ipywidgets explorer: pick one of ``examples`` or type a tweet, press Enter/Explain, see the
    heatmap. Returns the widget; display the static fallback (:func:`explain_one`) next to it."""
    import ipywidgets as widgets

    box = widgets.Combobox(value=examples[0], options=list(examples), ensure_option=False,
                           placeholder="type or pick a tweet", description="tweet",
                           layout=widgets.Layout(width="90%"))
    button = widgets.Button(description="Explain", button_style="primary")
    out = widgets.HTML()

    def run(_=None):
        body, facts = explain_one(teacher, box.value, cfg, label_names)
        extra = (f'<div style="font-size:85%;color:#555">convergence delta {facts["delta"]:+.2e}</div>'
                 if facts else "")
        out.value = body + extra

    button.on_click(run)
    box.on_submit(run)
    run()
    return widgets.VBox([widgets.HBox([box, button]), out])


def steps_frame(rows: Sequence[dict[str, Any]]):
    """The rows of :func:`dixtill_lib.explain.steps_study` (or the ``ig_steps`` rows of a result file)
    as a table indexed by the number of steps."""
    import pandas as pd

    cols = ["n_steps", "mean_abs_delta", "median_abs_delta", "max_abs_delta", "cosine_to_ref",
            "top3_agreement_to_ref", "seconds"]
    f = pd.DataFrame(list(rows))
    f["n_steps"] = f["n_steps"].astype(int)
    return f[[c for c in cols if c in f.columns]].set_index("n_steps")


def alignment_frame(tokenizer, text: str, max_length: int = 64):
    """Which student word each word piece of ``text`` is merged into (a teaching table)."""
    import pandas as pd

    from .explain import piece_to_word

    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    tw = piece_to_word(text, enc["offset_mapping"], enc["special_tokens_mask"])
    words = text.split()
    return pd.DataFrame({"piece": tokenizer.convert_ids_to_tokens(enc["input_ids"]),
                         "characters": [f"{s}–{e}" for s, e in enc["offset_mapping"]],
                         "student word": [words[w] if w >= 0 else "(dropped)" for w in tw]})


def example_tweets(ds, per_class: int = 2, max_words: int = 16) -> tuple[list[str], list[str]]:
    """The first ``per_class`` tweets of each class with at most ``max_words`` words: (texts, label names)."""
    texts, labels = [], []
    for c, name in enumerate(ds.label_names):
        picked = [t for t, y in zip(ds.texts, ds.labels) if y == c and 4 <= len(t.split()) <= max_words][:per_class]
        texts += picked
        labels += [name] * len(picked)
    return texts, labels


def faithfulness_plot(results: dict[str, dict], ax=None, title: str = ""):
    """Comprehensiveness and sufficiency per deletion ratio for several explanations
    (``{name: aopc(...) result or result-file row}``)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, res in results.items():
        ratios = [100 * r for r in res["ratios"]]
        ax[0].plot(ratios, res["comprehensiveness_by_ratio"], marker="o", label=name)
        ax[1].plot(ratios, res["sufficiency_by_ratio"], marker="o", label=name)
    ax[0].set_title("comprehensiveness (higher = more faithful)")
    ax[1].set_title("sufficiency (lower = more faithful)")
    for a in ax:
        a.set_xlabel("% of words removed / kept")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    if title:
        ax[0].figure.suptitle(title)
    return ax
