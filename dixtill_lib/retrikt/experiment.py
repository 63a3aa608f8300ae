"""RetriKT end to end for one task: teacher → class soft prompts (SFT, then PPO) → two knowledge stores (SFT
prompt, PPO prompt) → tiny models on k-shot splits, alone / with KD / with each store. Every expensive stage is
cached on disk by a hash of its inputs, so an interrupted run resumes where it stopped."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import parallel
from ..config import cache_dir, get_mode
from ..data import Dataset, clean_text, k_shot, k_shot_indices, load_task, mode_splits, stratified_subset
from ..io import cached_arrays, hash_texts, stable_hash
from ..metrics import classification_metrics, softmax
from .generator import (SMOLLM2, Context, PromptConfig, context_ids, encode_targets, init_prompt, load_generator,
                        nll, sample, train_soft_prompt)
from .ppo import PPOConfig, ppo_prompt, teacher_scorer
from .store import (KnowledgeStore, SentenceEncoder, StoreError, deduplicate, distinct_n, retrieval_proba,
                    self_similarity)
from .tiny import TinyConfig, TinyVocab, params_budget, train_tiny

#: What the generated text should look like, per task (used in the hard prompt that initialises P_y).
DOMAINS = {"tfns": "financial news tweet", "sst2": "movie review", "dixtill-samples": "financial news tweet"}
METHODS = ("tiny", "tiny_kd", "tiny+store_sft", "tiny+store_ppo")


@dataclass(frozen=True)
class RetriKTConfig:
    """Everything the RetriKT step does, with quick/full presets (see :meth:`for_mode`)."""
    tasks: tuple[str, ...] = ("tfns", "sst2")
    ks: tuple[int, ...] = (8, 16, 32)
    seeds: tuple[int, ...] = (0, 1, 2)
    generator: str = SMOLLM2
    prompt: PromptConfig = field(default_factory=PromptConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    prompt_k: int = 16                 # labelled examples per class the prompts are tuned on (split seed prompt_seed)
    prompt_seed: int = 0
    n_per_class: int = 64              # generations per class and per prompt (SFT / PPO)
    gen_batch: int = 32                # sequences sampled at once
    min_confidence: float = 0.5        # keep x̂ when teacher argmax = intended class with at least this probability
    index_kind: str = "flat"
    tiny: TinyConfig = field(default_factory=TinyConfig)
    param_fraction: float = 0.01       # tiny model budget relative to the teacher
    neighbours: tuple[int, ...] = (4, 8, 16, 32)
    temperatures: tuple[float, ...] = (0.02, 0.05, 0.1)
    lambdas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    select_metric: str = "accuracy"
    eval_size: int | None = None       # cap on the evaluation split (stratified); None = all of it
    sst2_teacher_size: int = 1000      # SST-2 needs its own teacher: fine-tuned MiniLM on this many sentences
    sst2_teacher_epochs: int = 2
    sst2_teacher_lr: float = 2e-4
    teacher_wait_minutes: float = 0.0  # full mode: wait this long for the book's full tfns teacher to be cached,
    #                                    then fall back to the quick-mode teacher (recorded) instead of training
    n_show: int = 4                    # samples per class kept for the chapter (before/after tuning)

    @classmethod
    def for_mode(cls, mode: str | None = None, **overrides: Any) -> "RetriKTConfig":
        """Full: both tasks, k ∈ {8, 16, 32}, 3 seeds. Quick: tfns only, k = 16, one seed, a few dozen
        generations per class, 2 PPO iterations — minutes on a CPU."""
        m = get_mode(mode)
        if m == "full":
            base = cls(prompt=PromptConfig.for_mode(m), ppo=PPOConfig.for_mode(m))
        else:
            base = cls(tasks=("tfns",), ks=(16,), seeds=(0,), prompt=PromptConfig.for_mode(m),
                       ppo=PPOConfig.for_mode(m), n_per_class=12, gen_batch=12, n_show=3)
        return replace(base, **overrides)


class RetriKTError(ValueError):
    """Bad RetriKT settings."""


# ---------------------------------------------------------------- data and teachers

def task_splits(task: str, mode: str, data_dir: str | None = None, eval_size: int | None = None,
                seed: int = 29) -> tuple[Dataset, Dataset]:
    """(train, eval) for a task: tfns uses the book's mode splits; other tasks their train/valid files
    (quick mode: 600-sentence stratified eval subset)."""
    if task == "tfns":
        train, valid = mode_splits(mode, data_dir_=data_dir)
    else:
        train, valid = load_task(task, data_dir)
        if get_mode(mode) == "quick":
            valid = stratified_subset(valid, min(600, len(valid)), seed)
    if eval_size is not None and eval_size < len(valid):
        valid = stratified_subset(valid, eval_size, seed)
    return train, valid


def task_teacher(task: str, mode: str, train: Dataset, cfg: RetriKTConfig, data_dir: str | None = None,
                 device: str = "cpu", progress: bool = True):
    """``(teacher, info)``: the book's default teacher for tfns; for another task a MiniLM fine-tuned on
    ``cfg.sst2_teacher_size`` of its train sentences for ``cfg.sst2_teacher_epochs`` epochs (cached)."""
    from ..teacher import TeacherConfig, default_teacher, get_teacher

    if task == "tfns":
        used = mode
        if get_mode(mode) == "full" and cfg.teacher_wait_minutes > 0 and not full_teacher_cached(data_dir):
            deadline = time.time() + 60 * cfg.teacher_wait_minutes
            while time.time() < deadline and not full_teacher_cached(data_dir):
                time.sleep(20)
            if not full_teacher_cached(data_dir):
                used = "quick"
        teacher, _, _ = default_teacher(used, data_dir, device=device, progress=progress)
        return teacher, {"teacher": teacher.name, "teacher_mode": used,
                         "teacher_train": f"book default teacher (chapter 2), {used} mode"
                         + ("" if used == get_mode(mode) else " — FALLBACK: the full teacher was not cached yet")}
    tcfg = TeacherConfig.for_mode(mode, train_size=cfg.sst2_teacher_size, epochs=cfg.sst2_teacher_epochs,
                                  lr=cfg.sst2_teacher_lr)
    subset = stratified_subset(train, cfg.sst2_teacher_size, tcfg.seed)
    teacher = get_teacher(tcfg, subset, device=device, progress=progress)
    return teacher, {"teacher": teacher.name, "teacher_train": f"{len(subset)} {task} train sentences, "
                     f"{tcfg.epochs} epochs, lr {tcfg.lr}, max_length {tcfg.max_length}"}


def full_teacher_cached(data_dir: str | None = None) -> bool:
    """Whether the book's full-mode tfns teacher is already in the cache (no training would start)."""
    from ..io import verify_manifest
    from ..teacher import TeacherConfig, teacher_cache_dir, teacher_train_set

    cfg = TeacherConfig.for_mode("full")
    train, _ = mode_splits("full", data_dir_=data_dir)
    where = teacher_cache_dir(cfg, teacher_train_set(train, cfg))
    return (where / "dixtill-manifest.json").is_file() and verify_manifest(where) is not None


