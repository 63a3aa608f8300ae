"""Tiny, randomly initialised models built from a config, with a locally built tokenizer (WordPiece for
the BERT-style teacher, byte-level BPE for the Llama-style decoder teacher). Tests, exercises and
benchmarks use them: they need no download and run in milliseconds."""
from __future__ import annotations

import re
import string
from collections import Counter

import torch

from .teacher import Teacher

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_wordpiece_tokenizer(texts: list[str], max_words: int = 300):
    """A BERT-style fast tokenizer (lower-casing, punctuation split, WordPiece) whose vocabulary is the
    ``max_words`` most frequent words of ``texts`` plus every single character and its ``##`` form,
    so any string tokenises and rare words split into several pieces."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    counts = Counter(w for t in texts for w in re.findall(r"\w+", t.lower()))
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation) | {c for t in texts for c in t.lower() if not c.isspace()})
    vocab_list = SPECIALS + chars + [f"##{c}" for c in chars]
    vocab_list += [w for w, _ in counts.most_common(max_words) if w not in vocab_list]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)


def tiny_bert_classifier(vocab_size: int, num_labels: int = 3, hidden: int = 32, layers: int = 2, heads: int = 4,
                         seed: int = 0, attn_implementation: str = "eager"):
    """A 2-layer BERT sequence classifier built from a config (random weights)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=hidden * 2, max_position_embeddings=128, num_labels=num_labels,
                     attn_implementation=attn_implementation)
    return BertForSequenceClassification(cfg).eval()


def tiny_teacher(texts: list[str], num_labels: int = 3, seed: int = 0, max_length: int = 48, **kw) -> Teacher:
    """A :class:`Teacher` around a tiny random BERT and a tokenizer built from ``texts``."""
    tok = build_wordpiece_tokenizer(texts)
    model = tiny_bert_classifier(len(tok), num_labels=num_labels, seed=seed, **kw)
    return Teacher(model, tok, max_length=max_length, name="tiny-bert")


def build_bpe_tokenizer(texts: list[str], vocab_size: int = 400):
    """A GPT-2/SmolLM2-style fast tokenizer trained in memory on ``texts``: byte-level pre-tokenisation
    (``Ġ`` marks a leading space, offsets include it), byte-level BPE (every byte is in the alphabet, so
    emoji and any unicode tokenise, possibly into several byte pieces), no special tokens added to the
    input, ``<|im_end|>`` as eos and pad (as SmolLM2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>", model_max_length=8192)


def tiny_llama_classifier(vocab_size: int, pad_token_id: int, num_labels: int = 3, hidden: int = 32, layers: int = 2,
                          heads: int = 4, kv_heads: int = 2, seed: int = 0, attn_implementation: str = "eager"):
    """A 2-layer ``LlamaForSequenceClassification`` with grouped-query attention (``heads`` query heads
    sharing ``kv_heads`` key/value heads, as SmolLM2's 9/3), random weights, last-token pooling."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
                      num_labels=num_labels, pad_token_id=pad_token_id, tie_word_embeddings=False,
                      attn_implementation=attn_implementation)
    return LlamaForSequenceClassification(cfg).eval()


def tiny_llama_teacher(texts: list[str], num_labels: int = 3, seed: int = 0, max_length: int = 48, **kw) -> Teacher:
    """A :class:`Teacher` around a tiny random GQA Llama classifier and a byte-level BPE tokenizer
    trained on ``texts`` — the decoder-LLM analogue of :func:`tiny_teacher`."""
    from .teacher import prepare_decoder

    tok = build_bpe_tokenizer(texts)
    model = tiny_llama_classifier(len(tok), tok.pad_token_id, num_labels=num_labels, seed=seed, **kw)
    prepare_decoder(model, tok)
    return Teacher(model, tok, max_length=max_length, name="tiny-llama")


class HashEncoder:
    """A deterministic 16-d bag-of-words sentence encoder standing in for MiniLM in tests (no weights)."""
    name, dim = "hash16", 16

    def num_parameters(self) -> int:
        return 0

    def __call__(self, texts):
        import numpy as np

        from .retrikt.store import l2_normalise

        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, sum(map(ord, w)) % self.dim] += 1
        return l2_normalise(out + 1e-3)
