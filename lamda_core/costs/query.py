"""CostQuery: the one description of a training step whose cost is estimated or measured."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import choices
from ..adapter.config import LamdaConfig
from ..choices import check_choice


@dataclass(frozen=True)
class CostQuery:
    """source: a transformers config or anything load_model takes; method: one of METHODS, at
    ``rank`` (None: the method's default; ``rank_pattern`` per matrix for lamda++); shape:
    batch_size x seq_len tokens in ``dtype`` on ``device`` ("cpu" or "cuda" kernels); optimizer: adamw | sgd | sgd-momentum;
    schedule: B frozen after freeze_fraction * total_steps by ``freeze_rule`` (for the averaged
    parameter count); pooling: a classifier's pooling (models/pooling.py). mixed_precision is
    estimated only."""

    source: object = "default"
    method: str = choices.DEFAULT_METHOD
    rank: int | None = None
    rank_pattern: dict | None = None
    batch_size: int = 8
    seq_len: int = 128
    dtype: str = "float32"
    optimizer: str = "adamw"
    gradient_checkpointing: bool = False
    task: str = "classification"
    dropout: float | None = None
    device: str = "cpu"
    mixed_precision: bool = False
    total_steps: int = 1000
    freeze_fraction: float = choices.DEFAULT_FREEZE_FRACTION
    freeze_rule: str = choices.DEFAULT_FREEZE_RULE
    targets: list[str] | None = None
    seed: int = 0
    pooling: str = choices.DEFAULT_POOLING

    def __post_init__(self):
        check_choice(self.method, choices.METHODS, "method")
        check_choice(self.dtype, choices.MODEL_DTYPES, "dtype")
        check_choice(self.optimizer, choices.OPTIMIZERS, "optimizer")
        check_choice(self.task, choices.TASKS, "task")
        check_choice(self.freeze_rule, choices.FREEZE_RULES, "freeze_rule")
        check_choice(self.pooling, choices.POOLINGS, "pooling")

    def adapter_config(self) -> LamdaConfig:
        return LamdaConfig.for_method(self.method, self.rank, self.rank_pattern, self.dropout or 0.0, self.targets,
                                      freeze_fraction=self.freeze_fraction, freeze_rule=self.freeze_rule)

    def replace(self, **changes) -> "CostQuery":
        return replace(self, **changes)
