"""Data: the financial-tweet sentiment task, SST-2 and the DiXtill sample files, read from a local
directory (argument or ``$DIXTILL_DATA``) or, for online readers, from the Hugging Face hub.

Policy for bad input (one clear error each, naming the file and how to fix it):
- missing directory / file, wrong columns, labels that are not integers or not in the label map: **fail**;
- empty or missing text (raw, or empty after cleaning): the row is **dropped and counted**
  (``Dataset.n_dropped``, plus an INFO log record), because a tweet that is only a URL carries no words to explain;
- duplicated rows: **kept** (they are part of the official split) and **reported** (``Dataset.n_duplicates``).
"""
from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

DATA_ENV = "DIXTILL_DATA"
log = logging.getLogger(__name__)


class DataError(ValueError):
    """The data could not be found or is malformed; the message says how to fix it."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label_names: tuple[str, ...]
    files: dict[str, str]            # split -> path relative to the data dir
    text_column: str
    hub_id: str
    hub_files: dict[str, str]        # split -> file in the hub dataset repo
    delimiter: str = ","
    quoting: int = csv.QUOTE_MINIMAL
    clean: bool = True               # apply clean_text by default (tweets); SST-2 is already tokenised


TASKS: dict[str, TaskSpec] = {
    "tfns": TaskSpec(
        name="tfns", label_names=("Bearish", "Bullish", "Neutral"),
        files={"train": "twitter-financial-news-sentiment/train.csv",
               "valid": "twitter-financial-news-sentiment/valid.csv"},
        text_column="text", hub_id="zeroshot/twitter-financial-news-sentiment",
        hub_files={"train": "sent_train.csv", "valid": "sent_valid.csv"}),
    "dixtill-samples": TaskSpec(
        name="dixtill-samples", label_names=("Bearish", "Bullish", "Neutral"),
        files={"train": "dixtill-samples/training_samples.csv", "valid": "dixtill-samples/test_samples.csv"},
        text_column="text", hub_id="", hub_files={}),
    "sst2": TaskSpec(
        name="sst2", label_names=("negative", "positive"),
        files={"train": "sst2/train.tsv", "valid": "sst2/dev.tsv"},
        text_column="sentence", hub_id="nyu-mll/glue",
        hub_files={"train": "sst2/train-00000-of-00001.parquet", "valid": "sst2/validation-00000-of-00001.parquet"},
        delimiter="\t", quoting=csv.QUOTE_NONE, clean=False),
}


@dataclass(frozen=True)
class Dataset:
    """Texts with integer labels. ``texts`` are what models see (cleaned unless ``clean=False``);
    ``raw_texts`` are the original strings."""
    texts: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]
    raw_texts: list[str] = field(default_factory=list)
    name: str = ""
    n_dropped: int = 0
    n_duplicates: int = 0

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_labels)

    def select(self, indices) -> "Dataset":
        idx = np.asarray(indices, dtype=int)
        raw = [self.raw_texts[i] for i in idx] if self.raw_texts else []
        return replace(self, texts=[self.texts[i] for i in idx], labels=self.labels[idx], raw_texts=raw,
                       n_dropped=0, n_duplicates=0)


# ---------------------------------------------------------------- cleaning

URL_RE = re.compile(r"(https?://\S+|www\.\S+)")
KEEP_RE = re.compile(r"[^a-z0-9 $!?\n]")
SPACE_RE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """The DiXtill authors' cleaning, as far as their sample files show it (the script itself was
    never published). Rules, in order:

    1. lower-case;
    2. remove URLs (``http(s)://…`` and ``www.…``) — the samples contain none;
    3. delete every character outside ``[a-z0-9 $!?\\n]``: cash-tags keep their ``$`` (``$AAPL`` ->
       ``$aapl``), numbers keep their digits but lose ``%``, ``.`` and ``,`` (``3.5%`` -> ``35``),
       ``J.P. Morgan`` -> ``jp morgan``, hyphens and quotes vanish, accents and emoji are dropped;
    4. collapse runs of whitespace (tabs and newlines included) into one space and strip — the samples keep double spaces, but
       the student splits on whitespace, so this only avoids empty tokens.

    The authors' samples are also cut at ~110-115 characters; we do not truncate (tweets are short).
    """
    if not isinstance(text, str):
        raise TypeError(f"clean_text expects a string, got {type(text).__name__}")
    text = SPACE_RE.sub(" ", text.lower())
    text = URL_RE.sub(" ", text)
    text = KEEP_RE.sub("", text)
    return SPACE_RE.sub(" ", text).strip()


# ---------------------------------------------------------------- locating the data

def data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The data directory: the argument, else ``$DIXTILL_DATA``, else ``None`` (use the hub)."""
    value = path if path is not None else os.environ.get(DATA_ENV)
    if value in (None, ""):
        return None
    p = Path(value).expanduser()
    if not p.is_dir():
        raise DataError(f"Data directory {p} does not exist. Point {DATA_ENV} (or data_dir=) at the folder "
                        f"that holds twitter-financial-news-sentiment/, sst2/ and dixtill-samples/.")
    return p


def _expected(spec: TaskSpec) -> str:
    return ", ".join(spec.files.values())


def _hub_file(spec: TaskSpec, split: str) -> Path:
    """Download one split from the hub (online readers). Raises DataError offline."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = (f"No local data for task {spec.name!r}: set {DATA_ENV} to a folder containing {_expected(spec)} "
            f"(e.g. DIXTILL_DATA=../shared/data)")
    if not spec.hub_id or offline:
        raise DataError(hint + ("." if not spec.hub_id else ", or unset HF_HUB_OFFLINE to download it."))
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(spec.hub_id, spec.hub_files[split], repo_type="dataset"))
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        raise DataError(f"{hint}; downloading {spec.hub_id} from the Hugging Face hub failed: {exc}") from exc


def read_table(path: Path, spec: TaskSpec) -> tuple[list, list]:
    """Read (texts, labels) columns from a CSV/TSV or parquet file, checking the columns."""
    if not path.is_file():
        raise DataError(f"Missing data file {path}. Expected {_expected(spec)} under {DATA_ENV}.")
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        columns = list(frame.columns)
        rows = frame.to_dict("records")
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter=spec.delimiter, quoting=spec.quoting)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    missing = {spec.text_column, "label"} - set(columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {columns}. "
                        f"Expected columns {spec.text_column!r} and 'label'.")
    return [r[spec.text_column] for r in rows], [r["label"] for r in rows]


def _parse_labels(values: list, path: Path, n_labels: int) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int64)
    bad_type, bad_range = [], []
    for i, v in enumerate(values):
        try:
            f = float(v)
            if not f.is_integer():
                raise ValueError
            out[i] = int(f)
        except (TypeError, ValueError):
            bad_type.append(i)
            continue
        if not 0 <= out[i] < n_labels:
            bad_range.append(i)
    def rows(ix: list[int]) -> str:  # data rows, 1-based after the header line
        return ", ".join(str(i + 2) for i in ix[:5]) + (" ..." if len(ix) > 5 else "")
    if bad_type:
        raise DataError(f"{path}: {len(bad_type)} label(s) are not integers (line {rows(bad_type)}, e.g. "
                        f"{values[bad_type[0]]!r}). Labels must be integers 0..{n_labels - 1}.")
    if bad_range:
        raise DataError(f"{path}: {len(bad_range)} unknown label(s) (line {rows(bad_range)}, e.g. "
                        f"{values[bad_range[0]]!r}). Known labels are 0..{n_labels - 1}.")
    return out


def build_dataset(texts: list, labels: list, spec: TaskSpec, source: Path | str, clean: bool = True) -> Dataset:
    """Validate raw columns and apply the drop/report policy described in the module docstring."""
    y = _parse_labels(labels, Path(str(source)), len(spec.label_names))
    keep, raw, shown = [], [], []
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            continue
        s = clean_text(t) if clean else t.strip()
        if not s:
            continue
        keep.append(i)
        raw.append(t)
        shown.append(s)
    n_dropped = len(texts) - len(keep)
    if not keep:
        raise DataError(f"{source}: no usable text (all {len(texts)} rows are empty or non-text).")
    if n_dropped:  # a log record, not a warning: it is expected (bare-URL tweets) and counted in n_dropped
        log.info("%s: dropped %d row(s) whose text is empty%s.", source, n_dropped,
                 " after cleaning (e.g. a bare URL)" if clean else "")
    pairs = list(zip(shown, y[keep].tolist()))
    n_dup = len(pairs) - len(set(pairs))
    return Dataset(texts=shown, labels=y[keep], label_names=spec.label_names, raw_texts=raw,
                   name=f"{spec.name}/{Path(str(source)).stem}", n_dropped=n_dropped, n_duplicates=n_dup)


def load_split(task: str, split: str, data_dir_: str | os.PathLike | None = None,
               clean: bool | None = None) -> Dataset:
    """Load ``split`` ("train" or "valid") of ``task`` ("tfns", "sst2", "dixtill-samples").
    ``clean=None`` uses the task's default (tweets are cleaned with :func:`clean_text`; SST-2, already
    tokenised and lower-cased, is only whitespace-stripped).

    Resolution: explicit directory → ``$DIXTILL_DATA`` → the Hugging Face hub."""
    if task not in TASKS:
        raise DataError(f"Unknown task {task!r}; choose one of {sorted(TASKS)}.")
    spec = TASKS[task]
    if split not in spec.files:
        raise DataError(f"Unknown split {split!r} for {task}; choose one of {sorted(spec.files)}.")
    root = data_dir(data_dir_)
    path = root / spec.files[split] if root is not None else _hub_file(spec, split)
    texts, labels = read_table(path, spec)
    return build_dataset(texts, labels, spec, path, clean=spec.clean if clean is None else clean)


def load_task(task: str = "tfns", data_dir_: str | os.PathLike | None = None, clean: bool | None = None) -> tuple[Dataset, Dataset]:
    """Train and valid splits of a task (the DiXtill paper's "test" set is the hub's valid split)."""
    return load_split(task, "train", data_dir_, clean), load_split(task, "valid", data_dir_, clean)


# ---------------------------------------------------------------- deterministic subsets

def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))  # same stream on every machine and numpy 2.x


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices keeping the class proportions (largest-remainder rounding), sorted."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    take = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - take), kind="stable")[: n - take.sum()]:
        take[j] += 1
    rng = _rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def stratified_subset(ds: Dataset, n: int, seed: int) -> Dataset:
    """A class-balanced-as-the-original subset of ``n`` rows, identical across runs and machines."""
    return ds.select(stratified_indices(ds.labels, n, seed))


def k_shot_indices(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` examples per class (the low-resource setting of RetriKT), sorted."""
    labels = np.asarray(labels)
    rng = _rng(seed)
    out = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < k:
            raise DataError(f"Class {c} has only {len(pool)} examples; cannot draw k={k} per class.")
        out.append(rng.permutation(pool)[:k])
    return np.sort(np.concatenate(out))


