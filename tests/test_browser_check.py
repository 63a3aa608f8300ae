"""The reader's-eye checks on rendered chapter HTML (no browser needed for these)."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from dixtill_lib.benchmarks.browser_check import check_dom


def png(array) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def page(*outputs: str) -> str:
    cells = "".join(f'<div class="cell_output docutils container">{o}</div>' for o in outputs)
    return f"<html><body><main><article>{cells}</article></main></body></html>"


def test_a_clean_page_with_a_real_figure_passes(tmp_path):
    rng = np.random.default_rng(0)
    figure = png(rng.integers(0, 255, (60, 80)))
    problems, notes, figures = check_dom(page(f'<img src="{figure}">', "<table><tr><td>0.84</td></tr></table>"),
                                         tmp_path / "p.html")
    assert problems == [] and notes == [] and figures == 1


def test_errors_blank_figures_empty_figures_and_widgets_are_caught(tmp_path):
    (tmp_path / "_images").mkdir()
    Image.new("RGB", (100, 80), "white").save(tmp_path / "_images" / "blank.png")
    dom = page('<div class="output traceback highlight-ipythontb"><pre>Traceback (most recent call last)</pre></div>',
               "<pre>ValueError: bad shape</pre>",
               '<img src="_images/blank.png">',
               "<pre>&lt;Figure size 640x480 with 0 Axes&gt;</pre>",
               "<div>Loading widget...</div>",
               '<div class="output stderr"><pre>UserWarning: dropped 4 rows</pre></div>')
    problems, notes, figures = check_dom(dom, tmp_path / "p.html")
    text = "\n".join(problems)
    assert "output 0: a traceback is shown" in text
    assert "'ValueError'" in text
    assert "blank" in text
    assert "empty matplotlib figure" in text
    assert "did not render" in text
    assert figures == 1
    assert notes and "stderr" in notes[0]


def test_raw_latex_is_caught_and_rendered_math_passes(tmp_path):
    raw = '<p><span class="math notranslate nohighlight">\\(L = 0.1\\,L_{CE}\\)</span></p>'
    rendered = ('<p><span class="math notranslate nohighlight"><span class="MathJax_Preview"></span>'
                '<span class="MathJax" id="MathJax-Element-1-Frame">L</span>'
                '<script type="math/tex">L = 0.1\\,L_{CE}</script></span></p>')
    problems, _, _ = check_dom(f"<html><body><main><article>{raw}</article></main></body></html>", tmp_path / "p.html")
    assert len(problems) == 1 and "raw LaTeX" in problems[0] and "L_{CE}" in problems[0]
    problems, _, _ = check_dom(f"<html><body><main><article>{rendered}</article></main></body></html>",
                               tmp_path / "p.html")
    assert problems == []


def test_offline_mathjax_is_packaged_and_configured_for_myst():
    from dixtill_lib import offline_math

    source = offline_math.mathjax_source()
    assert source is not None and (source / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file(), \
        "jupyter-server-mathjax missing: run bash .ci/install"
    cfg = offline_math.mathjax2_config("math|output_area")["tex2jax"]
    assert cfg["processClass"] == "math|output_area" and ["$", "$"] not in cfg["inlineMath"]
