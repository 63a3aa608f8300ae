"""Student-notebook generator: solution cells become stubs, everything else is kept; exercise listing."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import nbformat
import pytest

from dixtill_lib import student_version as sv

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

CHAPTER = HEADER + textwrap.dedent('''
    # A chapter

    ```{code-cell} ipython3
    x = 41
    ```

    **Exercise 1.1: add one.** Write `add_one`.

    ```{code-cell} ipython3
    :tags: [solution, hide-input]

    import math

    def add_one(v: int,
                step: int = 1) -> int:
        """Return v + step."""
        return v + step
    ```

    ```{code-cell} ipython3
    from dixtill_lib.exercises import correct
    def check_add_one(fn):
        assert fn(1) == 2
        return correct("ok")
    print(check_add_one(add_one))
    ```

    **Exercise 1.2: a value.**

    ```{code-cell} ipython3
    :tags: [solution]

    answer = x + 1
    ```

    ```{code-cell} ipython3
    print(answer)
    ```

    ```{code-cell} ipython3
    :tags: [hide-input]

    print("kept")
    ```
    ''')


@pytest.fixture()
def book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "01_intro.md").write_text(CHAPTER)
    (tmp_path / "book" / "02_more.md").write_text(HEADER + "\n# More\n\n```{code-cell} ipython3\nprint(1)\n```\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/01_intro\nchapters:\n  - file: book/02_more\n")
    return tmp_path


def test_stub_keeps_imports_signature_and_docstring():
    src = 'import re\n\n@decorator\ndef f(a,\n      b=2):\n    """Doc\n\n    more."""\n    return a + b\n\ndef g(x): return x\n'
    out = sv.stub_source(src)
    assert "return a + b" not in out and "return x" not in out
    assert out.count("raise NotImplementedError") == 2 and out.count(sv.STUB) == 2
    assert 'import re' in out and "@decorator" in out and "def f(a,\n      b=2):" in out and '"""Doc\n\n    more."""' in out
    tree = ast.parse(out)                                   # the stub is valid Python
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == ["f", "g"]


def test_stub_without_functions_and_unparsable_cells():
    assert sv.stub_source("y = 1\nz = 2") == f"{sv.STUB}\nraise NotImplementedError"
    assert sv.stub_source("%timeit f()") == f"{sv.STUB}\nraise NotImplementedError"
    out = sv.stub_source("class A:\n    '''Doc.'''\n    def m(self):\n        return 1\n")
    assert "return 1" not in out and "def m(self):" in out and "'''Doc.'''" in out
    ast.parse(out)


def test_student_notebooks_remove_every_solution_and_keep_the_rest(book, tmp_path):
    out = tmp_path / "students"
    paths = sv.write_student_notebooks(out, book)
    assert [p.name for p in paths] == ["01_intro.ipynb", "02_more.ipynb"]
    nb = nbformat.read(paths[0], as_version=4)
    nbformat.validate(nb)
    sources = [c.source for c in nb.cells]
    assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    assert not any("return v + step" in s or "answer = x + 1" in s for s in sources)
    original = __import__("jupytext").read(book / "book" / "01_intro.md")
    assert len(nb.cells) == len(original.cells)              # one stub per solution, nothing else removed
    kept = [c.source for c in original.cells if "solution" not in c.metadata.get("tags", [])]
    assert all(s in sources for s in kept)
    stubs = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(stubs) == 2
    assert "def add_one(v: int,\n            step: int = 1) -> int:" in stubs[0].source
    assert "hide-input" not in stubs[0].metadata["tags"]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) == 1 and "check_add_one(add_one)" in checks[0].source
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_exercise_table_lists_titles_functions_and_checkers(book):
    table = sv.exercise_table(book)
    assert table.index.tolist() == ["1.1", "1.2"]
    assert table["task"].tolist() == ["add one", "a value"]
    assert table["chapter"].tolist() == ["intro", "intro"]
    assert table["you write"].tolist() == ["add_one", "—"]
    assert table["checked by"].tolist() == ["check_add_one", "—"]


def test_missing_toc_or_chapter_is_a_clear_error(tmp_path, book):
    with pytest.raises(sv.StudentVersionError, match="No _toc.yml"):
        sv.toc_chapters(tmp_path / "nowhere")
    (book / "book" / "02_more.md").unlink()
    with pytest.raises(sv.StudentVersionError, match="02_more.md does not exist"):
        sv.write_student_notebooks(tmp_path / "s", book)
    assert sv.main([str(tmp_path / "s"), "--root", str(book)]) == 2


def test_cli_on_the_real_book_stubs_every_solution(tmp_path):
    """Every chapter of this repository: the student versions contain no solution code."""
    root = Path(sv.__file__).resolve().parent.parent
    import jupytext

    paths = sv.write_student_notebooks(tmp_path, root)
    assert len(paths) == len(sv.toc_chapters(root))
    for chapter, path in zip(sv.toc_chapters(root), paths):
        solutions = [c.source for c in jupytext.read(chapter).cells if sv.is_solution(c)]
        student = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        for sol in solutions:
            body_lines = [ln for ln in sol.splitlines() if ln.strip() and not ln.lstrip().startswith(
                ("def ", "import ", "from ", '"""', "class ", "@", "#")) and not ln.strip().endswith('"""')]
            leaked = [ln for ln in body_lines if ln in text.splitlines()]
            assert not leaked, f"{chapter.name}: solution lines leaked into the student version: {leaked[:3]}"