# ---------------------------------------------------------------- prompts (cached)

def _json_array(obj: Any) -> np.ndarray:
    return np.array(json.dumps(obj))


def tune_prompts(model, tok, train: Dataset, task: str, teacher, encoder, cfg: RetriKTConfig,
                 progress: bool = True) -> dict[str, Any]:
    """Per class: initial prompt (from a hard prompt), SFT prompt, PPO prompt; SFT losses, NLL before/after,
    PPO history. Cached in two stages (SFT, then PPO) so a crash during PPO keeps the SFT prompts."""
    labelled = k_shot(train, cfg.prompt_k, cfg.prompt_seed)
    names = train.label_names
    inits = torch.stack([init_prompt(model, tok, cfg.prompt.init_text.format(label=n.lower(), domain=DOMAINS.get(task, task)),
                                     cfg.prompt.num_virtual_tokens) for n in names])
    domain = DOMAINS.get(task, task)
    n_ex = cfg.prompt.n_examples if cfg.prompt.instruction else 0
    per_class = [[t for t, y in zip(labelled.texts, labelled.labels) if y == c] for c in range(len(names))]
    # the first n_ex examples of a class go into its hard context; SFT trains on the others (never on a text
    # the generator can copy from its context)
    contexts = [Context(model, context_ids(tok, cfg.prompt.instruction.format(label=n.lower(), domain=domain),
                                           per_class[c][:n_ex]))
                if cfg.prompt.instruction else None for c, n in enumerate(names)]
    sft_key = stable_hash("sft", cfg.generator, asdict(cfg.prompt), hash_texts(labelled.texts),
                          labelled.labels.tolist(), task)

    def run_sft() -> dict[str, np.ndarray]:
        prompts, losses, nlls = [], [], []
        for c in range(len(names)):
            texts = per_class[c][n_ex:] or per_class[c]
            targets = encode_targets(tok, texts, cfg.prompt.max_length)
            before = nll(model, inits[c], targets, tok.pad_token_id, context=contexts[c])
            p, l = train_soft_prompt(model, tok, texts, inits[c], replace(cfg.prompt, seed=cfg.prompt.seed + c),
                                     progress=progress, context=contexts[c])
            prompts.append(p)
            losses.append(l)
            nlls.append((before, nll(model, p, targets, tok.pad_token_id, context=contexts[c])))
        return {"prompts": torch.stack(prompts).numpy(), "losses": np.asarray(losses),
                "nll": np.asarray(nlls)}

    def sft_class(lo: int, hi: int) -> dict[str, np.ndarray]:  # one class: the unit sharded over processes
        c = lo
        texts = per_class[c][n_ex:] or per_class[c]
        targets = encode_targets(tok, texts, cfg.prompt.max_length)
        before = nll(model, inits[c], targets, tok.pad_token_id, context=contexts[c])
        p, l = train_soft_prompt(model, tok, texts, inits[c], replace(cfg.prompt, seed=cfg.prompt.seed + c),
                                 progress=False, context=contexts[c])
        after = nll(model, p, targets, tok.pad_token_id, context=contexts[c])
        return {"prompts": p[None].numpy(), "losses": np.asarray([l]), "nll": np.asarray([(before, after)])}

    if parallel.is_distributed():  # N processes: one class prompt per process at a time, merged by the main one
        sft = parallel.sharded_cache("retrikt-prompts", sft_key, len(names), sft_class, part_size=1, progress=False)
    else:
        sft = cached_arrays("retrikt-prompts", sft_key, run_sft)
    ppo_key = stable_hash("ppo", sft_key, asdict(cfg.ppo), teacher.fingerprint(), encoder.name)

    def run_ppo() -> dict[str, np.ndarray]:
        score = teacher_scorer(teacher, encoder)
        prompts, history = [], []
        for c in range(len(names)):
            res = ppo_prompt(model, tok, torch.as_tensor(sft["prompts"][c]), c, score,
                             replace(cfg.ppo, seed=cfg.ppo.seed + c), progress=progress,
                             context=contexts[c])
            prompts.append(res.prompt)
            history += res.history
        return {"prompts": torch.stack(prompts).numpy(), "history": _json_array(history)}

    def ppo_class(lo: int, hi: int) -> dict[str, np.ndarray]:
        c = lo
        res = ppo_prompt(model, tok, torch.as_tensor(sft["prompts"][c]), c, teacher_scorer(teacher, encoder),
                         replace(cfg.ppo, seed=cfg.ppo.seed + c), progress=False, context=contexts[c])
        return {"prompts": res.prompt[None].numpy(), "history": _json_array(res.history)}

    def ppo_merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {"prompts": np.concatenate([p["prompts"] for p in parts]),
                "history": _json_array([h for p in parts for h in json.loads(str(p["history"]))])}

    if parallel.is_distributed():
        ppo = parallel.sharded_cache("retrikt-prompts", ppo_key, len(names), ppo_class, part_size=1,
                                     merge=ppo_merge, progress=False)
    else:
        ppo = cached_arrays("retrikt-prompts", ppo_key, run_ppo)
    return {"init": inits, "sft": torch.as_tensor(sft["prompts"]), "ppo": torch.as_tensor(ppo["prompts"]),
            "sft_losses": sft["losses"], "nll_before_after": sft["nll"],
            "ppo_history": json.loads(str(ppo["history"])), "labelled": labelled, "key": ppo_key,
            "contexts": contexts}


