"""LamdaConfig: every option of a LaMDA / LaMDA++ adapter, validated on construction."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .. import choices
from ..choices import ADAPTER_DTYPES, FREEZE_RULES, INIT_VARIANTS, check_choice
from ..errors import ConfigError


@dataclass
class LamdaConfig:
    """Options of a LaMDA adapter.

    rank: r of every adapted matrix unless ``rank_pattern`` names it (default: LaMDA's, choices); a
        run's adapter is built by its method's ``adapter_config`` (methods/), which fills the
        method's own defaults.
    alpha: scale s = alpha / r (per matrix, with its own r); None = DEFAULT_SCALE x rank (s = 2).
    dropout: on the adapter input; 0 by default since a mask costs a d_in-wide tensor per module.
    targets: module name patterns (exact, dotted suffix or full regex); None = family defaults.
    rank_pattern: {pattern: rank} overrides, e.g. from LaMDA++ allocation.
    init: "svd" | "gradient" | "svd-residual" | "random" (SPEC section 1; "gradient": A, B from
        the task gradient's top-r singular vectors, adapter/gradient_init.py).
    freeze_fraction: eta; B is fully frozen after t_i = ceil(eta * T) optimizer steps (0: before
        the first step, B never trains).
    freeze_rule: "linear" (default), "grad-mask-stepwise" (the authors' code) or "never" (B trains
        to the end).
    trainable_modules: modules trained in full next to the adapter (task heads); None = the
        model's classification head if it has one.
    adapter_dtype: dtype of A, S, B. float32 by default whatever the base dtype: the adapter is
        tiny, and fp32 keeps small updates to S from rounding away under bf16 and out of fp16
        overflow; inputs are cast to it and the update cast back to the base output dtype.
    """

    rank: int = choices.DEFAULT_LAMDA_RANK
    alpha: float | None = None
    dropout: float = 0.0
    targets: list[str] | None = None
    rank_pattern: dict[str, int] = field(default_factory=dict)
    init: str = choices.DEFAULT_INIT
    freeze_fraction: float = choices.DEFAULT_FREEZE_FRACTION
    freeze_rule: str = choices.DEFAULT_FREEZE_RULE
    trainable_modules: list[str] | None = None
    adapter_dtype: str = "float32"

    def __post_init__(self):
        if int(self.rank) != self.rank or self.rank < 1:
            raise ConfigError(f"rank must be a positive integer, got {self.rank!r}")
        if self.alpha is None:
            self.alpha = choices.DEFAULT_SCALE * self.rank
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        check_choice(self.init, INIT_VARIANTS, "init")
        check_choice(self.freeze_rule, FREEZE_RULES, "freeze_rule")
        if not 0.0 <= self.freeze_fraction <= 1.0:
            raise ConfigError(f"freeze_fraction must be in [0, 1] (0: B frozen from the start), "
                              f"got {self.freeze_fraction!r}")
        check_choice(self.adapter_dtype, ADAPTER_DTYPES, "adapter_dtype")
        for pattern, r in self.rank_pattern.items():
            if int(r) != r or r < 1:
                raise ConfigError(f"rank_pattern[{pattern!r}] must be a positive integer, got {r!r}")
        if isinstance(self.targets, str):
            self.targets = [self.targets]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LamdaConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
