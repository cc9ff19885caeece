"""CostQuery: the one description of a training step whose cost is estimated or measured."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import choices
from ..adapter.config import LamdaConfig
from ..choices import check_choice
from ..errors import ConfigError
from ..methods import Method, get_method

# the adapter options a query may give instead of a whole ``adapter`` (None: the method's default)
ADAPTER_SHORTHANDS = ("rank", "rank_pattern", "dropout", "targets", "freeze_fraction", "freeze_rule")


@dataclass(frozen=True)
class CostQuery:
    """source: a transformers config or anything load_model takes; method: a registered method
    (methods/); adapter: its LamdaConfig, as a TrainConfig holds it (None: built by the method's
    adapter_config from the shorthands rank, rank_pattern, dropout, targets, freeze_fraction,
    freeze_rule, each None for the method's default; give one or the other); shape: batch_size x
    seq_len tokens in ``dtype`` on ``device`` ("cpu" or "cuda" kernels); optimizer: adamw | sgd |
    sgd-momentum; total_steps: the run's length (for the parameters averaged over B's freezing);
    pooling: a classifier's pooling (models/pooling.py). mixed_precision is estimated only.
    ``from_train_config`` asks about the run a TrainConfig describes."""

    source: object = "default"
    method: str = choices.DEFAULT_METHOD
    rank: int | None = None
    rank_pattern: dict | None = None
    batch_size: int = choices.DEFAULT_BATCH_SIZE
    seq_len: int = choices.DEFAULT_SEQ_LEN
    dtype: str = "float32"
    optimizer: str = "adamw"
    gradient_checkpointing: bool = False
    task: str = "classification"
    dropout: float | None = None
    device: str = "cpu"
    mixed_precision: bool = False
    total_steps: int = 1000
    freeze_fraction: float | None = None
    freeze_rule: str | None = None
    targets: list[str] | None = None
    seed: int = 0
    pooling: str = choices.DEFAULT_POOLING
    adapter: LamdaConfig | None = None

    def __post_init__(self):
        method = get_method(self.method)
        check_choice(self.dtype, choices.MODEL_DTYPES, "dtype")
        check_choice(self.optimizer, choices.OPTIMIZERS, "optimizer")
        check_choice(self.task, choices.TASKS, "task")
        check_choice(self.pooling, choices.POOLINGS, "pooling")
        given = [name for name in ADAPTER_SHORTHANDS if getattr(self, name) is not None]
        if self.adapter is not None and given:
            raise ConfigError(f"a CostQuery takes either adapter or {', '.join(given)}, not both")
        if self.adapter is not None:
            object.__setattr__(self, "adapter", method.with_ranks(self.adapter, self.source)[0])  # LaMDA++
            method.check(self.adapter)

    @classmethod
    def from_train_config(cls, config, **changes) -> "CostQuery":
        """The cost question of the run ``config`` (a TrainConfig) would start: its method,
        adapter, micro-batch, sequence length, dtype, task, pooling and length."""
        fields = dict(source=config.source, method=config.method, adapter=config.adapter, batch_size=config.batch_size,
                      seq_len=config.seq_len, dtype=config.dtype, task=config.task, pooling=config.pooling,
                      seed=config.seed, total_steps=config.max_steps or 1000)
        return cls(**{**fields, **changes})

    @property
    def method_spec(self) -> Method:
        return get_method(self.method)

    def adapter_config(self) -> LamdaConfig:
        if self.adapter is not None:
            return self.adapter
        options = {name: getattr(self, name) for name in ("targets", "freeze_fraction", "freeze_rule")
                   if getattr(self, name) is not None}
        config = self.method_spec.adapter_config(self.rank, self.rank_pattern, self.dropout, **options)
        return self.method_spec.with_ranks(config, self.source)[0]

    def replace(self, **changes) -> "CostQuery":
        """A copy with ``changes``; another method drops a whole adapter (it was the other
        method's), so the new method's defaults apply."""
        if "method" in changes and changes["method"] != self.method and "adapter" not in changes:
            changes["adapter"] = None
        return replace(self, **changes)
