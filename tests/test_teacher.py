"""Teacher: fine-tune/predict round trip on a tiny model, caching by fingerprint, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dixtill_lib import teacher as T
from dixtill_lib.io import CorruptCacheWarning
from dixtill_lib.tiny import tiny_teacher


def test_logits_are_order_independent_of_batching(tiny, tweets):
    full = tiny.logits(tweets.texts, batch_size=64, progress=False)
    small = tiny.logits(tweets.texts, batch_size=7, progress=False)
    assert full.shape == (50, 3) and np.allclose(full, small, atol=1e-5)
    one = tiny.logits([tweets.texts[3]], progress=False)
    assert np.allclose(one[0], full[3], atol=1e-5)
    assert np.allclose(tiny.predict_proba(tweets.texts[:5], progress=False).sum(1), 1)


def test_fine_tune_learns_a_separable_toy_task():
    texts = [f"{a} stock {w}" for a in ("the", "a", "this", "that", "my", "our", "one", "big")
             for w in ("soars", "plunges", "holds")]
    labels = np.array([1, 0, 2] * 8)
    from dixtill_lib.data import Dataset

    ds = Dataset(texts=texts, labels=labels, label_names=("Bearish", "Bullish", "Neutral"))
    t = tiny_teacher(texts, seed=1)
    before = (t.predict(texts, progress=False) == labels).mean()
    cfg = T.TeacherConfig(epochs=20, lr=1e-2, batch_size=8, warmup=0.0, weight_decay=0.0, seed=1)
    hist = T.fine_tune(t, ds, cfg, progress=False)
    after = (t.predict(texts, progress=False) == labels).mean()
    assert hist[-1]["loss"] < hist[0]["loss"] and after > 0.95 and after > before


def test_save_load_roundtrip_and_fingerprint(tiny, tweets, tmp_path):
    tiny.save(tmp_path / "t")
    back = T.Teacher.from_cache(tmp_path / "t")
    assert back.fingerprint() == tiny.fingerprint() and back.max_length == tiny.max_length
    assert np.allclose(back.logits(tweets.texts[:8], progress=False), tiny.logits(tweets.texts[:8], progress=False),
                       atol=1e-6)
    with torch.no_grad():
        back.model.classifier.bias.add_(1.0)
    back._fingerprint = None
    assert back.fingerprint() != tiny.fingerprint()


def test_corrupt_saved_teacher_is_rebuilt(tiny, tmp_path):
    tiny.save(tmp_path / "t")
    weights = next((tmp_path / "t").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(CorruptCacheWarning):
        assert T.Teacher.from_cache(tmp_path / "t") is None


def test_teacher_logits_cache_keyed_by_data_and_model(tiny, tweets):
    a = T.teacher_logits(tiny, tweets, progress=False)
    b = T.teacher_logits(tiny, tweets, progress=False)
    assert np.array_equal(a, b)
    sub = tweets.select(range(10))
    assert np.allclose(T.teacher_logits(tiny, sub, progress=False), a[:10], atol=1e-5)


def test_evaluate_reports_metrics_and_confusion(tiny, tweets):
    m = T.evaluate(tiny, tweets, progress=False)
    assert set(m) >= {"accuracy", "macro_f1", "mcc", "macro_auc", "confusion"}
    assert np.array(m["confusion"]).sum() == 50
    assert m["accuracy"] == pytest.approx(np.trace(m["confusion"]) / 50)


def test_bad_inputs_are_rejected(tiny):
    with pytest.raises(ValueError, match="empty or non-string"):
        tiny.logits(["fine", "  "], progress=False)
    with pytest.raises(TypeError, match="not a single string"):
        tiny.logits("just one", progress=False)


def test_missing_model_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(T.MissingModelError, match="packaged teacher"):
        T.Teacher.load(str(tmp_path / "no-such-model"))
    with pytest.raises(T.MissingModelError, match="hub id"):
        T.Teacher.load("nickmuchi/finbert-tone-finetuned-fintwitter-classification")


def test_packaged_minilm_loads_offline():
    t = T.Teacher.load("minilm", num_labels=3)
    assert t.num_parameters() == pytest.approx(22.7e6, rel=0.01)
    assert t.model.config.num_hidden_layers == 6 and t.logits(["$aapl up"], progress=False).shape == (1, 3)


def test_get_teacher_trains_once_then_hits_the_cache(tweets, monkeypatch):
    calls = []
    real = T.fine_tune

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(T, "fine_tune", counting)
    monkeypatch.setattr(T.Teacher, "load", classmethod(lambda cls, *a, **k: tiny_teacher(tweets.texts)))
    cfg = T.TeacherConfig(epochs=1, batch_size=16)
    first = T.get_teacher(cfg, tweets, progress=False)
    second = T.get_teacher(cfg, tweets, progress=False)
    assert len(calls) == 1 and first.fingerprint() == second.fingerprint()


def test_quick_and_full_configs():
    q, f = T.TeacherConfig.for_mode("quick"), T.TeacherConfig.for_mode("full")
    assert f.train_size is None and f.epochs == 3 and f.lr == 1e-4
    assert q.train_size and q.train_size < 2000
    with pytest.raises(ValueError, match="DIXTILL_MODE"):
        T.TeacherConfig.for_mode("medium")


def test_default_teacher_can_load_a_saved_folder(tiny, tweets, tmp_path, monkeypatch):
    import dixtill_lib.data as data_mod

    monkeypatch.setattr(data_mod, "mode_splits", lambda mode=None, data_dir_=None, **k: (tweets, tweets))
    folder = tiny.save(tmp_path / "saved")
    teacher, train, _ = T.default_teacher("quick", teacher_dir=folder, progress=False)
    assert teacher.fingerprint() == tiny.fingerprint() and len(train) == 50
    with pytest.raises(T.MissingModelError, match="--teacher-dir .*no valid saved teacher"):
        T.default_teacher("quick", teacher_dir=tmp_path / "missing")


def test_cache_key_depends_only_on_non_default_fields(tweets):
    from dixtill_lib.teacher import TeacherConfig, teacher_cache_key

    ds = tweets
    full = TeacherConfig()
    assert teacher_cache_key(full, ds) == teacher_cache_key(TeacherConfig(epochs=3), ds)  # a default, spelled out
    assert teacher_cache_key(full, ds) != teacher_cache_key(TeacherConfig(epochs=2), ds)
    assert teacher_cache_key(full, ds) != teacher_cache_key(full, ds.select(np.arange(len(ds) - 1)))
    quick = TeacherConfig.for_mode("quick")
    assert teacher_cache_key(quick, ds) != teacher_cache_key(full, ds)
