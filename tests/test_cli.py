"""Command line: parsing, errors, and the teacher step end to end on a tiny model."""
from __future__ import annotations

import json

import pytest

from dixtill_lib import cli


def test_every_step_parses_with_common_options():
    for step in cli.STEPS:
        args = cli.build_parser().parse_args([step, "--full", "--seeds", "0,1,2", "--device", "cpu"])
        assert args.mode == "full" and args.seeds == [0, 1, 2]


def test_bad_seeds_and_unknown_step_exit_with_usage(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["teacher", "--seeds", "a,b"])
    assert "comma-separated integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["nonsense"])


def test_teacher_step_writes_a_valid_result_file(tmp_path, tweets, monkeypatch):
    """The step with a tiny teacher and 50-row data: one row, metrics in range, provenance complete."""
    from dixtill_lib import teacher, teacher_step
    from dixtill_lib.tiny import tiny_teacher

    monkeypatch.setattr(teacher.Teacher, "load", classmethod(lambda cls, *a, **k: tiny_teacher(tweets.texts)))
    monkeypatch.setattr(teacher_step, "mode_splits", lambda *a, **k: (tweets, tweets.select(range(20))))
    out = tmp_path / "teacher.json"
    from dixtill_lib import results

    monkeypatch.setattr(results, "RUN_NOTE", None)
    assert cli.main(["teacher", "--quick", "--epochs", "1", "--out", str(out), "--note", "staged run"]) == 0
    obj = json.loads(out.read_text())
    assert obj["provenance"]["note"] == "staged run"
    (row,) = obj["rows"]
    assert row["method"] == "teacher" and row["n_eval"] == 20 and 0 <= row["macro_f1"] <= 1
    assert obj["provenance"]["config"]["epochs"] == 1 and obj["provenance"]["mode"] == "quick"
