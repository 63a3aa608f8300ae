"""The comparison table: every row has every field, sizes are real files, students are discovered."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dixtill_lib.bench import (ROW_FIELDS, BenchConfig, benchmark, find_students, run_bench, student_candidates,
                               summarize_ms, teacher_candidates, time_round_robin)
from dixtill_lib.config import cache_dir
from dixtill_lib.tiny import tiny_teacher


@pytest.fixture(scope="module")
def tiny6(tweets):
    return tiny_teacher(tweets.texts, hidden=48, layers=2, heads=6, seed=3)


def _cfg(**kw):
    base = dict(threads=1, n_sentences=8, warmup=1, repeats_b1=4, repeats_b32=2, keep=(4, 1), calib_size=16,
                eval_size=24)
    return BenchConfig(**{**base, **kw})


def _save_student(tweets, root: Path, method: str, seed: int) -> Path:
    from dixtill_lib.student import StudentConfig, Vocab, build_student, save_student

    vocab = Vocab.build(tweets.texts)
    model, _ = build_student(vocab, StudentConfig(embeddings="random", max_len=16, hidden=8, attn_size=8), seed=seed)
    return save_student(model, vocab, root / f"{method}_seed{seed}", extra={"method": method, "seed": seed})


def test_teacher_rows_have_every_field_and_real_sizes(tiny6, tweets, tmp_path, monkeypatch):
    import dixtill_lib.bench as bench

    monkeypatch.setattr(bench, "student_root", lambda mode=None, teacher="minilm": tmp_path / "no-students")
    res = run_bench(tiny6, tweets, tweets, _cfg(students=True), progress=False)  # no students saved: teacher rows
    assert [r["method"] for r in res.rows] == ["teacher", "ptq-int8", "ahp-4", "ahp-1"]
    for r in res.rows:
        assert all(k in r for k in ROW_FIELDS)
        for k in ("size_bytes", "params", "latency_ms_b1", "latency_ms_b32", "speedup_b1", "speedup_b32",
                  "compression_ratio"):
            assert r[k] > 0, (r["method"], k)
        path = cache_dir() / "bench" / "quick" / f"{r['method']}.pt"
        assert r["size_bytes"] == os.path.getsize(path)
        assert r["latency_ms_b1_q25"] <= r["latency_ms_b1"] <= r["latency_ms_b1_q75"]
        assert r["compression_ratio"] == pytest.approx(res.rows[0]["size_bytes"] / r["size_bytes"])
        assert r["n_eval"] == 24
    t = res.rows[0]
    assert t["speedup_b1"] == 1.0 and t["speedup_b32"] == 1.0 and t["p_drop_macro_f1"] == 0.0
    sizes = {r["method"]: r["size_bytes"] for r in res.rows}
    assert sizes["ahp-1"] < sizes["ahp-4"] < sizes["teacher"]
    assert res.meta["torch_threads"] == 1 and len(res.meta["loadavg_before"]) == 3


def test_students_are_discovered_and_averaged(tiny6, tweets):
    root = cache_dir() / "students" / "quick"
    for seed in (0, 1):
        _save_student(tweets, root, "dixtill", seed)
    _save_student(tweets, root, "kd", 0)
    _save_student(tweets, root, "dixtill_T2", 0)
    (root / "not_a_student").mkdir(parents=True, exist_ok=True)
    found = find_students("quick")
    assert list(found) == ["dixtill", "dixtill_T2", "kd"]
    assert [p.name for p in found["dixtill"]] == ["dixtill_seed0", "dixtill_seed1"]
    assert len(student_candidates("quick")) == 3
    cands = student_candidates("quick", methods=BenchConfig().student_methods)
    assert [c.method for c in cands] == ["student-dixtill", "student-kd"] and len(cands[0].seeds) == 1

    cfg = _cfg(keep=())
    res = benchmark(teacher_candidates(tiny6, tweets, cfg, progress=False) + cands, tweets, cfg, progress=False)
    rows = {r["method"]: r for r in res.rows}
    assert set(rows) == {"teacher", "ptq-int8", "student-dixtill", "student-kd"}
    s = rows["student-dixtill"]
    assert s["n_seeds"] == 2 and rows["student-kd"]["n_seeds"] == 1 and rows["student-kd"]["macro_f1_std"] == 0.0
    assert s["size_bytes"] == os.path.getsize(cache_dir() / "bench" / "quick" / "student-dixtill.pt")
    # the quality is the mean over the two seeds
    from dixtill_lib.compress import eval_set, quality
    from dixtill_lib.student import StudentClassifier

    ev = eval_set(tweets, cfg.compress_config())
    f1s = [quality(ev, StudentClassifier.load(p).predict_proba(ev.texts))["macro_f1"] for p in found["dixtill"]]
    assert s["macro_f1"] == pytest.approx(np.mean(f1s))


def test_an_aliased_copy_is_not_read_from_the_plain_students_cache(tiny6, tweets):
    """Same weights, other vocab.json (``--glove-aliases``): its predictions must not come from the cache
    entry of the plain student, so the two cache keys differ."""
    from dixtill_lib.student import Vocab, load_student, save_student

    root = cache_dir() / "students" / "quick"
    plain = _save_student(tweets, root, "dixtill", 0)
    model, vocab, _ = load_student(plain)
    save_student(model, Vocab(vocab.words, {"zzunseen": 2}), root / "dixtill_alias1k_seed0",
                 extra={"method": "dixtill_alias1k", "seed": 0})
    by = {c.method: c for c in student_candidates("quick")}
    assert by["student-dixtill"].cache_key != by["student-dixtill_alias1k"].cache_key
    assert by["student-dixtill"].cache_key[1] == by["student-dixtill_alias1k"].cache_key[1]  # same weights
    # the vocabulary file's size goes into the row (size_bytes is the weights only): the aliased one is larger
    assert by["student-dixtill"].info["vocab_bytes"] == (plain / "vocab.json").stat().st_size
    assert by["student-dixtill_alias1k"].info["vocab_bytes"] > by["student-dixtill"].info["vocab_bytes"]


def test_a_corrupt_first_seed_is_skipped_and_the_vocabulary_size_comes_from_a_loaded_one(tiny6, tweets):
    """The first seed's folder fails its checksum (and is deleted): the candidate is built from the next seed,
    whose vocab.json gives vocab_bytes."""
    root = cache_dir() / "students" / "quick"
    bad, good = (_save_student(tweets, root, "dixtill", seed) for seed in (0, 1))
    (bad / "model.pt").write_bytes(b"not the saved weights")
    (cand,) = student_candidates("quick", methods=["dixtill"])
    assert cand.seeds == [] and cand.info["vocab_bytes"] == (good / "vocab.json").stat().st_size
    assert not bad.exists()


def test_round_robin_timing_and_summary():
    calls = []
    fns = {"a": lambda b: calls.append(("a", tuple(b))), "b": lambda b: calls.append(("b", tuple(b)))}
    times = time_round_robin(fns, [["x"], ["y"]], repeats=3, warmup=1, progress=False)
    assert [c[0] for c in calls[:2]] == ["a", "b"]  # warm-ups
    rounds = [calls[2 + 2 * r: 4 + 2 * r] for r in range(3)]
    assert all(sorted(c[0] for c in rd) == ["a", "b"] for rd in rounds)  # every model once per round
    assert [rd[0][1] for rd in rounds] == [("x",), ("y",), ("x",)] and all(rd[0][1] == rd[1][1] for rd in rounds)
    assert times["a"].shape == (3,) and np.all(times["a"] >= 0)
    s = summarize_ms(np.array([0.001, 0.002, 0.003, 0.004]))
    assert s["median"] == pytest.approx(2.5) and s["q25"] == pytest.approx(1.75) and s["q75"] == pytest.approx(3.25)


def test_benchmark_rejects_bad_candidates(tiny6, tweets):
    cands = teacher_candidates(tiny6, tweets, _cfg(keep=()), progress=False)
    with pytest.raises(ValueError, match="first candidate"):
        benchmark(cands[::-1], tweets, _cfg())
    with pytest.raises(ValueError, match="Duplicate"):
        benchmark([cands[0], cands[0]], tweets, _cfg())


def test_bench_step_writes_compression_json(tiny6, tweets, monkeypatch):
    import argparse

    import dixtill_lib.bench as bench
    import dixtill_lib.teacher as teacher_mod
    from dixtill_lib.results import load_results

    monkeypatch.setattr(teacher_mod, "default_teacher", lambda *a, **k: (tiny6, tweets, tweets))
    monkeypatch.setattr(bench.BenchConfig, "for_mode", classmethod(lambda cls, mode=None, **o: _cfg(**o)))
    args = argparse.Namespace(mode="quick", seed=29, seeds=[29], data_dir=None, out=None, threads=None,
                              repeats=None, no_students=True, teacher_dir=None)
    path = bench.run_step(args)
    obj = load_results(path)
    assert path.name == "compression.json" and obj["provenance"]["torch_threads"] == 1
    assert "loadavg_before" in obj["provenance"] and obj["rows"][0]["method"] == "teacher"
    assert all(k in r for r in obj["rows"] for k in ROW_FIELDS)
