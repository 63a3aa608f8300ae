"""The four distillation losses on hand-computed tensors, the trainer (determinism, learning), the
evaluation/step plumbing on a tiny teacher, and the chapter's exercise checkers."""
from __future__ import annotations

import argparse
from dataclasses import replace
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dixtill_lib import distill as D
from dixtill_lib.student import UNK_ID, StudentConfig, Vocab, build_student, load_student

LN2, LN3 = math.log(2), math.log(3)


# ------------------------------------------------------------------ losses by hand

def test_ce_loss_uniform_logits_is_log_c():
    total, parts = D.ce_loss(torch.zeros(2, 3), torch.tensor([0, 2]))
    assert float(total) == pytest.approx(LN3)
    assert set(parts) == {"ce"}


def _kl_by_hand(pt: list[float], ps: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(pt, ps))


def test_kd_kl_loss_by_hand():
    zs, zt, y = torch.zeros(1, 2), torch.tensor([[LN3, 0.0]]), torch.tensor([0])
    # T = 1: p_T = (3/4, 1/4), p_S = (1/2, 1/2)
    kl1 = _kl_by_hand([0.75, 0.25], [0.5, 0.5])
    total, parts = D.kd_kl_loss(zs, y, zt, T=1.0, alpha=0.9)
    assert float(parts["kd"]) == pytest.approx(kl1, rel=1e-5)
    assert float(total) == pytest.approx(0.1 * LN2 + 0.9 * kl1, rel=1e-5)
    # T = 2: p_T = softmax(ln3/2, 0) = (√3, 1)/(√3 + 1), and the KL is multiplied by T² = 4
    r3 = math.sqrt(3)
    kl2 = _kl_by_hand([r3 / (r3 + 1), 1 / (r3 + 1)], [0.5, 0.5])
    total, parts = D.kd_kl_loss(zs, y, zt, T=2.0, alpha=0.9)
    assert float(parts["kd"]) == pytest.approx(4 * kl2, rel=1e-5)
    assert float(total) == pytest.approx(0.1 * LN2 + 0.9 * 4 * kl2, rel=1e-5)


def test_kd_mse_loss_by_hand():
    zs, zt, y = torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([2])
    total, parts = D.kd_mse_loss(zs, y, zt, alpha=0.9)
    assert float(parts["kd"]) == pytest.approx(14.0)          # 1 + 4 + 9: squared L2 over classes
    assert float(total) == pytest.approx(0.1 * LN3 + 0.9 * 14.0, rel=1e-6)


def test_dixtill_loss_by_hand():
    zs, zt, y = torch.zeros(1, 2), torch.tensor([[LN3, 0.0]]), torch.tensor([0])
    expl = torch.tensor([[1.0, 0.0, 0.0]])
    sig = torch.tensor([[1.0, 1.0, 0.0]])
    kl = _kl_by_hand([0.75, 0.25], [0.5, 0.5])
    kd = 1 - math.exp(-kl)                                    # T = 1 so T² = 1
    xai = 0.5 * (1 - 1 / math.sqrt(2))
    total, parts = D.dixtill_loss(zs, sig, y, zt, expl, T=1.0)
    assert float(parts["ce"]) == pytest.approx(LN2)
    assert float(parts["kd"]) == pytest.approx(kd, rel=1e-5)
    assert float(parts["xai"]) == pytest.approx(xai, rel=1e-6)
    assert float(total) == pytest.approx(0.1 * LN2 + 0.9 * kd + 0.9 * xai, rel=1e-5)
    # T = 5 in the code form: the KL at T=5 is multiplied by 25 inside the exponential
    p = torch.softmax(zt / 5, 1)[0].tolist()
    kl5 = _kl_by_hand(p, [0.5, 0.5])
    _, parts5 = D.dixtill_loss(zs, sig, y, zt, expl, T=5.0)
    assert float(parts5["kd"]) == pytest.approx(1 - math.exp(-25 * kl5), rel=1e-5)
    _, paper = D.dixtill_loss(zs, sig, y, zt, expl, T=5.0, paper_form=True)
    assert float(paper["kd"]) == pytest.approx(1 - math.exp(-kl5), rel=1e-5)


