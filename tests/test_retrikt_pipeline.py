"""RetriKT end to end on tiny models (random Llama generator, tiny BERT teacher, hashing encoder): every stage
runs, caches, and produces well-formed rows and stores."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.retrikt.experiment import METHODS, RetriKTConfig, run_task, store_diagnostics
from dixtill_lib.retrikt.generator import PromptConfig, tiny_causal_lm
from dixtill_lib.retrikt.ppo import PPOConfig
from dixtill_lib.retrikt.tiny import TinyConfig
from dixtill_lib.tiny import HashEncoder


def test_run_task_end_to_end(tweets, data_dir):
    from dixtill_lib.tiny import tiny_teacher

    cfg = RetriKTConfig(tasks=("tfns",), ks=(3,), seeds=(0,), prompt_k=3, n_per_class=8, gen_batch=8,
                        min_confidence=0.0, eval_size=60, n_show=2,
                        prompt=PromptConfig(num_virtual_tokens=4, sft_steps=3, sft_batch_size=3, max_new_tokens=8),
                        ppo=PPOConfig(iterations=2, batch_size=4, minibatch_size=4, epochs=1, max_new_tokens=8),
                        tiny=TinyConfig(epochs=20), neighbours=(2, 4), temperatures=(0.1,), lambdas=(0.0, 0.5))
    gen = tiny_causal_lm(tweets.texts, init_std=0.5)
    teacher = tiny_teacher(tweets.texts)
    run = run_task("tfns", cfg, "quick", str(data_dir), progress=False, generator=gen, encoder=HashEncoder(),
                   teacher=teacher, log=lambda m: None)
    assert [r["method"] for r in run.rows] == list(METHODS)
    for r in run.rows:
        assert 0 <= r["accuracy"] <= 1 and r["k"] == 3 and r["n_eval"] == 60
    store_rows = [r for r in run.rows if r["method"].startswith("tiny+store")]
    assert all(r["store_size"] > 0 and r["lambda"] in (0.0, 0.5) for r in store_rows)
    assert len(run.prompts["ppo_history"]) == 2 * 3            # iterations × classes
    assert run.prompts["sft"].shape == run.prompts["ppo"].shape == (3, 4, 32)
    diag = store_diagnostics([run])
    assert {d["store"] for d in diag} == {"sft", "ppo"}
    assert all(0 <= d["label_consistency"] <= 1 and d["n_kept"] == d["size"] for d in diag)
    assert set(run.samples) == {"before tuning", "sft prompt", "ppo prompt"}
    # second run: everything comes from the cache (same prompts, same stores)
    again = run_task("tfns", cfg, "quick", str(data_dir), progress=False, generator=gen, encoder=HashEncoder(),
                     teacher=teacher, log=lambda m: None)
    assert np.array_equal(again.prompts["ppo"].numpy(), run.prompts["ppo"].numpy())
    assert again.stores["ppo"].texts == run.stores["ppo"].texts
    assert [r["accuracy"] for r in again.rows] == pytest.approx([r["accuracy"] for r in run.rows])
