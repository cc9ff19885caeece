"""LaMDA and LaMDA++: A frozen, the r x r core S trained, B frozen gradually (adapter/layer.py);
LaMDA++ takes per-matrix ranks from the spectra (spectra/allocation.py).

Memory: each module keeps A(x) and S(A(x)) (N x r each) for backward, never the d_in-wide x
(a dropout mask on x costs one, SPEC 1)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import choices
from ..costs.memory import adapter_transients
from ..costs.parameters import lamda_matrix
from .base import Method
from .registry import register_method


@dataclass(frozen=True)
class LamdaMethod(Method):
    """LaMDA: A frozen, the r x r core S trained, B frozen gradually (adapter/layer.py)."""

    saved_folder: str = "adapter"
    display_rank: int = 2

    def apply(self, model, config, initialize=True, gradients=None):
        from ..adapter.inject import apply_lamda

        config, _ = self.with_ranks(config, model)
        self.check(config)
        return apply_lamda(model, config, initialize, gradients)

    def apply_for_checkpoint(self, model, config):
        """The checkpoint holds A, S and B: the SVD (or gradient) initialization is skipped."""
        return self.apply(model, config, initialize=False)

    def uses_task_gradients(self, config):
        return config.init == "gradient"

    def freezer(self, model, total_steps, completed_steps):
        """B's columns freeze on the schedule (PMB freezing, adapter/freezing.py)."""
        from ..adapter.freezing import PMBFreezer

        return PMBFreezer(model, total_steps, completed_steps=completed_steps)

    def save(self, model, folder, source):
        from ..adapter.persistence import export_peft, save_adapter

        save_adapter(model, folder / self.saved_folder)
        export_peft(model, folder / "peft", base_model_name_or_path=source)

    def merge_saved(self, base, folder):
        from ..adapter.persistence import load_adapter, merge_adapter

        return merge_adapter(load_adapter(base, folder / self.saved_folder))

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        return lamda_matrix(rank, d_in, d_out, total_steps, config.freeze_fraction, config.freeze_rule)

    def kept_activations(self, path):
        """A(x) and S(A(x)) per module (N x r float32 each), plus dropout masks when dropout > 0."""
        return path.per_module(lambda m, r: 2 * r) + path.dropout_masks()

    def transients(self, shape, act, dropout):
        return adapter_transients(shape, act)


# LaMDA's defaults, from benchmarks/quality.py (validation files, 3 seeds, mean pooling;
# docs/quality.md). LaMDA trains the r x r core S between frozen singular directions, B frozen
# within the first 1% of the steps (choices.DEFAULT_FREEZE_FRACTION).
#   rank: choices.DEFAULT_LAMDA_RANK (40; the reasons are there, LamdaConfig reads it too).
#   rate 3e-3 (SST-2 train split, 300 steps of batch 32, 3 seeds): 1e-3 85.9, 3e-3 86.8, 1e-2 85.7;
#     at r=32: 3e-3 85.9, 1e-2 85.7 over 5 seeds; at r=8 (cls pooling) 3e-2 collapsed to the
#     majority class. A default must never collapse, so it sits below the rates seen to.
#     Causal LM (the embedded SmolLM2 instruction-tuned on SST-2 as questions, 40 steps of batch 8, exact match
#     on 100 examples of the train file's 10% split, benchmarks/llm_quality.py): 1e-3 73.0, 3e-3 79.0: the
#     same default serves both tasks.
#   dropout 0: LaMDA's input mask would cost a d_in-wide tensor per module (SPEC 1).
#   head rate: the method's (a separate 1e-3 for LaMDA's head scored 82.9 against 83.8, within noise).
LAMDA = register_method(
    LamdaMethod(
        name="lamda",
        summary="LaMDA: A frozen, the r x r core S trained, B frozen gradually",
        default_rank=choices.DEFAULT_LAMDA_RANK,
        default_dropout=0.0,
        default_learning_rate=3e-3,
        default_head_learning_rate=None,
    )
)
LAMDA_PLUS = register_method(replace(
    LAMDA, name="lamda++", summary="LaMDA++: LaMDA with per-matrix ranks from the spectra (Rank budget page)",
    needs_rank_pattern=True))
