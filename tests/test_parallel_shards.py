"""Shard merge under a real kill: a 2-process IG attribution job dies half-way; the rerun computes only the
missing parts and leaves the same cache entry as an uninterrupted one-process run."""
from __future__ import annotations

import json

import numpy as np
import pytest
from parallel_helpers import launch, save_tiny_teacher


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory, data_dir):
    return save_tiny_teacher(tmp_path_factory, data_dir)



KILL_SCRIPT = r"""
import os, sys
import numpy as np
from dixtill_lib import explain, parallel
from dixtill_lib.data import mode_splits
from dixtill_lib.teacher import Teacher

explain.PART_SIZE = 100
teacher = Teacher.from_cache(sys.argv[1])
train, _ = mode_splits("quick")
ds = train.select(np.arange(600))
calls = []
real = explain.attribute
def attribute(*a, **k):
    if sys.argv[2] == "kill" and parallel.rank() == 1 and len(calls) == 1:
        os._exit(3)  # the job dies half-way: rank 1 after one of its three parts
    calls.append(1)
    return real(*a, **k)
explain.attribute = attribute
att = explain.explain_dataset(teacher, ds, explain.IGConfig(n_steps=2), progress=False)
open(f"{sys.argv[3]}-rank{parallel.rank()}.txt", "w").write(str(len(calls)))
"""


def test_killed_sharded_attribution_job_resumes_to_the_same_cache(tmp_path, tiny_teacher_dir, monkeypatch):
    from dixtill_lib import explain
    from dixtill_lib.data import mode_splits
    from dixtill_lib.io import load_arrays
    from dixtill_lib.teacher import Teacher

    script = tmp_path / "ig_job.py"
    script.write_text(KILL_SCRIPT)
    cache = tmp_path / "cache"
    killed = launch(2, [str(script), str(tiny_teacher_dir), "kill", str(tmp_path / "killed")], cache)
    assert killed.returncode != 0
    # a part is complete once its checksum file exists (save_arrays writes it after the data). The launcher may
    # kill rank 0 between the two writes; the rerun then finds that part unverifiable and recomputes it.
    written = [p for p in sorted((cache / "attributions-parts").glob("*.npz")) if p.with_suffix(".sha256").exists()]
    assert 1 <= len(written) < 6  # some parts survived, the merged entry was never written
    assert not (cache / "attributions").exists() or not list((cache / "attributions").glob("*.npz"))
    resumed = launch(2, [str(script), str(tiny_teacher_dir), "run", str(tmp_path / "resumed")], cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = sum(int((tmp_path / f"resumed-rank{r}.txt").read_text()) for r in (0, 1))
    assert done == 6 - len(written)  # the rerun computed only the missing parts

    # the same data set, uninterrupted, in this (single) process with its own cache
    monkeypatch.setenv("DIXTILL_CACHE", str(tmp_path / "single"))
    monkeypatch.setattr(explain, "PART_SIZE", 100)
    teacher = Teacher.from_cache(tiny_teacher_dir)
    train, _ = mode_splits("quick")
    ds = train.select(np.arange(600))
    cfg = explain.IGConfig(n_steps=2)
    explain.explain_dataset(teacher, ds, cfg, progress=False)
    key = explain.attribution_key(teacher, ds, cfg)
    want = load_arrays("attributions", key)
    got = load_arrays("attributions", key, root=cache)
    assert got is not None and want is not None
    for name in ("flat", "offsets", "deltas", "targets"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert json.dumps(sorted(got)) == json.dumps(sorted(want))