# ---------------------------------------------------------------- stores (cached)

def first_line(text: str) -> str:
    """Generated posts are single lines: keep the first non-empty line, without a list bullet."""
    for line in text.splitlines():
        line = line.strip().lstrip("-*• ").strip()
        if line:
            return line
    return ""


def generate_texts(model, tok, prompt: torch.Tensor, n: int, cfg: RetriKTConfig, seed: int,
                   progress: bool = True, context: torch.Tensor | None = None) -> list[str]:
    """``n`` cleaned samples from one prompt, ``cfg.gen_batch`` at a time."""
    gen = torch.Generator().manual_seed(seed)
    out: list[str] = []
    bar = tqdm(total=n, desc="generate", disable=not progress, leave=False)
    while len(out) < n:
        b = min(cfg.gen_batch, n - len(out))
        roll = sample(model, tok, prompt, b, cfg.prompt.max_new_tokens, cfg.prompt.top_p, cfg.prompt.temperature,
                      generator=gen, context=context)
        out += [clean_text(first_line(t)) for t in roll.texts]
        bar.update(b)
    bar.close()
    return out


def build_store(model, tok, prompts: torch.Tensor, variant: str, teacher, encoder, cfg: RetriKTConfig,
                label_names: tuple[str, ...], key: str, progress: bool = True, contexts=None) -> KnowledgeStore:
    """Generate ``n_per_class`` per class, de-duplicate, label with the teacher, filter, embed, index; cached in
    ``cache_dir()/retrikt-stores/<hash>``. Diagnostics (before filtering) go into ``store.meta``."""
    where = cache_dir() / "retrikt-stores" / stable_hash(key, variant, cfg.n_per_class, cfg.gen_batch,
                                                         cfg.min_confidence, cfg.index_kind, asdict(cfg.prompt))
    try:
        return KnowledgeStore.load(where, expected_dim=encoder.dim, num_labels=len(label_names))
    except StoreError:
        pass
    t0 = time.perf_counter()
    run = parallel.runner()
    if parallel.is_distributed():  # N processes: generation sharded by rank; the main process labels, indexes and saves
        texts, intended = _generate_sharded(model, tok, prompts, variant, cfg, len(label_names), where.name, contexts)
        if not run.is_main:
            run.wait()
            return KnowledgeStore.load(where, expected_dim=encoder.dim, num_labels=len(label_names))
        try:
            return _finish_store(texts, intended, variant, teacher, encoder, cfg, label_names, where, t0)
        finally:
            run.wait()
    texts, intended = [], []
    for c in range(len(label_names)):
        got = generate_texts(model, tok, prompts[c], cfg.n_per_class, cfg, seed=1000 * c + len(variant),
                             progress=progress, context=contexts[c] if contexts else None)
        texts += got
        intended += [c] * len(got)
    return _finish_store(texts, intended, variant, teacher, encoder, cfg, label_names, where, t0)


