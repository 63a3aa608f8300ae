"""Look at the built book like a reader would: open every chapter in headless Chromium, save a screenshot,
and fail on what a reader would see as broken. That means tracebacks or ``…Error`` in cell outputs,
empty or blank figures, ``<Figure … with 0 Axes>``, and widgets that never render ("Loading widget").

    python -m dixtill_lib.benchmarks.browser_check [--html _build/html] [--out screenshots] [--build]

Without ``--html`` it uses ``_build/html`` of the repository, or builds the book first with ``--build``.
Chromium is installed with apt-get (Debian package ``chromium``) when it is missing and we are root."""
from __future__ import annotations

import argparse
import base64
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import REPO_ROOT

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=8000")
ERROR_WORD_RE = re.compile(r"(?<!raise )\b(?:[A-Z][A-Za-z]*Error|Error|Traceback)\b")
EMPTY_FIGURE_RE = re.compile(r"<Figure size [0-9.]+x[0-9.]+ with 0 Axes>")


@dataclass
class PageReport:
    chapter: str
    screenshot: Path | None = None
    figures: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_chromium(install: bool = True) -> str:
    """Path of a Chromium binary; installs Debian's ``chromium`` with apt-get if allowed and missing."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("chromium not found: installing it with apt-get (takes a few minutes) …", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL)
        return find_chromium(install=False)
    raise RuntimeError("No Chromium found: install it (Debian: `apt-get install -y chromium`) or put it on PATH.")


def _chromium(binary: str, url: str, profile: Path, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def screenshot(binary: str, page: Path, out: Path, profile: Path, size: str = "1280,2400") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _chromium(binary, page.resolve().as_uri(), profile, f"--screenshot={out.resolve()}", f"--window-size={size}")
    if not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot for {page}")
    return out


def rendered_dom(binary: str, page: Path, profile: Path) -> str:
    """The page's DOM after its JavaScript ran (``--dump-dom``)."""
    return _chromium(binary, page.resolve().as_uri(), profile, "--dump-dom").stdout


def _image_is_blank(data: bytes) -> bool:
    from PIL import Image, ImageStat

    img = Image.open(io.BytesIO(data)).convert("L")
    if img.width < 20 or img.height < 20:
        return True
    return max(ImageStat.Stat(img).stddev) < 2.0          # one flat colour


def check_dom(dom: str, page: Path) -> tuple[list[str], list[str], int]:
    """Problems and notes a reader would notice in one rendered page; also counts the figures."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(dom, "html.parser")
    problems, notes = [], []
    if not soup.find("article") and not soup.find("main"):
        problems.append("the page has no article/main content (did it render?)")
    figures = 0
    for i, out in enumerate(soup.select("div.cell_output")):
        text = out.get_text(" ", strip=True)
        classes = " ".join(" ".join(el.get("class", [])) for el in out.find_all(True))
        if "traceback" in classes:
            problems.append(f"output {i}: a traceback is shown")
        elif "stderr" in classes:
            snippet = " ".join(el.get_text(" ", strip=True) for el in out.select(".stderr"))[:160]
            if ERROR_WORD_RE.search(snippet.replace("UserWarning", "")):
                problems.append(f"output {i}: stderr shows an error: {snippet!r}")
            else:
                notes.append(f"output {i}: stderr text is visible: {snippet!r}")
        m = ERROR_WORD_RE.search(text)
        if m and "traceback" not in classes:
            problems.append(f"output {i}: {m.group(0)!r} in a cell output: {text[max(0, m.start() - 60): m.end() + 60]!r}")
        if EMPTY_FIGURE_RE.search(text):
            problems.append(f"output {i}: an empty matplotlib figure ({EMPTY_FIGURE_RE.search(text).group(0)})")
        if "Loading widget" in text or "Loading widget" in str(out):
            problems.append(f"output {i}: an ipywidget that did not render ('Loading widget…')")
        for img in out.find_all("img"):
            figures += 1
            src = img.get("src", "")
            try:
                if src.startswith("data:image/png;base64,"):
                    data = base64.b64decode(src.split(",", 1)[1])
                elif src.startswith("data:"):
                    continue
                else:
                    data = (page.parent / src).read_bytes()
            except OSError:
                problems.append(f"output {i}: figure {src!r} is missing")
                continue
            if src.endswith(".svg"):
                continue
            if _image_is_blank(data):
                problems.append(f"output {i}: figure {src[:60]!r} is blank")
    if "Loading widget" in soup.get_text(" "):
        problems.append("the page shows 'Loading widget…' (a widget without a static fallback)")
    raw = unrendered_math(soup)
    if raw:
        problems.append(f"{len(raw)} formula(s) shown as raw LaTeX (MathJax did not run), e.g. {raw[0][:60]!r}")
    return problems, notes, figures


def unrendered_math(soup) -> list[str]:
    """LaTeX sources of ``.math`` elements that MathJax left as text (no rendered MathJax element inside)."""
    raw = []
    for el in soup.select(".math"):
        if el.find(class_=re.compile(r"^(MathJax|MJX|mjx)")) or el.find("mjx-container") or el.find("script"):
            continue
        text = el.get_text("", strip=True)
        if text.startswith(("\\(", "\\[", "\\begin", "$")):
            raw.append(text)
    return raw


def check_book(html_dir: Path, out_dir: Path, chapters: list[str] | None = None, binary: str | None = None) -> list[PageReport]:
    """Screenshot and check every chapter page (docnames from ``_toc.yml`` unless given)."""
    from ..book import toc_docnames

    binary = binary or find_chromium()
    chapters = chapters or toc_docnames(REPO_ROOT)
    reports = []
    with tempfile.TemporaryDirectory(prefix="dixtill-chromium-") as profile:
        for doc in chapters:
            page = html_dir / f"{doc}.html"
            rep = PageReport(Path(doc).name)
            if not page.is_file():
                rep.problems.append(f"no page {page}")
                reports.append(rep)
                continue
            rep.screenshot = screenshot(binary, page, out_dir / f"{Path(doc).name}.png", Path(profile))
            with open(rep.screenshot, "rb") as f:
                if _image_is_blank(f.read()):
                    rep.problems.append("the screenshot is blank")
            problems, rep.notes, rep.figures = check_dom(rendered_dom(binary, page, Path(profile)), page)
            rep.problems += problems
            reports.append(rep)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default=None, help="built HTML folder (default: <repo>/_build/html)")
    parser.add_argument("--out", default=str(REPO_ROOT / "screenshots"), help="screenshot folder (git-ignored)")
    parser.add_argument("--build", action="store_true", help="build the quick-mode book first")
    args = parser.parse_args(argv)
    html = Path(args.html) if args.html else REPO_ROOT / "_build" / "html"
    if args.build:
        from ..book import build_book

        res = build_book(REPO_ROOT, "quick")
        html = res.html_dir
    if not html.is_dir():
        print(f"no HTML at {html}: build the book first (python -m dixtill_lib book) or pass --build", file=sys.stderr)
        return 2
    reports = check_book(html, Path(args.out))
    bad = 0
    for r in reports:
        status = "OK " if not r.problems else "BAD"
        bad += bool(r.problems)
        print(f"{status} {r.chapter:28s} figures={r.figures:2d}  screenshot={r.screenshot}")
        for p in r.problems:
            print(f"      problem: {p}")
        for n in r.notes:
            print(f"      note:    {n}")
    print(f"\n{len(reports) - bad}/{len(reports)} chapters look right; screenshots in {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
