"""Going wide without changing the code: one place where the book meets Hugging Face Accelerate.

Every step runs the same way on a laptop CPU, one GPU, or N GPUs / nodes::

    python -m dixtill_lib distill --full                                   # one process (today's behaviour)
    accelerate launch --num_processes 8 -m dixtill_lib distill --full      # 8 GPUs, data parallel
    accelerate launch --cpu --num_processes 2 -m dixtill_lib distill ...   # 2 CPU processes (gloo)
    torchrun --nproc_per_node 2 -m dixtill_lib distill ...                 # torchrun works too

Two kinds of parallel work, two tools:

* **Training** (teacher fine-tuning, student distillation) is *data parallel*: :func:`runner` hands the
  training loop an :class:`Runner` that prepares the model, optimiser and batches with an
  ``accelerate.Accelerator`` (DistributedDataParallel underneath: gradients are averaged by Accelerate, never
  by hand). Batches are **split** across processes (``split_batches=True``): the recipe's batch size is the
  *global* batch, so 1 and N processes train with the same effective batch size and the same learning rate.
  With a single process and no mixed precision the runner is a no-op and the loop is exactly the one-process
  loop (bit-identical results).
* **Embarrassingly parallel work** (teacher logits, IG attributions, knowledge-store generation, one soft prompt
  per class) is *sharded by rank*: :func:`sharded_cache` cuts the rows into fixed parts, each process computes a
  contiguous block of parts and caches every part as it finishes, then the main process merges the parts and
  writes the cache entry once, atomically. Parts do not depend on the number of processes, so a killed job
  rerun with any number of processes only computes the parts that are missing.

Files that describe a whole run (result JSON, saved models) are written by the main process only
(:func:`is_main_process`, :func:`main_process_only`); :func:`dixtill_lib.results.write_results` checks it.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .io import cached_arrays, load_arrays, save_arrays, stable_hash


# ---------------------------------------------------------------- who am I (no initialisation needed)

def world_size() -> int:
    """Number of processes of this launch (``$WORLD_SIZE`` set by ``accelerate launch`` / ``torchrun``; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's global rank (0 = the main process)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    """True in the one process that writes result files and merged caches."""
    return rank() == 0


def main_process_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run ``fn`` on the main process only (other processes get ``None``)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_main_process() else None
    return wrapper


def mixed_precision_requested() -> str:
    """``"no"``, ``"fp16"`` or ``"bf16"`` as asked by ``accelerate launch --mixed_precision``."""
    return (os.environ.get("ACCELERATE_MIXED_PRECISION") or "no").lower()


# ---------------------------------------------------------------- the training-loop helper

class Runner:
    """What a training loop needs from Accelerate. With ``accelerator=None`` (one process, full precision) every
    method is the plain PyTorch operation, so single-process training is unchanged."""

    def __init__(self, accelerator: Any = None):
        self.accelerator = accelerator

    # identity
    @property
    def active(self) -> bool:
        return self.accelerator is not None

    @property
    def rank(self) -> int:
        return int(self.accelerator.process_index) if self.active else 0

    @property
    def world_size(self) -> int:
        return int(self.accelerator.num_processes) if self.active else 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self):
        return self.accelerator.device if self.active else None

    # training
    def prepare(self, *objs: Any) -> Any:
        """``accelerator.prepare`` (DDP-wrapped model on its device, wrapped optimiser); identity when inactive."""
        if not self.active:
            return objs[0] if len(objs) == 1 else objs
        return self.accelerator.prepare(*objs)

    def backward(self, loss) -> None:
        if self.active:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def clip_grad_norm_(self, params, max_norm: float):
        import torch

        if self.active:
            return self.accelerator.clip_grad_norm_(params, max_norm)
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def unwrap(self, model):
        return self.accelerator.unwrap_model(model) if self.active else model

    def autocast(self):
        """Mixed-precision autocast when the launcher asked for it; a no-op otherwise."""
        import contextlib

        return self.accelerator.autocast() if self.active else contextlib.nullcontext()

    def batches(self, tensors: dict[str, Any], batch_indices: "EpochBatches") -> Iterable[dict[str, Any]]:
        """An iterable to loop over once per epoch; each pass draws the epoch's batches and yields them as dicts of
        tensors. Inactive: ``{k: v[idx]}`` for each index array, in order. Active: an accelerate-prepared
        ``DataLoader`` that gives each process its slice of every global batch (moved to its device)."""
        if not self.active:
            return _PlainBatches(tensors, batch_indices)
        from torch.utils.data import DataLoader

        if batch_indices.batch_size % self.world_size:
            raise ValueError(f"batch size {batch_indices.batch_size} is not a multiple of the {self.world_size} "
                             f"processes: with split batches every process gets an equal slice; choose a batch size "
                             f"divisible by the number of processes.")
        loader = DataLoader(_TensorRows(tensors), batch_sampler=_Sampler(batch_indices, pad=True),
                            collate_fn=_identity)
        return self.accelerator.prepare_data_loader(loader)

    # evaluation and bookkeeping
    def sum_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        """Sum scalar statistics (e.g. per-process loss sums) over all processes."""
        if not self.active or not values:
            return dict(values)
        import torch

        keys = sorted(values)
        t = self.sum_tensor_over_processes(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64))
        return {k: float(v) for k, v in zip(keys, t.tolist())}

    def sum_tensor_over_processes(self, t: "torch.Tensor") -> "torch.Tensor":
        """Element-wise sum of a tensor of the same shape on every process (e.g. per-class counts), on the CPU."""
        if not self.active:
            return t
        import torch

        return self.accelerator.reduce(t.to(self.device, torch.float64), reduction="sum").cpu()

    def map_rows(self, fn: Callable[[list], Sequence], items: Sequence) -> list:
        """``fn(items)`` computed as ``fn`` of each process's contiguous slice, gathered in order with
        ``gather_for_metrics`` (evaluation sharded over processes). Inactive: just ``list(fn(items))``."""
        items = list(items)
        if not self.active:
            return list(fn(items))
        lo, hi = shard_range(len(items), self.rank, self.world_size)
        mine = list(fn(items[lo:hi])) if hi > lo else []
        gathered = self.accelerator.gather_for_metrics([mine], use_gather_object=True)
        return [row for part in gathered for row in part]

    def wait(self) -> None:
        """Barrier: every process reaches this line before any goes on."""
        if self.active:
            self.accelerator.wait_for_everyone()

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj`` on every process."""
        if not self.active:
            return obj
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([obj], from_process=0)[0]


class EpochBatches:
    """Index arrays of one epoch's batches, drawn fresh each time :meth:`epoch` is called (``make()`` advances a
    seeded RNG, so every process draws the same batches). ``n_batches`` must not change between epochs."""

    def __init__(self, make: Callable[[], list], batch_size: int, n_batches: int):
        self.make, self.batch_size, self.n_batches = make, batch_size, n_batches

    def epoch(self) -> list:
        return self.make()


class _PlainBatches:
    """One process: ``{k: v[idx]}`` for the index arrays of a fresh epoch, each time it is iterated."""

    def __init__(self, tensors: dict[str, Any], batches: EpochBatches):
        self.tensors, self.batches = tensors, batches

    def __len__(self) -> int:
        return self.batches.n_batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for idx in self.batches.epoch():
            yield {k: v[idx] for k, v in self.tensors.items()}


class _Sampler:
    """A batch sampler over :class:`EpochBatches` for ``accelerate``'s ``BatchSamplerShard(split_batches=True)``,
    which only splits *full* batches: a short batch (the tail of a length bucket) is padded to the batch size by
    repeating its own rows (those rows count twice in that one step; the single-process loop never pads)."""

    def __init__(self, batches: EpochBatches, pad: bool):
        self.batches, self.pad = batches, pad
        self.batch_size, self.drop_last = batches.batch_size, False

    def __len__(self) -> int:
        return self.batches.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self.batches.epoch():
            idx = [int(i) for i in idx]
            if self.pad and len(idx) < self.batch_size:
                idx = (idx * (self.batch_size // len(idx) + 1))[: self.batch_size]
            yield idx


class _TensorRows:
    """A map-style data set over a dict of equally long tensors that fetches whole batches at once."""

    def __init__(self, tensors: dict[str, Any]):
        self.tensors = tensors
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.tensors.items()}

    def __getitems__(self, idx: list[int]) -> dict[str, Any]:
        import torch

        ix = torch.as_tensor(idx, dtype=torch.long)
        return {k: v[ix] for k, v in self.tensors.items()}


def _identity(batch: Any) -> Any:
    return batch


@functools.lru_cache(maxsize=1)
def _accelerator() -> Any:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    # Without a GPU, Accelerate only forms a multi-process (gloo) group when told the processes are CPU ones.
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    return Accelerator(cpu=cpu, dataloader_config=DataLoaderConfiguration(split_batches=True))


def runner() -> Runner:
    """The process's :class:`Runner`: backed by an ``Accelerator`` when this is a multi-process launch or mixed
    precision was requested, inactive (plain PyTorch) otherwise."""
    if is_distributed() or mixed_precision_requested() != "no":
        return Runner(_accelerator())
    return Runner(None)


def launch_device(requested: str) -> str:
    """The device a process of this launch should use: ``requested`` unless this is a multi-process launch
    that asked for a GPU (then this process's own ``cuda:<local rank>``)."""
    if is_distributed() and (requested.startswith("cuda") or requested == "auto"):
        return str(runner().device)
    return requested


# ---------------------------------------------------------------- sharding embarrassingly parallel work

def shard_range(n: int, rank_: int, world: int) -> tuple[int, int]:
    """``[lo, hi)``: process ``rank_``'s contiguous share of ``n`` items (sizes differ by at most one)."""
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"rank {rank_} is not in a world of {world} processes.")
    return (n * rank_) // world, (n * (rank_ + 1)) // world