def k_shot(ds: Dataset, k: int, seed: int) -> Dataset:
    return ds.select(k_shot_indices(ds.labels, k, seed))


def holdout_split(ds: Dataset, fraction: float = 0.1, seed: int | None = None) -> tuple[Dataset, Dataset]:
    """Split off a validation part. ``seed=None`` reproduces Keras ``validation_split``: the *last*
    ``fraction`` of the rows, unshuffled (what the DiXtill code did); an int gives a stratified draw."""
    n_val = max(1, int(round(len(ds) * fraction)))
    if seed is None:
        idx = np.arange(len(ds))
        return ds.select(idx[: len(ds) - n_val]), ds.select(idx[len(ds) - n_val:])
    val = stratified_indices(ds.labels, n_val, seed)
    rest = np.setdiff1d(np.arange(len(ds)), val)
    return ds.select(rest), ds.select(val)


#: Quick mode = these stratified subsets (seed 29), small enough for 2 CPU cores in minutes.
QUICK_SIZES = {"train": 1200, "valid": 600}


def mode_splits(mode: str | None = None, task: str = "tfns", data_dir_: str | os.PathLike | None = None,
                seed: int = 29) -> tuple[Dataset, Dataset]:
    """(train, valid) for a run mode: everything in full mode, :data:`QUICK_SIZES` subsets in quick mode."""
    from .config import get_mode

    train, valid = load_task(task, data_dir_)
    if get_mode(mode) == "quick":
        train = stratified_subset(train, QUICK_SIZES["train"], seed)
        valid = stratified_subset(valid, QUICK_SIZES["valid"], seed)
    return train, valid
