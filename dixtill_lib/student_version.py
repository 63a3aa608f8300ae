"""Student notebooks: every chapter of the book with the exercise solutions removed.

``python -m dixtill_lib.student_version OUT_DIR`` reads each chapter listed in ``_toc.yml`` (jupytext
MyST Markdown) and writes ``OUT_DIR/<chapter>.ipynb`` in which each cell tagged ``solution`` is replaced
by a stub: the imports it made, then for each function (or class) it defined the ``def`` line and
docstring with the body ``# YOUR CODE HERE`` / ``raise NotImplementedError``. Outputs are dropped. The
check cell that follows each solution is tagged ``check`` so :mod:`dixtill_lib.grade` can find it.

:func:`exercise_table` lists the exercises (chapter, title, functions to write, checker) for the
course guide."""
from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import REPO_ROOT

SOLUTION_TAG = "solution"
STUB = "# YOUR CODE HERE"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class StudentVersionError(ValueError):
    """The table of contents or a chapter could not be read."""


# ------------------------------------------------------------------ the table of contents

def toc_chapters(root: str | Path = REPO_ROOT) -> list[Path]:
    """Chapter files listed in ``<root>/_toc.yml``, in reading order (root first)."""
    import yaml

    root = Path(root)
    toc_file = root / "_toc.yml"
    if not toc_file.is_file():
        raise StudentVersionError(f"No _toc.yml in {root}: pass the book's root folder.")
    toc = yaml.safe_load(toc_file.read_text())
    names: list[str] = [toc["root"]] if toc.get("root") else []

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                names.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))
    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    out = []
    for name in names:
        candidates = [root / name] if Path(name).suffix else [root / f"{name}.md", root / f"{name}.ipynb"]
        path = next((p for p in candidates if p.is_file()), candidates[0])
        out.append(path)
    return out


# ------------------------------------------------------------------ stubs

def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution(cell) -> bool:
    return cell.get("cell_type") == "code" and SOLUTION_TAG in _tags(cell)


def _header_and_doc(node: ast.AST, lines: list[str], indent: str) -> list[str]:
    """Decorators + ``def``/``class`` line(s) + docstring of ``node``, re-indented to ``indent``."""
    base = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())

    def shift(line: str) -> str:
        if not line.strip():
            return ""
        return indent + (line[base:] if base == 0 or line[:base].isspace() else line.lstrip())

    start = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno]) - 1
    body0 = node.body[0]
    if body0.lineno == node.lineno:  # one-liner "def f(x): return x": keep up to the body's start
        head_line = lines[node.lineno - 1][: body0.col_offset].rstrip()
        out = [shift(x) for x in lines[start:node.lineno - 1]] + [shift(head_line)]
    else:  # possibly multi-line signature, up to the line before the body
        out = [shift(x) for x in lines[start:body0.lineno - 1]]
    if ast.get_docstring(node, clean=False) is not None and body0.lineno != node.lineno:
        out += [shift(x) for x in lines[body0.lineno - 1: body0.end_lineno]]
    return out


def _stub_node(node: ast.AST, lines: list[str], indent: str = "") -> list[str]:
    out = _header_and_doc(node, lines, indent)
    inner = indent + "    "
    if isinstance(node, ast.ClassDef):
        methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not methods:
            return out + [inner + STUB, inner + "pass"]
        for m in methods:
            out += [""] + _stub_node(m, lines, inner)
        return out
    return out + [inner + STUB, inner + "raise NotImplementedError"]


