"""CLI step ``book``: execute every chapter and build the HTML book, failing on any warning or cell error.

``python -m dixtill_lib book [--quick|--full] [--path-output DIR] [--all]`` runs
``jupyter-book build <repo> -W --keep-going`` with ``DIXTILL_MODE`` set. Chapters are executed through the
jupyter-cache (``<build>/.jupyter_cache``), so an unchanged chapter is not re-run. Afterwards it reads each
chapter's execution time from that cache, checks the generated HTML for tracebacks and error outputs,
(a chapter that reads committed results is re-executed when ``results/*.json`` changed since the last build),
and writes the timings to ``results[/quick]/book_timings.json``. Any warning, cell error or missing page
raises :class:`BookBuildError`. The timings file is written first, so it still shows what ran."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import REPO_ROOT, get_mode
from .results import write_results
from .tables import format_table


class BookBuildError(RuntimeError):
    """The book did not build cleanly; the message lists what failed and where the logs are."""


@dataclass
class BuildResult:
    returncode: int
    seconds: float
    log: str
    build_dir: Path                      # <path-output>/_build
    warnings: list[str] = field(default_factory=list)

    @property
    def html_dir(self) -> Path:
        return self.build_dir / "html"

    @property
    def cache_dir(self) -> Path:
        return self.build_dir / ".jupyter_cache"


def jupyter_book_executable() -> str:
    """``jupyter-book`` from the running interpreter's environment (falls back to ``$PATH``)."""
    here = Path(sys.executable).parent / "jupyter-book"
    if here.is_file():
        return str(here)
    found = shutil.which("jupyter-book")
    if found:
        return found
    raise BookBuildError("jupyter-book is not installed in this environment: run "
                         "`pip install -e '.[book]'` (or `bash .ci/install`).")


def build_env(mode: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the chapters run in: the caller's, plus ``DIXTILL_MODE`` and quiet libraries."""
    env = os.environ.copy()
    env["DIXTILL_MODE"] = get_mode(mode)
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")   # no tqdm widgets ("Loading weights") in the HTML
    # the kernel must import this checkout's dixtill_lib, and find jupyter tools next to the interpreter
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra or {})
    return env


WARNING_RE = re.compile(r"(WARNING|ERROR|CRITICAL):")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def build_book(root: str | Path = REPO_ROOT, mode: str | None = None, path_output: str | Path | None = None,
               fresh_env: bool = False, env: dict[str, str] | None = None, echo: bool = True,
               timeout: float | None = None) -> BuildResult:
    """Run ``jupyter-book build`` with ``-W --keep-going``; return its exit code, log and timing.

    ``path_output`` puts ``_build/`` (HTML and execution cache) somewhere other than ``root``.
    ``fresh_env`` (``--all``) makes Sphinx re-read every page; it still reuses the execution cache."""
    root = Path(root).resolve()
    build_dir = (Path(path_output).resolve() if path_output is not None else root) / "_build"
    dropped = invalidate_result_readers(build_dir, root)
    if dropped:
        fresh_env = True  # Sphinx only re-reads changed sources: force it, or the dropped chapters stay stale
        if echo:
            print(f"[dixtill] results/*.json changed: re-executing {', '.join(sorted(dropped))}", flush=True)
    cmd = [jupyter_book_executable(), "build", str(root), "-W", "--keep-going"]
    if path_output is not None:
        cmd += ["--path-output", str(Path(path_output).resolve())]
    if fresh_env:
        cmd.append("--all")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env or build_env(get_mode(mode)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
        if timeout is not None and time.perf_counter() - t0 > timeout:
            proc.kill()
            lines.append(f"\n[dixtill] build killed after {timeout:.0f} s\n")
            break
    rc = proc.wait()
    seconds = time.perf_counter() - t0
    log = ANSI_RE.sub("", "".join(lines))
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "book_build.log").write_text(log)
    warnings = [ln.strip() for ln in log.splitlines() if WARNING_RE.search(ln)]
    return BuildResult(rc, seconds, log, build_dir, warnings)


# ------------------------------------------------------------------ committed results vs the execution cache

#: A chapter that contains one of these reads committed result files.
RESULT_READERS = ("load_result", "load_all(")


