"""The decoder-LLM teacher (issue 8) on a tiny GQA Llama with a byte-level BPE tokenizer: last-token
pooling, IG word alignment on BPE pieces, GQA head pruning, PTQ, resumable fine-tuning, result keys."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dixtill_lib import explain
from dixtill_lib.data import clean_text
from dixtill_lib.heads import (head_counts, head_importance, head_mask_hooks, keep_mask, kv_head_counts,
                               prune_heads, pruned_teacher, valid_keep_levels)
from dixtill_lib.tiny import build_bpe_tokenizer, tiny_llama_teacher

RAW = ["$AAPL to the moon 🚀🚀 https://t.co/xyz café!!", "Bearish on $TSLA... 📉 naïve   spacing $spy",
       "ok", "$BTC.X 💰 +5% über https://example.com/a?b=1 done"]


@pytest.fixture(scope="module")
def llama(tweets):
    """Tiny eager Llama classifier: 2 layers, 6 query heads in 2 key/value groups of 3 (head_dim 8)."""
    return tiny_llama_teacher(list(tweets.texts) + RAW, hidden=48, heads=6, kv_heads=2, seed=1)


def _logits(teacher, texts):
    with torch.inference_mode():
        return teacher.model(**teacher.encode(texts)).logits


# ---------------------------------------------------------------- tokenizer and pooling

def test_bpe_tokenizer_is_byte_level_with_space_in_offsets(tweets):
    tok = build_bpe_tokenizer(tweets.texts)
    enc = tok(["up  $aapl 🚀"], return_offsets_mapping=True, return_special_tokens_mask=True)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"][0])
    assert any(p.startswith("Ġ") for p in pieces)                      # byte-level space marker
    starts = [s for s, e in enc["offset_mapping"][0] if e > s]
    text = "up  $aapl 🚀"
    assert any(text[s] == " " for s in starts)                          # offsets include the leading space
    assert sum(enc["special_tokens_mask"][0]) == 0                      # nothing added, like SmolLM2
    assert tok.pad_token == tok.eos_token == "<|im_end|>"


def test_last_token_pooling_with_right_padding(llama, tweets):
    assert llama.tokenizer.padding_side == "right"
    assert llama.model.config.pad_token_id == llama.tokenizer.pad_token_id
    texts = list(tweets.texts[:6]) + ["ok"]
    batched = llama.logits(texts, progress=False)
    single = np.concatenate([llama.logits([t], progress=False) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # = the score head applied to the hidden state of each text's last real token
    enc = llama.encode(texts)
    with torch.inference_mode():
        h = llama.model.model(**enc).last_hidden_state
        last = enc["attention_mask"].sum(1) - 1
        manual = llama.model.score(h[torch.arange(len(texts)), last]).numpy()
    np.testing.assert_allclose(batched, manual, atol=1e-5)


def test_prepare_decoder_sets_missing_pad(tweets):
    from dixtill_lib.teacher import prepare_decoder
    from dixtill_lib.tiny import tiny_llama_classifier

    tok = build_bpe_tokenizer(tweets.texts)
    tok.pad_token = None
    tok.padding_side = "left"
    model = tiny_llama_classifier(len(tok), pad_token_id=None)
    prepare_decoder(model, tok)
    assert tok.pad_token == tok.eos_token and model.config.pad_token_id == tok.eos_token_id
    assert tok.padding_side == "right"


def test_named_teacher_configs():
    from dixtill_lib import assets
    from dixtill_lib.teacher import TeacherConfig, default_teacher, teacher_config

    assert teacher_config("minilm", "full") == TeacherConfig.for_mode("full")
    llm = teacher_config("smollm2", "full")
    assert llm.source == assets.SMOLLM2 and llm.lr == 5e-5 and llm.epochs == 3 and llm.train_size is None
    assert teacher_config("smollm2", "full", lr=1e-5).lr == 1e-5
    with pytest.raises(ValueError, match="Unknown teacher"):
        default_teacher("quick", teacher="finbert-large")


# ---------------------------------------------------------------- IG on BPE pieces

def test_piece_to_word_on_bpe_offsets(llama):
    tok = llama.tokenizer
    for text in RAW + [clean_text(t) for t in RAW]:
        enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        tw = explain.piece_to_word(text, enc["offset_mapping"], enc["special_tokens_mask"])
        words = text.split()
        # every word gets at least one piece; pieces map in order and never to a neighbour word
        assert set(tw[tw >= 0].tolist()) == set(range(len(words)))
        assert np.all(np.diff(tw[tw >= 0]) >= 0)
        for t, ((s, e), w) in enumerate(zip(enc["offset_mapping"], tw)):
            if w >= 0:
                piece = text[s:e].strip()
                assert piece and piece in words[w] or words[w].find(text[s:e].lstrip()[:1]) >= 0


def test_ig_one_score_per_student_word_on_unicode_tweets(llama):
    texts = RAW + [clean_text(t) for t in RAW]
    att = explain.attribute(llama, texts, explain.IGConfig(n_steps=8), progress=False)
    for t, sc in zip(texts, att.scores):
        assert len(sc) == len(t.split())
        assert np.all(np.isfinite(sc))
    # the cleaned tweets are the student's words: $cashtags kept, URLs and emoji gone
    assert clean_text(RAW[0]).split()[0] == "$aapl"
    # chunking the path points to bound memory changes nothing (one step of the batch per pass here)
    chunked = explain.attribute(llama, texts, explain.IGConfig(n_steps=8, tokens_per_pass=1), progress=False)
    for a, b in zip(chunked.scores, att.scores):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert explain.IGConfig(tokens_per_pass=1).cache_fields() == explain.IGConfig().cache_fields()
    loop = explain.word_attributions_loop(llama, texts[::2], explain.IGConfig(n_steps=8))
    for a, b in zip(loop.scores, att.scores[::2]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_ig_completeness_on_decoder(llama, tweets):
    """Completeness: the raw attributions sum to F(x) − F(baseline), up to a quadrature error that
    shrinks with the number of steps (F(baseline) = the path's end point, pooled at the real last token)."""
    texts = [clean_text(t) for t in RAW] + list(tweets.texts[:4])
    coarse = explain.attribute(llama, texts, explain.IGConfig(n_steps=8, normalise="none"), progress=False)
    fine = explain.attribute(llama, texts, explain.IGConfig(n_steps=128, normalise="none"), progress=False)
    assert np.abs(fine.deltas).max() < 1e-2
    assert np.abs(fine.deltas).mean() < np.abs(coarse.deltas).mean() / 3


# ---------------------------------------------------------------- GQA head pruning

def test_gqa_counts_and_levels(llama):
    assert head_counts(llama.model) == [6, 6] and kv_head_counts(llama.model) == [2, 2]
    assert valid_keep_levels(llama.model, (5, 4, 3, 2, 1), "query") == [4, 2]
    assert valid_keep_levels(llama.model, (5, 4, 3, 2, 1), "group") == [3]


def test_gqa_keep_mask_rules():
    imp = np.array([[0.1, 0.9, 0.5, 0.3, 0.2, 0.8]])  # groups (0,1,2) and (3,4,5)
    q = keep_mask(imp, 2, kv_heads=2, granularity="query")
    assert q.tolist() == [[False, True, False, False, False, True]]   # best head of each group
    g = keep_mask(imp, 3, kv_heads=2, granularity="group")
    assert g.tolist() == [[True, True, True, False, False, False]]    # group sums 1.5 vs 1.3
    with pytest.raises(ValueError, match="multiple of 2"):
        keep_mask(imp, 3, kv_heads=2, granularity="query")
    with pytest.raises(ValueError, match="multiple of 3"):
        keep_mask(imp, 2, kv_heads=2, granularity="group")


@pytest.mark.parametrize("keep,granularity", [(4, "query"), (2, "query"), (3, "group")])
def test_gqa_mask_equals_slice(llama, tweets, keep, granularity):
    texts = list(tweets.texts[:10])
    imp = np.random.default_rng(keep).random((2, 6))
    mask = keep_mask(imp, keep, kv_heads=2, granularity=granularity)
    with head_mask_hooks(llama.model, torch.as_tensor(mask, dtype=torch.float32)):
        masked = _logits(llama, texts)
    pruned = pruned_teacher(llama, mask)
    torch.testing.assert_close(_logits(pruned, texts), masked, rtol=1e-4, atol=1e-5)
    attn = pruned.model.model.layers[0].self_attn
    assert attn.q_proj.out_features == keep * 8 and attn.o_proj.in_features == keep * 8
    kv = 2 if granularity == "query" else 1
    assert attn.k_proj.out_features == attn.v_proj.out_features == kv * 8
    assert attn.num_key_value_groups == keep // kv
    assert head_counts(pruned.model) == [keep, keep] and kv_head_counts(pruned.model) == [kv, kv]
    assert head_counts(llama.model) == [6, 6]  # the original is untouched


def test_gqa_mask_equals_slice_sdpa(tweets):
    t = tiny_llama_teacher(list(tweets.texts), hidden=48, heads=6, kv_heads=2, attn_implementation="sdpa")
    mask = keep_mask(np.arange(12.0).reshape(2, 6), 2, kv_heads=2, granularity="query")
    with head_mask_hooks(t.model, torch.as_tensor(mask, dtype=torch.float32)):
        masked = _logits(t, tweets.texts[:8])
    torch.testing.assert_close(_logits(pruned_teacher(t, mask), tweets.texts[:8]), masked, rtol=1e-4, atol=1e-5)


def test_gqa_uneven_groups_rejected(llama):
    import copy

    with pytest.raises(ValueError, match="same number in every surviving group"):
        prune_heads(copy.deepcopy(llama.model), {0: [0]})  # group 0 keeps 2, group 1 keeps 3


def test_gqa_importance(llama, tweets):
    imp = head_importance(llama, tweets.select(np.arange(16)), "gradient", batch_size=8, progress=False)
    assert imp.shape == (2, 6) and np.all(imp >= 0)
    np.testing.assert_allclose(np.linalg.norm(imp, axis=1), 1.0, rtol=1e-6)


def test_compress_sweep_on_gqa_teacher(llama, tweets):
    from dixtill_lib.compress import CompressConfig, compression_sweep

    cfg = CompressConfig(calib_size=16, eval_size=None, keep=(5, 4, 3, 2, 1), importance=("gradient",), batch_size=16)
    res = compression_sweep(llama, tweets, tweets, cfg, progress=False)
    names = [r["method"] for r in res.rows]
    assert names == ["teacher", "ptq-int8", "ahp-4", "ahp-2", "ahp-3-group"]
    grp = {r["method"]: r for r in res.rows}
    assert grp["ahp-3-group"]["granularity"] == "group" and grp["ahp-4"]["granularity"] == "query"
    assert grp["ahp-2"]["size_bytes"] < grp["ahp-4"]["size_bytes"] < grp["teacher"]["size_bytes"]


def test_quantized_llama_close_to_fp32(llama, tweets):
    from dixtill_lib.compress import quantized_teacher

    q = quantized_teacher(llama)
    want, got = llama.logits(tweets.texts, progress=False), q.logits(tweets.texts, progress=False)
    assert np.abs(got - want).max() < 0.05
    assert not any(type(m) is torch.nn.Linear for m in q.model.modules())


# ---------------------------------------------------------------- resumable fine-tuning

def test_fine_tune_resumes_from_epoch_checkpoint(tweets, tmp_path, monkeypatch):
    import dixtill_lib.teacher as T

    ds = tweets.select(np.arange(48))
    cfg = T.TeacherConfig(epochs=2, batch_size=16, lr=1e-3)
    texts = list(tweets.texts)
    full = tiny_llama_teacher(texts)
    h_full = T.fine_tune(full, ds, cfg, progress=False)

    orig = T._save_checkpoint

    class Stop(Exception):
        pass

    def save_then_stop(*a, **k):
        orig(*a, **k)
        raise Stop

    ck = tmp_path / "ft.ckpt.pt"
    monkeypatch.setattr(T, "_save_checkpoint", save_then_stop)
    with pytest.raises(Stop):
        T.fine_tune(tiny_llama_teacher(texts), ds, cfg, progress=False, checkpoint=ck)
    monkeypatch.setattr(T, "_save_checkpoint", orig)
    resumed = tiny_llama_teacher(texts, seed=7)  # different start: the checkpoint must overwrite it
    h_res = T.fine_tune(resumed, ds, cfg, progress=False, checkpoint=ck)
    assert [h["loss"] for h in h_res] == [h["loss"] for h in h_full]
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_teacher_save_roundtrip_keeps_pooling(llama, tweets, tmp_path):
    from dixtill_lib.teacher import Teacher

    llama.save(tmp_path / "t")
    back = Teacher.from_cache(tmp_path / "t")
    assert back.tokenizer.padding_side == "right" and back.model.config.pad_token_id == llama.tokenizer.pad_token_id
    np.testing.assert_allclose(back.logits(tweets.texts[:8], progress=False),
                               llama.logits(tweets.texts[:8], progress=False), atol=1e-5)


# ---------------------------------------------------------------- result rows

def test_row_teacher_and_paths(tmp_path):
    from dixtill_lib.results import row_teacher, teacher_results_path

    assert row_teacher({"method": "kd"}) == "minilm"
    assert row_teacher({"method": "kd", "teacher": "all-MiniLM-L6-v2"}) == "minilm"
    assert row_teacher({"method": "kd", "teacher": "smollm2"}) == "smollm2"
    assert teacher_results_path("distillation", "minilm", "full") is None
    assert teacher_results_path("distillation", "smollm2", "full").name == "distillation_smollm2.json"
    assert teacher_results_path("distillation", "smollm2", "full", tmp_path / "x.json") == tmp_path / "x.json"


def test_distill_student_dirs_are_per_teacher():
    from dixtill_lib.bench import student_root as bench_root
    from dixtill_lib.distill import student_dir, student_root

    assert student_root("full").name == "full" and student_root("full", "smollm2").name == "full_smollm2"
    assert student_dir("full", "kd", 0, "smollm2").parent == student_root("full", "smollm2")
    assert bench_root("full", "smollm2") == student_root("full", "smollm2")


def test_cli_accepts_teacher_option():
    from dixtill_lib.cli import build_parser

    args = build_parser().parse_args(["distill", "--full", "--teacher", "smollm2"])
    assert args.teacher == "smollm2"
    assert build_parser().parse_args(["bench"]).teacher == "minilm"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--teacher", "gpt5"])


def test_dataclass_defaults_keep_minilm_cache_keys():
    """New config fields must not change the MiniLM teacher's cache key (default values are not hashed)."""
    from dixtill_lib.compress import CompressConfig
    from dixtill_lib.teacher import TeacherConfig

    assert "granularity" in {f.name for f in dataclasses.fields(CompressConfig)}
    assert TeacherConfig().source == "minilm"


# ---------------------------------------------------------------- the steps with --teacher smollm2

def test_compress_and_bench_steps_write_teacher_files(llama, tweets, monkeypatch):
    """``--teacher smollm2`` rows carry teacher='smollm2' and go to <step>_smollm2.json; the saved
    students of that teacher (not the MiniLM ones) are benchmarked."""
    import argparse

    import dixtill_lib.bench as bench
    import dixtill_lib.compress as compress
    import dixtill_lib.teacher as teacher_mod
    from dixtill_lib.results import load_results, row_teacher

    seen = {}

    def fake_default_teacher(*a, **k):
        seen["teacher"] = k.get("teacher")
        return llama, tweets, tweets

    monkeypatch.setattr(teacher_mod, "default_teacher", fake_default_teacher)
    args = argparse.Namespace(mode="quick", seed=29, seeds=[29], data_dir=None, out=None, calib_size=16,
                              eval_size=20, importance="gradient", teacher="smollm2", teacher_dir=None, keep=None)
    path = compress.run_step(args)
    obj = load_results(path)
    assert seen["teacher"] == "smollm2" and path.name == "pruning_smollm2.json"
    assert {row_teacher(r) for r in obj["rows"]} == {"smollm2"}
    assert obj["provenance"]["attention"] == {"query_heads": 6, "kv_heads": 2, "granularity": ["query", "group"]}
    # quick levels (9, 6, 3, 1): query granularity realises none below 6 except multiples of 2 -> none of 3/1;
    # group granularity keeps 3 (one whole group)
    assert [r["method"] for r in obj["rows"]] == ["teacher", "ptq-int8", "ahp-3-group"]

    found = {}
    monkeypatch.setattr(bench, "student_candidates",
                        lambda mode=None, root=None, methods=None, teacher="minilm":
                        found.update(root=root, methods=methods) or [])
    monkeypatch.setattr(bench.BenchConfig, "for_mode", classmethod(
        lambda cls, mode=None, **o: bench.BenchConfig(repeats_b1=1, repeats_b32=1, warmup=0, keep=(4, 3, 2),
                                                      calib_size=16, eval_size=None, **o)))
    bargs = argparse.Namespace(mode="quick", seed=29, seeds=[29], data_dir=None, out=None, threads=None, repeats=None,
                               no_students=False, teacher_dir=None, teacher="smollm2", keep=None,
                               students="kd_aug, dixtill_aug")
    path = bench.run_step(bargs)
    obj = load_results(path)
    assert path.name == "compression_smollm2.json" and found["root"].name == "quick_smollm2"
    assert found["methods"] == ("kd_aug", "dixtill_aug") and obj["provenance"]["config"]["student_methods"] == [
        "kd_aug", "dixtill_aug"]
    # bench times the default granularity: whole kv groups (3 heads = 1 of the 2 groups of 3)
    assert [r["method"] for r in obj["rows"]] == ["teacher", "ptq-int8", "ahp-3-group"]
    assert {row_teacher(r) for r in obj["rows"]} == {"smollm2"}
    assert obj["rows"][2]["granularity"] == "group"


def test_distill_step_with_llm_teacher(llama, tweets, monkeypatch):
    """``distill --teacher smollm2``: IG of the decoder teacher feeds DiXtill, rows say teacher='smollm2',
    students go to students/<mode>_smollm2/ and the file is distillation_smollm2.json."""
    import argparse

    import dixtill_lib.distill as D
    import dixtill_lib.teacher as teacher_mod
    from dixtill_lib.results import load_results

    train, valid = tweets.select(np.arange(40)), tweets.select(np.arange(40, 50))
    monkeypatch.setattr(teacher_mod, "default_teacher", lambda *a, **k: (llama, train, valid))
    args = argparse.Namespace(mode="quick", seeds=[0], seed=0, methods="kd,dixtill", temperatures="", sweep_seeds=None,
                              no_ablation=True, epochs=1, max_len=24, momentum=None, paper_kd=False, attn_size=None,
                              no_save=False, data_dir=None, device="cpu", out=None, teacher="smollm2", resume=False)
    path = D.run_step(args)
    obj = load_results(path)
    assert path.name == "distillation_smollm2.json"
    assert [r["method"] for r in obj["rows"]] == ["teacher", "kd", "dixtill"]
    assert {r["teacher"] for r in obj["rows"]} == {"smollm2"} and obj["rows"][0]["teacher_model"] == "tiny-llama"
    assert obj["rows"][2]["path"].endswith("students/quick_smollm2/dixtill_seed0")
    assert obj["provenance"]["teacher"]["key"] == "smollm2"