def stub_source(source: str) -> str:
    """The student version of a solution cell's code (see the module docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics or a deliberately partial cell
        return f"{STUB}\nraise NotImplementedError"
    lines = source.splitlines()
    kept: list[str] = []
    defs = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept += lines[node.lineno - 1: node.end_lineno]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs.append(node)
    if not defs:
        return "\n".join(kept + ([""] if kept else []) + [STUB, "raise NotImplementedError"])
    parts = ["\n".join(kept)] if kept else []
    parts += ["\n".join(_stub_node(d, lines)) for d in defs]
    return "\n\n\n".join(parts) if len(defs) > 1 else "\n\n".join(parts)


def defined_names(source: str) -> list[str]:
    """Top-level functions and classes a solution cell defines."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def student_notebook(chapter: str | Path):
    """Read one chapter with jupytext and return its student version (an ``nbformat`` notebook)."""
    import jupytext
    import nbformat

    chapter = Path(chapter)
    if not chapter.is_file():
        raise StudentVersionError(f"Chapter {chapter} does not exist (listed in _toc.yml).")
    nb = jupytext.read(chapter)
    cells = []
    after_solution = False
    for cell in nb.cells:
        if is_solution(cell):
            tags = [t for t in _tags(cell) if t not in (SOLUTION_TAG, "hide-input", "hide-cell", "remove-input")]
            stub = nbformat.v4.new_code_cell(stub_source(cell.source), metadata={"tags": tags + ["exercise"]})
            cells.append(stub)
            after_solution = True
            continue
        cell = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if after_solution and "check_" in cell.source:
                cell.metadata["tags"] = [*_tags(cell), "check"]
            after_solution = False
        cells.append(cell)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata["kernelspec"] = dict(KERNELSPEC)
    out.metadata["language_info"] = {"name": "python"}
    out.metadata["dixtill"] = {"source": chapter.name, "student_version": True}
    for i, c in enumerate(out.cells):  # nbformat >= 4.5 wants ids; make them deterministic
        c["id"] = f"cell-{i}"
    return out


def write_student_notebooks(out_dir: str | Path, root: str | Path = REPO_ROOT) -> list[Path]:
    """Write the student version of every chapter in the table of contents to ``out_dir``."""
    import nbformat

    from .io import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter in toc_chapters(root):
        nb = student_notebook(chapter)
        path = out_dir / f"{chapter.stem}.ipynb"
        write_text_atomic(path, nbformat.writes(nb))
        written.append(path)
    return written


# ------------------------------------------------------------------ the list of exercises

@dataclass(frozen=True)
class Exercise:
    chapter: str
    title: str
    functions: tuple[str, ...]
    checker: str


_TITLE_RE = re.compile(r"\*\*(Exercise[^*]*)\*\*")
_CHECK_RE = re.compile(r"\b(check_\w+)\s*\(")


def exercises(root: str | Path = REPO_ROOT) -> list[Exercise]:
    """Every exercise in the book: the solution cells, titled by the nearest ``**Exercise …**`` above."""
    import jupytext

    out = []
    for chapter in toc_chapters(root):
        if not chapter.is_file():
            continue
        nb = jupytext.read(chapter)
        title = ""
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                found = _TITLE_RE.findall(cell.source)
                if found:
                    title = found[-1].strip().rstrip(".:")
            elif is_solution(cell):
                nxt = next((c for c in nb.cells[i + 1:] if c.cell_type == "code"), None)
                checker = _CHECK_RE.search(nxt.source) if nxt is not None else None
                out.append(Exercise(chapter.stem, title or "(untitled exercise)", tuple(defined_names(cell.source)),
                                    checker.group(1) if checker else "—"))
    return out


_NUMBER_RE = re.compile(r"^Exercise\s+([0-9]+(?:\.[0-9]+)*)\s*[:.\-–—]?\s*(.*)$")


def exercise_table(root: str | Path = REPO_ROOT):
    """:func:`exercises` as a compact DataFrame indexed by exercise number (for the course guide)."""
    import pandas as pd

    rows = []
    for i, e in enumerate(exercises(root), 1):
        m = _NUMBER_RE.match(e.title)
        number, task = (m.group(1), m.group(2)) if m else (str(i), e.title)
        chapter = re.sub(r"^[0-9]+_", "", e.chapter).replace("_", " ")
        rows.append({"#": number, "chapter": chapter, "task": task, "you write": ", ".join(e.functions) or "—",
                     "checked by": e.checker})
    return pd.DataFrame(rows, columns=["#", "chapter", "task", "you write", "checked by"]).set_index("#")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dixtill_lib.student_version",
                                     description="Write the student notebooks (solutions removed).")
    parser.add_argument("out_dir", help="folder for the .ipynb files")
    parser.add_argument("--root", default=str(REPO_ROOT), help="book root holding _toc.yml (default: this repo)")
    args = parser.parse_args(argv)
    try:
        paths = write_student_notebooks(args.out_dir, args.root)
    except StudentVersionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = len(exercises(args.root))
    for p in paths:
        print(p)
    print(f"{len(paths)} notebooks, {n} exercises stubbed, in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
