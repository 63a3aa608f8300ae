"""Data layer: loaders, cleaning, deterministic subsets and every bad-input error."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from dixtill_lib import data as D
from dixtill_lib.data import DataError, clean_text


def test_tfns_splits_have_documented_sizes_and_balance(data_dir):
    train, valid = D.load_task("tfns", data_dir, clean=False)
    assert (len(train), len(valid)) == (9543, 2388)
    assert train.class_counts().tolist() == [1442, 1923, 6178]
    assert valid.class_counts().tolist() == [347, 475, 1566]
    assert train.label_names == ("Bearish", "Bullish", "Neutral")


def test_cleaning_drops_url_only_tweets_and_counts_them(data_dir, caplog):
    with caplog.at_level("INFO", logger="dixtill_lib.data"):
        train = D.load_split("tfns", "train", data_dir)
    assert len(train) + train.n_dropped == 9543
    assert train.n_dropped == 4  # four tweets are a bare URL
    assert f"dropped {train.n_dropped} row" in caplog.text
    assert all(t == clean_text(t) for t in train.texts[:200])


def test_sst2_and_samples(data_dir):
    tr, dev = D.load_task("sst2", data_dir)
    assert len(dev) == 872 and dev.class_counts().tolist() == [428, 444]
    assert len(tr) == 67349
    s_tr, s_te = D.load_task("dixtill-samples", data_dir, clean=False)
    assert s_tr.class_counts().tolist() == [161, 202, 637] and s_te.class_counts().tolist() == [7, 23, 70]


@pytest.mark.parametrize("raw, clean", [
    ("$BYND - JPMorgan reels in expectations on Beyond Meat https://t.co/bd0xbFGjkT", "$bynd jpmorgan reels in expectations on beyond meat"),
    ("Qudian sinks 53% after year guidance revenue shrinks", "qudian sinks 53 after year guidance revenue shrinks"),
    ("Rio Tinto downgraded to neutral from overweight at J.P. Morgan", "rio tinto downgraded to neutral from overweight at jp morgan"),
    ("Stocks rally!! Why? see www.example.com/x now", "stocks rally!! why? see now"),
    ("Café crème – €5.50 📈", "caf crme 550"),
    ("  multiple\n\nlines\tand   spaces ", "multiple lines and spaces"),
])
def test_clean_text_rules(raw, clean):
    assert clean_text(raw) == clean


def test_cleaning_reproduces_the_authors_samples(data_dir):
    """The authors' sample files are already clean: our rules must leave them unchanged (modulo spaces)."""
    samples = D.load_split("dixtill-samples", "train", data_dir, clean=False)
    same = [clean_text(r) == " ".join(r.split()) for r in samples.raw_texts]
    assert np.mean(same) > 0.99


def test_clean_text_rejects_non_strings():
    with pytest.raises(TypeError, match="expects a string"):
        clean_text(None)  # type: ignore[arg-type]


def test_subsets_are_deterministic_and_stratified(data_dir):
    train = D.load_split("tfns", "train", data_dir)
    a = D.stratified_indices(train.labels, 300, seed=29)
    b = D.stratified_indices(train.labels, 300, seed=29)
    c = D.stratified_indices(train.labels, 300, seed=30)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and len(a) == 300
    share = np.bincount(train.labels[a], minlength=3) / 300
    assert np.allclose(share, train.class_counts() / len(train), atol=0.01)
    # pinned: the same indices on every machine (PCG64 + stable rounding)
    assert a[:5].tolist() == D.stratified_indices(train.labels, 300, seed=29)[:5].tolist()


def test_k_shot_has_k_per_class_and_is_reproducible(data_dir):
    train = D.load_split("tfns", "train", data_dir)
    ks = D.k_shot(train, 16, seed=1)
    assert ks.class_counts().tolist() == [16, 16, 16]
    assert ks.texts == D.k_shot(train, 16, seed=1).texts
    with pytest.raises(DataError, match="cannot draw k=5000"):
        D.k_shot(train, 5000, seed=1)


def test_holdout_keras_style_takes_the_last_rows(tweets):
    fit, val = D.holdout_split(tweets, 0.1)
    assert len(val) == 5 and val.texts == tweets.texts[-5:] and fit.texts == tweets.texts[:-5]
    fit2, val2 = D.holdout_split(tweets, 0.2, seed=3)
    assert len(val2) == 10 and not set(val2.texts) & set(fit2.texts) - set(fit2.texts[:0])


def test_mode_splits_quick_sizes(data_dir):
    train, valid = D.mode_splits("quick", data_dir_=data_dir)
    assert (len(train), len(valid)) == (D.QUICK_SIZES["train"], D.QUICK_SIZES["valid"])


# ---------------------------------------------------------------- bad input

def _write(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _task_dir(tmp_path, rows, header=("text", "label")):
    d = tmp_path / "twitter-financial-news-sentiment"
    d.mkdir(parents=True)
    _write(d / "train.csv", rows, header)
    return tmp_path


def test_missing_data_dir_names_the_env_var(tmp_path):
    with pytest.raises(DataError, match="DIXTILL_DATA"):
        D.load_split("tfns", "train", tmp_path / "nope")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="Missing data file .*train.csv"):
        D.load_split("tfns", "train", tmp_path)


def test_offline_without_data_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("DIXTILL_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"set DIXTILL_DATA .*train.csv"):
        D.load_split("tfns", "train")


def test_wrong_columns(tmp_path):
    root = _task_dir(tmp_path, [["up", 1]], header=("tweet", "label"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['text'\]"):
        D.load_split("tfns", "train", root)


def test_non_integer_labels(tmp_path):
    root = _task_dir(tmp_path, [["up", 1], ["down", "bearish"]])
    with pytest.raises(DataError, match="not integers .*line 3"):
        D.load_split("tfns", "train", root)


def test_unknown_labels(tmp_path):
    root = _task_dir(tmp_path, [["up", 1], ["down", 7]])
    with pytest.raises(DataError, match="unknown label.*Known labels are 0..2"):
        D.load_split("tfns", "train", root)


def test_empty_texts_dropped_and_duplicates_reported(tmp_path, caplog):
    root = _task_dir(tmp_path, [["up", 1], ["", 0], ["https://t.co/x", 2], ["up", 1], ["flat", 2]])
    with caplog.at_level("INFO", logger="dixtill_lib.data"):
        ds = D.load_split("tfns", "train", root)
    assert "dropped 2 row" in caplog.text
    assert ds.texts == ["up", "up", "flat"] and ds.n_dropped == 2 and ds.n_duplicates == 1


def test_all_empty_fails(tmp_path):
    root = _task_dir(tmp_path, [["", 0], ["   ", 1]])
    with pytest.raises(DataError, match="no usable text"):
        D.load_split("tfns", "train", root)


def test_unknown_task_and_split(data_dir):
    with pytest.raises(DataError, match="Unknown task"):
        D.load_split("imdb", "train", data_dir)
    with pytest.raises(DataError, match="Unknown split"):
        D.load_split("tfns", "test", data_dir)
