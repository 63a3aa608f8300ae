"""PTQ, head masking / importance / structural pruning, sizes from real files, the compress sweep."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dixtill_lib.compress import (CompressConfig, compression_ratio, compression_sweep, num_parameters,
                                  performance_drop, quantize_dynamic_int8, quantized_teacher, save_state_dict,
                                  serialized_size)
from dixtill_lib.heads import (head_counts, head_importance, head_mask_hooks, heads_to_prune, keep_mask,
                               prune_heads, pruned_teacher)
from dixtill_lib.tiny import tiny_teacher


@pytest.fixture(scope="module")
def tiny6(tweets):
    """Tiny eager BERT with 3 layers x 6 heads (head_dim 8): enough heads for a sweep."""
    return tiny_teacher(tweets.texts, hidden=48, layers=3, heads=6, seed=1)


def _logits(teacher, texts):
    with torch.inference_mode():
        return teacher.model(**teacher.encode(texts)).logits


def test_quantized_tiny_model_close_to_fp32(tiny, tweets):
    q = quantized_teacher(tiny)
    want, got = tiny.logits(tweets.texts, progress=False), q.logits(tweets.texts, progress=False)
    assert np.abs(got - want).max() < 0.05
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9
    dynamic = [m for m in q.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(dynamic) == sum(isinstance(m, torch.nn.Linear) for m in tiny.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in q.model.modules())
    # the original is untouched
    assert any(type(m) is torch.nn.Linear for m in tiny.model.modules())


def test_quantize_emits_no_deprecation_warning(tiny):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize_dynamic_int8(tiny.model)


def test_sizes_come_from_real_files(tiny, tmp_path):
    path = tmp_path / "m.pt"
    n = save_state_dict(tiny.model, path)
    assert n == os.path.getsize(path) > 0
    assert serialized_size(tiny.model) == n
    q = quantize_dynamic_int8(tiny.model)
    qp = tmp_path / "q.pt"
    assert serialized_size(q, qp) == os.path.getsize(qp)
    # int8 linears: the file shrinks but the parameter count is unchanged
    assert num_parameters(q) == num_parameters(tiny.model)


def test_mask_equals_slice(tiny6, tweets):
    texts = tweets.texts[:12]
    imp = np.random.default_rng(0).random((3, 6))
    for keep in (5, 3, 1):
        mask = keep_mask(imp, keep)
        with head_mask_hooks(tiny6.model, torch.as_tensor(mask, dtype=torch.float32)):
            masked = _logits(tiny6, texts)
        sliced = _logits(pruned_teacher(tiny6, mask), texts)
        torch.testing.assert_close(sliced, masked, rtol=1e-4, atol=1e-5)
    # hooks are gone after the block: the full model is back
    torch.testing.assert_close(_logits(tiny6, texts), _logits(pruned_teacher(tiny6, np.ones((3, 6), bool)), texts))


def test_mask_equals_slice_sdpa(tweets):
    t = tiny_teacher(tweets.texts, hidden=48, layers=2, heads=6, attn_implementation="sdpa")
    mask = keep_mask(np.arange(12.0).reshape(2, 6), 2)
    with head_mask_hooks(t.model, torch.as_tensor(mask, dtype=torch.float32)):
        masked = _logits(t, tweets.texts[:8])
    torch.testing.assert_close(_logits(pruned_teacher(t, mask), tweets.texts[:8]), masked, rtol=1e-4, atol=1e-5)


def test_pruning_removes_exact_heads_and_shrinks(tiny6):
    imp = np.arange(18.0).reshape(3, 6)
    full_params, full_bytes = num_parameters(tiny6.model), serialized_size(tiny6.model)
    for keep in range(1, 7):
        mask = keep_mask(imp, keep)
        assert mask.sum(1).tolist() == [keep] * 3
        p = pruned_teacher(tiny6, mask)
        assert head_counts(p.model) == [keep] * 3
        att = p.model.bert.encoder.layer[0].attention
        assert att.self.query.out_features == att.self.all_head_size == keep * 8
        assert att.output.dense.in_features == keep * 8
        pruned_fraction = 1 - sum(head_counts(p.model)) / 18
        assert pruned_fraction == pytest.approx((6 - keep) / 6)
        # each removed head removes 4 * (48*8) weights + 3*8 biases per layer
        assert full_params - num_parameters(p.model) == 3 * (6 - keep) * (4 * 48 * 8 + 3 * 8)
        if keep < 6:
            assert serialized_size(p.model) < full_bytes
    assert head_counts(tiny6.model) == [6, 6, 6]  # original untouched


def test_keep_mask_picks_most_important():
    imp = np.array([[0.1, 0.9, 0.5, 0.3], [4.0, 1.0, 3.0, 2.0]])
    assert keep_mask(imp, 2).tolist() == [[False, True, True, False], [True, False, True, False]]
    assert heads_to_prune(keep_mask(imp, 2)) == {0: [0, 3], 1: [1, 3]}
    with pytest.raises(ValueError, match="between 1 and 4"):
        keep_mask(imp, 0)


def test_prune_heads_rejects_bad_input(tiny6):
    import copy

    m = copy.deepcopy(tiny6.model)
    with pytest.raises(ValueError, match="keep at least one"):
        prune_heads(m, {0: list(range(6))})
    with pytest.raises(ValueError, match="heads 0..5"):
        prune_heads(m, {0: [7]})
    with pytest.raises(ValueError, match="Layer 9"):
        prune_heads(m, {9: [0]})


def test_importance_gradient_matches_finite_difference(tiny6, tweets):
    """Michel importance = |dL/dgate|: check one head against a finite difference of the loss."""
    import torch.nn.functional as F

    calib = tweets.select(np.arange(16))
    imp_raw = head_importance(tiny6, calib, "gradient", batch_size=16, progress=False)
    assert imp_raw.shape == (3, 6) and np.all(imp_raw >= 0)
    np.testing.assert_allclose(np.linalg.norm(imp_raw, axis=1), 1.0, rtol=1e-6)

    import copy

    model64 = copy.deepcopy(tiny6.model).double()
    enc = tiny6.encode(calib.texts)

    def loss(g):
        with head_mask_hooks(model64, g), torch.inference_mode():
            return float(F.cross_entropy(model64(**enc).logits, torch.as_tensor(calib.labels)))
    eps = 1e-5
    fd = np.zeros(6)
    for h in range(6):
        up, down = torch.ones(3, 6, dtype=torch.float64), torch.ones(3, 6, dtype=torch.float64)
        up[1, h] += eps
        down[1, h] -= eps
        fd[h] = abs(loss(up) - loss(down)) / (2 * eps)
    np.testing.assert_allclose(imp_raw[1], fd / np.linalg.norm(fd), atol=1e-3)
    assert all(p.requires_grad for p in tiny6.model.parameters())


def test_importance_ablation_is_loss_increase(tiny6, tweets):
    import torch.nn.functional as F

    calib = tweets.select(np.arange(20))
    imp = head_importance(tiny6, calib, "ablation", batch_size=8, progress=False)
    gates = torch.ones(3, 6)
    gates[2, 4] = 0

    def loss(model):
        with torch.inference_mode():
            return float(F.cross_entropy(model(**tiny6.encode(calib.texts)).logits, torch.as_tensor(calib.labels)))
    base = loss(tiny6.model)
    with head_mask_hooks(tiny6.model, gates):
        masked = loss(tiny6.model)
    assert imp[2, 4] == pytest.approx(masked - base, abs=1e-5)
    with pytest.raises(ValueError, match="Unknown importance"):
        head_importance(tiny6, calib, "magic")


def test_ratio_and_drop():
    assert compression_ratio(439, 182.5) == pytest.approx(2.4055, abs=1e-3)
    assert performance_drop(0.810, 0.743) == pytest.approx(0.0827, abs=1e-3)
    assert performance_drop(0.8, 0.9) < 0
    with pytest.raises(ValueError):
        compression_ratio(0, 1)


def test_sweep_rows(tiny6, tweets):
    cfg = CompressConfig(calib_size=20, eval_size=30, keep=(6, 4, 1), importance=("gradient", "ablation"),
                         other_keep=(4, 1), ablation_calib_size=10, batch_size=16)
    res = compression_sweep(tiny6, tweets, tweets, cfg, progress=False)
    methods = [(r["method"], r["importance"]) for r in res.rows]
    assert methods == [("teacher", None), ("ptq-int8", None), ("ahp-4", "gradient"), ("ahp-1", "gradient"),
                       ("ahp-4", "ablation"), ("ahp-1", "ablation")]
    teacher = res.rows[0]
    assert teacher["compression_ratio"] == 1.0 and teacher["p_drop_macro_f1"] == 0.0
    sizes = {m: r["size_bytes"] for m, r in zip(methods, res.rows)}
    assert sizes[("ahp-1", "gradient")] < sizes[("ahp-4", "gradient")] < sizes[("teacher", None)]
    for r in res.rows:
        assert r["compression_ratio"] == pytest.approx(teacher["size_bytes"] / r["size_bytes"])
        assert 0 <= r["macro_f1"] <= 1 and r["n_eval"] == 30
        assert r["n_calib"] == {None: 0, "gradient": 20, "ablation": 10}[r["importance"]]
    assert set(res.importance) == {"gradient", "ablation"} and res.importance["gradient"].shape == (3, 6)


def test_config_presets():
    full, quick = CompressConfig.for_mode("full"), CompressConfig.for_mode("quick")
    assert full.eval_size is None and full.keep[-1] == 1 and len(full.keep) == 12
    assert quick.calib_size < full.calib_size and quick.importance == ("gradient",)
    assert full.importance[0] == "gradient" and full.ablation_calib_size < full.calib_size


def test_compress_step_writes_pruning_json(tiny6, tweets, monkeypatch):
    import argparse

    import dixtill_lib.compress as compress
    import dixtill_lib.teacher as teacher_mod
    from dixtill_lib.results import load_results

    monkeypatch.setattr(teacher_mod, "default_teacher", lambda *a, **k: (tiny6, tweets, tweets))
    args = argparse.Namespace(mode="quick", seed=29, seeds=[29], data_dir=None, out=None, calib_size=16,
                              eval_size=20, importance="gradient")
    path = compress.run_step(args)
    obj = load_results(path)
    prov = obj["provenance"]
    assert path.name == "pruning.json" and prov["default_importance"] == "gradient"
    assert np.asarray(prov["head_importance"]["gradient"]).shape == (3, 6)
    # quick levels (9, 6, 3, 1) on a 6-head model: AHP-3 and AHP-1 (6 = the teacher itself)
    assert [r["method"] for r in obj["rows"]] == ["teacher", "ptq-int8", "ahp-3", "ahp-1"]
    with pytest.raises(SystemExit, match="unknown rule"):
        compress.run_step(argparse.Namespace(**{**vars(args), "importance": "random"}))


def test_step_teacher_from_folder(tiny6, tweets, monkeypatch, tmp_path):
    import argparse

    import dixtill_lib.data as data_mod
    from dixtill_lib.compress import step_teacher

    folder = tiny6.save(tmp_path / "teacher")
    monkeypatch.setattr(data_mod, "mode_splits", lambda mode=None, data_dir_=None, **k: (tweets, tweets))
    args = argparse.Namespace(data_dir=None, teacher_dir=str(folder))
    teacher, train, valid = step_teacher(args, "quick")
    assert teacher.fingerprint() == tiny6.fingerprint() and len(train) == len(tweets)
    from dixtill_lib.teacher import MissingModelError

    with pytest.raises(MissingModelError, match="no valid saved teacher"):
        step_teacher(argparse.Namespace(data_dir=None, teacher_dir=str(tmp_path / "none")), "quick")


def test_keep_option_parsing():
    import argparse

    from dixtill_lib.compress import config_from_args, parse_keep

    assert parse_keep("11, 6,1") == (11, 6, 1) and parse_keep(None) is None
    with pytest.raises(SystemExit, match="integers"):
        parse_keep("a,b")
    with pytest.raises(SystemExit, match="positive"):
        parse_keep("0")
    args = argparse.Namespace(seed=29, calib_size=None, eval_size=None, importance="gradient", keep="9,3")
    cfg = config_from_args(args, "full")
    assert cfg.keep == (9, 3) and cfg.importance == ("gradient",) and cfg.eval_size is None
