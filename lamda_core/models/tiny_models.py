"""Tiny random Llama and GPT-2 models built from configs, for demos and tests of other
architectures. They reuse the MiniLM WordPiece tokenizer (vocabulary 30522), so they run
offline with no downloaded files; weights are seeded, so a rebuild is identical."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from .paths import cache_root, default_model_path

TINY_FAMILIES = ("llama", "gpt2")


def tiny_config(family: str):
    """Config of a 2-layer, hidden-64 model; Llama has GQA (4 heads, 2 K/V heads) and SwiGLU."""
    from transformers import GPT2Config, LlamaConfig

    ids = dict(bos_token_id=101, eos_token_id=102, pad_token_id=0, vocab_size=30522)
    if family == "llama":
        return LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, **ids)
    if family == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)
    raise ValueError(f"unknown tiny family {family!r}; choose one of {TINY_FAMILIES}")


def build_tiny_model(family: str, folder: str | Path) -> Path:
    """Write a seeded tiny causal LM of ``family`` and the MiniLM tokenizer into ``folder``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(family))
    folder = Path(folder)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(folder)
    return folder


def tiny_model_path(family: str) -> Path:
    """The cached folder of a tiny model, built on first use (atomically)."""
    root = cache_root()
    folder = root / f"tiny-{family}"
    if not (folder / "config.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".tiny-{family}-"))
        build_tiny_model(family, staging)
        try:
            staging.rename(folder)
        except OSError:  # built concurrently by another process
            shutil.rmtree(staging, ignore_errors=True)
    return folder
