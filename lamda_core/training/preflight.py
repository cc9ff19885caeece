"""Checks a run passes before its folder is created: everything that can fail without training.

The data loads (classification: every row, the columns and the classes; causal-lm: the file
holds text), the model's config loads, and the targets and every rank fit the model's matrices,
checked on the meta-device model (shapes only, no weights). A failure raises the specific
LamdaError; nothing is written.
"""
from __future__ import annotations

from .config import TrainConfig


def check_run(config: TrainConfig) -> list[str]:
    """Raise on the first problem of ``config``; return notes on what was detected (e.g. a data
    file without a header line)."""
    from ..adapter.inject import resolve_ranks
    from ..models.loading import load_config, meta_model
    from ..models.targets import resolve_targets
    from .data import check_language_model_text, load_classification

    if config.task == "classification":
        notes = load_classification(config.train_data, config.validation_data, config.text_column,
                                    config.label_column, config.seed).notes
    else:
        check_language_model_text(config.train_data, config.validation_data)
        notes = []
    model = meta_model(load_config(config.source), config.task)
    if config.method != "full":
        resolve_ranks(resolve_targets(model, config.adapter.targets), config.adapter)
    return notes
