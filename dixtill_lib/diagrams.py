"""Static diagrams drawn with matplotlib (they render offline, in HTML and in Jupyter)."""
from __future__ import annotations

#: (x, y, text, colour) boxes of the book's pipeline figure, on a 0..11 x 0..5 canvas.
_BOXES = {
    "data": (1.0, 3.6, "financial tweets\n(3 classes)\nch. 2", "#e8eef7"),
    "teacher": (3.9, 3.6, "teacher LLM\nMiniLM / FinBERT\nch. 2", "#d6e4f5"),
    "ig": (6.8, 3.6, "Integrated-Gradients\nword attributions σ_T\nch. 3", "#fdebd3"),
    "student": (9.9, 3.6, "DiXtill student\nGloVe→BiLSTM→attention\nCE + KD + cos(σ_S, σ_T)\nch. 4", "#dff2df"),
    "compress": (3.9, 1.2, "int8 PTQ and\nattention-head pruning\nch. 5", "#eadff2"),
    "gen": (6.8, 1.2, "RetriKT: soft prompts + PPO\n→ knowledge store (faiss)\n→ tiny retrieval model\nch. 6", "#f7dfe3"),
    "results": (9.9, 1.2, "size · latency ·\nquality · agreement\nch. 7", "#f3f3f3"),
}
_ARROWS = [("data", "teacher", ""), ("teacher", "ig", ""), ("ig", "student", ""),
           ("teacher", "student", "logits z_T (and σ_T)"), ("teacher", "compress", ""), ("teacher", "gen", "soft labels"),
           ("student", "results", ""), ("compress", "results", ""), ("gen", "results", "")]


def _edge_point(x0: float, y0: float, x1: float, y1: float, w: float, h: float, pad: float = 0.12):
    """Where the segment from box centre (x0, y0) towards (x1, y1) leaves a w×h box (plus ``pad``)."""
    dx, dy = x1 - x0, y1 - y0
    sx = (w / 2 + pad) / abs(dx) if dx else float("inf")
    sy = (h / 2 + pad) / abs(dy) if dy else float("inf")
    t = min(sx, sy)
    return x0 + t * dx, y0 + t * dy


def pipeline_diagram(ax=None):
    """The book's pipeline: data → teacher → explanations → student, plus the two compression routes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(11.5, 5.0))
    w, h = 2.45, 1.4
    for x, y, text, colour in _BOXES.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=colour, ec="#445"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)
    for a, b, label in _ARROWS:
        (xa, ya), (xb, yb) = _BOXES[a][:2], _BOXES[b][:2]
        start = _edge_point(xa, ya, xb, yb, w, h)
        end = _edge_point(xb, yb, xa, ya, w, h)
        kw = {"arrowstyle": "-|>", "color": "#334", "lw": 1.2, "shrinkA": 0, "shrinkB": 0}
        if (a, b) == ("teacher", "student"):         # over the top of the explanation box
            start, end = (xa + 0.3, ya + h / 2 + 0.1), (xb - 0.3, yb + h / 2 + 0.1)
            kw["connectionstyle"] = "arc3,rad=-0.25"
        if (a, b) == ("compress", "results"):        # under the RetriKT box
            start, end = (xa + 0.3, ya - h / 2 - 0.1), (xb - 0.3, yb - h / 2 - 0.1)
            kw["connectionstyle"] = "arc3,rad=0.12"
        ax.annotate("", end, start, arrowprops=kw)
        if label:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            if (a, b) == ("teacher", "student"):
                my += 0.72
            ax.text(mx, my + 0.08, label, ha="center", va="bottom", fontsize=8, color="#334", style="italic")
    ax.set_xlim(-0.4, 11.3)
    ax.set_ylim(-0.1, 5.6)
    ax.set_axis_off()
    ax.set_title("What the book builds, chapter by chapter", fontsize=11, pad=2)
    return ax