def results_fingerprint(results: Path) -> str:
    """Hash of every committed ``results/*.json`` (names and bytes; quick results excluded)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(results.glob("*.json")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def invalidate_result_readers(build_dir: Path, root: str | Path = REPO_ROOT, results: Path | None = None) -> list[str]:
    """The execution cache keys on a chapter's code only, so a newly committed result file would not
    show up in a cached chapter. When ``results/*.json`` changed since the last build (or the build folder
    has no fingerprint yet), drop the cached executions of every chapter that reads results; return the
    chapters dropped."""
    root = Path(root).resolve()
    if results is None:
        env = os.environ.get("DIXTILL_RESULTS")
        results = Path(env) if env else root / "results"
    stamp = build_dir / ".results_fingerprint"
    now = results_fingerprint(results)
    before = stamp.read_text().strip() if stamp.is_file() else None
    dropped: list[str] = []
    cache_path = build_dir / ".jupyter_cache"
    if before != now and cache_path.is_dir():   # no stamp yet: cached outputs of unknown vintage
        from jupyter_cache import get_cache

        cache = get_cache(str(cache_path))
        for rec in cache.list_cache_records():
            src = Path(rec.uri)
            if src.is_file() and any(m in src.read_text(encoding="utf-8", errors="replace") for m in RESULT_READERS):
                cache.remove_cache(rec.pk)
                dropped.append(src.stem)
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(now + "\n")
    return dropped


# ------------------------------------------------------------------ timings and checks

def toc_docnames(root: str | Path = REPO_ROOT) -> list[str]:
    """Chapter docnames (``book/02_data_and_teacher``) in table-of-contents order."""
    from .student_version import toc_chapters

    root = Path(root).resolve()
    return [str(p.relative_to(root).with_suffix("")) for p in toc_chapters(root)]


_EXECUTED_RE = re.compile(r"([^\s:]+\.(?:md|ipynb)).*?Executed notebook in ([0-9.]+) seconds")
_CACHED_RE = re.compile(r"([^\s:]+\.(?:md|ipynb)).*?Using cached notebook")


def chapter_timings(result: BuildResult, root: str | Path = REPO_ROOT) -> list[dict[str, Any]]:
    """One row per chapter: execution seconds (from the jupyter-cache), and whether it was executed in
    this build, taken from the cache, or failed (then the report file)."""
    root = Path(root).resolve()
    seconds: dict[str, float] = {}
    if result.cache_dir.is_dir():
        from jupyter_cache import get_cache

        for rec in get_cache(str(result.cache_dir)).list_cache_records():
            if rec.data and "execution_seconds" in rec.data:
                seconds[str(Path(rec.uri).resolve())] = float(rec.data["execution_seconds"])
    executed = {str(Path(m.group(1)).resolve()): float(m.group(2)) for m in _EXECUTED_RE.finditer(result.log)}
    cached = {str(Path(m.group(1)).resolve()) for m in _CACHED_RE.finditer(result.log)}
    rows = []
    for doc in toc_docnames(root):
        src = next((p for p in (root / f"{doc}.md", root / f"{doc}.ipynb") if p.is_file()), root / f"{doc}.md")
        key = str(src.resolve())
        report = result.html_dir / "reports" / f"{doc}.err.log"
        if report.is_file():
            status = "failed"
        elif key in executed:
            status = "executed"
        elif key in cached:
            status = "cached"
        elif not src.is_file():
            status = "missing"
        else:
            status = "not executed"
        secs = executed.get(key, seconds.get(key))
        rows.append({"method": Path(doc).name, "seconds": None if secs is None else round(secs, 1),
                     "status": status, "report": str(report) if report.is_file() else ""})
    return rows


ERROR_MARKERS = ("Traceback (most recent call last)", 'class="output traceback', "output error",
                 "Executing notebook failed")


def check_html(result: BuildResult, root: str | Path = REPO_ROOT) -> list[str]:
    """Problems a reader would see: a missing chapter page, or a traceback / error output in a page."""
    problems = []
    for doc in toc_docnames(root):
        page = result.html_dir / f"{doc}.html"
        if not page.is_file():
            problems.append(f"{doc}: no HTML page {page}")
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        for marker in ERROR_MARKERS:
            if marker in text:
                problems.append(f"{doc}: the page contains {marker!r} (a cell raised)")
                break
    return problems


def verify(result: BuildResult, timings: list[dict[str, Any]], root: str | Path = REPO_ROOT) -> None:
    """Raise :class:`BookBuildError` on a non-zero exit, any warning, a failed chapter or a bad page."""
    problems = []
    if result.returncode != 0:
        problems.append(f"jupyter-book exited with code {result.returncode}")
    problems += [f"warning: {w}" for w in result.warnings]
    problems += [f"{r['method']}: execution failed, see {r['report']}" for r in timings if r["status"] == "failed"]
    problems += [f"{r['method']}: chapter file missing" for r in timings if r["status"] == "missing"]
    problems += check_html(result, root) if result.html_dir.is_dir() else ["no HTML was built"]
    if problems:
        shown = "\n  ".join(problems[:40])
        raise BookBuildError(f"The book did not build cleanly ({len(problems)} problem(s)); full log in "
                             f"{result.build_dir / 'book_build.log'}:\n  {shown}")


# ------------------------------------------------------------------ the CLI step

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path-output", default=None, help="build into DIR/_build instead of the repository")
    p.add_argument("--all", dest="fresh_env", action="store_true",
                   help="re-read every page (the execution cache is still used)")


def run_step(args: argparse.Namespace) -> Path:
    mode = get_mode(args.mode)
    result = build_book(REPO_ROOT, mode, getattr(args, "path_output", None), getattr(args, "fresh_env", False))
    timings = chapter_timings(result)
    executed = sum(r["seconds"] or 0 for r in timings if r["status"] == "executed")
    print()
    print(format_table([{**r, "seconds": "—" if r["seconds"] is None else f"{r['seconds']:.1f}"} for r in timings],
                       ["method", "seconds", "status"]))
    print(f"build wall time {result.seconds:.0f} s; chapters executed in this build: {executed:.0f} s")
    path = write_results("book_timings", timings, mode=mode, seeds=args.seeds,
                         config={"command": "jupyter-book build -W --keep-going", "fresh_env": bool(getattr(args, "fresh_env", False)),
                                 "path_output": getattr(args, "path_output", None)},
                         path=args.out, build_seconds=round(result.seconds, 1), warnings=len(result.warnings),
                         returncode=result.returncode)
    verify(result, timings)
    return path