def test_bounded_kd_code_form_uses_batch_mean_kl():
    zs = torch.zeros(2, 2)
    zt = torch.tensor([[LN3, 0.0], [0.0, 0.0]])               # KL = (k, 0)
    k = _kl_by_hand([0.75, 0.25], [0.5, 0.5])
    assert float(D.bounded_kd(zt, zs, T=1.0)) == pytest.approx(1 - math.exp(-k / 2), rel=1e-5)
    assert float(D.bounded_kd(zt, zs, T=1.0, paper_form=True)) == pytest.approx((1 - math.exp(-k)) / 2, rel=1e-5)


def test_xai_loss_zero_vector_and_bounds():
    e = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.0], [1.0, -2.0, 0.0]])
    s = torch.tensor([[3.0, 1.0, 0.0], [2.0, -4.0, 0.0], [-1.0, 2.0, 0.0]])
    # cosines: 0 (zero teacher vector, as Keras), +1, −1 → mean 0 → L_XAI = ½
    torch.testing.assert_close(D.cosine_keras(e, s), torch.tensor([0.0, 1.0, -1.0]))
    assert float(D.xai_loss(e, s)) == pytest.approx(0.5)
    assert float(D.xai_loss(e[1:2], s[1:2])) == pytest.approx(0.0, abs=1e-7)
    assert float(D.xai_loss(e[2:3], s[2:3])) == pytest.approx(1.0)


def test_xai_gradient_flows_into_sigma_only_for_dixtill():
    sig = torch.randn(4, 5, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    y, zt, e = torch.tensor([0, 1, 2, 0]), torch.randn(4, 3), torch.randn(4, 5)
    for method, expects_sigma_grad in (("dixtill", True), ("ce", False), ("kd", False), ("tang", False)):
        sig.grad = z.grad = None
        total, _ = D.loss_for(method, D.DistillConfig())(z, sig, y, zt, e)
        total.backward()
        assert (sig.grad is not None and sig.grad.abs().sum() > 0) == expects_sigma_grad, method
        assert z.grad.abs().sum() > 0


def test_unknown_method_and_bad_config():
    with pytest.raises(ValueError, match="Unknown method"):
        D.loss_for("mse", D.DistillConfig())
    with pytest.raises(ValueError, match="holdout"):
        D.DistillConfig(holdout=1.5)
    assert D.DistillConfig.for_mode("full").epochs == 15
    assert D.DistillConfig.for_mode("quick").epochs < 15
    with pytest.raises(ValueError, match="select must be 'loss' or 'macro_f1'"):
        D.DistillConfig(select="f1")
    with pytest.raises(ValueError, match=r"ema must be a decay in \[0, 1\)"):
        D.DistillConfig(ema=1.0)
    with pytest.raises(ValueError, match=r"unk_rate must be a probability in \[0, 1\)"):
        D.DistillConfig(unk_rate=1.0)
    with pytest.raises(ValueError, match=r"gold_repeat must be a whole number >= 1"):
        D.DistillConfig(gold_repeat=0)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"transfer_fraction must be a share in \(0, 1\]"):
            D.DistillConfig(transfer_fraction=bad)


# ------------------------------------------------------------------ trainer

def _train(toy, method="dixtill", seed=0, epochs=4, **kw):
    ds, zt, expl, vocab = toy
    cfg = D.DistillConfig(epochs=epochs, batch_size=8, **kw)
    return D.train_student(method, ds.texts, ds.labels, zt, expl, vocab, cfg,
                           StudentConfig(embeddings="random", max_len=24), seed=seed, progress=False)


