"""The retrieval-augmented tiny model: a bag-of-GloVe-embeddings classifier with ~1 % of the teacher's
parameters, trained on the k-shot examples (plus, optionally, teacher soft labels: on the k-shot texts = KD, on
store entries = transfer through generated data, toward ``p_ret`` = retrieval KL), and combined at inference with
retrieval from the knowledge store: ``p = λ · p_ret + (1 − λ) · p_tiny``."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import set_seed


@dataclass(frozen=True)
class TinyConfig:
    vocab_size: int = 4000            # words with a (trainable) GloVe vector; the rest map to <unk>
    hidden: int = 64
    epochs: int = 150                 # full-batch passes (the data are tiny)
    lr: float = 1e-2
    weight_decay: float = 1e-4
    dropout: float = 0.1
    kd_weight: float = 0.5            # tiny_kd: weight of the teacher soft label vs the gold one-hot
    store_weight: float = 1.0         # total weight of the store entries relative to the k-shot examples
    retrieval_kl: float = 0.0         # option: weight of KL(p_ret ‖ p_tiny) on the training inputs
    seed: int = 29

    def with_(self, **kw: Any) -> "TinyConfig":
        return replace(self, **kw)


PAD, UNK = 0, 1


class TinyVocab:
    """Word → row. Rows 0/1 are <pad>/<unk>; then the words of ``texts`` that GloVe knows (most frequent first),
    then GloVe's own most frequent words, up to ``size`` words in all."""

    def __init__(self, texts: list[str], glove_w2i: dict[str, int], size: int):
        from collections import Counter

        counts = Counter(w for t in texts for w in t.split() if w in glove_w2i)
        words = [w for w, _ in counts.most_common(size)]
        seen = set(words)
        if len(words) < size:
            by_rank = sorted(glove_w2i.items(), key=lambda kv: kv[1])
            for w, _ in by_rank:
                if len(words) >= size:
                    break
                if w not in seen and w.isalnum():
                    words.append(w)
                    seen.add(w)
        self.words = words
        self.w2i = {w: i + 2 for i, w in enumerate(words)}
        self.glove_rows = [glove_w2i[w] for w in words]

    def __len__(self) -> int:
        return len(self.words) + 2

    def encode(self, texts: list[str], max_len: int = 64) -> torch.Tensor:
        rows = [[self.w2i.get(w, UNK) for w in t.split()[:max_len]] or [UNK] for t in texts]
        L = max(len(r) for r in rows)
        out = torch.full((len(rows), L), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.as_tensor(r)
        return out


class TinyClassifier(nn.Module):
    """Mean of word embeddings (GloVe-initialised, trainable) → tanh layer → class logits."""

    def __init__(self, vocab: TinyVocab, glove_vectors: np.ndarray, num_labels: int, hidden: int = 64,
                 dropout: float = 0.1):
        super().__init__()
        dim = glove_vectors.shape[1]
        self.vocab = vocab
        self.emb = nn.Embedding(len(vocab), dim, padding_idx=PAD)
        with torch.no_grad():
            self.emb.weight.zero_()
            self.emb.weight[2:] = torch.as_tensor(np.asarray(glove_vectors[vocab.glove_rows]), dtype=torch.float32)
        self.drop = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, num_labels))

    def sentence(self, ids: torch.Tensor) -> torch.Tensor:
        m = (ids != PAD).float().unsqueeze(-1)
        return (self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.drop(self.sentence(ids)))

    @torch.no_grad()
    def predict_proba(self, texts: list[str], batch_size: int = 512) -> np.ndarray:
        self.eval()
        out = [torch.softmax(self(self.vocab.encode(texts[s:s + batch_size])), -1).numpy()
               for s in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.mlp[-1].out_features))

    @torch.no_grad()
    def embed(self, texts: list[str]) -> np.ndarray:
        """The model's own sentence vector (mean word embedding), L2-normalised: a retrieval key in budget."""
        self.eval()
        v = self.sentence(self.vocab.encode(texts)).numpy()
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def params_budget(teacher_params: int, fraction: float = 0.01, emb_dim: int = 50, hidden: int = 64,
                  num_labels: int = 3) -> int:
    """The vocabulary size that keeps a :class:`TinyClassifier` at ``fraction`` of ``teacher_params``."""
    head = emb_dim * hidden + hidden + hidden * num_labels + num_labels
    return max(100, int((fraction * teacher_params - head) // emb_dim) - 2)


def train_tiny(texts: list[str], targets: np.ndarray, weights: np.ndarray, vocab: TinyVocab,
               glove_vectors: np.ndarray, num_labels: int, cfg: TinyConfig,
               ret_targets: np.ndarray | None = None) -> TinyClassifier:
    """Full-batch Adam on ``Σ_i w_i · CE(target_i, p_tiny(x_i)) / Σ w`` (targets are distributions: one-hot for
    gold labels, soft for teacher labels) ``+ retrieval_kl · mean KL(ret_target ‖ p_tiny)`` on rows with a
    retrieval target."""
    set_seed(cfg.seed)
    model = TinyClassifier(vocab, glove_vectors, num_labels, cfg.hidden, cfg.dropout)
    ids = vocab.encode(texts)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float32)
    w = w / w.sum()
    rt = None if ret_targets is None or cfg.retrieval_kl <= 0 else torch.as_tensor(ret_targets, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    for _ in range(cfg.epochs):
        logp = torch.log_softmax(model(ids), -1)
        loss = -(w * (y * logp).sum(-1)).sum()
        if rt is not None:
            has = rt.sum(-1) > 0
            if has.any():
                kl = (rt[has] * (torch.log(rt[has].clamp(min=1e-8)) - logp[has])).sum(-1).mean()
                loss = loss + cfg.retrieval_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
