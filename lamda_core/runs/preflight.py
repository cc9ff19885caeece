"""Checks a run passes before its folder is created: everything that can fail without training.

The data loads (classification: every row, the columns and the classes; causal-lm: the file
holds text; instruction data: every conversation, and a tokenizer with a chat template), the
model's config loads, and the targets and every rank fit the model's matrices,
checked on the meta-device model (shapes only, no weights), as is the pooling. A failure raises the specific
LamdaError; nothing is written.
"""
from __future__ import annotations

from ..errors import ConfigError
from .config import TrainConfig


def check_run(config: TrainConfig) -> list[str]:
    """Raise on the first problem of ``config``; return notes on what was detected (e.g. a data
    file without a header line)."""
    from ..adapter.inject import resolve_ranks
    from ..data.chat import check_chat_template, check_language_model_text, is_chat_file
    from ..data.reading import load_classification, resolve_dataset
    from ..models.loading import load_config, load_tokenizer, meta_model, resolve_source
    from ..models.pooling import apply_pooling, resolve_pooling
    from ..models.targets import resolve_targets

    if config.task == "classification":
        notes = load_classification(config.train_data, config.validation_data, config.text_column,
                                    config.label_column, config.seed).notes
    else:
        check_language_model_text(config.train_data, config.validation_data)
        if is_chat_file(resolve_dataset(config.train_data, None)[0]):
            check_chat_template(load_tokenizer(resolve_source(config.source)))
        notes = []
    model = meta_model(load_config(config.source), config.task)
    if config.task == "classification":
        apply_pooling(model, resolve_pooling(config.pooling, model, resolve_source(config.source)))
    elif config.pooling == "mean":
        raise ConfigError("pooling applies to classification only; a causal-lm run reads every token")
    if config.method_spec.adapts_matrices:
        matrices = resolve_targets(model, config.adapter.targets)
        config.method_spec.check_matrices(matrices, resolve_ranks(matrices, config.adapter))
    return notes


def fitted_default_rank(method: str, source: str, task: str, targets=None) -> tuple[int | None, str | None]:
    """(rank, note) for a run that leaves the rank to ``method``'s default: None and no note
    when the default fits every targeted matrix; else the largest rank that does, min over
    matrices of min(d_out, d_in), and a note saying so (the built-in Tiny Llama's 32-wide key and
    value projections cannot take LaMDA's default 40)."""
    from ..adapter.inject import largest_rank
    from ..methods import get_method
    from ..models.loading import load_config, meta_model
    from ..models.targets import resolve_targets

    spec = get_method(method)
    if not spec.adapts_matrices:
        return None, None
    limit, narrowest = largest_rank(resolve_targets(meta_model(load_config(source), task), targets))
    if spec.default_rank <= limit:
        return None, None
    return limit, (f"{method}'s default rank {spec.default_rank} is larger than {narrowest.name} "
                   f"({narrowest.d_out} x {narrowest.d_in}) allows; this run uses rank {limit}, the largest "
                   "every adapted matrix allows")
