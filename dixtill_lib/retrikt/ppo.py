"""A small, readable PPO over a soft prompt (TRL no longer ships PPO).

Policy ``π_θ(x̂ | y) = LM(x̂ | [P_y])``: only the prompt ``P_y`` (and a linear value head on the frozen LM's
last hidden state) train. One iteration:

1. roll out a batch with nucleus sampling from the current prompt;
2. score each sample: ``r = p_teacher(y | x̂) + λ_div · (1 − max cos(x̂, earlier samples)) − β · KL(π ‖ π_ref)``
   (the KL term is the summed per-token log-ratio to the reference = SFT prompt, estimated on the sample);
3. the sequence reward is placed on the last token; advantages by GAE(γ, λ) over the value head's estimates;
4. a few epochs of the clipped policy loss + clipped value loss on mini-batches.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import get_mode, set_seed
from .generator import Rollout, sample, sequence_logprobs


@dataclass(frozen=True)
class PPOConfig:
    iterations: int = 3
    batch_size: int = 16              # rollouts per iteration
    epochs: int = 1                   # optimisation passes over each batch (2 minibatches = 2 updates)
    minibatch_size: int = 8
    lr: float = 3e-3                  # prompt learning rate
    value_lr: float = 1e-3
    clip: float = 0.2                 # policy ratio clip ε
    value_clip: float = 0.2
    value_coef: float = 0.5
    gamma: float = 1.0
    lam: float = 0.95                 # GAE λ
    beta_kl: float = 0.05             # β: KL(π‖π_ref) penalty weight
    lambda_div: float = 0.5           # λ_div: diversity bonus weight
    memory: int = 256                 # how many earlier samples the diversity bonus compares with
    max_new_tokens: int = 32
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int = 29

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "PPOConfig":
        base = cls() if get_mode(mode) == "full" else cls(iterations=2, batch_size=6, epochs=1,
                                                          minibatch_size=6, max_new_tokens=20)
        return replace(base, **overrides)


# ---------------------------------------------------------------- the two formulas (tested by hand)

def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (B, T) per-token rewards and values; ``mask`` = 1 on real tokens
    (a sequence ends at its last real token: the value after it is 0). Returns ``(advantages, returns)``.

    ``δ_t = r_t + γ V_{t+1} − V_t``, ``A_t = δ_t + γ λ A_{t+1}``, ``returns = A + V``."""
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * m
        adv[:, t] = last
        next_value = torch.where(m > 0, values[:, t], torch.zeros_like(next_value))
    return adv, (adv + values) * mask


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                        clip: float = 0.2) -> torch.Tensor:
    """``−mean_t min(ρ_t A_t, clip(ρ_t, 1−ε, 1+ε) A_t)`` with ``ρ_t = exp(logp − old_logp)``, over real tokens."""
    ratio = torch.exp(logp - old_logp)
    obj = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    return -(obj * mask).sum() / mask.sum()


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """``½ mean_t max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²)`` over real tokens."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    loss = torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    return 0.5 * (loss * mask).sum() / mask.sum()


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = (x * mask).sum() / mask.sum()
    var = (((x - mean) * mask) ** 2).sum() / mask.sum()
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


# ---------------------------------------------------------------- rewards

def diversity_bonus(emb: np.ndarray, memory: np.ndarray | None) -> np.ndarray:
    """``1 − max cos(x̂_i, earlier)`` for each row of L2-normalised ``emb``; "earlier" = the memory plus the rows
    before i in this batch. The very first sample ever gets 1."""
    out = np.ones(len(emb))
    prev = memory if memory is not None and len(memory) else np.zeros((0, emb.shape[1]), emb.dtype)
    for i in range(len(emb)):
        bank = np.concatenate([prev, emb[:i]]) if i else prev
        if len(bank):
            out[i] = 1.0 - float(np.max(bank @ emb[i]))
    return out


@dataclass
class RewardParts:
    label: np.ndarray        # p_teacher(y | x̂)
    diversity: np.ndarray    # 1 − max cos
    embeddings: np.ndarray   # L2-normalised sentence embeddings (to extend the memory)
    agree: np.ndarray | None = None   # teacher's argmax == y (label consistency); defaults to p > 0.5


#: ``score(texts, label) -> RewardParts``; the teacher/encoder-backed version is :func:`teacher_scorer`.
Scorer = Callable[[list[str], int, np.ndarray | None], RewardParts]


def teacher_scorer(teacher, encoder, min_words: int = 3) -> Scorer:
    """Reward parts from a :class:`Teacher` (label probability) and a sentence encoder (diversity); samples
    shorter than ``min_words`` words score 0."""
    def score(texts: list[str], label: int, memory: np.ndarray | None) -> RewardParts:
        # samples under min_words words never enter the store (see store.deduplicate): they earn nothing,
        # otherwise PPO learns that an empty "tweet" is a safe Neutral
        ok = np.array([len(t.split()) >= min_words for t in texts])
        safe = [t if t.strip() else "." for t in texts]
        proba = teacher.predict_proba(safe, progress=False)
        emb = encoder(safe)
        div = diversity_bonus(emb, memory)
        return RewardParts(proba[:, label] * ok, div * ok, emb, (proba.argmax(1) == label) & ok)
    return score


# ---------------------------------------------------------------- the loop

@dataclass
class PPOResult:
    prompt: torch.Tensor
    history: list[dict] = field(default_factory=list)


def ppo_prompt(model, tok, prompt: torch.Tensor, label: int, score: Scorer, cfg: PPOConfig,
               progress: bool = True, context: torch.Tensor | None = None) -> PPOResult:
    """Refine one class prompt with PPO; the reference policy is the starting (SFT) prompt.
    Logs per iteration: mean reward, KL(π‖π_ref), diversity, label-consistency (teacher agrees), losses."""
    set_seed(cfg.seed)
    dev = prompt.device
    ref = prompt.detach().clone()
    param = torch.nn.Parameter(prompt.detach().clone())
    hidden = model.config.hidden_size
    value_head = torch.nn.Linear(hidden, 1).to(dev)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    opt = torch.optim.Adam([{"params": [param], "lr": cfg.lr},
                            {"params": value_head.parameters(), "lr": cfg.value_lr}])
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    memory: np.ndarray | None = None
    history = []
    for it in tqdm(range(cfg.iterations), desc=f"PPO class {label}", disable=not progress, leave=False):
        roll: Rollout = sample(model, tok, param.detach(), cfg.batch_size, cfg.max_new_tokens, cfg.top_p,
                               cfg.temperature, generator=gen, context=context)
        with torch.no_grad():
            old_lp, h = sequence_logprobs(model, param.detach(), roll.tokens, roll.mask, cfg.temperature, True,
                                          context)
            ref_lp = sequence_logprobs(model, ref, roll.tokens, roll.mask, cfg.temperature, context=context)
            old_v = value_head(h.float()).squeeze(-1) * roll.mask
        parts = score(roll.texts, label, memory)
        memory = parts.embeddings if memory is None else np.concatenate([memory, parts.embeddings])[-cfg.memory:]
        kl_tok = (old_lp - ref_lp) * roll.mask                       # per-token log-ratio, sums to KL estimate
        kl_seq = kl_tok.sum(1)
        task = torch.as_tensor(parts.label + cfg.lambda_div * parts.diversity, dtype=torch.float32, device=dev)
        rewards = -cfg.beta_kl * kl_tok
        last = (roll.mask.sum(1).long() - 1).clamp(min=0)
        rewards[torch.arange(len(last)), last] += task
        adv, ret = gae(rewards, old_v, roll.mask, cfg.gamma, cfg.lam)
        adv = whiten(adv, roll.mask)
        pl_sum, vl_sum, nb = 0.0, 0.0, 0
        for _ in range(cfg.epochs):
            perm = torch.randperm(cfg.batch_size, generator=gen, device=dev)
            for s in range(0, cfg.batch_size, cfg.minibatch_size):
                i = perm[s:s + cfg.minibatch_size]
                lp, hh = sequence_logprobs(model, param, roll.tokens[i], roll.mask[i], cfg.temperature, True,
                                           context)
                v = value_head(hh.float()).squeeze(-1) * roll.mask[i]
                pl = clipped_policy_loss(lp, old_lp[i], adv[i], roll.mask[i], cfg.clip)
                vl = clipped_value_loss(v, old_v[i], ret[i], roll.mask[i], cfg.value_clip)
                opt.zero_grad(set_to_none=True)
                (pl + cfg.value_coef * vl).backward()
                torch.nn.utils.clip_grad_norm_([param, *value_head.parameters()], 1.0)
                opt.step()
                pl_sum, vl_sum, nb = pl_sum + pl.item(), vl_sum + vl.item(), nb + 1
        total = parts.label + cfg.lambda_div * parts.diversity - cfg.beta_kl * kl_seq.cpu().numpy()
        history.append({"iteration": it + 1, "label": label, "reward": float(total.mean()),
                        "p_label": float(parts.label.mean()), "label_consistency": float(np.mean(parts.label > 0.5 if parts.agree is None else parts.agree)),
                        "diversity": float(parts.diversity.mean()), "kl": float(kl_seq.mean()),
                        "length": float(roll.mask.sum(1).mean()), "policy_loss": pl_sum / nb,
                        "value_loss": vl_sum / nb})
    return PPOResult(param.detach().clone(), history)
