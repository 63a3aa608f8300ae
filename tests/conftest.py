"""Shared fixtures: an isolated cache per test session, the offline data folder, tiny models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

os.environ.setdefault("DIXTILL_DATA", str(SHARED_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes caches and results under a temp dir, never into ~/.cache or results/."""
    root = tmp_path_factory.getbasetemp() / "dixtill-cache"
    monkeypatch.setenv("DIXTILL_CACHE", str(root))
    monkeypatch.setenv("DIXTILL_RESULTS", str(tmp_path_factory.getbasetemp() / "results"))
    monkeypatch.setenv("DIXTILL_MODE", "quick")
    return root


@pytest.fixture
def torch_one_thread():
    """Tiny models run fastest on one torch thread (and do not fight other jobs on a shared box); use with
    ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["DIXTILL_DATA"])
    if not (path / "twitter-financial-news-sentiment" / "train.csv").is_file():
        pytest.fail(f"Test data not found under {path}: set DIXTILL_DATA to the shared data folder.")
    return path


@pytest.fixture(scope="session")
def tweets(data_dir):
    """A 50-tweet stratified subset of the train split."""
    from dixtill_lib.data import load_split, stratified_subset

    return stratified_subset(load_split("tfns", "train", data_dir), 50, seed=0)


@pytest.fixture(scope="session")
def tiny(tweets):
    """A tiny random BERT teacher with a tokenizer built from the 50 tweets."""
    from dixtill_lib.tiny import tiny_teacher

    return tiny_teacher(tweets.texts)


@pytest.fixture(scope="session")
def toy(tweets):
    """Distillation inputs without a teacher: the 50 tweets, fake teacher logits (favouring the label), fake
    explanations (first word high) and the vocabulary."""
    import numpy as np

    from dixtill_lib.student import Vocab

    rng = np.random.default_rng(0)
    zt = rng.normal(size=(len(tweets), 3)).astype(np.float32)
    zt[np.arange(len(tweets)), tweets.labels] += 3.0
    expl = [np.r_[1.0, -0.2 * rng.random(len(t.split()) - 1)].astype(np.float32) for t in tweets.texts]
    return tweets, zt, expl, Vocab.build(tweets.texts)


@pytest.fixture
def shown_rows(monkeypatch):
    """Spy on the student trainer's epochs: a list that gets, for every epoch trained while the test runs, the
    row indices its batches show (in order), after checking the epoch has the batch count it promised."""
    import torch

    from dixtill_lib import parallel

    epochs, make = [], parallel.EpochBatches

    def spying(fn, batch_size, n_batches):
        def drawn():
            out = fn()
            assert len(out) == n_batches
            epochs.append(torch.cat(out))
            return out
        return make(drawn, batch_size, n_batches)
    monkeypatch.setattr(parallel, "EpochBatches", spying)
    return epochs
