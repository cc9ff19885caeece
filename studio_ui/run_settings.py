"""The run the Fine-tune form describes, in one place: its widgets keep their values across pages
(state.kept), their defaults are read from TrainConfig and the method registry, and
``draft_config`` turns them into the TrainConfig that Start would create. The Costs page estimates
``CostQuery.from_train_config(draft_config(...))``, so both pages describe the same run."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lamda_core import LamdaError, choices
from lamda_core.adapter.config import LamdaConfig
from lamda_core.methods import get_method
from lamda_core.runs.config import TrainConfig, run_intervals
from lamda_core.runs.preflight import fitted_default_rank

# widget key -> default; 0 for rank and rate means "the method's default"
RUN_DEFAULTS = {
    "run_method": TrainConfig.method, "run_rank": 0, "run_steps": choices.DEFAULT_STEPS,
    "run_batch": TrainConfig.batch_size, "run_seq": TrainConfig.seq_len, "run_lr": 0.0,
    "run_init": LamdaConfig.init, "run_freeze": LamdaConfig.freeze_fraction, "run_pooling": TrainConfig.pooling,
}


@dataclass
class RunData:
    """The data a run trains on: files (or a demo name) and the columns chosen."""

    train: str
    validation: str | None = None
    text_column: str | None = None
    label_column: str | None = None


def setting(key: str):
    """A run setting's current value (as kept across pages), else its default."""
    return st.session_state.get(f"keep_{key}", RUN_DEFAULTS[key])


@st.cache_data(show_spinner=False, max_entries=32)
def fitted_rank(method: str, source: str, task: str) -> tuple[int | None, str | None]:
    """(rank, note) when ``method``'s default rank does not fit ``source`` (preflight.fitted_default_rank),
    else (None, None); (None, None) too when the model cannot be read (Start then says why)."""
    if not source:
        return None, None
    try:
        return fitted_default_rank(method, source, task)
    except (LamdaError, OSError, ValueError):
        return None, None


def draft_config(source: str, task: str, dtype: str, method: str, data: RunData,
                 rank_pattern: dict | None = None) -> TrainConfig:
    """The TrainConfig Start creates for ``method`` from the kept settings: the method's own
    defaults where the form says 0 (rank, rate), ``rank_pattern`` for a method that needs one
    (without one, LaMDA++ allocates from the spectra at its rank: TrainConfig)."""
    spec = get_method(method)
    steps = int(setting("run_steps"))
    given_ranks = spec.needs_rank_pattern and rank_pattern
    rank = int(setting("run_rank")) or (None if given_ranks else fitted_rank(method, source, task)[0])
    adapter = spec.adapter_config(rank,
                                  rank_pattern if spec.needs_rank_pattern else None,
                                  init=setting("run_init"), freeze_fraction=float(setting("run_freeze")))
    return TrainConfig(source=source, task=task, train_data=data.train, validation_data=data.validation,
                       text_column=data.text_column, label_column=data.label_column, method=method, adapter=adapter,
                       learning_rate=float(setting("run_lr")) or None, max_steps=steps,
                       batch_size=int(setting("run_batch")), seq_len=int(setting("run_seq")), dtype=dtype,
                       pooling=setting("run_pooling") if task == "classification" else choices.DEFAULT_POOLING,
                       **run_intervals(steps))


def default_data(task: str) -> RunData:
    return RunData("demo-corpus" if task == "causal-lm" else "demo-sentiment")
