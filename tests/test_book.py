"""The book as a product: every chapter in the table of contents exists and is a jupytext MyST notebook,
the configuration keeps Sphinx away from the rest of the repository, and (marked ``book``, slow) the
whole book builds in quick mode with no warning and no cell error — notebook failures are test failures."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from dixtill_lib import book as B
from dixtill_lib.student_version import toc_chapters

REPO = Path(__file__).resolve().parent.parent
EXPECTED = ["01_introduction", "02_data_and_teacher", "03_explaining_the_teacher", "04_distillation",
            "05_compression", "06_retrikt", "07_full_scale_results", "10_running_at_scale", "08_course_guide",
            "09_references"]


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert m, f"{path.name}: no YAML front matter"
    return yaml.safe_load(m.group(1))


def test_toc_lists_the_ten_chapters_in_order():
    assert [p.stem for p in toc_chapters(REPO)] == EXPECTED
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    assert toc["format"] == "jb-book" and toc["root"] == "book/01_introduction"


@pytest.mark.parametrize("chapter", toc_chapters(REPO), ids=lambda p: p.stem)
def test_chapter_exists_and_is_a_jupytext_myst_notebook(chapter):
    assert chapter.is_file(), f"{chapter} is listed in _toc.yml but does not exist"
    meta = front_matter(chapter)
    assert meta["kernelspec"]["name"] == "python3", f"{chapter.name}: kernelspec missing"
    assert meta["jupytext"]["text_representation"]["format_name"] == "myst"
    import jupytext

    nb = jupytext.read(chapter)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")
    for cell in nb.cells:                    # solution cells are hidden in the HTML (and stubbed for students)
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            assert "hide-input" in tags or "hide-cell" in tags, f"{chapter.name}: visible solution cell"


def test_config_excludes_everything_outside_the_toc():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["only_build_toc_files"] is True
    excluded = set(cfg["exclude_patterns"])
    for folder in (".venv", "_build", "tests", "results", "dixtill_lib", ".ci", "README.md"):
        assert folder in excluded, f"{folder} must be in exclude_patterns"
    assert cfg["execute"]["execute_notebooks"] == "cache" and cfg["execute"]["timeout"] >= 600
    assert cfg["bibtex_bibfiles"] == ["book/references.bib"]
    assert (REPO / "book" / "references.bib").is_file()


def test_every_cited_key_is_in_the_bibliography():
    bib = (REPO / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for chapter in toc_chapters(REPO):
        if not chapter.is_file():
            continue
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", chapter.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{chapter.name} cites unknown key {key.strip()!r}"


def test_timings_and_html_checks_on_a_fake_build(tmp_path):
    html = tmp_path / "_build" / "html" / "book"
    html.mkdir(parents=True)
    for name in EXPECTED:
        (html / f"{name}.html").write_text("<html>fine</html>")
    (html / "04_distillation.html").write_text('<div class="cell_output"><pre>Traceback (most recent call last)')
    log = f"{REPO}/book/02_data_and_teacher.md: Executed notebook in 12.34 seconds [mystnb]\n" \
          f"{REPO}/book/01_introduction.md: Using cached notebook: ID=1 [mystnb]\n" \
          f"{REPO}/book/05_compression.md: WARNING: Executing notebook failed: CellExecutionError [mystnb.exec]\n"
    reports = tmp_path / "_build" / "html" / "reports" / "book"
    reports.mkdir(parents=True)
    (reports / "05_compression.err.log").write_text("Traceback ...")
    result = B.BuildResult(1, 20.0, log, tmp_path / "_build",
                           [ln for ln in log.splitlines() if B.WARNING_RE.search(ln)])
    rows = {r["method"]: r for r in B.chapter_timings(result, REPO)}
    assert rows["02_data_and_teacher"]["status"] == "executed" and rows["02_data_and_teacher"]["seconds"] == 12.3
    assert rows["01_introduction"]["status"] == "cached"
    assert rows["05_compression"]["status"] == "failed"
    problems = B.check_html(result, REPO)
    assert problems == ["book/04_distillation: the page contains 'Traceback (most recent call last)' (a cell raised)"]
    with pytest.raises(B.BookBuildError, match=r"exited with code 1[\s\S]*Executing notebook failed[\s\S]*05_compression"):
        B.verify(result, list(rows.values()), REPO)


@pytest.mark.book
def test_quick_book_builds_without_warnings_or_cell_errors(tmp_path):
    """Builds the whole book in quick mode with a fresh model cache: any warning, any cell error, any
    missing chapter page fails. Takes ~10 minutes on 2 CPU cores."""
    env = B.build_env("quick", {"DIXTILL_CACHE": str(tmp_path / "cache")})
    env.pop("DIXTILL_RESULTS", None)       # read the committed results/, as a reader's build does
    env.setdefault("DIXTILL_DATA", os.environ["DIXTILL_DATA"])
    result = B.build_book(REPO, "quick", path_output=tmp_path / "out", env=env, echo=False, timeout=1800)
    timings = B.chapter_timings(result, REPO)
    print("\n".join(f"{r['method']:28s} {r['seconds']} s  {r['status']}" for r in timings))
    assert all(r["status"] == "executed" for r in timings), timings
    html = result.html_dir
    for doc in B.toc_docnames(REPO):
        page = html / f"{doc}.html"
        assert page.is_file(), f"missing page {page}"
        text = page.read_text(encoding="utf-8")
        assert "Traceback" not in text, f"{doc}: a traceback is visible in the HTML"
        assert 'class="output traceback' not in text and "output error" not in text, f"{doc}: a cell error output"
    B.verify(result, timings, REPO)        # exit code 0, no warning, no failed chapter


def test_changed_results_drop_cached_executions_of_chapters_that_read_them(tmp_path):
    import nbformat
    from jupyter_cache import get_cache

    root, results, build = tmp_path / "repo", tmp_path / "repo" / "results", tmp_path / "build"
    results.mkdir(parents=True)
    paths = {}
    for name, code in {"reads": "r = report.load_result('teacher')", "plain": "x = 1"}.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        paths[name] = root / f"{name}.ipynb"
        nbformat.write(nb, paths[name])
    cache = get_cache(str(build / ".jupyter_cache"))
    for p in paths.values():
        cache.cache_notebook_file(str(p), check_validity=False)
    assert B.invalidate_result_readers(build, root, results) == ["reads"]       # no fingerprint yet: unknown vintage
    assert [Path(r.uri).stem for r in cache.list_cache_records()] == ["plain"]
    cache.cache_notebook_file(str(paths["reads"]), check_validity=False)
    assert B.invalidate_result_readers(build, root, results) == []              # unchanged results
    (results / "teacher.json").write_text('{"provenance": {}, "rows": []}')
    assert B.invalidate_result_readers(build, root, results) == ["reads"]       # new file: the reader re-executes
    assert [Path(r.uri).stem for r in cache.list_cache_records()] == ["plain"]
    assert B.invalidate_result_readers(build, root, results) == []


def test_book_timing_writes_a_results_file_with_chapter_rows_and_totals(tmp_path):
    from dixtill_lib.benchmarks import book_timing as BT
    from dixtill_lib.results import load_results

    rows = [{"method": "02_data_and_teacher", "seconds": 63.0, "status": "executed"},
            {"method": "04_distillation", "seconds": 86.1, "status": "executed"}]
    warm = {r["method"]: {**r, "status": "cached"} for r in rows}
    cold_build = B.BuildResult(0, 290.2, "", tmp_path, [])
    warm_build = B.BuildResult(0, 3.0, "", tmp_path, [])
    out = tmp_path / "book_timing.json"
    BT.write_timings(str(out), "quick", rows, warm, cold_build, warm_build, (0.5, 0.4, 0.3))
    res = load_results(out)
    by = {r["method"]: r for r in res["rows"]}
    assert by["04_distillation"]["target_seconds"] == 90.0 and by["04_distillation"]["cached_status"] == "cached"
    assert by["cold build"]["seconds"] == 290.2 and by["cold build"]["target_seconds"] == 600.0
    assert by["cached rebuild"]["seconds"] == 3.0 and res["provenance"]["load_average_before"] == [0.5, 0.4, 0.3]
