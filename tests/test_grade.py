"""Grader: reads check cells of (already executed) student notebooks."""
from __future__ import annotations

import nbformat

from dixtill_lib.grade import grade_folder


def _nb(check_outputs):
    cells = [nbformat.v4.new_code_cell("def f(x):\n    raise NotImplementedError", metadata={"tags": ["exercise"]})]
    for outs in check_outputs:
        c = nbformat.v4.new_code_cell("print(check_f(f))", metadata={"tags": ["check"]})
        c.outputs = outs
        cells.append(c)
    return nbformat.v4.new_notebook(cells=cells)


def test_grades_pass_fail_and_not_attempted_without_executing(tmp_path):
    ok = [nbformat.v4.new_output("stream", name="stdout", text="Correct! all good\n")]
    wrong = [nbformat.v4.new_output("error", ename="ExerciseFailure", evalue="expected 2, got 3", traceback=[])]
    todo = [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="", traceback=[])]
    for student, outs in {"alice": [ok, ok], "bob": [wrong, todo]}.items():
        (tmp_path / student).mkdir()
        nbformat.write(_nb(outs), tmp_path / student / "02_data.ipynb")
    g = grade_folder(tmp_path, execute=False)
    assert g.groupby("student")["passed"].sum().to_dict() == {"alice": 2, "bob": 0}
    bob = g[g.student == "bob"]["message"].tolist()
    assert bob[0] == "ExerciseFailure: expected 2, got 3"
    assert bob[1].startswith("not attempted")
    assert set(g["checker"]) == {"check_f"}
