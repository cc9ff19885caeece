"""PEFT LoRA and its two variants that keep LoRA's A and B: DoRA (a trained magnitude per output
row) and PiSSA (A and B started from W's principal singular triplets).

Parameters per adapted d_out x d_in matrix at rank r: LoRA and PiSSA r (d_in + d_out), DoRA
r (d_in + d_out) + d_out. Memory: each module keeps A(x) (N x r) and its input x: once per
distinct input when dropout is 0 and x needs no cast, else a dropped (or cast) copy per module
beside a dropout mask. DoRA keeps LoRA's plus the base output and B A x (N x d_out each)."""
from __future__ import annotations

from dataclasses import dataclass

from ..costs.memory import ADAPTER_BYTES, adapter_transients
from ..costs.parameters import MatrixParameters, lora_parameters
from .peft import PeftMethod
from .registry import register_method


def lora_kept(path) -> float:
    """Bytes LoRA's path keeps for backward (path: costs.memory.AdapterPath)."""
    kept = path.per_module(lambda m, r: r) + path.dropout_masks()  # A(x), kept for lora_B
    if path.dropout > 0 or path.act != ADAPTER_BYTES:  # a dropped (or float32) copy of x per module
        return kept + path.per_module(lambda m, r: m.d_in)
    return kept + path.distinct_inputs()


@dataclass(frozen=True)
class LoraMethod(PeftMethod):
    """PEFT LoRA with the run's targets, ranks, alpha, dropout and head."""

    def peft_config(self, config, ranks, heads, conv1d):
        from ..adapter.inject import lora_config

        return lora_config(config, ranks, heads, conv1d)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        count = lora_parameters(rank, d_in, d_out)
        return MatrixParameters(frozen=0, start=count, end=count, average=float(count))

    def kept_activations(self, path):
        return lora_kept(path)

    def transients(self, shape, act, dropout):
        """Measured (costs/peak.py, BERT-like classifiers, per token of h hidden and i MLP width):
        without dropout 2h forward and i + 3h backward; with dropout the MLP-wide update beside
        the base output, 2i + h/2, and i backward; a half-precision base adds the float32 update
        (and 1.5h more with dropout)."""
        n, h, i = shape.tokens, shape.hidden, shape.intermediate
        if act < 4:
            forward = (2 * i + h / 2 + (1.5 * h if dropout > 0 else 0)) * n * ADAPTER_BYTES
            return forward, (2 * i + 3 * h) * n * act
        if dropout > 0:
            return (2 * i + h / 2) * n * act, i * n * act
        return 2 * h * n * act, (i + 3 * h) * n * act


@dataclass(frozen=True)
class DoraMethod(LoraMethod):
    """PEFT DoRA (use_dora): W' = m * (W + s B A) / ||W + s B A||_row, LoRA's A and B plus a
    trained magnitude m per output row (d_out)."""

    def peft_config(self, config, ranks, heads, conv1d):
        from ..adapter.inject import lora_config

        return lora_config(config, ranks, heads, conv1d, use_dora=True)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        count = lora_parameters(rank, d_in, d_out) + d_out
        return MatrixParameters(frozen=0, start=count, end=count, average=float(count))

    def kept_activations(self, path):
        """LoRA's, plus the base output and B A x (N x d_out each) for the magnitude's gradient."""
        return lora_kept(path) + path.per_module(lambda m, r: 2 * m.d_out)

    def transients(self, shape, act, dropout):
        return adapter_transients(shape, act)

    def weight_transient(self, matrices):
        """PEFT's DoraLinearLayer builds B A by pushing a d_in x d_in identity through A and B,
        then W + s B A and its copy of s B A (d_out x d_in each) give the row norms: bytes of the
        widest module, in every forward."""
        return max((m.d_in * m.d_in + 3 * m.d_in * m.d_out) * ADAPTER_BYTES for m in matrices)


