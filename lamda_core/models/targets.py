"""Discovery of adaptable projections and resolution of target patterns.

An adaptable matrix is an ``nn.Linear`` or a GPT-2 style ``Conv1D``. Shapes are always
reported in the ``nn.Linear`` convention, ``(d_out, d_in)``, whatever the storage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import TargetError

HEAD_NAMES = ("classifier", "score", "lm_head", "pooler", "cls", "qa_outputs")

# (suffix of the module name, kind), first match wins.
_KIND_RULES = (
    ("attention.self.query", "q"), ("attention.self.key", "k"), ("attention.self.value", "v"),
    ("attention.output.dense", "o"), ("intermediate.dense", "ffn_in"), ("output.dense", "ffn_out"),
    ("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("o_proj", "o"),
    ("qkv_proj", "qkv"), ("gate_up_proj", "gate_up"),
    ("gate_proj", "gate"), ("up_proj", "up"), ("down_proj", "down"),
    ("attn.c_attn", "qkv"), ("attn.q_attn", "q"), ("attn.c_proj", "o"),
    ("mlp.c_fc", "ffn_in"), ("mlp.c_proj", "ffn_out"),
    ("q_lin", "q"), ("k_lin", "k"), ("v_lin", "v"), ("out_lin", "o"),
    ("ffn.lin1", "ffn_in"), ("ffn.lin2", "ffn_out"),
    ("query", "q"), ("key", "k"), ("value", "v"),
)
_LAYER_INDEX = re.compile(r"\.(\d+)\.")


@dataclass(frozen=True)
class MatrixInfo:
    """One adaptable projection: its module name, layer index, kind and (d_out, d_in)."""

    name: str
    layer: int | None
    kind: str
    d_out: int
    d_in: int
    module_type: str  # "Linear" or "Conv1D"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.d_out, self.d_in)

    @property
    def max_rank(self) -> int:
        return min(self.d_out, self.d_in)


def is_adaptable(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, Conv1D))


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(d_out, d_in) of a Linear or Conv1D (Conv1D stores its weight as d_in x d_out)."""
    if isinstance(module, Conv1D):
        d_in, d_out = module.weight.shape
        return d_out, d_in
    return tuple(module.weight.shape)


def weight_as_linear(module: nn.Module) -> torch.Tensor:
    """The weight in nn.Linear orientation, (d_out, d_in); a view, not a copy."""
    return module.weight.T if isinstance(module, Conv1D) else module.weight


def matrix_kind(name: str) -> str:
    """Kind of a projection from its module name: q, k, v, o, qkv, ffn_in, ffn_out, gate, up,
    down, ..., "head" for task heads and "other" when unknown."""
    if name.split(".")[0] in HEAD_NAMES or name.split(".")[-1] in HEAD_NAMES:
        return "head"
    for suffix, kind in _KIND_RULES:
        if name == suffix or name.endswith("." + suffix):
            return kind
    return "other"


def layer_index(name: str) -> int | None:
    match = _LAYER_INDEX.search("." + name + ".")
    return int(match.group(1)) if match else None


def model_family(model: nn.Module) -> str:
    """"bert", "llama" (Llama/Mistral/Qwen-like), "gpt2" or "other", from the config's model_type."""
    model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
    if model_type in {"bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta", "deberta-v2"}:
        return "bert"
    if model_type in {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo"}:
        return "llama"
    if model_type in {"gpt2", "gpt_neo", "gptj"}:
        return "gpt2"
    return "other"


def adaptable_matrices(model: nn.Module) -> list[MatrixInfo]:
    """Every Linear / Conv1D of the model, in module order."""
    found = []
    for name, module in model.named_modules():
        if is_adaptable(module):
            d_out, d_in = linear_shape(module)
            found.append(MatrixInfo(name, layer_index(name), matrix_kind(name), d_out, d_in,
                                    type(module).__name__))
    return found


def default_targets(model: nn.Module) -> list[MatrixInfo]:
    """All attention and MLP projections: every adaptable matrix inside a numbered layer that
    is not a task head."""
    chosen = [m for m in adaptable_matrices(model) if m.layer is not None and m.kind != "head"]
    if not chosen:
        raise TargetError(
            f"{type(model).__name__} has no adaptable matrices inside numbered layers; "
            "pass explicit target patterns")
    return chosen


def pattern_matches(pattern: str, name: str) -> bool:
    """A pattern matches a module name when it equals it, is a dotted suffix of it
    ("query", "attention.self.query") or is a regular expression matching it whole."""
    if name == pattern or name.endswith("." + pattern):
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def resolve_targets(model: nn.Module, patterns: list[str] | tuple[str, ...] | None) -> list[MatrixInfo]:
    """Matrices selected by patterns (None: the family defaults). A pattern that matches no
    adaptable matrix is an error that names it."""
    if patterns is None:
        return default_targets(model)
    if isinstance(patterns, str):
        patterns = [patterns]
    matrices = adaptable_matrices(model)
    unmatched = [p for p in patterns if not any(pattern_matches(p, m.name) for m in matrices)]
    if unmatched:
        examples = ", ".join(m.name for m in matrices[:4])
        raise TargetError(
            f"target pattern(s) {unmatched} match no adaptable matrix (nn.Linear or Conv1D) of "
            f"{type(model).__name__}; names look like: {examples}")
    return [m for m in matrices if any(pattern_matches(p, m.name) for p in patterns)]