def part_ranges(n: int, part_size: int) -> list[tuple[int, int]]:
    """Fixed parts ``[(0, part_size), (part_size, 2·part_size), …]`` covering ``n`` rows (independent of the
    number of processes, so parts survive a relaunch with another process count)."""
    if part_size < 1:
        raise ValueError(f"part_size must be >= 1, got {part_size}.")
    return [(s, min(s + part_size, n)) for s in range(0, n, part_size)]


def concat_arrays(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Default merge: concatenate every array along axis 0 (0-d arrays are summed)."""
    out = {}
    for k in parts[0]:
        vals = [np.asarray(p[k]) for p in parts]
        out[k] = np.sum(vals, axis=0) if vals[0].ndim == 0 else np.concatenate(vals)
    return out


def sharded_cache(namespace: str, key: str, n: int, compute: Callable[[int, int], dict[str, np.ndarray]], *,
                  part_size: int, part_key: Callable[[int, int], str] | None = None,
                  parts_namespace: str | None = None,
                  merge: Callable[[list[dict[str, np.ndarray]]], dict[str, np.ndarray]] = concat_arrays,
                  progress: bool = True, desc: str = "parts") -> dict[str, np.ndarray]:
    """Cached arrays for ``n`` rows computed in parts across the processes of this launch.

    ``compute(lo, hi)`` returns the arrays of rows ``[lo, hi)``. Each process computes its contiguous block of
    :func:`part_ranges` and caches each part in ``<cache>/<parts_namespace>/`` as soon as it is done; after a
    barrier the main process loads every part (computing any that is still missing), merges them and writes
    ``<cache>/<namespace>/<key>`` once; the others wait and load it. A rerun after a crash recomputes only
    the missing parts; a rerun after success is a cache hit. Works unchanged in a single process."""
    from tqdm.auto import tqdm

    r = runner()
    parts_ns = parts_namespace or f"{namespace}-parts"
    part_key = part_key or (lambda lo, hi: stable_hash(key, lo, hi))
    hit = r.broadcast(load_arrays(namespace, key) is not None if r.is_main else None)
    if hit:
        return load_arrays(namespace, key) if r.is_main else _load_after_main(namespace, key)
    ranges = part_ranges(n, part_size)
    lo, hi = shard_range(len(ranges), r.rank, r.world_size)

    def part(a: int, b: int) -> dict[str, np.ndarray]:
        return cached_arrays(parts_ns, part_key(a, b), lambda: compute(a, b))

    for a, b in tqdm(ranges[lo:hi], desc=desc, disable=not (progress and r.is_main), leave=False):
        part(a, b)
    r.wait()
    merged = None
    if r.is_main:
        merged = merge([part(a, b) for a, b in ranges])
        save_arrays(namespace, key, merged)
    r.wait()
    return merged if merged is not None else _load_after_main(namespace, key)


def _load_after_main(namespace: str, key: str) -> dict[str, np.ndarray]:
    got = load_arrays(namespace, key)
    if got is None:
        raise RuntimeError(f"The main process did not leave {namespace}/{key} in the cache: is $DIXTILL_CACHE a "
                           f"folder every process (every node) can read? It must be shared storage.")
    return got
