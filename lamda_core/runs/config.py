"""TrainConfig: everything a run needs, validated on construction; it holds the adapter's LamdaConfig
(per-matrix ranks inline) and is stored whole as the run folder's run_config.json."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from .. import choices
from ..adapter.config import LamdaConfig
from ..choices import check_choice
from ..errors import ConfigError
from ..methods import Method, get_method


@dataclass
class TrainConfig:
    """source: a model load_model takes; train_data / validation_data: files or a demo name
    (no validation file: 10% of the data, seeded); adapter: None = the method's adapter_config()
    (its default rank and dropout, methods/); learning_rate / head_learning_rate: None = the
    method's default (choices);
    core_learning_rate: rate of LaMDA's r x r core S (None = learning_rate, which B then uses);
    max_steps: None = ``epochs`` (default 3) over the data; group_by_length: classification
    micro-batches of similar lengths (less padding); pooling: how a classifier reads the token
    states (choices.POOLINGS, models/pooling.py); comparison: the name of the comparison the run
    belongs to (compare.py), None for a lone run."""

    source: str = "default"
    task: str = "classification"
    train_data: str = "demo-sentiment"
    validation_data: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    method: str = choices.DEFAULT_METHOD
    adapter: LamdaConfig | None = None
    learning_rate: float | None = None
    head_learning_rate: float | None = None
    core_learning_rate: float | None = None
    lr_schedule: str = choices.DEFAULT_LR_SCHEDULE
    warmup_fraction: float = 0.06
    weight_decay: float = 0.0
    batch_size: int = choices.DEFAULT_BATCH_SIZE
    grad_accumulation: int = 1
    max_steps: int | None = None
    epochs: float | None = None
    eval_interval: int = 25
    checkpoint_interval: int = 25
    seq_len: int = choices.DEFAULT_SEQ_LEN
    group_by_length: bool = True
    max_grad_norm: float = 1.0
    dtype: str = "float32"
    seed: int = 0
    pooling: str = choices.DEFAULT_POOLING
    comparison: str | None = None
    created: float = field(default_factory=time.time)

    def __post_init__(self):
        check_choice(self.task, choices.TRAIN_TASKS, "task")
        method = get_method(self.method)
        check_choice(self.lr_schedule, choices.LR_SCHEDULES, "lr_schedule")
        check_choice(self.dtype, choices.MODEL_DTYPES, "dtype")
        check_choice(self.pooling, choices.POOLINGS, "pooling")
        if isinstance(self.adapter, dict):
            self.adapter = LamdaConfig.from_dict(self.adapter)
        if self.adapter is None:
            self.adapter = method.adapter_config()
        if method.needs_rank_pattern and not self.adapter.rank_pattern:  # LaMDA++ without ranks: from the spectra
            self.adapter, _ = method.with_ranks(self.adapter, self.source)
        method.check(self.adapter)
        for name in ("batch_size", "grad_accumulation", "eval_interval", "checkpoint_interval", "seq_len"):
            _positive_int(name, getattr(self, name))
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        for name in ("learning_rate", "head_learning_rate", "core_learning_rate", "epochs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("weight_decay and max_grad_norm must not be negative")

    @property
    def method_spec(self) -> Method:
        """The method's registry entry (methods/)."""
        return get_method(self.method)

    def rates(self) -> tuple[float, float, float]:
        """(rate of the adapter, or of the body in full fine-tuning; rate of LaMDA's core S; rate
        of the task head), with the method's defaults filled in."""
        return self.method_spec.rates(self.learning_rate, self.core_learning_rate, self.head_learning_rate)

    @property
    def rank_label(self) -> str:
        """The rank as a person reads it: a number, "per matrix", or "-" for full fine-tuning."""
        if not self.method_spec.adapts_matrices:
            return "-"
        return "per matrix" if self.adapter.rank_pattern else str(self.adapter.rank)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        data = json.loads(text)
        data.setdefault("pooling", "cls")  # runs configured before pooling existed used the model's own head
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def run_intervals(steps: int) -> dict:
    """Evaluation and checkpoint cadence of a short run of ``steps`` optimizer steps: about 6
    evaluations and 3 checkpoints (the app's runs; the CLI keeps TrainConfig's every 25 steps)."""
    return {"eval_interval": max(1, steps // 6), "checkpoint_interval": max(1, steps // 3)}


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
