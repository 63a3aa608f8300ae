"""Leave-one-word-out (occlusion) explanations: exact probability drops, normalisation, caching, CLI steps."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest

from dixtill_lib.explain import IGConfig, attribution_key, explain_dataset, explainer_config
from dixtill_lib.occlusion import OcclusionConfig, attribute, without_each_word

RAW = OcclusionConfig(normalise="none", batch_size=16)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_without_each_word():
    assert without_each_word("  $aapl up  3%\n!") == ["up 3% !", "$aapl 3% !", "$aapl up !", "$aapl up 3%"]
    assert without_each_word("hello") == [""]


def test_raw_scores_are_the_probability_drops_of_deleting_each_word(tiny, tweets):
    texts = tweets.texts[:4]
    att = attribute(tiny, texts, RAW, progress=False)
    for text, scores, target in zip(texts, att.scores, att.targets):
        p = tiny.predict_proba([text], progress=False)[0]
        assert target == p.argmax()
        dropped = tiny.predict_proba(without_each_word(text), progress=False)[:, target]
        assert scores.shape == (len(text.split()),)
        np.testing.assert_allclose(scores, p[target] - dropped, atol=1e-6)
    assert np.all(att.deltas == 0)


def test_true_label_target_and_its_check(tiny, tweets):
    texts, labels = tweets.texts[:3], tweets.labels[:3]
    att = attribute(tiny, texts, replace(RAW, target="true"), labels=labels, progress=False)
    assert att.targets.tolist() == labels.tolist()
    with pytest.raises(ValueError, match=r"OcclusionConfig\(target=.true.\) needs `labels`"):
        attribute(tiny, texts, replace(RAW, target="true"), progress=False)
    with pytest.raises(ValueError, match="target must be"):
        OcclusionConfig(target="gold")


def test_l2_normalised_and_one_word_texts(tiny, tweets):
    texts = [*tweets.texts[:3], "moon"]
    att = attribute(tiny, texts, OcclusionConfig(), progress=False)
    for s in att.scores[:3]:
        assert np.linalg.norm(s) == pytest.approx(1.0, abs=1e-5)
    # one word: without it the teacher knows nothing (probability 1/C), and the predicted class beats that
    assert att.scores[3].tolist() == [pytest.approx(1.0)]
    raw = attribute(tiny, ["moon"], RAW, progress=False)
    p = tiny.predict_proba(["moon"], progress=False)[0]
    assert float(raw.scores[0][0]) == pytest.approx(p.max() - 1 / 3, abs=1e-6)


def test_decoder_teacher(tweets):
    from dixtill_lib.tiny import tiny_llama_teacher

    llama = tiny_llama_teacher(list(tweets.texts), hidden=48, heads=6, kv_heads=2)
    text = tweets.texts[5]
    att = attribute(llama, [text], RAW, progress=False)
    p = llama.predict_proba([text], progress=False)[0]
    t = int(att.targets[0])
    dropped = llama.predict_proba(without_each_word(text), progress=False)[:, t]
    np.testing.assert_allclose(att.scores[0], p[t] - dropped, atol=1e-6)


def test_cached_apart_from_ig_and_reused(tiny, tweets):
    ds = tweets.select(np.arange(12))
    occ = OcclusionConfig(batch_size=8)
    assert attribution_key(tiny, ds, occ) != attribution_key(tiny, ds, IGConfig(n_steps=2))
    assert attribution_key(tiny, ds, occ) == attribution_key(tiny, ds, replace(occ, batch_size=3))
    first = explain_dataset(tiny, ds, occ, progress=False)
    direct = attribute(tiny, ds.texts, occ, progress=False)
    for a, b in zip(first.scores, direct.scores):
        np.testing.assert_allclose(a, b, atol=1e-6)
    again = explain_dataset(tiny, ds, occ, progress=False)
    assert again.seconds == first.seconds  # the stored time of the original computation: a cache hit


def test_explainer_config():
    assert explainer_config("ig", "quick", n_steps=8) == IGConfig.for_mode("quick", n_steps=8)
    assert explainer_config("occlusion", "full", n_steps=8, batch_size=4) == OcclusionConfig(batch_size=4)
    with pytest.raises(ValueError, match="Unknown explainer"):
        explainer_config("lime")


def test_explain_step_with_occlusion(tiny, tweets, monkeypatch, tmp_path):
    import dixtill_lib.teacher as teacher_mod
    from dixtill_lib.explain import run_step

    train, valid = tweets.select(np.arange(16)), tweets.select(np.arange(16, 26))
    monkeypatch.setattr(teacher_mod, "default_teacher", lambda mode=None, data_dir=None, device="cpu", **k:
                        (tiny, train, valid))
    out = tmp_path / "explain.json"
    args = argparse.Namespace(mode="quick", seeds=[29], data_dir=None, device="cpu", out=str(out), n_steps=None,
                              batch_size=8, faithfulness=10, steps_study=4, threads=None, explainer="occlusion")
    run_step(args)
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["occlusion", "occlusion", "faithfulness/occlusion", "faithfulness/random"]
    assert rows[0]["n"] == 16 and rows[0]["n_steps"] is None and rows[0]["mean_abs_delta"] == 0


def test_distill_step_with_occlusion_names_rows_and_keys(monkeypatch, tmp_path, tiny, tweets):
    from dixtill_lib import distill as D
    from dixtill_lib.student import StudentConfig, Vocab, glove_matrix

    train, valid = tweets.select(np.arange(30)), tweets.select(np.arange(30, 40))
    tr = attribute(tiny, train.texts, OcclusionConfig(), progress=False).scores
    va = attribute(tiny, valid.texts, OcclusionConfig(), progress=False).scores
    vocab = Vocab.build(train.texts)
    glove, missing = glove_matrix(vocab)
    inputs = D.DistillInputs("quick", train, valid, tiny.logits(train.texts, progress=False),
                             tiny.logits(valid.texts, progress=False), tr, va, vocab, glove, missing, "tiny",
                             tiny.fingerprint(), {"macro_f1": 0.5}, 1, 1, explainer="occlusion")
    seen = {}

    def fake_prepare(*a, **k):
        seen["cfg"] = k["ig_cfg"]
        return inputs

    monkeypatch.setattr(D, "prepare_inputs", fake_prepare)
    out = tmp_path / "d.json"
    D.run_step(argparse.Namespace(mode="quick", seeds=[0], methods="kd,dixtill", temperatures="", sweep_seeds=None,
                                  no_ablation=True, epochs=1, max_len=24, momentum=None, paper_kd=False,
                                  attn_size=None, no_save=True, data_dir=None, device="cpu", out=str(out),
                                  explainer="occlusion"))
    assert isinstance(seen["cfg"], OcclusionConfig)
    obj = json.loads(out.read_text())
    assert [r["method"] for r in obj["rows"]] == ["teacher", "kd_occlusion", "dixtill_occlusion"]
    assert obj["provenance"]["plan"]["explainer"] == "occlusion"
    # only DiXtill trains on explanations, so only its training key depends on the explainer
    cfg, scfg = D.DistillConfig(epochs=1), StudentConfig()
    ig_inputs = replace(inputs, explainer="ig")
    assert D.training_key(inputs, "dixtill", 0, cfg, scfg) != D.training_key(ig_inputs, "dixtill", 0, cfg, scfg)
    assert D.training_key(inputs, "kd", 0, cfg, scfg) == D.training_key(ig_inputs, "kd", 0, cfg, scfg)
