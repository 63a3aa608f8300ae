"""Static diagrams drawn with matplotlib (they render offline, in HTML and in Jupyter)."""
from __future__ import annotations

#: (x, y, text, colour) boxes of the book's pipeline figure, on a 0..12 x 0..5 canvas.
_BOXES = {
    "data": (0.9, 3.6, "financial tweets\n(3 classes)\nch. 2", "#e8eef7"),
    "teacher": (3.3, 3.6, "teacher LLM\nMiniLM / FinBERT\nch. 2", "#d6e4f5"),
    "ig": (5.8, 3.6, "Integrated-Gradients\nword attributions σ_T\nch. 3", "#fdebd3"),
    "student": (8.5, 3.6, "DiXtill student\nGloVe→BiLSTM→attention\nCE + KD + cos(σ_S, σ_T)\nch. 4", "#dff2df"),
    "compress": (3.3, 1.2, "int8 PTQ and\nattention-head pruning\nch. 5", "#eadff2"),
    "gen": (6.5, 1.2, "RetriKT: soft prompts + PPO\n→ knowledge store (faiss)\n→ tiny retrieval model\nch. 6", "#f7dfe3"),
    "results": (10.6, 1.2, "size · latency ·\nquality · agreement\nch. 7", "#f3f3f3"),
}
_ARROWS = [("data", "teacher", "fine-tune"), ("teacher", "ig", "explain"), ("ig", "student", "σ_T"),
           ("teacher", "student", "logits z_T"), ("teacher", "compress", ""), ("teacher", "gen", "soft labels"),
           ("student", "results", ""), ("compress", "results", ""), ("gen", "results", "")]


def pipeline_diagram(ax=None):
    """The book's pipeline: data → teacher → explanations → student, plus the two compression routes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(11.5, 5.0))
    w, h = 2.1, 1.35
    for x, y, text, colour in _BOXES.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=colour, ec="#445"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)
    for a, b, label in _ARROWS:
        (xa, ya), (xb, yb) = _BOXES[a][:2], _BOXES[b][:2]
        kw = {"arrowstyle": "-|>", "color": "#334", "lw": 1.2, "shrinkA": 38, "shrinkB": 38}
        if a == "teacher" and b == "student":
            kw["connectionstyle"] = "arc3,rad=-0.35"
        ax.annotate("", (xb, yb), (xa, ya), arrowprops=kw)
        if label:
            off = 0.95 if (a, b) == ("teacher", "student") else 0.12
            ax.text((xa + xb) / 2, (ya + yb) / 2 + off, label, ha="center", va="bottom", fontsize=8, color="#334",
                    style="italic")
    ax.set_xlim(-0.4, 11.9)
    ax.set_ylim(0.2, 5.0)
    ax.set_axis_off()
    ax.set_title("What the book builds, chapter by chapter", fontsize=11)
    return ax