def _generate_sharded(model, tok, prompts, variant: str, cfg: RetriKTConfig, n_classes: int, key: str,
                      contexts=None) -> tuple[list[str], list[int]]:
    """Generations of every class in chunks of ``cfg.gen_batch``, each chunk seeded by (class, chunk) and cached,
    spread over the processes. (Seeds differ from the one-process stream: a sharded store holds different — equally
    distributed — samples than a one-process store.)"""
    chunks = [(c, s) for c in range(n_classes) for s in range(0, cfg.n_per_class, cfg.gen_batch)]

    def compute(lo: int, hi: int) -> dict[str, np.ndarray]:
        texts, intended = [], []
        for c, s in chunks[lo:hi]:
            m = min(cfg.gen_batch, cfg.n_per_class - s)
            got = generate_texts(model, tok, prompts[c], m, cfg, seed=1000 * c + len(variant) + 7919 * (s + 1),
                                 progress=False, context=contexts[c] if contexts else None)
            texts += got
            intended += [c] * len(got)
        return {"texts": np.array(texts, dtype=str), "intended": np.asarray(intended, dtype=np.int64)}

    arrays = parallel.sharded_cache("retrikt-generations", key, len(chunks), compute, part_size=1, progress=False)
    return [str(t) for t in arrays["texts"]], arrays["intended"].tolist()


