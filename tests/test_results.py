"""Result files: schema, provenance, atomic writes, clear errors on malformed files."""
from __future__ import annotations

import json

import pytest

from dixtill_lib import results as R
from dixtill_lib.config import results_dir


def test_write_and_load_roundtrip(tmp_path):
    rows = [{"method": "teacher", "seed": 29, "accuracy": 0.9, "macro_f1": 0.85, "mcc": 0.7}]
    path = R.write_results("teacher", rows, mode="quick", seeds=[29], config={"epochs": 1},
                           path=tmp_path / "teacher.json")
    obj = R.load_results(path)
    assert obj["rows"] == rows
    prov = obj["provenance"]
    assert set(R.PROVENANCE_KEYS) <= set(prov) and prov["mode"] == "quick" and prov["seeds"] == [29]
    assert prov["hardware"]["cpu_count"] >= 1 and prov["torch"].startswith("2.13")


def test_quick_results_never_land_in_the_committed_folder():
    assert results_dir("quick").name == "quick"
    assert results_dir("full") == results_dir("quick").parent


@pytest.mark.parametrize("obj, msg", [
    ([], "expected an object"),
    ({"provenance": {}, "rows": [{"method": "x"}]}, "provenance lacks"),
    ({"provenance": {k: 1 for k in R.PROVENANCE_KEYS}, "rows": []}, "non-empty list"),
    ({"provenance": {k: 1 for k in R.PROVENANCE_KEYS}, "rows": [{"seed": 1}]}, "with a 'method'"),
    ({"provenance": {k: 1 for k in R.PROVENANCE_KEYS}, "rows": [{"method": "x", "accuracy": 1.7}]}, "outside"),
])
def test_malformed_results_are_rejected_clearly(tmp_path, obj, msg):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(obj))
    with pytest.raises(R.ResultsError, match=msg):
        R.load_results(p)


def test_missing_and_invalid_json(tmp_path):
    with pytest.raises(R.ResultsError, match="python -m dixtill_lib nothing --full"):
        R.load_results("nothing")
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(R.ResultsError, match="not valid JSON"):
        R.load_results(p)


def test_committed_result_files_are_valid():
    """Every results/*.json in the repo must load (the full-scale chapters read them) and come from a full run;
    the one exception is the timing of the quick-mode book build, whose subject is quick mode."""
    quick_by_design = {"book_timing.json"}
    for path in sorted((R.REPO_ROOT / "results").glob("*.json")):
        obj = R.load_results(path)
        want = "quick" if path.name in quick_by_design else "full"
        assert obj["provenance"]["mode"] == want, f"{path} is not from a {want} run"


def test_git_commit_is_dirty_for_code_changes_only(tmp_path, monkeypatch):
    """Runs rewrite their own result file as they go: that must not mark the run's code as dirty."""
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "step.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(R, "REPO_ROOT", tmp_path)
    clean = R.git_commit()
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (tmp_path / "results" / "step.json").write_text('{"rows": []}')
    assert R.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert R.git_commit() == clean + "-dirty"
