"""Helpers for the multi-process tests: start a command on 1 process or on N gloo processes with
``accelerate launch --multi_gpu`` (torch elastic), and a saved tiny teacher."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), DIXTILL_CACHE=str(cache), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def free_port() -> int:
    """A TCP port nobody listens on now (each launch gets its own rendezvous port)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(n: int, args: list[str], cache: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    if n == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *args]
    return subprocess.run(cmd, cwd=REPO, env=_env(cache), capture_output=True, text=True, timeout=timeout)


def save_tiny_teacher(tmp_path_factory, data_dir) -> Path:
    """A tiny random BERT teacher (tokenizer from 200 quick-mode tweets) saved with ``Teacher.save``."""
    from dixtill_lib.data import mode_splits
    from dixtill_lib.tiny import tiny_teacher

    train, _ = mode_splits("quick", data_dir_=str(data_dir))
    where = tmp_path_factory.mktemp("teacher") / "tiny"
    tiny_teacher(train.texts[:200]).save(where)
    return where