def _numbers(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_training_is_deterministic(toy):
    a, b, c = _train(toy, seed=1), _train(toy, seed=1), _train(toy, seed=2)
    assert _numbers(a.history) == _numbers(b.history)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert _numbers(a.history) != _numbers(c.history)


def test_tiny_distillation_lowers_the_loss_and_restores_best(toy):
    r = _train(toy, "dixtill", epochs=6, lr=0.05)
    h = r.history
    assert h[-1]["train_total"] < h[0]["train_total"]
    assert h[-1]["train_xai"] < h[0]["train_xai"]             # σm turns towards the (first-word) teacher target
    assert {"train_ce", "train_kd", "train_xai", "val_total", "val_accuracy", "val_cos_to_teacher"} <= set(h[0])
    best = min(range(len(h)), key=lambda i: h[i]["val_total"])
    assert r.best_epoch == best + 1
    assert r.info["n_fit"] == 45 and r.info["n_holdout"] == 5   # Keras validation_split=0.1: the last 5 rows


def _holdout_f1(trained, toy) -> float:
    from dixtill_lib.data import holdout_split
    from dixtill_lib.metrics import classification_metrics
    from dixtill_lib.student import predict_proba

    ho = holdout_split(toy[0], 0.1)[1]
    return classification_metrics(ho.labels, predict_proba(trained.model, trained.vocab, ho.texts), 3)["macro_f1"]


def test_select_by_macro_f1_restores_the_best_f1_epoch(toy):
    by_loss = _train(toy, "kd", epochs=6, lr=0.05)
    by_f1 = _train(toy, "kd", epochs=6, lr=0.05, select="macro_f1")
    h = by_f1.history
    assert _numbers(h) == _numbers(by_loss.history)        # selection does not change the training itself
    assert by_f1.best_epoch == 1 + max(range(len(h)), key=lambda i: (h[i]["val_macro_f1"], -i))
    # the logged held-out macro-F1 is the one the metrics module computes for the restored weights
    assert _holdout_f1(by_f1, toy) == pytest.approx(h[by_f1.best_epoch - 1]["val_macro_f1"], abs=1e-6)
    assert _holdout_f1(by_loss, toy) == pytest.approx(h[by_loss.best_epoch - 1]["val_macro_f1"], abs=1e-6)


def test_weight_average_is_evaluated_selected_and_returned(toy):
    plain = _train(toy, "kd", epochs=4, lr=0.05)
    avg = _train(toy, "kd", epochs=4, lr=0.05, ema=0.9)
    # the raw trajectory is the same; the logged held-out numbers are those of the averaged weights
    assert [h["train_total"] for h in avg.history] == [h["train_total"] for h in plain.history]
    assert [h["val_total"] for h in avg.history] != [h["val_total"] for h in plain.history]
    assert _holdout_f1(avg, toy) == pytest.approx(avg.history[avg.best_epoch - 1]["val_macro_f1"], abs=1e-6)
    # by hand: the average after two steps of decay d is d²·w0 + d(1-d)·w1 + (1-d)·w2
    net = torch.nn.Linear(2, 1, bias=False)
    ws = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])]
    with torch.no_grad():
        net.weight.copy_(ws[0])
        wa = D.WeightAverage(net, 0.5)
        for w in ws[1:]:
            net.weight.copy_(w)
            wa.update()
        with wa.swapped_in(net):
            torch.testing.assert_close(net.weight, 0.25 * ws[0] + 0.25 * ws[1] + 0.5 * ws[2])
        torch.testing.assert_close(net.weight, ws[2])     # its own weights again after the block


