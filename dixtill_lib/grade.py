"""Grading without nbgrader: execute each submitted student notebook and read its check cells.

``python -m dixtill_lib.grade SUBMISSIONS_DIR [--out grades.csv]`` runs every ``*.ipynb`` under the folder
(one sub-folder per student, or flat files named ``<student>_<chapter>.ipynb``). An exercise passes when
its check cell (tagged ``check`` by :mod:`dixtill_lib.student_version`) printed ``Correct!``. It fails
with the checker's message when the checker raised, and it fails as "not attempted" when the stub still
raises ``NotImplementedError``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _cell_result(cell) -> tuple[bool, str]:
    text, error = [], None
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            error = (out.get("ename", ""), out.get("evalue", ""))
        elif "text/plain" in out.get("data", {}):
            text.append(out["data"]["text/plain"])
    joined = "".join(text)
    if error is not None:
        ename, evalue = error
        if ename == "NotImplementedError":
            return False, "not attempted (the stub still raises NotImplementedError)"
        return False, f"{ename}: {evalue}"
    if "Correct!" in joined:
        return True, joined.strip().splitlines()[-1]
    return False, "the check cell printed no 'Correct!' (was it run?)"


def grade_notebook(path: str | Path, timeout: int = 900, execute: bool = True) -> list[dict[str, Any]]:
    """Execute ``path`` (errors allowed) and return one record per check cell."""
    import nbclient
    import nbformat

    from .student_version import _CHECK_RE

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if execute:
        client = nbclient.NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    records = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "check" not in cell.get("metadata", {}).get("tags", []):
            continue
        passed, message = _cell_result(cell)
        m = _CHECK_RE.search(cell.source)
        records.append({"notebook": path.name, "cell": i, "checker": m.group(1) if m else "?",
                        "passed": passed, "message": message})
    return records


def grade_folder(folder: str | Path, timeout: int = 900, execute: bool = True):
    """Grade every notebook under ``folder``; a DataFrame with one row per (student, check)."""
    import pandas as pd

    folder = Path(folder)
    rows = []
    for nb_path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb_path.parts:
            continue
        student = nb_path.parent.name if nb_path.parent != folder else nb_path.stem.split("_")[0]
        t0 = time.perf_counter()
        for rec in grade_notebook(nb_path, timeout=timeout, execute=execute):
            rows.append({"student": student, **rec, "seconds": round(time.perf_counter() - t0, 1)})
    return pd.DataFrame(rows, columns=["student", "notebook", "cell", "checker", "passed", "message", "seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dixtill_lib.grade", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="submitted notebooks (one sub-folder per student, or <student>_<chapter>.ipynb)")
    parser.add_argument("--out", default=None, help="write the grades as CSV here")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--no-execute", action="store_true", help="read the outputs already in the notebooks")
    args = parser.parse_args(argv)
    grades = grade_folder(args.folder, args.timeout, execute=not args.no_execute)
    if grades.empty:
        print(f"no check cells found under {args.folder}", file=sys.stderr)
        return 2
    summary = grades.groupby("student")["passed"].agg(["sum", "count"])
    print(grades.to_string(index=False))
    print()
    print(summary.rename(columns={"sum": "passed", "count": "checks"}).to_string())
    if args.out:
        grades.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
