"""PPO pieces on hand-computed tensors, and a toy reward that PPO must increase on a tiny random Llama."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from dixtill_lib.retrikt.generator import init_prompt, sample, sequence_logprobs, tiny_causal_lm
from dixtill_lib.retrikt.ppo import (PPOConfig, RewardParts, clipped_policy_loss, clipped_value_loss,
                                     diversity_bonus, gae, ppo_prompt)


def test_gae_hand_case_with_padding():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.2, 0.4, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # row 0: δ2 = 1 - .7 = .3; δ1 = .7 - .6 = .1 → A1 = .1 + .5·.3; δ0 = .6 - .5 → A0 = .1 + .5·.25
    assert adv[0].tolist() == pytest.approx([0.225, 0.25, 0.3])
    assert ret[0].tolist() == pytest.approx([0.725, 0.85, 1.0])
    # row 1 ends at t = 1: the padded step (reward 5, value 9) must not leak in
    assert adv[1].tolist() == pytest.approx([0.5, 0.6, 0.0])
    assert ret[1].tolist() == pytest.approx([0.7, 1.0, 0.0])


def test_gae_discount():
    adv, _ = gae(torch.tensor([[1.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.5, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1.5, 1.0])


def test_clipped_policy_loss_hand_case():
    ratio = torch.tensor([[1.5, 0.5, 1.1, 0.7]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    logp = torch.log(ratio).requires_grad_(True)
    loss = clipped_policy_loss(logp, torch.zeros(1, 4), adv, torch.ones(1, 4), clip=0.2)
    # min(1.5, 1.2) = 1.2; min(.5, .8) = .5; min(-1.1, -1.1) = -1.1; min(-.7, -.8) = -.8 → mean -.05 → loss .05
    assert loss.item() == pytest.approx(0.05)
    loss.backward()
    g = logp.grad[0]
    assert g[0] == 0 and g[3] == 0          # clipped terms carry no gradient
    assert g[1] == pytest.approx(-0.5 / 4) and g[2] == pytest.approx(1.1 / 4)


def test_clipped_policy_loss_ignores_padding():
    logp = torch.tensor([[0.1, 3.0]])
    loss = clipped_policy_loss(logp, torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-np.exp(0.1))


def test_clipped_value_loss_hand_case():
    v, old, ret = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[2.0, 0.3]])
    loss = clipped_value_loss(v, old, ret, torch.ones(1, 2), clip=0.2)
    # t0: max((1-2)², (0.7-2)²) = 1.69; t1: max(.09, .09) = .09 → ½·mean = .445
    assert loss.item() == pytest.approx(0.445)


def test_diversity_bonus():
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert diversity_bonus(e, None).tolist() == pytest.approx([1.0, 0.0, 1.0])
    assert diversity_bonus(e[2:], e[:1]).tolist() == pytest.approx([1.0])


@pytest.fixture(scope="module")
def tiny_lm(tweets):
    return tiny_causal_lm(tweets.texts, init_std=0.5)


def test_sampler_logprobs_match_teacher_forcing(tiny_lm):
    model, tok = tiny_lm
    p = init_prompt(model, tok, "bullish stocks", 6)
    roll = sample(model, tok, p, 8, 10, top_p=1.0, generator=torch.Generator().manual_seed(0))
    assert roll.tokens.shape == roll.mask.shape == roll.logprobs.shape
    assert ((roll.mask == 0) | (roll.logprobs <= 0)).all()
    lp = sequence_logprobs(model, p, roll.tokens, roll.mask)
    assert torch.allclose(lp, roll.logprobs, atol=1e-4)
    # after an eos the mask stays 0
    eos = (roll.tokens == tok.eos_token_id) & (roll.mask > 0)
    for i, j in zip(*torch.nonzero(eos, as_tuple=True)):
        assert roll.mask[i, j + 1:].sum() == 0


def test_ppo_increases_a_toy_reward(tiny_lm):
    model, tok = tiny_lm
    p0 = init_prompt(model, tok, "write a bullish tweet", 8)
    r0 = sample(model, tok, p0, 64, 8, top_p=1.0, generator=torch.Generator().manual_seed(0))
    target = Counter(w for t in r0.texts for w in t.split()).most_common(1)[0][0]

    def score(texts, label, memory):      # "prefer token X": the fraction of words equal to X
        r = np.array([np.mean([w == target for w in t.split()]) if t.split() else 0.0 for t in texts])
        return RewardParts(r, np.zeros(len(texts)), np.zeros((len(texts), 2), np.float32))

    def frac(prompt):
        roll = sample(model, tok, prompt, 256, 8, top_p=1.0, generator=torch.Generator().manual_seed(1))
        return score(roll.texts, 0, None).label.mean()

    weights = [p.detach().clone() for p in model.parameters()]
    cfg = PPOConfig(iterations=10, batch_size=32, epochs=2, minibatch_size=16, lr=0.02, beta_kl=0.0,
                    lambda_div=0.0, max_new_tokens=8, top_p=1.0)
    res = ppo_prompt(model, tok, p0, 0, score, cfg, progress=False)
    before, after = frac(p0), frac(res.prompt)
    assert after > 1.3 * before and after - before > 0.03, (before, after)
    assert len(res.history) == 10 and {"reward", "kl", "diversity", "label_consistency"} <= set(res.history[0])
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))   # the LM stayed frozen