def test_word_dropout_hides_real_words_only_at_its_rate():
    ids = torch.randint(2, 50, (400, 30))
    ids[:, 20:] = 0                                          # padding
    mask = (ids != 0).float()
    out = D.word_dropout(ids, mask, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 20:], ids[:, 20:])              # pads stay pads
    hidden = (out != ids)
    assert torch.all(out[hidden] == UNK_ID)
    assert hidden[:, :20].float().mean().item() == pytest.approx(0.25, abs=0.01)
    again = D.word_dropout(ids, mask, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                            # seeded
    names = [D.recipe_suffix(D.DistillConfig(**kw)) for kw in ({}, {"ema": 0.999}, {"ema": 0.999, "unk_rate": 0.1},
                                                             {"unk_rate": 0.1, "gold_repeat": 4},
                                                             {"ema": 0.999, "transfer_fraction": 1 / 3},
                                                             {"ema": 0.999, "rare_unk": 0.25})]
    assert names == ["", "_ema", "_ema_unk10", "_unk10_gold4", "_ema_sub33", "_ema_rare25"]  # rows and students


def test_frequency_word_dropout_hides_rare_words_at_alpha_over_alpha_plus_count():
    vocab = Vocab.build(["up up up up down", "up down flat"])   # counts: up 5, down 2, flat 1
    rates = D.frequency_rates(vocab, ["up up up up down", "up down flat"], 0.25)
    by_word = dict(zip(vocab.words, rates.tolist()))
    assert by_word == pytest.approx({"<PAD>": 0.0, "<UNK>": 0.0, "up": 0.25 / 5.25, "down": 0.25 / 2.25,
                                     "flat": 0.25 / 1.25})
    assert D.frequency_rates(vocab, ["up"], 0.25)[vocab.index["flat"]] == 1.0  # never seen: always unknown
    ids = torch.tensor([[vocab.index[w] for w in ("up", "down", "flat")] + [0]] * 20_000)
    mask = (ids != 0).float()
    out = D.word_dropout(ids, mask, rates, torch.Generator().manual_seed(0))
    hidden = (out != ids).float().mean(0)
    assert hidden.tolist() == pytest.approx([0.25 / 5.25, 0.25 / 2.25, 0.25 / 1.25, 0.0], abs=0.01)
    assert torch.all(out[out != ids] == UNK_ID)
    with pytest.raises(ValueError, match="choose one word dropout"):
        D.DistillConfig(unk_rate=0.1, rare_unk=0.25)
    with pytest.raises(ValueError, match="rare_unk is frequency word dropout's alpha"):
        D.DistillConfig(rare_unk=-1)


def test_word_dropout_trains_the_unknown_word_embedding(toy):
    plain = _train(toy, "kd", epochs=3, lr=0.05)
    dropped = _train(toy, "kd", epochs=3, lr=0.05, unk_rate=0.2)
    init, _ = build_student(toy[3], StudentConfig(embeddings="random", max_len=24), seed=0)
    unk_init = init.emb.weight[UNK_ID]
    # every toy word is in the vocabulary, so without word dropout <UNK>'s row never gets a gradient
    torch.testing.assert_close(plain.model.emb.weight[UNK_ID], unk_init)
    assert not torch.allclose(dropped.model.emb.weight[UNK_ID], unk_init)
    rare = _train(toy, "kd", epochs=3, lr=0.05, rare_unk=0.25)  # frequency word dropout trains it too
    assert not torch.allclose(rare.model.emb.weight[UNK_ID], unk_init)
    assert dropped.history[0]["train_total"] != plain.history[0]["train_total"]
    # the held-out loss is scored on the real words: word dropout only touches training batches
    assert {"val_total", "val_macro_f1"} <= set(dropped.history[0])


def test_gold_repeat_shows_each_fitted_row_k_times_per_epoch(shown_rows, toy):
    epochs = shown_rows
    once = _train(toy, "kd", epochs=2, lr=0.05)
    thrice = _train(toy, "kd", epochs=2, lr=0.05, gold_repeat=3)
    n_fit = once.info["n_fit"]
    for e in epochs[:2]:
        assert sorted(e.tolist()) == list(range(n_fit))
    for e in epochs[2:]:                                     # shuffled: not three copies in a row
        assert sorted(e.tolist()) == sorted(list(range(n_fit)) * 3) and e[:n_fit].unique().numel() < n_fit
    assert len(thrice.history) == 2 and thrice.history[0]["train_total"] != once.history[0]["train_total"]


def _recorded_lrs(monkeypatch, toy, **kw):
    """Train a small kd student and return the learning rate every optimizer step used."""
    lrs, make = [], D.make_optimizer

    def spying(params, cfg):
        opt = make(params, cfg)
        opt.register_step_pre_hook(lambda o, args, kwargs: lrs.append(o.param_groups[0]["lr"]))
        return opt
    monkeypatch.setattr(D, "make_optimizer", spying)
    trained = _train(toy, "kd", epochs=3, **kw)
    monkeypatch.undo()
    return trained, lrs


def test_cosine_schedule_decays_every_step_and_constant_keeps_the_authors_lr(monkeypatch, toy):
    assert [D.cosine_factor(i, 4) for i in range(5)] == pytest.approx([1, 0.8535534, 0.5, 0.1464466, 0])
    plain, flat = _recorded_lrs(monkeypatch, toy, lr=0.05)
    cos, decayed = _recorded_lrs(monkeypatch, toy, lr=0.05, schedule="cosine")
    assert set(flat) == {0.05}
    total = len(decayed)
    assert total == 3 * -(-plain.info["n_fit"] // 8)
    assert decayed == pytest.approx([0.05 * D.cosine_factor(i, total) for i in range(total)])
    assert decayed[-1] < 0.05 * 0.01
    assert [h["train_total"] for h in cos.history][0] != [h["train_total"] for h in plain.history][0]


def test_adam_optimizer_and_bad_values(toy):
    opt = D.make_optimizer(torch.nn.Linear(2, 1).parameters(), D.DistillConfig(optimizer="adam", lr=0.003))
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 0.003
    sgd = D.make_optimizer(torch.nn.Linear(2, 1).parameters(), D.DistillConfig())
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.99
    adam = _train(toy, "kd", epochs=3, optimizer="adam", lr=0.01)
    assert adam.history[-1]["train_total"] < adam.history[0]["train_total"]
    with pytest.raises(ValueError, match="schedule must be one of"):
        D.DistillConfig(schedule="linear")
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'sgd'\]"):
        D.DistillConfig(optimizer="rmsprop")


def test_later_config_fields_leave_old_keys_alone(tiny_inputs):
    from dataclasses import asdict
    from dixtill_lib.io import hash_texts, stable_hash

    cfg, scfg = D.DistillConfig(epochs=2), StudentConfig(max_len=24)
    # the key as it was computed before the later fields (``select`` ... ``transfer_fraction``) existed
    later = ("select", "ema", "schedule", "optimizer", "unk_rate", "gold_repeat", "transfer_fraction", "rare_unk")
    old = {k: v for k, v in asdict(cfg).items() if k not in D.EVAL_ONLY_FIELDS + later}
    before = stable_hash(hash_texts(tiny_inputs.train.texts), tiny_inputs.train.labels.tolist(),
                         tiny_inputs.teacher_fingerprint, "kd", 0, old, asdict(scfg), len(tiny_inputs.vocab))
    assert D.training_key(tiny_inputs, "kd", 0, cfg, scfg) == before
    keys = {D.training_key(tiny_inputs, "kd", 0, D.DistillConfig(epochs=2, **kw), scfg)
            for kw in ({}, {"select": "macro_f1"}, {"ema": 0.99}, {"schedule": "cosine"}, {"optimizer": "adam"},
                       {"unk_rate": 0.1}, {"gold_repeat": 2}, {"transfer_fraction": 0.5}, {"rare_unk": 0.25})}
    assert len(keys) == 9


def test_trainer_rejects_misaligned_explanations(toy):
    ds, zt, expl, vocab = toy
    bad = list(expl)
    bad[3] = np.zeros(len(bad[3]) + 1, dtype=np.float32)
    with pytest.raises(ValueError, match="one score per word"):
        D.train_student("dixtill", ds.texts, ds.labels, zt, bad, vocab, D.DistillConfig(epochs=1),
                        StudentConfig(embeddings="random"), progress=False)


def test_student_ig_is_per_word_and_normalised(toy):
    r = _train(toy, "ce", epochs=1)
    texts = toy[0].texts[:6]
    ig = D.student_ig(r.model, r.vocab, texts, n_steps=8)
    assert [len(v) for v in ig] == [len(t.split()) for t in texts]
    np.testing.assert_allclose([np.linalg.norm(v) for v in ig], 1.0, rtol=1e-5)


# ------------------------------------------------------------------ evaluation + step on a tiny teacher

@pytest.fixture(scope="module")
def tiny_inputs(tweets, tiny):
    from dixtill_lib.explain import IGConfig, word_attributions
    from dixtill_lib.metrics import classification_metrics, softmax
    from dixtill_lib.student import glove_matrix

    train, valid = tweets.select(np.arange(40)), tweets.select(np.arange(40, 50))
    cfg = IGConfig(n_steps=4)
    vocab = Vocab.build(train.texts)
    glove, missing = glove_matrix(vocab)
    vl = tiny.logits(valid.texts, progress=False)
    return D.DistillInputs("quick", train, valid, tiny.logits(train.texts, progress=False), vl,
                           word_attributions(tiny, train.texts, cfg, progress=False),
                           word_attributions(tiny, valid.texts, cfg, progress=False), vocab, glove, missing,
                           "tiny-bert", tiny.fingerprint(), classification_metrics(valid.labels, softmax(vl), 3),
                           tiny.num_parameters(), 1)


def test_run_one_evaluates_and_saves(tiny_inputs):
    cfg = D.DistillConfig(epochs=2, ig_steps=4)
    _, row = D.run_one(tiny_inputs, "kd", 0, cfg, StudentConfig(max_len=24), save=True, progress=False)
    for key in ("accuracy", "macro_f1", "mcc", "agreement_cosine", "agreement_spearman", "feature_agreement_k3",
                "sign_agreement_k3", "feature_agreement_k5", "comprehensiveness", "sufficiency", "attn_agreement_cosine",
                "ig_agreement_cosine", "params", "size_bytes", "best_epoch", "train_seconds", "history"):
        assert key in row, key
    assert row["explanation"] == "student_ig"
    assert row["agreement_cosine"] == row["ig_agreement_cosine"]
    assert 0 <= row["feature_agreement_k3"] <= 1
    model, vocab, scfg = load_student(row["path"])
    assert row["path"].endswith("students/quick/kd_seed0") and scfg.max_len == 24
    assert row["resumed"] is False
    # resume: the saved student is reused (no training), with the same metrics and training record
    _, again = D.run_one(tiny_inputs, "kd", 0, cfg, StudentConfig(max_len=24), save=True, resume=True, progress=False)
    assert again["resumed"] is True
    assert again["macro_f1"] == row["macro_f1"] and again["history"] == row["history"]
    # a different training config is not reused
    _, other = D.run_one(tiny_inputs, "kd", 0, D.DistillConfig(epochs=1, ig_steps=4), StudentConfig(max_len=24),
                         save=False, resume=True, progress=False)
    assert other["resumed"] is False
    _, row_d = D.run_one(tiny_inputs, "dixtill", 0, cfg, StudentConfig(max_len=24), progress=False)
    assert row_d["explanation"] == "sigma_m" and "ig_agreement_cosine" not in row_d
    assert row_d["agreement_cosine"] == row_d["attn_agreement_cosine"]


def test_glove_aliases_change_evaluation_only_and_save_an_aliased_copy(tiny_inputs):
    cfg = D.DistillConfig(epochs=2, ig_steps=4, faithfulness=False)
    scfg = StudentConfig(max_len=24)
    plain, row = D.run_one(tiny_inputs, "kd", 0, cfg, scfg, name="kd_al", save=True, progress=False)
    aliased_cfg = replace(cfg, glove_aliases=20_000)
    assert D.training_key(tiny_inputs, "kd", 0, aliased_cfg, scfg) == D.training_key(tiny_inputs, "kd", 0, cfg, scfg)
    trained, arow = D.run_one(tiny_inputs, "kd", 0, aliased_cfg, scfg, name="kd_al", save=True, resume=True,
                              progress=False)
    assert arow["resumed"] is True and arow["method"] == "kd_al_alias20k"      # same weights, new row name
    assert arow["valid_unk_rate"] < row["valid_unk_rate"] and arow["n_aliases"] > 10_000
    assert row["valid_unk_rate"] == pytest.approx(tiny_inputs.vocab.oov_rate(tiny_inputs.valid.texts), abs=1e-5)
    model, vocab, _ = load_student(arow["path"])
    assert arow["path"].endswith("kd_al_alias20k_seed0") and vocab.aliases == trained.vocab.aliases
    for a, b in zip(model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.equal(a, b)
    assert vocab.words == tiny_inputs.vocab.words and not load_student(row["path"])[1].aliases
    from dixtill_lib.metrics import classification_metrics
    from dixtill_lib.student import predict_proba

    valid = tiny_inputs.valid
    proba = predict_proba(model, vocab, valid.texts)
    f1 = classification_metrics(valid.labels, proba, 3)["macro_f1"]
    assert arow["macro_f1"] == pytest.approx(f1)                         # the row scores the aliased vocabulary
    # the split by unknown words uses the plain vocabulary, so the same tweets fall on each side for every row
    assert arow["n_with_unknown"] == row["n_with_unknown"] == D.teacher_row(tiny_inputs)["n_with_unknown"]
    assert arow["accuracy_with_unknown"] == pytest.approx(
        D.unknown_word_split(tiny_inputs.vocab, valid.texts, valid.labels, proba)["accuracy_with_unknown"])


def test_unknown_word_split_scores_each_side_and_ignores_aliases():
    vocab = Vocab(Vocab.build(["up down flat"]).words, {"rises": 2})
    texts = ["up", "down", "rises", "flat zzz", "up down"]
    labels = np.array([2, 0, 2, 1, 1])
    proba = np.eye(3)[[2, 0, 2, 0, 1]]                        # right on all but "flat zzz"
    split = D.unknown_word_split(vocab, texts, labels, proba)
    assert (split["n_with_unknown"], split["n_without_unknown"]) == (2, 3)   # "rises" is an alias, still unknown
    assert split["accuracy_with_unknown"] == 0.5 and split["accuracy_without_unknown"] == 1.0
    empty = D.unknown_word_split(vocab, ["up", "down"], np.array([2, 0]), np.eye(3)[[2, 0]])
    assert empty["n_with_unknown"] == 0 and np.isnan(empty["macro_f1_with_unknown"])
    assert D.alias_suffix(D.DistillConfig(glove_aliases=1500)) == "_alias1500" and D.alias_suffix(D.DistillConfig()) == ""
    with pytest.raises(ValueError, match="glove_aliases"):
        D.DistillConfig(glove_aliases=-1)


def test_step_writes_all_rows(tiny_inputs, monkeypatch, tmp_path):
    monkeypatch.setattr(D, "prepare_inputs", lambda *a, **k: tiny_inputs)
    out = tmp_path / "distillation.json"
    args = argparse.Namespace(mode="quick", seeds=[0], methods="ce,dixtill", temperatures="4,5", sweep_seeds=None,
                              no_ablation=False, epochs=1, max_len=24, momentum=None, paper_kd=False, attn_size=None,
                              no_save=True, data_dir=None, device="cpu", out=str(out))
    D.run_step(args)
    obj = json.loads(out.read_text())
    methods = [r["method"] for r in obj["rows"]]
    assert methods == ["teacher", "ce", "dixtill", "dixtill_T4", "dixtill_T5", "dixtill_random_emb"]
    rows = {r["method"]: r for r in obj["rows"]}
    assert rows["dixtill_T5"]["same_run_as"] == "dixtill"
    assert rows["dixtill_T5"]["macro_f1"] == rows["dixtill"]["macro_f1"]
    assert rows["dixtill_T4"]["temperature"] == 4.0 and rows["dixtill_random_emb"]["embeddings"] == "random"
    assert obj["provenance"]["config"]["student"]["max_len"] == 24


# ------------------------------------------------------------------ exercise checkers

def test_check_bounded_kd_accepts_reference_and_names_mistakes():
    from dixtill_lib.exercises import ExerciseFailure
    from dixtill_lib.exercises.distill import check_bounded_kd

    assert check_bounded_kd(D.bounded_kd).startswith("Correct")

    def no_t2(zt, zs, T):
        return 1 - torch.exp(-D.kl_per_sample(zt, zs, T).mean())

    def per_sample(zt, zs, T):
        return (1 - torch.exp(-(T ** 2) * D.kl_per_sample(zt, zs, T))).mean()

    for wrong, msg in ((no_t2, "T²"), (per_sample, "batch-mean"), (lambda zt, zs, T: D.bounded_kd(zs, zt, T), "reversed")):
        with pytest.raises(ExerciseFailure, match=msg):
            check_bounded_kd(wrong)


def test_check_xai_loss_names_mistakes():
    from dixtill_lib.exercises import ExerciseFailure
    from dixtill_lib.exercises.distill import check_xai_loss, reference_xai_loss

    assert check_xai_loss(reference_xai_loss).startswith("Correct")

    def alpha_instead(e, s, m):
        return 0.5 * (1 - D.cosine_keras(e, torch.softmax(s * m + (m - 1) * 1e4, 1)).mean())

    def unmasked(e, s, m):
        return 0.5 * (1 - D.cosine_keras(e, s).mean())

    def torch_cos(e, s, m):  # F.cosine_similarity's eps also gives 0 for a zero vector: accepted
        return 0.5 * (1 - torch.nn.functional.cosine_similarity(e, s * m, dim=1, eps=1e-12).mean())

    def nan_on_zero(e, s, m):
        sm = s * m
        return 0.5 * (1 - ((e * sm).sum(1) / (e.norm(dim=1) * sm.norm(dim=1))).mean())

    for wrong, msg in ((alpha_instead, "attention weights"), (unmasked, "mask"), (nan_on_zero, "zero vector")):
        with pytest.raises(ExerciseFailure, match=msg):
            check_xai_loss(wrong)
    assert check_xai_loss(torch_cos).startswith("Correct")


def test_check_masked_attention_names_mistakes():
    from dixtill_lib.exercises import ExerciseFailure
    from dixtill_lib.exercises.distill import check_masked_attention, reference_masked_attention

    assert check_masked_attention(reference_masked_attention).startswith("Correct")

    def mask_by_multiplying(s, m):
        return torch.softmax(s * m, 1), s * m

    def no_mask(s, m):
        return torch.softmax(s, 1), s

    def wrong_axis(s, m):
        sm = s * m
        return torch.softmax(sm + (m - 1) * 1e4, 0), sm

    for wrong, msg in ((mask_by_multiplying, "not enough"), (no_mask, "zero attention"), (wrong_axis, "sum to 1")):
        with pytest.raises(ExerciseFailure, match=msg):
            check_masked_attention(wrong)


def test_step_train_only_then_resume(tiny_inputs, monkeypatch, tmp_path):
    monkeypatch.setattr(D, "prepare_inputs", lambda *a, **k: tiny_inputs)
    base = dict(mode="quick", seeds=[3], methods="ce", temperatures="", sweep_seeds=None, no_ablation=True,
                epochs=1, max_len=24, momentum=None, paper_kd=False, attn_size=None, no_save=False,
                data_dir=None, device="cpu", out=str(tmp_path / "d.json"))
    D.run_step(argparse.Namespace(**base, train_only=True, resume=False))
    assert not (tmp_path / "d.json").exists()
    D.run_step(argparse.Namespace(**base, train_only=False, resume=True))
    rows = json.loads((tmp_path / "d.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["teacher", "ce"] and rows[1]["resumed"] is True
    with pytest.raises(SystemExit, match="train-only"):
        D.run_step(argparse.Namespace(**{**base, "methods": "dixtill"}, train_only=True, resume=False))


def test_an_interrupted_student_resumes_from_its_epoch_checkpoint_bit_identically(toy, tmp_path, monkeypatch):
    kw = dict(epochs=4, lr=0.05, ema=0.9, rare_unk=0.25, select="macro_f1")
    whole = _train(toy, **kw)
    ckpt = tmp_path / "dixtill_seed0.ckpt-k.pt"
    real_save, saved = D._EpochCheckpoint.save, []

    def save_then_stop(self, history, best, seconds):   # the run is killed right after epoch 2 is written
        real_save(self, history, best, seconds)
        saved.append(len(history))
        if len(history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(D._EpochCheckpoint, "save", save_then_stop)
    ds, zt, expl, vocab = toy
    args = ("dixtill", ds.texts, ds.labels, zt, expl, vocab, D.DistillConfig(batch_size=8, **kw),
            StudentConfig(embeddings="random", max_len=24))
    with pytest.raises(KeyboardInterrupt):
        D.train_student(*args, seed=0, progress=False, checkpoint=ckpt)
    assert ckpt.is_file() and saved == [1, 2]
    resumed = D.train_student(*args, seed=0, progress=False, checkpoint=ckpt)
    assert saved == [1, 2, 3, 4]                             # only epochs 3 and 4 were trained again
    assert _numbers(resumed.history) == _numbers(whole.history) and resumed.best_epoch == whole.best_epoch
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # a corrupt checkpoint is named in a warning and training starts over, with the same result
    monkeypatch.setattr(D._EpochCheckpoint, "save", real_save)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="Ignoring unusable student checkpoint .*dixtill_seed0.ckpt-k.pt"):
        again = D.train_student(*args, seed=0, progress=False, checkpoint=ckpt)
    assert _numbers(again.history) == _numbers(whole.history)


def test_run_one_resumes_an_interrupted_student_and_then_deletes_its_checkpoint(tiny_inputs, monkeypatch, capsys):
    cfg, scfg = D.DistillConfig(epochs=2, ig_steps=4, faithfulness=False), StudentConfig(max_len=24)
    _, whole = D.run_one(tiny_inputs, "kd", 3, cfg, scfg, name="kd_ck", progress=False)
    real_save = D._EpochCheckpoint.save

    def save_then_stop(self, history, best, seconds):
        real_save(self, history, best, seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(D._EpochCheckpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        D.run_one(tiny_inputs, "kd", 3, cfg, scfg, name="kd_ck", save=True, resume=True, progress=False)
    key = D.training_key(tiny_inputs, "kd", 3, cfg, scfg)
    ckpt = D.student_dir("quick", "kd_ck", 3, tiny_inputs.teacher_key).with_name(f"kd_ck_seed3.ckpt-{key}.pt")
    assert ckpt.is_file() and not ckpt.with_name("kd_ck_seed3").exists()   # no student folder yet
    monkeypatch.setattr(D._EpochCheckpoint, "save", real_save)
    _, row = D.run_one(tiny_inputs, "kd", 3, cfg, scfg, name="kd_ck", save=True, resume=True, progress=False)
    out = capsys.readouterr().out
    assert f"resumed from {ckpt} after epoch 1" in out
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in row["history"]] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in whole["history"]]
    assert row["macro_f1"] == whole["macro_f1"] and (Path(row["path"]) / "model.pt").is_file()
    assert not ckpt.exists()                                  # the student is saved: its checkpoint is gone
