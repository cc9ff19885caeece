"""Full fine-tuning: every weight trains and the whole model is saved; the unmatched reference
of comparisons. Memory: no adapter path; the base keeps every Linear layer's input for its
weight gradient (costs/memory.py, ``full``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import Method
from .registry import register_method


@dataclass(frozen=True)
class FullMethod(Method):
    """Full fine-tuning: every weight trains; the whole model is saved."""

    saved_folder: str = "model"
    adapts_matrices: bool = False
    trains_all_weights: bool = True
    display_rank: int = 0

    def apply(self, model, config, initialize=True, gradients=None):
        return model.requires_grad_(True)

    def save(self, model, folder, source):
        """The whole model, with the base's tokenizer beside it (a self-contained folder)."""
        from ..models.loading import load_tokenizer, resolve_source

        super().save(model, folder, source)
        tokenizer = load_tokenizer(resolve_source(source))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder / self.saved_folder))

    def load(self, folder, source, task, **load_options):
        """The saved model; the tokenizer is the base's (runs saved before the tokenizer was
        written beside the model have none there)."""
        from ..models.loading import load_model, load_tokenizer, resolve_source

        model, tokenizer = load_model(str(folder / self.saved_folder), task=task, **load_options)
        return model, tokenizer or load_tokenizer(resolve_source(source))

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        raise ConfigError("full fine-tuning adapts no matrices")

    def kept_activations(self, path):
        return 0

    def transients(self, shape, act, dropout):
        """The last block's widest temporaries, per token: h forward, i backward (measured, costs/peak.py)."""
        return shape.tokens * shape.hidden * act, shape.tokens * shape.intermediate * act


# Full fine-tuning: 3e-5 86.1, 1e-4 88.0, 3e-4 88.9 (1 seed) -> 1e-4 kept, the usual BERT rate (SST-2
# validation, 3 seeds: 3e-4 90.2, 1e-4 90.7). Its rank is nominal (no matrix is adapted).
FULL = register_method(FullMethod(
    name="full", summary="full fine-tuning: every weight trains",
    default_rank=8, default_dropout=0.0, default_learning_rate=1e-4, default_head_learning_rate=None))
