"""Integrated-Gradients word attributions: alignment, batching, caching, the CLI step."""
from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pytest
import torch

from dixtill_lib.data import clean_text
from dixtill_lib.explain import (Attributions, IGConfig, attribute, explain_dataset, merge_to_words,
                                 pad_attributions, piece_to_word, word_attributions, word_attributions_loop,
                                 word_spans)
from dixtill_lib.io import CorruptCacheWarning

CFG = IGConfig(n_steps=8, batch_size=16)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from dixtill_lib import assets

    return AutoTokenizer.from_pretrained(str(assets.minilm_dir()))


def _align(tok, text):
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    return tok.convert_ids_to_tokens(enc["input_ids"]), piece_to_word(text, enc["offset_mapping"],
                                                                      enc["special_tokens_mask"])


# ---------------------------------------------------------------- alignment

def test_word_spans_match_split():
    text = "  $aapl  up 3.5%\n!? "
    spans = word_spans(text)
    assert [text[s:e] for s, e in spans] == text.split() == ["$aapl", "up", "3.5%", "!?"]


def test_cashtag_number_and_punctuation_pieces_map_to_one_student_word(minilm_tokenizer):
    toks, tw = _align(minilm_tokenizer, "$aapl up 3.5% !? today")
    # BERT splits "$aapl" into "$", "aa", "##pl" (three tokenizer "words": "$" is its own pre-token)
    assert toks[:4] == ["[CLS]", "$", "aa", "##pl"]
    assert tw.tolist() == [-1, 0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 4, -1]


def test_cleaned_text_aligns_every_word(minilm_tokenizer):
    text = clean_text("RT $TSLA!!! Tesla up 5% 🚀🚀 https://t.co/xyz — wow?!")
    words = text.split()
    toks, tw = _align(minilm_tokenizer, text)
    assert set(tw[tw >= 0].tolist()) == set(range(len(words)))  # no word left without a piece
    assert tw[0] == -1 and tw[-1] == -1


def test_raw_unicode_passed_directly(minilm_tokenizer):
    text = "café 🚀 moon \u200b x"  # accent stripped by the normaliser, emoji -> [UNK], zero-width space dropped
    assert len(text.split()) == 5
    toks, tw = _align(minilm_tokenizer, text)
    assert toks == ["[CLS]", "cafe", "[UNK]", "moon", "x", "[SEP]"]
    assert tw.tolist() == [-1, 0, 1, 2, 4, -1]
    merged = merge_to_words(np.array([9.0, 1.0, 2.0, 3.0, 4.0, 9.0]), tw, 5)
    assert merged.tolist() == [1.0, 2.0, 3.0, 0.0, 4.0]  # the invisible word has no piece: 0.0


def test_merge_is_mean_of_pieces_and_drops_specials():
    scores = np.array([0.7, 0.1, 0.2, 0.6, -0.3, 0.9])
    tw = np.array([-1, 0, 0, 0, 1, -1])
    np.testing.assert_allclose(merge_to_words(scores, tw, 3), [0.3, -0.3, 0.0], rtol=1e-6)