def _finish_store(texts: list[str], intended, variant: str, teacher, encoder, cfg: RetriKTConfig,
                  label_names: tuple[str, ...], where, t0: float) -> KnowledgeStore:
    """De-duplicate, label with the teacher, filter, embed, index and save the generated texts."""
    keep = deduplicate(texts)
    texts, intended = [texts[i] for i in keep], np.asarray([intended[i] for i in keep], dtype=np.int64)
    if not texts:
        raise StoreError("Every generated sample was empty or a duplicate; raise n_per_class or max_new_tokens.")
    proba = teacher.predict_proba(texts, progress=False)
    emb = encoder(texts)
    agree = proba.argmax(1) == intended
    diag = {"variant": variant, "n_generated": cfg.n_per_class * len(label_names), "n_unique": len(texts),
            "label_consistency": float(agree.mean()),
            "p_intended": float(proba[np.arange(len(texts)), intended].mean()),
            "label_consistency_per_class": [float(agree[intended == c].mean()) if (intended == c).any() else None
                                            for c in range(len(label_names))],
            "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "self_similarity": self_similarity(emb, intended)}
    ok = agree & (proba.max(1) >= cfg.min_confidence)
    diag["n_kept"] = int(ok.sum())
    diag["generation_seconds"] = round(time.perf_counter() - t0, 1)
    meta = {"encoder": encoder.name, "teacher": teacher.name, "label_names": list(label_names),
            "generation": {"generator": cfg.generator, "top_p": cfg.prompt.top_p,
                           "temperature": cfg.prompt.temperature, "max_new_tokens": cfg.prompt.max_new_tokens,
                           "n_per_class": cfg.n_per_class, "min_confidence": cfg.min_confidence},
            "diagnostics": diag}
    idx = np.flatnonzero(ok)
    store = KnowledgeStore(emb[idx], [texts[i] for i in idx], proba[idx], intended[idx], meta, cfg.index_kind)
    if len(store) == 0:
        raise StoreError(f"No {variant} sample passed the teacher filter (min_confidence={cfg.min_confidence}); "
                         f"lower it or generate more.")
    store.save(where)
    return store


# ---------------------------------------------------------------- tiny models on a k-shot split

def dev_split(train: Dataset, k: int, seed: int) -> tuple[Dataset, Dataset]:
    """The k-shot training set and a disjoint k-shot dev set (for λ, T and the neighbour count)."""
    idx = k_shot_indices(train.labels, k, seed)
    rest = np.setdiff1d(np.arange(len(train)), idx)
    dev_idx = rest[k_shot_indices(train.labels[rest], k, seed + 10_000)]
    return train.select(idx), train.select(dev_idx)


def _select_mixture(p_tiny_dev, sims_dev, soft_dev, y_dev, cfg: RetriKTConfig) -> tuple[float, float, int, float]:
    best = (-1.0, 0.0, cfg.temperatures[0], cfg.neighbours[0])
    for kn in cfg.neighbours:
        for T in cfg.temperatures:
            p_ret = retrieval_proba(sims_dev[:, :kn], soft_dev[:, :kn], T)
            for lam in cfg.lambdas:
                p = lam * p_ret + (1 - lam) * p_tiny_dev
                score = classification_metrics(y_dev, p)[cfg.select_metric]
                if score > best[0] + 1e-12:
                    best = (score, lam, T, kn)
    return best[1], best[2], best[3], best[0]


def run_kshot(train: Dataset, valid: Dataset, k: int, seed: int, teacher, encoder, stores: dict[str, KnowledgeStore],
              glove: tuple[dict, np.ndarray], cfg: RetriKTConfig, task: str) -> list[dict[str, Any]]:
    """Rows for every method on one (k, seed) split."""
    from ..teacher import teacher_logits

    kshot, dev = dev_split(train, k, seed)
    C = train.num_labels
    onehot = np.eye(C)[kshot.labels]
    t_kshot = softmax(teacher_logits(teacher, kshot, progress=False))
    budget = params_budget(teacher.num_parameters(), cfg.param_fraction, glove[1].shape[1], cfg.tiny.hidden, C)
    tcfg = cfg.tiny.with_(vocab_size=budget, seed=cfg.tiny.seed + seed)
    q_dev, q_val = encoder(dev.texts), encoder(valid.texts)
    base = {"task": task, "k": k, "seed": seed, "n_train": len(kshot), "n_dev": len(dev), "n_eval": len(valid)}
    rows = []

    def finish(method: str, model, extra: dict[str, Any]) -> None:
        m = classification_metrics(valid.labels, extra.pop("_proba"), C)
        rows.append({"method": method, **base, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "mcc": m["mcc"], "params": model.num_parameters(), **extra})

    for method, targets in (("tiny", onehot), ("tiny_kd", (1 - tcfg.kd_weight) * onehot + tcfg.kd_weight * t_kshot)):
        vocab = TinyVocab(kshot.texts, glove[0], tcfg.vocab_size)
        model = train_tiny(kshot.texts, targets, np.ones(len(kshot)), vocab, glove[1], C, tcfg)
        finish(method, model, {"_proba": model.predict_proba(valid.texts), "store_size": 0})

    for variant, store in stores.items():
        texts = kshot.texts + store.texts
        targets = np.concatenate([onehot, store.soft_labels])
        w = np.concatenate([np.ones(len(kshot)), np.full(len(store), tcfg.store_weight * len(kshot) / len(store))])
        ret_t = None
        if tcfg.retrieval_kl > 0:
            sims, idx = store.search(encoder(kshot.texts), cfg.neighbours[1])
            ret_t = np.concatenate([retrieval_proba(sims, store.soft_labels[idx], cfg.temperatures[1]),
                                    np.zeros((len(store), C))])
        vocab = TinyVocab(texts, glove[0], tcfg.vocab_size)
        model = train_tiny(texts, targets, w, vocab, glove[1], C, tcfg, ret_targets=ret_t)
        kmax = max(cfg.neighbours)
        sd, idd = store.search(q_dev, kmax)
        lam, T, kn, dev_score = _select_mixture(model.predict_proba(dev.texts), sd, store.soft_labels[idd],
                                                dev.labels, cfg)
        sv, idv = store.search(q_val, kn)
        p_ret = retrieval_proba(sv, store.soft_labels[idv], T)
        p_tiny = model.predict_proba(valid.texts)
        m_ret = classification_metrics(valid.labels, p_ret, C)
        m_tiny = classification_metrics(valid.labels, p_tiny, C)
        diag = store.meta.get("diagnostics", {})
        finish(f"tiny+store_{variant}", model, {
            "_proba": lam * p_ret + (1 - lam) * p_tiny, "store_size": len(store), "lambda": lam,
            "temperature": T, "neighbours": kn, f"dev_{cfg.select_metric}": dev_score,
            "accuracy_tiny_part": m_tiny["accuracy"], "accuracy_retrieval_only": m_ret["accuracy"],
            "retrieval_encoder": store.meta.get("encoder"), "retrieval_encoder_params": encoder.num_parameters(),
            "store_label_consistency": diag.get("label_consistency"), "store_distinct_2": diag.get("distinct_2"),
            "store_self_similarity": diag.get("self_similarity")})
    return rows


# ---------------------------------------------------------------- one task end to end

@dataclass
class TaskRun:
    """Everything one task produced (the chapter plots from it)."""
    task: str
    label_names: tuple[str, ...]
    rows: list[dict[str, Any]]
    stores: dict[str, KnowledgeStore]
    prompts: dict[str, Any]
    samples: dict[str, dict[str, list[str]]]
    teacher_info: dict[str, Any]
    seconds: dict[str, float]
    encoder: Any = None


def run_task(task: str, cfg: RetriKTConfig, mode: str | None = None, data_dir: str | None = None,
             device: str = "cpu", progress: bool = True, generator=None, encoder=None, teacher=None,
             log=print) -> TaskRun:
    """Teacher → prompts → stores → tiny models on every (k, seed) for one task."""
    from ..assets import load_glove

    mode = get_mode(mode)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    train, valid = task_splits(task, mode, data_dir, cfg.eval_size)
    if teacher is None:
        teacher, tinfo = task_teacher(task, mode, train, cfg, data_dir, device, progress)
    else:
        tinfo = {"teacher": teacher.name, "teacher_train": "given"}
    seconds["teacher"] = time.perf_counter() - t0
    log(f"[{task}] teacher ready ({seconds['teacher']:.0f} s): {tinfo}")
    t0 = time.perf_counter()
    model, tok = generator if generator is not None else load_generator(cfg.generator, device)
    encoder = encoder or SentenceEncoder(device=device)
    seconds["load_generator"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prompts = tune_prompts(model, tok, train, task, teacher, encoder, cfg, progress)
    seconds["prompts"] = time.perf_counter() - t0
    log(f"[{task}] prompts ready ({seconds['prompts']:.0f} s)")
    t0 = time.perf_counter()
    stores = {v: build_store(model, tok, prompts[v], v, teacher, encoder, cfg, train.label_names, prompts["key"],
                             progress, prompts["contexts"]) for v in ("sft", "ppo")}
    seconds["stores"] = time.perf_counter() - t0
    log(f"[{task}] stores ready ({seconds['stores']:.0f} s): "
        + ", ".join(f"{v}={len(s)} entries" for v, s in stores.items()))
    samples = show_samples(model, tok, prompts, train.label_names, cfg, stores)
    t0 = time.perf_counter()
    glove = load_glove()
    rows = []
    for k in cfg.ks:
        for seed in cfg.seeds:
            rows += run_kshot(train, valid, k, seed, teacher, encoder, stores, glove, cfg, task)
    seconds["tiny_models"] = time.perf_counter() - t0
    log(f"[{task}] tiny models done ({seconds['tiny_models']:.0f} s)")
    return TaskRun(task, train.label_names, rows, stores, prompts, samples, tinfo, seconds, encoder)


def show_samples(model, tok, prompts, label_names, cfg: RetriKTConfig, stores) -> dict[str, dict[str, list[str]]]:
    """A few generations per class from the initial (hard-prompt) embeddings, the SFT prompt and the PPO prompt
    (the latter two read from the raw generations' first kept entries)."""
    key = stable_hash("samples", prompts["key"], cfg.n_show, asdict(cfg.prompt))

    def run() -> dict[str, np.ndarray]:
        out = {}
        for c, name in enumerate(label_names):
            gen = torch.Generator().manual_seed(7 + c)
            roll = sample(model, tok, prompts["init"][c], cfg.n_show, cfg.prompt.max_new_tokens, cfg.prompt.top_p,
                          cfg.prompt.temperature, generator=gen, context=prompts["contexts"][c])
            out[name] = [clean_text(first_line(t)) for t in roll.texts]
        return {"before": _json_array(out)}

    before = json.loads(str(cached_arrays("retrikt-samples", key, run)["before"]))
    result = {"before tuning": before}
    for v, s in stores.items():
        result[f"{v} prompt"] = {name: [t for t, c in zip(s.texts, s.intended) if c == i][:cfg.n_show]
                                 for i, name in enumerate(label_names)}
    return result


def store_diagnostics(runs: list[TaskRun]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        for v, s in r.stores.items():
            d = dict(s.meta.get("diagnostics", {}))
            d.pop("variant", None)
            out.append({"task": r.task, "store": v, "size": len(s), **d})
    return out


def project_2d(store: KnowledgeStore, seed: int = 0) -> np.ndarray:
    """A 2-D PCA projection of the store's embeddings (for a scatter plot coloured by teacher label)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(store.embeddings)


def target_check(rows: list[dict[str, Any]], diagnostics: list[dict[str, Any]], k: int = 16,
                 margin: float = 0.05) -> list[dict[str, Any]]:
    """The issue's targets: (1) tiny+store_ppo ≥ tiny + ``margin`` accuracy (mean over seeds) at ``k`` per task;
    (2) the PPO store ≥ the SFT store on label consistency and on diversity (distinct-2, and lower
    self-similarity). One row per check with the measured numbers and whether it is met."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        acc = {m: [r["accuracy"] for r in rows if r["task"] == task and r["k"] == k and r["method"] == m]
               for m in ("tiny", "tiny+store_ppo")}
        if all(acc.values()):
            gain = float(np.mean(acc["tiny+store_ppo"]) - np.mean(acc["tiny"]))
            out.append({"task": task, "check": f"tiny+store_ppo − tiny accuracy at k={k}", "value": round(gain, 4),
                        "target": f"≥ {margin}", "met": gain >= margin})
        d = {x["store"]: x for x in diagnostics if x["task"] == task}
        if {"sft", "ppo"} <= set(d):
            for key, better in (("label_consistency", 1), ("distinct_2", 1), ("self_similarity", -1)):
                diff = float(d["ppo"][key] - d["sft"][key])
                out.append({"task": task, "check": f"{key}: PPO − SFT store", "value": round(diff, 4),
                            "target": "≥ 0" if better > 0 else "≤ 0", "met": diff * better >= 0})
    return out
