"""Atomic writes and a verified on-disk cache. Nothing is ever half-written: every file goes to a
temporary name in the same directory and is renamed into place; every cache entry carries a
checksum that is verified on load, and a corrupt entry is rebuilt, never trusted."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .config import cache_dir


class CorruptCacheWarning(UserWarning):
    """A cache entry failed verification and is being rebuilt."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.
    Works for files and for directories (e.g. ``save_pretrained`` targets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Cannot serialise {type(obj).__name__} to JSON")


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short hex digest of JSON-able parts, identical across runs and machines."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        h.update(b"\x00")
    return h.hexdigest()[:length]


def hash_texts(texts: list[str]) -> str:
    """Fingerprint of a list of texts (order matters)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- array cache

def _entry_paths(namespace: str, key: str, root: Path | None) -> tuple[Path, Path]:
    base = (root or cache_dir()) / namespace
    return base / f"{key}.npz", base / f"{key}.sha256"


def save_arrays(namespace: str, key: str, arrays: dict[str, np.ndarray], root: Path | None = None) -> Path:
    """Store named arrays atomically, with a checksum file written after the data."""
    data, digest = _entry_paths(namespace, key, root)
    with atomic_path(data) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_text_atomic(digest, file_sha256(data) + "\n")
    return data


def load_arrays(namespace: str, key: str, root: Path | None = None) -> dict[str, np.ndarray] | None:
    """Return the cached arrays, or ``None`` when absent. A corrupt or unverifiable entry is
    deleted with a :class:`CorruptCacheWarning` and reported as absent."""
    data, digest = _entry_paths(namespace, key, root)
    if not data.exists():
        return None
    try:
        expected = digest.read_text().strip()
        if file_sha256(data) != expected:
            raise ValueError("checksum mismatch")
        with np.load(data, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any failure means: do not trust it
        warnings.warn(f"Cache entry {data} is corrupt ({exc}); deleting and recomputing.", CorruptCacheWarning)
        data.unlink(missing_ok=True)
        digest.unlink(missing_ok=True)
        return None


def cached_arrays(namespace: str, key: str, compute: Callable[[], dict[str, np.ndarray]],
                  root: Path | None = None) -> dict[str, np.ndarray]:
    """Load ``namespace/key`` from the cache or compute, store and return it."""
    hit = load_arrays(namespace, key, root)
    if hit is not None:
        return hit
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    save_arrays(namespace, key, arrays, root)
    return arrays


# ---------------------------------------------------------------- directory cache (saved models)

MANIFEST = "dixtill-manifest.json"


def write_manifest(directory: Path, extra: dict | None = None) -> None:
    """Record a checksum of every file in ``directory`` (call on the temp dir before renaming)."""
    files = {p.relative_to(directory).as_posix(): file_sha256(p)
             for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}
    (directory / MANIFEST).write_text(json.dumps({"files": files, **(extra or {})}, indent=1))


def verify_manifest(directory: Path) -> dict | None:
    """Return the manifest when every file matches it; ``None`` (with a warning, after deleting the
    directory) when the entry is corrupt; ``None`` silently when it does not exist."""
    directory = Path(directory)
    if not directory.exists():
        return None
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        for rel, digest in manifest["files"].items():
            if file_sha256(directory / rel) != digest:
                raise ValueError(f"{rel} changed")
        return manifest
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"Cached model {directory} is corrupt ({exc}); deleting and rebuilding.", CorruptCacheWarning)
        shutil.rmtree(directory, ignore_errors=True)
        return None
