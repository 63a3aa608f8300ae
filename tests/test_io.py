"""Atomic writes and the verified cache: nothing half-written, corrupt entries rebuilt."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dixtill_lib import io


def test_atomic_file_is_untouched_when_the_writer_fails(tmp_path):
    target = tmp_path / "r.json"
    io.write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "half')
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp leftovers


def test_atomic_directory_replace(tmp_path):
    target = tmp_path / "model"
    for version in ("v1", "v2"):
        with io.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "w.txt").write_text(version)
    assert (target / "w.txt").read_text() == "v2" and len(list(tmp_path.iterdir())) == 1


def test_cache_roundtrip_and_single_computation(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6).reshape(2, 3), "y": np.array([0.5])}

    a = io.cached_arrays("ns", "k1", compute, root=tmp_path)
    b = io.cached_arrays("ns", "k1", compute, root=tmp_path)
    assert len(calls) == 1 and np.array_equal(a["x"], b["x"]) and b["y"][0] == 0.5


@pytest.mark.parametrize("damage", ["truncate", "flip", "checksum"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    io.save_arrays("ns", "k", {"x": np.ones(100)}, root=tmp_path)
    data, digest = tmp_path / "ns" / "k.npz", tmp_path / "ns" / "k.sha256"
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:50])
    elif damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[-20] ^= 0xFF
        data.write_bytes(bytes(raw))
    else:
        digest.unlink()
    with pytest.warns(io.CorruptCacheWarning, match="corrupt"):
        assert io.load_arrays("ns", "k", root=tmp_path) is None
    assert not data.exists()
    out = io.cached_arrays("ns", "k", lambda: {"x": np.zeros(3)}, root=tmp_path)
    assert out["x"].tolist() == [0, 0, 0]


def test_manifest_detects_changed_model_files(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"abc")
    io.write_manifest(d, {"name": "x"})
    assert io.verify_manifest(d)["name"] == "x"
    (d / "weights.bin").write_bytes(b"abd")
    with pytest.warns(io.CorruptCacheWarning):
        assert io.verify_manifest(d) is None
    assert not d.exists()


def test_stable_hash_is_order_and_value_sensitive():
    assert io.stable_hash({"a": 1, "b": 2}) == io.stable_hash({"b": 2, "a": 1})
    assert io.stable_hash([1, 2]) != io.stable_hash([2, 1])
    assert io.hash_texts(["a", "b"]) != io.hash_texts(["ab"])
