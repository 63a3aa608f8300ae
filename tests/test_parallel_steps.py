"""Training steps on 2 processes (gloo, CPU). Teacher fine-tuning trains data-parallel and matches one process;
RetriKT's class prompts (SFT and PPO) are sharded one class per process and come out identical to the
one-process prompts; knowledge-store generation is sharded by rank and the main process builds the one store
every process then uses."""
from __future__ import annotations

import numpy as np
import pytest

from dixtill_lib.results import load_results
from parallel_helpers import launch, save_tiny_teacher


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory, data_dir):
    return save_tiny_teacher(tmp_path_factory, data_dir)


def test_teacher_fine_tune_on_two_processes_matches_one(tmp_path, tiny_teacher_dir):
    """`teacher --quick --source <tiny BERT>`: fine-tuning (1,200 tweets, 2 epochs) under DDP with split batches,
    then sharded logits for the evaluation; one teacher saved, metrics and epoch losses as on one process."""
    step = ["-m", "dixtill_lib", "teacher", "--quick", "--source", str(tiny_teacher_dir), "--epochs", "2"]
    two = launch(2, [*step, "--out", str(tmp_path / "two.json")], tmp_path / "cache2")
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch(1, [*step, "--out", str(tmp_path / "one.json")], tmp_path / "cache1")
    assert one.returncode == 0, one.stderr[-3000:]
    assert len(list((tmp_path / "cache2" / "teachers").iterdir())) == 1
    r2, r1 = (load_results(tmp_path / f"{n}.json")["rows"][0] for n in ("two", "one"))
    for key in ("accuracy", "macro_f1", "macro_auc"):
        assert abs(r1[key] - r2[key]) <= 0.02, (key, r1[key], r2[key])
    for h1, h2 in zip(r1["history"], r2["history"], strict=True):
        assert abs(h1["loss"] - h2["loss"]) < 0.01

SCRIPT = r'''
import sys
import numpy as np
from dixtill_lib import parallel
from dixtill_lib.data import load_split, stratified_subset
from dixtill_lib.retrikt.experiment import RetriKTConfig, run_task
from dixtill_lib.retrikt.generator import PromptConfig, tiny_causal_lm
from dixtill_lib.retrikt.ppo import PPOConfig
from dixtill_lib.retrikt.tiny import TinyConfig
from dixtill_lib.tiny import HashEncoder, tiny_teacher


tweets = stratified_subset(load_split("tfns", "train"), 50, seed=0)
cfg = RetriKTConfig(tasks=("tfns",), ks=(3,), seeds=(0,), prompt_k=3, n_per_class=8, gen_batch=4,
                    min_confidence=0.0, eval_size=60, n_show=2,
                    prompt=PromptConfig(num_virtual_tokens=4, sft_steps=3, sft_batch_size=3, max_new_tokens=8),
                    ppo=PPOConfig(iterations=2, batch_size=4, minibatch_size=4, epochs=1, max_new_tokens=8),
                    tiny=TinyConfig(epochs=5), neighbours=(2,), temperatures=(0.1,), lambdas=(0.0, 0.5))
run = run_task("tfns", cfg, "quick", None, progress=False, generator=tiny_causal_lm(tweets.texts, init_std=0.5),
               encoder=HashEncoder(), teacher=tiny_teacher(tweets.texts), log=lambda m: None)
np.savez(f"{sys.argv[1]}-rank{parallel.rank()}.npz", sft=run.prompts["sft"].numpy(), ppo=run.prompts["ppo"].numpy(),
         store=np.array(run.stores["ppo"].texts), n_hist=len(run.prompts["ppo_history"]))
'''


def test_two_processes_shard_prompts_and_store_generation(tmp_path):
    script = tmp_path / "retrikt_job.py"
    script.write_text(SCRIPT)
    two = launch(2, [str(script), str(tmp_path / "two")], tmp_path / "cache2")
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch(1, [str(script), str(tmp_path / "one")], tmp_path / "cache1")
    assert one.returncode == 0, one.stderr[-3000:]
    r0, r1, single = (np.load(tmp_path / f) for f in ("two-rank0.npz", "two-rank1.npz", "one-rank0.npz"))
    # one class per process, same seeds: the prompts equal the one-process prompts
    for name in ("sft", "ppo"):
        np.testing.assert_allclose(r0[name], single[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(r0[name], r1[name])
    assert int(r0["n_hist"]) == int(single["n_hist"]) == 2 * 3
    # both processes use the one store the main process built
    assert len(r0["store"]) > 0 and list(r0["store"]) == list(r1["store"])
    assert (tmp_path / "cache2" / "retrikt-generations-parts").is_dir()
