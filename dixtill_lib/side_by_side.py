"""Word explanations of the same tweets, side by side, as coloured HTML (static: renders in the book,
in Jupyter and in any browser). Green = the word pushes *towards* the explained class, red = away;
the colour strength is the score divided by the largest |score| of that row."""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np


def _word_spans(words: Sequence[str], scores: np.ndarray) -> str:
    s = np.asarray(scores, dtype=np.float64)[:len(words)]
    top = float(np.max(np.abs(s))) if s.size else 0.0
    out = []
    for w, v in zip(words, np.pad(s, (0, len(words) - len(s)))):
        a = 0.0 if top == 0 else min(1.0, abs(v) / top)
        rgb = "0,140,60" if v >= 0 else "200,30,30"
        out.append(f'<span title="{v:+.3f}" style="background: rgba({rgb},{0.85 * a:.2f}); padding: 1px 3px; '
                   f'margin: 1px; border-radius: 3px; display: inline-block">{html.escape(w)}</span>')
    return " ".join(out)


class SideBySide:
    """``SideBySide(texts, {"teacher IG": [...], "DiXtill σm": [...]}, captions=[...])`` displays a table:
    one block per text, one row per explanation. ``str(obj)`` / ``obj.html`` is the HTML."""

    def __init__(self, texts: Sequence[str], explanations: Mapping[str, Sequence[np.ndarray]],
                 captions: Sequence[str] | None = None):
        for name, ex in explanations.items():
            if len(ex) != len(texts):
                raise ValueError(f"explanation {name!r} has {len(ex)} rows for {len(texts)} texts.")
        self.texts, self.explanations = list(texts), dict(explanations)
        self.captions = list(captions) if captions is not None else [""] * len(self.texts)

    @property
    def html(self) -> str:
        rows = []
        for i, text in enumerate(self.texts):
            words = text.split()
            cap = html.escape(self.captions[i]) if self.captions[i] else ""
            rows.append(f'<tr><td colspan="2" style="text-align:left; padding-top:10px; border-top:1px solid #ccc">'
                        f'<b>tweet {i + 1}</b> <span style="color:#555">{cap}</span></td></tr>')
            for name, ex in self.explanations.items():
                rows.append(f'<tr><td style="text-align:right; white-space:nowrap; padding-right:8px; color:#333">'
                            f'{html.escape(name)}</td><td style="text-align:left">{_word_spans(words, ex[i])}</td></tr>')
        legend = ('<p style="font-size:90%"><span style="background: rgba(0,140,60,0.6); padding:1px 4px">towards the '
                  'explained class</span> <span style="background: rgba(200,30,30,0.6); padding:1px 4px">away from it'
                  '</span> — colour strength = |score| / largest |score| in the row; hover a word for its score.</p>')
        return legend + '<table style="border-collapse:collapse">' + "".join(rows) + "</table>"

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html