def _bpe_tokenizer(texts):
    """A GPT-2-style byte-level BPE tokenizer (no ## pieces, pieces carry the leading space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>")


def test_bpe_tokenizer_alignment_and_attributions(tweets):
    from dixtill_lib.teacher import Teacher
    from dixtill_lib.tiny import tiny_bert_classifier

    tok = _bpe_tokenizer(tweets.texts[:20])
    text = "$aapl soars 12% after earnings beat !?"
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    tw = piece_to_word(text, enc["offset_mapping"], enc["special_tokens_mask"])
    spans = word_spans(text)
    assert any(t.startswith("Ġ") for t in tok.convert_ids_to_tokens(enc["input_ids"]))
    for (s, e), w in zip(enc["offset_mapping"], tw):
        if w < 0:  # a piece that is only a space belongs to no word
            assert text[s:e].isspace()
            continue
        first = s + len(text[s:e]) - len(text[s:e].lstrip())
        assert spans[w][0] <= first < spans[w][1]
    assert set(tw[tw >= 0].tolist()) == set(range(len(text.split())))
    teacher = Teacher(tiny_bert_classifier(len(tok)), tok, max_length=48, name="tiny-bpe")
    texts = tweets.texts[:2] + [text]
    out = word_attributions(teacher, texts, CFG, progress=False)
    assert [len(v) for v in out] == [len(t.split()) for t in texts]
    loop = word_attributions_loop(teacher, texts, CFG).scores  # batched == loop without ## pieces too
    assert max(np.abs(a - b).max() for a, b in zip(out, loop)) <= 1e-4


# ---------------------------------------------------------------- IG

def test_batched_equals_one_at_a_time(tiny, tweets):
    a = attribute(tiny, tweets.texts, CFG, progress=False)
    b = word_attributions_loop(tiny, tweets.texts, CFG)
    assert max(np.abs(x - y).max() for x, y in zip(a.scores, b.scores)) <= 1e-4
    np.testing.assert_allclose(a.deltas, b.deltas, atol=1e-5)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert np.array_equal(a.targets, tiny.predict(tweets.texts, progress=False))


def test_one_score_per_student_word_even_when_truncated(tiny, tweets):
    long = " ".join(tweets.texts[:6])  # far more than max_length=48 word pieces
    texts = [long, "up", tweets.texts[0]]
    out = word_attributions(tiny, texts, CFG, progress=False)
    assert [len(v) for v in out] == [len(t.split()) for t in texts]
    assert all(v.dtype == np.float32 for v in out)
    assert np.all(out[0][-5:] == 0.0) and np.any(out[0][:5] != 0.0)  # truncated words get 0.0


def test_l2_normalisation_is_a_per_sentence_scale(tiny, tweets):
    texts = tweets.texts[:4]
    l2 = word_attributions(tiny, texts, CFG, progress=False)
    raw = word_attributions(tiny, texts, IGConfig(n_steps=8, normalise="none"), progress=False)
    for a, b in zip(l2, raw):
        ratio = a / b
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)
        assert np.abs(a).max() <= 1.0


def test_true_target_uses_labels(tiny, tweets):
    texts, labels = tweets.texts[:5], np.array([0, 1, 2, 0, 1])
    att = attribute(tiny, texts, IGConfig(n_steps=4, target="true"), labels=labels, progress=False)
    np.testing.assert_array_equal(att.targets, labels)
    with pytest.raises(ValueError, match="labels"):
        attribute(tiny, texts, IGConfig(n_steps=4, target="true"), progress=False)


def test_more_steps_shrink_the_convergence_delta(tiny, tweets):
    texts = tweets.texts[:8]
    d2 = np.abs(attribute(tiny, texts, IGConfig(n_steps=2), progress=False).deltas).mean()
    d32 = np.abs(attribute(tiny, texts, IGConfig(n_steps=32), progress=False).deltas).mean()
    assert d32 < d2 and d32 < 1e-3


def test_bad_input_is_refused(tiny):
    with pytest.raises(TypeError, match="list"):
        word_attributions(tiny, "one string", CFG)
    with pytest.raises(ValueError, match="empty"):
        word_attributions(tiny, ["fine", "  "], CFG)
    with pytest.raises(ValueError, match="n_steps"):
        IGConfig(n_steps=0)
    with pytest.raises(ValueError, match="target"):
        IGConfig(target="logit")


def test_mode_presets():
    assert IGConfig.for_mode("quick").n_steps == 4 and IGConfig.for_mode("full").n_steps == 4
    assert IGConfig.for_mode("full", n_steps=50).n_steps == 50
    assert "batch_size" not in IGConfig().cache_fields()


def test_pad_attributions():
    out = pad_attributions([np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0, 6.0])], 3)
    np.testing.assert_array_equal(out, [[1, 2, 0], [3, 4, 5]])
    assert out.dtype == np.float32


# ---------------------------------------------------------------- cache

def test_cache_hit_identical_and_corrupt_entry_rebuilt(tiny, tweets, isolated_cache, monkeypatch):
    ds = tweets.select(np.arange(12))
    first = explain_dataset(tiny, ds, CFG, progress=False)
    assert isinstance(first, Attributions) and len(first) == 12
    import dixtill_lib.explain as ex

    def boom(*a, **k):
        raise AssertionError("recomputed on a cache hit")

    real = ex.attribute
    monkeypatch.setattr(ex, "attribute", boom)
    again = explain_dataset(tiny, ds, IGConfig(n_steps=8, batch_size=3))  # batch size is not in the key
    for a, b in zip(first.scores, again.scores):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.deltas, again.deltas)
    monkeypatch.setattr(ex, "attribute", real)
    entries = list((isolated_cache / "attributions").glob(f"{ex.attribution_key(tiny, ds, CFG)}.npz"))
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:-20] + b"x" * 20)
    with pytest.warns(CorruptCacheWarning):
        rebuilt = explain_dataset(tiny, ds, CFG, progress=False)
    for a, b in zip(first.scores, rebuilt.scores):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain_dataset(tiny, ds, CFG)  # the rebuilt entry verifies


def test_cache_key_depends_on_steps_and_texts(tiny, tweets):
    from dixtill_lib.explain import attribution_key

    ds = tweets.select(np.arange(5))
    k = attribution_key(tiny, ds, CFG)
    assert k != attribution_key(tiny, ds, IGConfig(n_steps=9))
    assert k != attribution_key(tiny, tweets.select(np.arange(6)), CFG)


# ---------------------------------------------------------------- CLI step

def test_explain_step_writes_results(tiny, tweets, monkeypatch, tmp_path):
    import dixtill_lib.teacher as teacher_mod
    from dixtill_lib.explain import run_step

    train, valid = tweets.select(np.arange(20)), tweets.select(np.arange(20, 30))
    monkeypatch.setattr(teacher_mod, "default_teacher", lambda mode=None, data_dir=None, device="cpu", **k:
                        (tiny, train, valid))
    out = tmp_path / "explain.json"
    args = argparse.Namespace(mode="quick", seeds=[29], data_dir=None, device="cpu", out=str(out), n_steps=4,
                              batch_size=8, faithfulness=10, steps_study=4, threads=None, path_profile=3)
    assert run_step(args) == out
    rows = json.loads(out.read_text())["rows"]
    ig = {r["split"]: r for r in rows if r["method"] == "ig"}
    assert ig["train"]["n"] == 20 and ig["valid"]["n"] == 10 and ig["train"]["n_steps"] == 4
    assert ig["valid"]["sentences_per_second"] > 0 and ig["valid"]["mean_abs_delta"] >= 0
    faith = {r["method"]: r for r in rows if r["method"].startswith("faithfulness")}
    assert set(faith) == {"faithfulness/ig", "faithfulness/random"}
    assert len(faith["faithfulness/ig"]["comprehensiveness_by_ratio"]) == 5
    study = {r["n_steps"]: r for r in rows if r["method"] == "ig_steps"}
    assert sorted(study) == [2, 4, 16, 50] and study[50]["cosine_to_ref"] == pytest.approx(1.0)
    assert study[2]["mean_abs_delta"] >= study[50]["mean_abs_delta"]
    (path,) = [r for r in rows if r["method"] == "ig_path"]
    assert path["n"] == 3 and len(path["valid_index"]) == 3 and len(path["alphas"]) == 21
    assert np.asarray(path["p_target"]).shape == (3, 21) and 0 <= path["mean_max_jump"] <= 1


def test_delta_equals_captums_convergence_delta(tiny, tweets):
    from dixtill_lib.explain import _make_lig

    texts = tweets.texts[:3]
    ours = attribute(tiny, texts, CFG, progress=False)
    lig = _make_lig(tiny)
    for text, d, t in zip(texts, ours.deltas, ours.targets):
        ids = tiny.tokenizer([text], truncation=True, max_length=tiny.max_length, return_tensors="pt")["input_ids"]
        base = torch.full_like(ids, tiny.tokenizer.pad_token_id)
        base[0, 0], base[0, -1] = ids[0, 0], ids[0, -1]
        _, delta = lig.attribute(ids, base, target=int(t), additional_forward_args=(torch.ones_like(ids),),
                                 n_steps=CFG.n_steps, return_convergence_delta=True)
        assert float(delta[0]) == pytest.approx(float(d), abs=1e-6)


def test_large_sets_are_cached_in_parts_and_resume(tiny, tweets, isolated_cache, monkeypatch):
    import dixtill_lib.explain as ex

    monkeypatch.setattr(ex, "PART_SIZE", 5)
    ds = tweets.select(np.arange(30, 42))
    whole = attribute(tiny, ds.texts, CFG, progress=False)
    parted = explain_dataset(tiny, ds, CFG, progress=False)
    assert max(np.abs(a - b).max() for a, b in zip(whole.scores, parted.scores)) <= 1e-4
    assert len(list((isolated_cache / "attributions-parts").glob("*.npz"))) >= 3
    # an interrupted run: the final entry is gone, the parts are there -> nothing is recomputed
    (isolated_cache / "attributions" / f"{ex.attribution_key(tiny, ds, CFG)}.npz").unlink()
    monkeypatch.setattr(ex, "attribute", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = explain_dataset(tiny, ds, CFG, progress=False)
    for a, b in zip(parted.scores, again.scores):
        np.testing.assert_array_equal(a, b)


def test_explain_step_with_a_teacher_folder(tiny, tweets, monkeypatch, tmp_path):
    import dixtill_lib.data as data_mod
    from dixtill_lib.explain import run_step

    folder = tiny.save(tmp_path / "teacher")
    train, valid = tweets.select(np.arange(8)), tweets.select(np.arange(8, 14))
    monkeypatch.setattr(data_mod, "mode_splits", lambda mode=None, data_dir_=None, **k: (train, valid))
    out = tmp_path / "explain.json"
    args = argparse.Namespace(mode="quick", seeds=[29], data_dir=None, device="cpu", out=str(out), n_steps=2,
                              batch_size=8, faithfulness=0, steps_study=0, threads=None, teacher_dir=str(folder))
    run_step(args)
    res = json.loads(out.read_text())
    assert res["provenance"]["teacher"]["fingerprint"] == tiny.fingerprint()
    assert [r["n"] for r in res["rows"]] == [8, 6]
    args.teacher_dir = str(tmp_path / "nothing")
    from dixtill_lib.teacher import MissingModelError

    with pytest.raises(MissingModelError, match="no valid saved teacher"):
        run_step(args)


@pytest.mark.parametrize("decoder", [False, True])
def test_path_probs_end_points_are_the_text_and_the_baseline(tiny, tweets, decoder):
    from dixtill_lib.explain import _encode, _endpoint_probs, _pad_id, path_probs
    from dixtill_lib.tiny import tiny_llama_teacher

    teacher = tiny_llama_teacher(list(tweets.texts), hidden=48, heads=6, kv_heads=2) if decoder else tiny
    texts = tweets.texts[:3]
    probs, targets = path_probs(teacher, texts, alphas=(0.0, 0.5, 1.0))
    full = teacher.predict_proba(texts, progress=False)
    assert targets.tolist() == full.argmax(1).tolist()
    np.testing.assert_allclose(probs[:, 2], full.max(1), atol=1e-5)
    enc = _encode(teacher.tokenizer, texts, teacher.max_length)
    pad = _pad_id(teacher.tokenizer)
    for i, (x, sp) in enumerate(zip(enc.input_ids, enc.special)):
        ids = torch.tensor([x])
        base = torch.tensor([[t if s else pad for t, s in zip(x, sp)]])
        with torch.no_grad():
            both = _endpoint_probs(teacher.model, ids, base, torch.ones_like(ids))
        assert float(probs[i, 0]) == pytest.approx(float(both[1, targets[i]]), abs=1e-5)  # IG's F(baseline)
    with pytest.raises(ValueError, match="predicted class"):
        path_probs(teacher, texts, cfg=IGConfig(target="true"))
