"""Result files: ``results/<step>.json`` = ``{"provenance": {...}, "rows": [{...}, ...]}``.
Full runs write the committed ``results/``; quick runs write ``results/quick/`` (git-ignored)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from .config import REPO_ROOT, get_mode, results_dir
from .io import write_json_atomic

PROVENANCE_KEYS = ("git_commit", "date", "hardware", "torch", "transformers", "mode", "seeds", "config")
METRIC_RANGES = {"accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "mcc": (-1.0, 1.0)}


class ResultsError(ValueError):
    """A result file is missing or malformed."""


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        # result files are what runs write, not code: a run's own partial writes must not mark it dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - not a git checkout
        return "unknown"


def hardware() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


#: The commit the running code came from, read once when the process starts (a long run may end after
#: other commits landed; the result must name the code that produced it).
COMMIT_AT_START = git_commit()
#: a free-text note on how this run was executed (the CLI's ``--note``), copied into every provenance
RUN_NOTE: str | None = None


def provenance(mode: str | None, seeds: list[int], config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    import torch
    import transformers

    now = git_commit()
    if now != COMMIT_AT_START:
        extra = {"git_commit_at_write": now, **extra}
    if RUN_NOTE:
        extra = {"note": RUN_NOTE, **extra}
    return {"git_commit": COMMIT_AT_START, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(), "torch": torch.__version__, "transformers": transformers.__version__,
            "mode": get_mode(mode), "seeds": list(seeds), "config": config, **extra}


def validate(obj: Any, source: str = "result") -> dict[str, Any]:
    """Check the result-file schema; raise :class:`ResultsError` naming the first problem."""
    if not isinstance(obj, dict) or "provenance" not in obj or "rows" not in obj:
        raise ResultsError(f"{source}: expected an object with 'provenance' and 'rows'.")
    prov = obj["provenance"]
    missing = [k for k in PROVENANCE_KEYS if k not in prov]
    if missing:
        raise ResultsError(f"{source}: provenance lacks {missing}.")
    if not isinstance(obj["rows"], list) or not obj["rows"]:
        raise ResultsError(f"{source}: 'rows' must be a non-empty list.")
    for i, row in enumerate(obj["rows"]):
        if not isinstance(row, dict) or "method" not in row:
            raise ResultsError(f"{source}: row {i} is not an object with a 'method'.")
        for key, (lo, hi) in METRIC_RANGES.items():
            if key in row and row[key] is not None and not lo <= float(row[key]) <= hi:
                raise ResultsError(f"{source}: row {i} has {key}={row[key]} outside [{lo}, {hi}].")
    return obj


#: Fields that identify a row: two rows agreeing on all of these (that they have) are the same measurement.
ROW_KEY_FIELDS = ("method", "seed", "task", "k", "split", "n_steps", "teacher", "variant", "processes", "device",
                  "index", "n")

_MERGE_DEFAULT = False


@contextmanager
def merging(enabled: bool = True) -> Iterator[None]:
    """Inside this block :func:`write_results` merges into an existing file by default (the CLI's ``--merge``)."""
    global _MERGE_DEFAULT
    old, _MERGE_DEFAULT = _MERGE_DEFAULT, bool(enabled)
    try:
        yield
    finally:
        _MERGE_DEFAULT = old


def row_key(row: dict[str, Any], fields: Sequence[str] = ROW_KEY_FIELDS) -> tuple:
    """The identity of a result row: its values of ``fields`` (absent fields are skipped). The teacher is
    always :func:`row_teacher`'s reading, so a row written before rows carried a ``teacher`` field (MiniLM)
    is the same row as its rerun that names ``"minilm"``."""
    def value(f: str) -> Any:
        return row_teacher(row) if f == "teacher" else row[f]

    return tuple((f, json.dumps(value(f), sort_keys=True, default=str)) for f in fields
                 if f in row or f == "teacher")


def merge_results(old: dict[str, Any], new: dict[str, Any], key_fields: Sequence[str] = ROW_KEY_FIELDS) -> dict[str, Any]:
    """``new`` merged into ``old``: a row of ``new`` replaces the ``old`` row with the same :func:`row_key`
    (no duplicates), other rows are kept in order; one provenance (``new``'s) with the union of the seeds and
    ``merged_runs`` listing the commit, date, seeds and hardware of every run that contributed."""
    fresh = {row_key(r, key_fields): r for r in new["rows"]}
    old_keys = {row_key(r, key_fields) for r in old["rows"]}
    rows = [fresh.get(row_key(r, key_fields), r) for r in old["rows"]]  # replaced in place
    rows += [r for k, r in fresh.items() if k not in old_keys]
    po, pn = old["provenance"], new["provenance"]
    seeds = sorted({s for s in list(po.get("seeds") or []) + list(pn.get("seeds") or []) if s is not None},
                   key=lambda s: (str(type(s)), s))

    def run(p: dict[str, Any]) -> dict[str, Any]:
        return {k: p.get(k) for k in ("git_commit", "date", "seeds", "hardware")}

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:  # a job rewriting its own rows is one run, not many
        return all(a.get(k) == b.get(k) for k in ("git_commit", "seeds", "hardware"))

    runs = [r for r in (po.get("merged_runs") or [run(po)]) if not same(r, run(pn))] + [run(pn)]
    return {"provenance": {**pn, "seeds": seeds, "merged_runs": runs}, "rows": rows}


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``.<name>.lock`` next to ``path`` (separate jobs merging into one file take turns)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_results(step: str, rows: list[dict[str, Any]], *, mode: str | None, seeds: list[int],
                  config: dict[str, Any], path: str | os.PathLike | None = None, merge: bool | None = None,
                  key_fields: Sequence[str] = ROW_KEY_FIELDS, **extra: Any) -> Path:
    """Validate and atomically write ``<results_dir(mode)>/<step>.json``; return its path.

    ``merge=True`` (default inside :func:`merging`, i.e. the CLI's ``--merge``): merge into the existing file
    with :func:`merge_results` under a file lock, so seeds run as separate jobs end in one file. In a
    multi-process launch only the main process writes (the others return the path)."""
    from .parallel import is_main_process

    obj = validate({"provenance": provenance(mode, seeds, config, **extra), "rows": rows}, step)
    out = Path(path) if path else results_dir(mode) / f"{step}.json"
    if not is_main_process():
        return out
    if not (_MERGE_DEFAULT if merge is None else merge):
        write_json_atomic(out, obj)
        return out
    with _file_lock(out):
        if out.is_file():
            obj = validate(merge_results(load_results(out), obj, key_fields), step)
        write_json_atomic(out, obj)
    return out


def load_results(step_or_path: str | os.PathLike, mode: str = "full") -> dict[str, Any]:
    """Read and validate a result file by step name (``"teacher"``) or path."""
    p = Path(step_or_path)
    if p.suffix != ".json":
        p = results_dir(mode) / f"{step_or_path}.json"
    if not p.is_file():
        raise ResultsError(f"No result file {p}: run `python -m dixtill_lib {p.stem} --{mode}` to create it.")
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p} is not valid JSON ({exc}); rerun the step that wrote it.") from exc
    return validate(obj, str(p))


#: The teacher a result row belongs to when it does not say (every row written before the SmolLM2 teacher).
DEFAULT_TEACHER = "minilm"
#: Display names that older rows stored in their ``teacher`` field, mapped to the teacher key.
_TEACHER_ALIASES = {"all-MiniLM-L6-v2": "minilm", "SmolLM2-135M-Instruct": "smollm2"}


def row_teacher(row: dict[str, Any]) -> str:
    """The teacher key (``"minilm"``, ``"smollm2"``) of a result row; a missing field means ``"minilm"``."""
    t = row.get("teacher") or DEFAULT_TEACHER
    return _TEACHER_ALIASES.get(t, t) if isinstance(t, str) else DEFAULT_TEACHER


def teacher_results_path(step: str, teacher: str = DEFAULT_TEACHER, mode: str | None = None,
                         out: str | os.PathLike | None = None) -> Path | None:
    """Where a step run with ``--teacher`` writes: ``out`` if given; ``None`` (the step's usual file) for the
    default teacher; else ``<results_dir(mode)>/<step>_<teacher>.json``, next to the default teacher's file."""
    if out:
        return Path(out)
    if teacher == DEFAULT_TEACHER:
        return None
    return results_dir(mode) / f"{step}_{teacher}.json"
