"""Sphinx extension: formulas render without a network.

Jupyter Book loads MathJax from a CDN, so a reader offline (or our headless-browser check) sees raw
LaTeX. This extension serves MathJax 2.7 from the book's own ``_static/mathjax`` folder instead; the
files come from the PyPI package ``jupyter-server-mathjax`` (installed ``--no-deps``: only its static
files are used). Without that package the CDN default is kept. Enabled in ``_config.yml``::

    sphinx:
      extra_extensions: [dixtill_lib.offline_math]
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

PACKAGE = "jupyter_server_mathjax"
#: where MathJax lands inside the built HTML's ``_static`` folder
STATIC_SUBDIR = "mathjax"
MATHJAX_FILE = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"


def mathjax_source() -> Path | None:
    """The folder holding ``MathJax.js`` from the installed package (not imported: it needs jupyter_server)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if (static / "MathJax.js").is_file() else None


def mathjax2_config(process_classes: str) -> dict[str, Any]:
    """MathJax 2 settings matching what MyST emits: ``\\(..\\)`` inline, ``\\[..\\]`` display, only inside
    elements of ``process_classes`` (MyST marks each page ``tex2jax_ignore``). Single ``$`` is never math:
    tweets are full of cash-tags."""
    return {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                        "processEscapes": True, "processClass": process_classes,
                        "ignoreClass": "tex2jax_ignore|mathjax_ignore|document"},
            # the package ships the STIX-Web fonts only (not MathJax's TeX fonts)
            "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                         "imageFont": None},
            "showMathMenu": False, "messageStyle": "none"}


def _use_local_mathjax(app) -> None:
    if app.builder.format != "html" or mathjax_source() is None:
        return
    classes = getattr(getattr(app.env, "myst_config", None), "mathjax_classes",
                      "tex2jax_process|mathjax_process|math|output_area")
    app.config.mathjax_path = f"{STATIC_SUBDIR}/{MATHJAX_FILE}"
    app.config.mathjax3_config = None
    app.config.mathjax2_config = mathjax2_config(classes)


def _copy_mathjax(app, exception) -> None:
    source = mathjax_source()
    if exception is not None or app.builder.format != "html" or source is None:
        return
    target = Path(app.outdir) / "_static" / STATIC_SUBDIR
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)


def setup(app) -> dict[str, Any]:
    # after myst-parser's own builder-inited hook, which writes a MathJax 3 config
    app.connect("builder-inited", _use_local_mathjax, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