@dataclass(frozen=True)
class PissaMethod(LoraMethod):
    """PEFT PiSSA (init_lora_weights="pissa", a full SVD): LoRA whose B A starts as W's top-r
    singular triplets (sqrt(sigma) on each side) while W is replaced by the residual. A run saves
    it converted to a plain LoRA of rank 2r for the original W (PEFT's
    path_initial_model_for_weight_conversion), so it loads and merges like LoRA."""

    def peft_config(self, config, ranks, heads, conv1d):
        from ..adapter.inject import lora_config

        return lora_config(config, ranks, heads, conv1d, init_lora_weights="pissa")

    def apply(self, model, config, initialize=True, gradients=None):
        import shutil
        import tempfile
        import weakref

        model = super().apply(model, config, initialize, gradients)
        initial = tempfile.mkdtemp(prefix="lamda-pissa-initial-")  # the adapter before training
        model.save_pretrained(initial)
        model.lamda_initial_adapter = initial
        weakref.finalize(model, shutil.rmtree, initial, True)
        return model

    def save(self, model, folder, source):
        """PEFT's conversion keeps only the LoRA tensors; the trained head (modules_to_save) is
        added back to the converted file from the adapter's own state dict."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import load_file, save_file

        target = folder / self.saved_folder
        model.save_pretrained(str(target), path_initial_model_for_weight_conversion=model.lamda_initial_adapter)
        weights = target / "adapter_model.safetensors"
        converted = load_file(str(weights))
        heads = {k: v.contiguous() for k, v in get_peft_model_state_dict(model).items()
                 if "lora_" not in k and k not in converted}
        save_file({**converted, **heads}, str(weights), metadata={"format": "pt"})


# LoRA: rank 8, alpha 16 (scale 2; alpha 64 at r=8 scored lower, docs/quality.md, factor table), dropout 0.05
# (PEFT's usual). Rate (SST-2 train split, 1 seed each): 3e-4 84.1, 1e-3 84.8, 3e-3 85.2 (cls
# pooling), 84.5 / 85.7 / 86.4 (mean pooling); but 2e-3 (the old default) collapsed to the majority
# class on SST-2 in users' runs and in tests/test_quality.py -> 1e-3, below it (SST-2 validation,
# 3 seeds: 3e-3 89.1, 1e-3 89.5). On SmolLM2 (benchmarks/llm_quality.py, as for LaMDA): 3e-4 76.0,
# 1e-3 80.0 exact match: 1e-3 serves causal LMs too.
LORA = register_method(LoraMethod(
    name="lora", summary="PEFT LoRA: A and B trained",
    default_rank=8, default_dropout=0.05, default_learning_rate=1e-3, default_head_learning_rate=None))
# DoRA and PiSSA rates: the best mean of benchmarks/quality.py's split sweeps (SWEEPS: 10% of each
# train file, SST-2 300 steps / AG News 150, seed 0, mean pooling; docs/peft_family.md), accuracy %
# per rate, SST-2 / AG News -> mean:
#   DoRA  3e-4 84.5/88.8 -> 86.6, 1e-3 85.5/89.4 -> 87.5, 3e-3 85.5/89.4 -> 87.5
#         -> 1e-3 (a tie: the lower, LoRA's rate, further from collapse)
#   PiSSA 1e-4 82.8/85.4, 3e-4 85.4/89.1, 1e-3 86.9/89.0 -> 88.0, 3e-3 55.4 (collapsed to the
#         majority class)/87.9 -> 1e-3
# At these defaults, 3 seeds on both validation files: docs/peft_family.md, "Results".
# DoRA: LoRA's rank, alpha and dropout (it is LoRA plus a magnitude vector).
DORA = register_method(DoraMethod(
    name="dora", summary="PEFT DoRA: LoRA's A and B plus a trained magnitude per output row",
    default_rank=8, default_dropout=0.05, default_learning_rate=1e-3, default_head_learning_rate=None))
# PiSSA: LoRA's rank; no dropout (its path starts as W's principal part, which dropout would perturb).
PISSA = register_method(PissaMethod(
    name="pissa", summary="PEFT PiSSA: LoRA started from W's top-r singular triplets, W replaced by the residual",
    default_rank=8, default_dropout=0.0, default_learning_rate=1e-3, default_head_learning_rate=None))
