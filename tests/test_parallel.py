"""Scale-out: rank shards, shard merge + resume, seed merge, and real 2-process (gloo, CPU) launches.

The multi-process tests start ``accelerate launch --multi_gpu --num_processes 2`` (torch elastic; on a machine
without a GPU :mod:`dixtill_lib.parallel` makes Accelerate form a CPU/gloo group) on tiny configs.
``accelerate launch --cpu --num_processes 2`` itself starts ONE process unless MPI is set up (accelerate 1.15
launches multi-CPU jobs only through ``mpirun``), so the tests use the torch-elastic launcher."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib import parallel
from dixtill_lib.results import ResultsError, load_results, merge_results, merging, write_results
from parallel_helpers import launch, save_tiny_teacher


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory, data_dir):
    return save_tiny_teacher(tmp_path_factory, data_dir)


# ---------------------------------------------------------------- shard arithmetic

def test_shard_ranges_cover_every_row_once():
    for n in (0, 1, 7, 100, 101):
        for world in (1, 2, 3, 8):
            ranges = [parallel.shard_range(n, r, world) for r in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            sizes = [hi - lo for lo, hi in ranges]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        parallel.shard_range(10, 2, 2)


def test_part_ranges_do_not_depend_on_process_count():
    assert parallel.part_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert parallel.part_ranges(0, 4) == []
    with pytest.raises(ValueError, match="part_size"):
        parallel.part_ranges(10, 0)


def test_single_process_runner_is_plain_pytorch():
    import torch

    run = parallel.runner()
    assert not run.active and run.world_size == 1 and run.is_main
    model = torch.nn.Linear(2, 1)
    assert run.prepare(model) is model
    batches = parallel.EpochBatches(lambda: [np.array([2, 0]), np.array([1])], 2, 2)
    loader = run.batches({"x": torch.tensor([10, 11, 12])}, batches)
    assert [b["x"].tolist() for b in loader] == [[12, 10], [11]] and len(loader) == 2
    assert [b["x"].tolist() for b in loader] == [[12, 10], [11]]  # iterable once per epoch
    assert run.map_rows(lambda xs: [x * 2 for x in xs], [1, 2, 3]) == [2, 4, 6]
    assert run.sum_over_processes({"a": 1.5}) == {"a": 1.5}


# ---------------------------------------------------------------- shard merge and resume (one process)

def test_sharded_cache_resumes_after_a_crash_and_equals_an_uninterrupted_run(isolated_cache):
    calls: list[tuple[int, int]] = []

    def compute(lo, hi, crash_at=None):
        if crash_at is not None and lo >= crash_at:
            raise KeyboardInterrupt("killed")
        calls.append((lo, hi))
        return {"x": np.arange(lo, hi, dtype=np.float32) ** 2, "seconds": np.array(1.0)}

    with pytest.raises(KeyboardInterrupt):
        parallel.sharded_cache("squares", "k1", 10, lambda a, b: compute(a, b, crash_at=6), part_size=3,
                               progress=False)
    assert calls == [(0, 3), (3, 6)]
    calls.clear()
    got = parallel.sharded_cache("squares", "k1", 10, compute, part_size=3, progress=False)
    assert calls == [(6, 9), (9, 10)]  # only the missing parts
    want = parallel.sharded_cache("squares", "k2", 10, compute, part_size=3, progress=False)
    np.testing.assert_array_equal(got["x"], want["x"])
    np.testing.assert_array_equal(got["x"], np.arange(10) ** 2)
    assert float(got["seconds"]) == 4.0  # 0-d arrays are summed over parts
    calls.clear()
    again = parallel.sharded_cache("squares", "k1", 10, compute, part_size=3, progress=False)
    assert calls == [] and np.array_equal(again["x"], got["x"])  # cache hit


# ---------------------------------------------------------------- seed merge

def _rows(seed, acc):
    return [{"method": "teacher", "seed": None, "accuracy": 0.8},
            {"method": "dixtill", "seed": seed, "accuracy": acc}]


def test_two_seed_jobs_merge_into_one_file_with_one_provenance(tmp_path):
    out = tmp_path / "distillation.json"
    write_results("distillation", _rows(0, 0.70), mode="full", seeds=[0], config={}, path=out, merge=True)
    with merging():  # what the CLI's --merge does
        write_results("distillation", _rows(1, 0.72), mode="full", seeds=[1], config={}, path=out)
    obj = load_results(out)
    assert [(r["method"], r["seed"]) for r in obj["rows"]] == [("teacher", None), ("dixtill", 0), ("dixtill", 1)]
    assert obj["provenance"]["seeds"] == [0, 1]
    assert [r["seeds"] for r in obj["provenance"]["merged_runs"]] == [[0], [1]]
    # rerunning a seed replaces its row instead of duplicating it
    write_results("distillation", _rows(0, 0.75), mode="full", seeds=[0], config={}, path=out, merge=True)
    obj = load_results(out)
    assert [(r["method"], r["seed"]) for r in obj["rows"]] == [("teacher", None), ("dixtill", 0), ("dixtill", 1)]
    assert [r["accuracy"] for r in obj["rows"] if r["seed"] == 0] == [0.75]
    # the same job (commit, seeds, hardware) writing again is still one run
    assert obj["provenance"]["seeds"] == [0, 1] and [r["seeds"] for r in obj["provenance"]["merged_runs"]] == [[1], [0]]


def test_without_merge_the_file_is_replaced_and_bad_rows_are_refused(tmp_path):
    out = tmp_path / "r.json"
    write_results("r", _rows(0, 0.7), mode="full", seeds=[0], config={}, path=out)
    write_results("r", _rows(1, 0.7), mode="full", seeds=[1], config={}, path=out)
    assert load_results(out)["provenance"]["seeds"] == [1]
    with pytest.raises(ResultsError, match="accuracy"):
        write_results("r", _rows(2, 1.7), mode="full", seeds=[2], config={}, path=out, merge=True)


def test_merge_keys_rows_by_identifying_fields():
    old = {"provenance": {"seeds": [0]}, "rows": [{"method": "tiny", "task": "tfns", "k": 8, "seed": 0, "a": 1},
                                                   {"method": "tiny", "task": "sst2", "k": 8, "seed": 0, "a": 2}]}
    new = {"provenance": {"seeds": [0]}, "rows": [{"method": "tiny", "task": "tfns", "k": 8, "seed": 0, "a": 3}]}
    rows = merge_results(old, new)["rows"]
    assert [(r["task"], r["a"]) for r in rows] == [("tfns", 3), ("sst2", 2)]  # replaced in place
    # a row written before rows named their teacher is MiniLM's: a rerun that names it replaces it
    old = {"provenance": {"seeds": [29]}, "rows": [{"method": "ig", "split": "valid", "n_steps": 4, "a": 1}]}
    new = {"provenance": {"seeds": [29]}, "rows": [{"method": "ig", "split": "valid", "n_steps": 4, "a": 2,
                                                    "teacher": "minilm"},
                                                   {"method": "ig", "split": "valid", "n_steps": 4, "a": 3,
                                                    "teacher": "smollm2"}]}
    assert [r["a"] for r in merge_results(old, new)["rows"]] == [2, 3]


# ---------------------------------------------------------------- a real 2-process launch (gloo on CPU)

def test_two_processes_train_evaluate_and_match_one_process(tmp_path, tiny_teacher_dir):
    """Quick-mode distillation with a tiny teacher on 2 gloo processes writes one result file whose metrics match
    a one-process run with the same (global) batch size: |Δ| ≤ 0.02 on accuracy, macro-F1 and the explanation
    cosine (the 2-process run differs only by float summation order and the padded last batch)."""
    step = ["-m", "dixtill_lib", "distill", "--quick", "--teacher-dir", str(tiny_teacher_dir), "--methods",
            "kd,dixtill", "--temperatures", "", "--no-ablation", "--no-save", "--epochs", "2"]
    cache = tmp_path / "cache"
    two = launch(2, [*step, "--out", str(tmp_path / "two.json")], cache)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # one process reports (and writes) the result
    one = launch(1, [*step, "--out", str(tmp_path / "one.json")], cache)
    assert one.returncode == 0, one.stderr[-3000:]
    assert (cache / "logits-parts").is_dir()  # the 2-process run sharded the teacher logits
    r2, r1 = (load_results(tmp_path / f"{n}.json")["rows"] for n in ("two", "one"))
    assert [r["method"] for r in r2] == [r["method"] for r in r1] == ["teacher", "kd", "dixtill"]
    for a, b in zip(r1[1:], r2[1:]):
        for key in ("accuracy", "macro_f1", "agreement_cosine"):
            assert abs(a[key] - b[key]) <= 0.02, (a["method"], key, a[key], b[key])
        assert len(a["history"]) == len(b["history"]) == 2
        assert abs(a["history"][-1]["train_total"] - b["history"][-1]["train_total"]) < 0.02
        # the held-out macro-F1 comes from per-class counts summed over the processes
        assert abs(a["history"][-1]["val_macro_f1"] - b["history"][-1]["val_macro_f1"]) <= 0.02
