"""A model's summary card: parameter count, layers, hidden size, adaptable matrices by kind."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from torch import nn

from .targets import default_targets, model_family


@dataclass(frozen=True)
class ModelSummary:
    architecture: str
    family: str
    parameters: int
    layers: int | None
    hidden_size: int | None
    dtype: str
    targets_by_kind: dict[str, int]

    @property
    def target_count(self) -> int:
        return sum(self.targets_by_kind.values())


def summarize_model(model: nn.Module) -> ModelSummary:
    config = model.config
    return ModelSummary(
        architecture=type(model).__name__,
        family=model_family(model),
        parameters=sum(p.numel() for p in model.parameters()),
        layers=getattr(config, "num_hidden_layers", None),
        hidden_size=getattr(config, "hidden_size", None),
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        targets_by_kind=dict(sorted(Counter(m.kind for m in default_targets(model)).items())),
    )
