"""How a classification model turns its token states into the one vector its classifier reads.

    cls:  the model's own head, as transformers builds it (BERT: tanh(W_p h_[CLS] + b_p))
    mean: the mean of the token states over the attention mask, sum_t m_t h_t / sum_t m_t,
          (batch, seq, hidden) -> (batch, hidden), which is the sentence embedding that
          sentence-transformers models such as all-MiniLM-L6-v2 were trained to produce
    auto: what the model says: a ``lamda_pooling`` entry in its config.json (written by our
          exports), else the mean when its sentence-transformers ``1_Pooling/config.json`` asks
          for mean tokens, else cls

Mean pooling replaces the base model's ``pooler`` module (BERT-like models), keeping the old
pooler's weights as unused submodules so that saved state dicts keep their usual keys.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..choices import POOLINGS, check_choice
from ..errors import ConfigError

CONFIG_KEY = "lamda_pooling"  # recorded in model.config, so save_pretrained folders carry it


class MeanPooler(nn.Module):
    """Masked mean of the token states; ``mask`` (batch, seq) is set by a pre-hook on the model."""

    def __init__(self, replaced: nn.Module):
        super().__init__()
        for name, child in replaced.named_children():  # unused; kept for the state dict's keys
            self.add_module(name, child)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.mask: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (batch, seq, d) -> (batch, d)."""
        if self.mask is None:
            return hidden.mean(dim=1)
        mask = self.mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def sentence_transformers_pooling(folder: Path | None) -> str | None:
    """"mean" or "cls" from a sentence-transformers 1_Pooling/config.json in ``folder``; None if absent."""
    path = folder / "1_Pooling" / "config.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    settings = json.loads(path.read_text())
    if settings.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if settings.get("pooling_mode_cls_token") else None


def hub_cache_folder(source: str) -> Path | None:
    """The local snapshot folder of a hub id whose 1_Pooling/config.json is cached, else None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(source, "1_Pooling/config.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(path).parent.parent if isinstance(path, str) else None


def resolve_pooling(requested: str, model: nn.Module, source: str | None) -> str:
    """The pooling ("cls" or "mean") a requested one ("auto", "cls", "mean") means for the model
    loaded from ``source`` (a folder or a hub id; None: only the model's config decides)."""
    check_choice(requested, POOLINGS, "pooling")
    if requested != "auto":
        return requested
    folder = None if source is None else Path(source) if Path(source).is_dir() else hub_cache_folder(source)
    return getattr(model.config, CONFIG_KEY, None) or sentence_transformers_pooling(folder) or "cls"


def mean_pooled(folder: str | Path) -> bool:
    """Whether the saved model in ``folder`` records mean pooling in its config.json."""
    config = Path(folder) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get(CONFIG_KEY) == "mean"


def _pooler_owner(model: nn.Module) -> nn.Module | None:
    """The base model holding a ``pooler`` module (BertModel inside BertForSequenceClassification)."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    return base if base is not None and isinstance(getattr(base, "pooler", None), nn.Module) else None


def unused_pooler_parameters(model: nn.Module, pooling: str) -> int:
    """Parameters of BERT's pooler that mean pooling leaves unused (no gradient, no optimizer state)."""
    owner = _pooler_owner(model) if pooling == "mean" else None
    return sum(p.numel() for p in owner.pooler.parameters()) if owner is not None else 0


def apply_pooling(model: nn.Module, pooling: str) -> nn.Module:
    """Set the model's pooling ("cls" leaves it as loaded) and record it in model.config."""
    if pooling == "mean":
        owner = _pooler_owner(model)
        if owner is None:
            raise ConfigError(f"mean pooling needs a BERT-like model with a pooler module; "
                              f"{type(model).__name__} has none (use pooling 'cls')")
        pooler = MeanPooler(owner.pooler)
        owner.pooler = pooler

        def keep_mask(module, args, kwargs):
            mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
            pooler.mask = mask
        model.register_forward_pre_hook(keep_mask, with_kwargs=True)
    setattr(model.config, CONFIG_KEY, pooling)
    return model
