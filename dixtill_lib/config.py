"""Where things live and which mode we run in: one place for paths and the quick/full switch."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Mode = Literal["quick", "full"]
MODES: tuple[str, ...] = ("quick", "full")

#: The DiXtill authors' seed (python, numpy, TF and PYTHONHASHSEED all used 29).
DEFAULT_SEED = 29

REPO_ROOT = Path(__file__).resolve().parent.parent


def get_mode(mode: str | None = None) -> Mode:
    """Return the run mode: the argument, else ``$DIXTILL_MODE``, else ``"quick"``."""
    value = (mode or os.environ.get("DIXTILL_MODE") or "quick").strip().lower()
    if value not in MODES:
        raise ValueError(f"Unknown mode {value!r}: set DIXTILL_MODE (or --quick/--full) to one of {MODES}.")
    return value  # type: ignore[return-value]


def cache_dir() -> Path:
    """On-disk cache for models, logits and attributions: ``$DIXTILL_CACHE`` or ``~/.cache/dixtill``."""
    env = os.environ.get("DIXTILL_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        path = base / "dixtill"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(mode: str | None = None) -> Path:
    """Where result JSON files go. Full runs write the committed ``results/``; quick runs write
    ``results/quick/`` (git-ignored) so a quick number can never replace a full-scale one."""
    env = os.environ.get("DIXTILL_RESULTS")
    base = Path(env) if env else REPO_ROOT / "results"
    path = base if get_mode(mode) == "full" else base / "quick"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_device(device: str | None = None) -> str:
    """``cpu`` unless asked otherwise; ``auto`` picks CUDA when present."""
    import torch

    device = device or os.environ.get("DIXTILL_DEVICE") or "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} was requested but no CUDA GPU is visible; use --device cpu.")
    return device


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) the same way everywhere."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
