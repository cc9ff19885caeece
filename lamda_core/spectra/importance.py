"""Data-driven importance of each adaptable matrix, for LaMDA++'s ``gradient`` allocation.

For every targeted matrix W_l of the base classifier (head freshly initialised with ``seed``,
nothing trained):

    importance_l = || sum over k batches of dL/dW_l ||_F

the size of the step full fine-tuning would first take on W_l. The batches are the first
``batches`` x ``batch_size`` rows of the training file, in file order (no shuffling), so the
scores are the same for every run on that file. In the spirit of PEFT's EVA (ranks from
activation statistics of a few batches) and of AdaLoRA's sensitivity, at the granularity of whole
matrices.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..choices import DEFAULT_POOLING, DEFAULT_SEQ_LEN

DEFAULT_IMPORTANCE_BATCHES = 8
DEFAULT_IMPORTANCE_BATCH_SIZE = 32


def gradient_importance(source, train_data: str | Path, text_column: str | None = None,
                        label_column: str | None = None, targets: list[str] | None = None,
                        batches: int = DEFAULT_IMPORTANCE_BATCHES, batch_size: int = DEFAULT_IMPORTANCE_BATCH_SIZE,
                        seq_len: int = DEFAULT_SEQ_LEN, pooling: str = DEFAULT_POOLING,
                        seed: int = 0) -> dict[str, float]:
    """{matrix name, as scan_spectra names it: ||G_l||_F} over the first ``batches`` batches of ``train_data`` (a
    classification file: the formats and column detection of training). A DataError for a bad
    file, a ModelSourceError for a bad source, as in training."""
    from ..adapter.gradient_init import estimate_gradients
    from ..data.reading import load_classification, resolve_dataset
    from ..models.loading import load_model

    train_path, _ = resolve_dataset(train_data, None)  # a demo name or a file
    data = load_classification(train_path, train_path, text_column, label_column)  # every row, in file order
    torch.manual_seed(seed)
    model, tokenizer = load_model(source, num_labels=len(data.label_names), pooling=pooling)

    def batch(index: int) -> dict:
        rows = range(index * batch_size, min((index + 1) * batch_size, len(data.train_texts)))
        encoded = tokenizer([data.train_texts[i] for i in rows], padding=True, truncation=True,
                            max_length=seq_len, return_tensors="pt")
        encoded["labels"] = torch.tensor([data.train_labels[i] for i in rows])
        return encoded

    count = min(batches, -(-len(data.train_texts) // batch_size))
    gradients = estimate_gradients(model, targets, (batch(i) for i in range(count)))
    prefix = f"{model.base_model_prefix}."  # the scan's names are the bare model's (scan_spectra)
    return {name.removeprefix(prefix): float(torch.linalg.matrix_norm(g)) for name, g in gradients.items()}
