"""PeftMethod: the part every method applied and saved by PEFT shares (lora.py, peft_family.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import Method


@dataclass(frozen=True)
class PeftMethod(Method):
    """A method that PEFT applies and saves as a PEFT adapter (``peft_config``); the task head
    trains as PEFT's modules_to_save copy, and a comparison matches its rank to LaMDA's budget."""

    saved_folder: str = "peft"
    copies_head: bool = True
    rank_matched: bool = True

    def peft_config(self, config, ranks: dict[str, int], heads: list[str], conv1d: bool):
        raise NotImplementedError

    def apply(self, model, config, initialize=True, gradients=None):
        from peft import get_peft_model
        from transformers.pytorch_utils import Conv1D

        from ..adapter.inject import head_module_names, resolve_ranks
        from ..models.targets import resolve_targets

        matrices = resolve_targets(model, config.targets)
        ranks = resolve_ranks(matrices, config)
        self.check_matrices(matrices, ranks)
        heads = head_module_names(model, config.trainable_modules)
        conv1d = any(m.module_type == Conv1D.__name__ for m in matrices)
        return get_peft_model(model, self.peft_config(config, ranks, heads, conv1d))

    def merge_saved(self, base, folder):
        from peft import PeftModel

        return PeftModel.from_pretrained(base, str(folder / self.saved_folder)).merge_and_unload()
