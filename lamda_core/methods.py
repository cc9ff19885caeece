"""The method registry: one entry per fine-tuning method, looked up by name everywhere else.

An entry knows
- its defaults (rank, scale, dropout, learning rates; the benchmark that chose each is cited next
  to it) and builds a run's adapter config from them (``adapter_config``: the one place a method's
  defaults are applied);
- how it goes onto a model (``apply``), what a finished run saves and where (``save``,
  ``saved_folder``), and how a saved run comes back for inference (``load``);
- its trainable parameters per adapted matrix (``matrix_parameters``) and its terms in the memory
  model (``memory``: which activations its path keeps, costs/estimate.py).
What differs between methods is a property of the entry: ``adapts_matrices``,
``needs_rank_pattern``, ``freezes_b``. ``get_method`` raises a ConfigError naming the known
methods for any other name; a new method is one ``register_method`` call (PEFT's
``register_peft_method`` is the model).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from . import choices
from .adapter.config import LamdaConfig
from .errors import ConfigError


class MemoryModel(enum.Enum):
    """Which terms of the memory model (costs/estimate.py) a method's training step has."""

    FULL = "every weight trains: gradients and optimizer state for all, no adapter path"
    LORA = "PEFT LoRA: each module keeps x (a dropped copy when dropout > 0) and A(x); a head copy"
    LAMDA = "LaMDA: A(x) and S(A(x)) kept per module (r wide), never the d_in-wide x"
    DORA = "PEFT DoRA: LoRA's terms, plus the base output and B A x (d_out wide) for the magnitude's gradient"
    VERA = "PEFT VeRA: A x (r wide) and B diag(lambda_d) A x (d_out wide) per module, never x (A, B frozen)"
    PSOFT = "PEFT PSOFT: x A^T (r wide) per module, never x (A, B frozen)"


@dataclass(frozen=True)
class Method:
    """A fine-tuning method. Subclasses implement apply / save / load / matrix_parameters."""

    name: str
    summary: str
    default_rank: int
    default_dropout: float
    default_learning_rate: float
    default_head_learning_rate: float | None  # None: the method's rate
    memory: MemoryModel
    saved_folder: str  # inside a run folder: "adapter", "peft" or "model" (RunFolder.saved)
    adapts_matrices: bool = True
    needs_rank_pattern: bool = False
    freezes_b: bool = False

    # ---- defaults -------------------------------------------------------------------------
    def adapter_config(self, rank: int | None = None, rank_pattern: dict | None = None, dropout: float | None = None,
                       alpha: float | None = None, **options) -> LamdaConfig:
        """The adapter config of a run of this method: the method's default rank and dropout where
        None, alpha = DEFAULT_SCALE x rank where None (LamdaConfig). LaMDA++ without a
        rank_pattern gets its ranks from the model's spectra where the model is known
        (with_ranks: TrainConfig, CostQuery, apply)."""
        return LamdaConfig(rank=rank or self.default_rank, rank_pattern=dict(rank_pattern or {}), alpha=alpha,
                           dropout=self.default_dropout if dropout is None else dropout, **options)

    def with_ranks(self, config: LamdaConfig, source) -> tuple[LamdaConfig, str | None]:
        """(config, note): a method that needs per-matrix ranks and was given none gets them from
        the spectra of ``source`` (a model or a source name) at its rank, said in the note;
        any other config comes back as it is, without a note."""
        if not self.needs_rank_pattern or config.rank_pattern:
            return config, None
        from dataclasses import replace

        from .spectra.allocation import spectral_rank_pattern

        pattern = spectral_rank_pattern(source, config.rank, config.targets)
        note = (f"{self.name}: no per-matrix ranks given, so they were allocated from the spectra at LaMDA's total "
                f"rank {config.rank} x {len(pattern)} = {sum(pattern.values())} (ranks {min(pattern.values())} to "
                f"{max(pattern.values())}; `lamda allocate` or the Rank budget page choose others)")
        return replace(config, rank_pattern=pattern), note

    def check(self, config: LamdaConfig) -> None:
        """A ConfigError if ``config`` cannot describe a run of this method."""
        if self.needs_rank_pattern and not config.rank_pattern:
            raise ConfigError(f"{self.name} needs per-matrix ranks: adapter.rank_pattern (from allocate_ranks)")

    def check_matrices(self, matrices: list, ranks: dict[str, int]) -> None:
        """A ConfigError if this method cannot adapt ``matrices`` (MatrixInfo) at ``ranks``; the
        run's preflight, the cost estimate and apply call it."""

    def rates(self, learning_rate: float | None, core_rate: float | None, head_rate: float | None):
        """(adapter or body rate, rate of LaMDA's core S, task head rate) with defaults filled in."""
        rate = learning_rate or self.default_learning_rate
        return rate, core_rate or rate, head_rate or self.default_head_learning_rate or rate

    # ---- behaviour ------------------------------------------------------------------------
    def apply(self, model, config: LamdaConfig, initialize: bool = True, gradients: dict | None = None):
        raise NotImplementedError

    def save(self, model, folder: Path, source: str) -> None:
        """Write what a finished run keeps to ``folder / self.saved_folder`` (and any export); by
        default the model's own save_pretrained (a PEFT adapter, or the whole model)."""
        model.save_pretrained(str(folder / self.saved_folder))

    def load(self, folder: Path, source: str, task: str, **load_options):
        """(fine-tuned model, tokenizer) from a run folder's saved files: the base ``source``
        loaded (load_model with ``load_options``) with the saved adapter merged in."""
        from .models.loading import load_model

        base, tokenizer = load_model(source, task=task, **load_options)
        return self.merge_saved(base, folder), tokenizer

    def merge_saved(self, base, folder: Path):
        """``base`` with the adapter saved in ``folder`` merged into its weights."""
        raise NotImplementedError

    def matrix_parameters(self, rank: int, d_in: int, d_out: int, total_steps: int, config: LamdaConfig):
        """costs.parameters.MatrixParameters of one adapted d_out x d_in matrix at ``rank``."""
        raise NotImplementedError


@dataclass(frozen=True)
class LamdaMethod(Method):
    """LaMDA: A frozen, the r x r core S trained, B frozen gradually (adapter/layer.py)."""

    memory: MemoryModel = MemoryModel.LAMDA
    saved_folder: str = "adapter"
    freezes_b: bool = True

    def apply(self, model, config, initialize=True, gradients=None):
        from .adapter.inject import apply_lamda

        config, _ = self.with_ranks(config, model)
        self.check(config)
        return apply_lamda(model, config, initialize, gradients)

    def save(self, model, folder, source):
        from .adapter.persistence import export_peft, save_adapter

        save_adapter(model, folder / self.saved_folder)
        export_peft(model, folder / "peft", base_model_name_or_path=source)

    def merge_saved(self, base, folder):
        from .adapter.persistence import load_adapter, merge_adapter

        return merge_adapter(load_adapter(base, folder / self.saved_folder))

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        from .costs.parameters import lamda_matrix

        return lamda_matrix(rank, d_in, d_out, total_steps, config.freeze_fraction, config.freeze_rule)


@dataclass(frozen=True)
class PeftMethod(Method):
    """A method that PEFT applies and saves as a PEFT adapter (``peft_config``)."""

    memory: MemoryModel = MemoryModel.LORA
    saved_folder: str = "peft"

    def peft_config(self, config: LamdaConfig, ranks: dict[str, int], heads: list[str], conv1d: bool):
        raise NotImplementedError

    def apply(self, model, config, initialize=True, gradients=None):
        from peft import get_peft_model
        from transformers.pytorch_utils import Conv1D

        from .adapter.inject import head_module_names, resolve_ranks
        from .models.targets import resolve_targets

        matrices = resolve_targets(model, config.targets)
        ranks = resolve_ranks(matrices, config)
        self.check_matrices(matrices, ranks)
        heads = head_module_names(model, config.trainable_modules)
        conv1d = any(m.module_type == Conv1D.__name__ for m in matrices)
        return get_peft_model(model, self.peft_config(config, ranks, heads, conv1d))

    def merge_saved(self, base, folder):
        from peft import PeftModel

        return PeftModel.from_pretrained(base, str(folder / self.saved_folder)).merge_and_unload()


@dataclass(frozen=True)
class LoraMethod(PeftMethod):
    """PEFT LoRA with the run's targets, ranks, alpha, dropout and head."""

    def peft_config(self, config, ranks, heads, conv1d):
        from .adapter.inject import lora_config

        return lora_config(config, ranks, heads, conv1d)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        from .costs.parameters import lora_matrix

        return lora_matrix(rank, d_in, d_out)


@dataclass(frozen=True)
class DoraMethod(LoraMethod):
    """PEFT DoRA (use_dora): W' = m * (W + s B A) / ||W + s B A||_row, LoRA's A and B plus a
    trained magnitude m per output row (d_out)."""

    memory: MemoryModel = MemoryModel.DORA

    def peft_config(self, config, ranks, heads, conv1d):
        from .adapter.inject import lora_config

        return lora_config(config, ranks, heads, conv1d, use_dora=True)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        from .costs.parameters import dora_matrix

        return dora_matrix(rank, d_in, d_out)


@dataclass(frozen=True)
class PissaMethod(LoraMethod):
    """PEFT PiSSA (init_lora_weights="pissa", a full SVD): LoRA whose B A starts as W's top-r
    singular triplets (sqrt(sigma) on each side) while W is replaced by the residual. A run saves
    it converted to a plain LoRA of rank 2r for the original W (PEFT's
    path_initial_model_for_weight_conversion), so it loads and merges like LoRA."""

    memory: MemoryModel = MemoryModel.LORA

    def peft_config(self, config, ranks, heads, conv1d):
        from .adapter.inject import lora_config

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


@dataclass(frozen=True)
class UniformRankPeftMethod(PeftMethod):
    """A PEFT method whose config has one rank for every matrix (no rank_pattern)."""

    linear_only: bool = False  # PEFT's layer adapts torch.nn.Linear only (not GPT-2's Conv1D)

    def check_matrices(self, matrices, ranks):
        if len(set(ranks.values())) > 1:
            raise ConfigError(f"{self.name} takes one rank for every matrix; per-matrix ranks "
                              f"({min(ranks.values())} to {max(ranks.values())}) are for LaMDA++ and LoRA")
        conv1d = [m.name for m in matrices if m.module_type == "Conv1D"]
        if self.linear_only and conv1d:
            raise ConfigError(f"{self.name} (PEFT {self.name.upper()}) adapts torch.nn.Linear layers only, and "
                              f"{conv1d[0]} is GPT-2's Conv1D: choose lora, dora, pissa, vera, lamda or full")

    def uniform_rank(self, ranks: dict[str, int]) -> int:
        return next(iter(ranks.values()))


@dataclass(frozen=True)
class VeraMethod(UniformRankPeftMethod):
    """PEFT VeRA: W + diag(lambda_b) B diag(lambda_d) A with A (r x d_in) and B (d_out x r) random,
    frozen and shared by every matrix (from a fixed PRNG key, saved with the adapter); per matrix
    only lambda_b (d_out) and lambda_d (r) train. VeRA has no alpha."""

    memory: MemoryModel = MemoryModel.VERA

    def peft_config(self, config, ranks, heads, conv1d):
        from peft import VeraConfig

        return VeraConfig(r=self.uniform_rank(ranks), target_modules=list(ranks), vera_dropout=config.dropout,
                          modules_to_save=list(heads) or None, fan_in_fan_out=conv1d, save_projection=True)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        from .costs.parameters import vera_matrix

        return vera_matrix(rank, d_in, d_out)


@dataclass(frozen=True)
class PsoftMethod(UniformRankPeftMethod):
    """PEFT PSOFT: W + s B (R - I) A with A (r x d_in) and B (d_out x r) W's frozen principal
    singular factors and R an r x r orthogonal matrix (Cayley: r(r-1)/2 trained entries) with a
    trained scaling vector on each side (2r): LaMDA's closest relative, a trained core between
    frozen SVD factors."""

    memory: MemoryModel = MemoryModel.PSOFT
    linear_only: bool = True

    def peft_config(self, config, ranks, heads, conv1d):
        from peft import PsoftConfig

        return PsoftConfig(r=self.uniform_rank(ranks), target_modules=list(ranks), psoft_alpha=config.alpha,
                           psoft_dropout=config.dropout, modules_to_save=list(heads) or None, fan_in_fan_out=conv1d)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        from .costs.parameters import psoft_matrix

        return psoft_matrix(rank, d_in, d_out)


@dataclass(frozen=True)
class FullMethod(Method):
    """Full fine-tuning: every weight trains; the whole model is saved."""

    memory: MemoryModel = MemoryModel.FULL
    saved_folder: str = "model"
    adapts_matrices: bool = False

    def apply(self, model, config, initialize=True, gradients=None):
        return model.requires_grad_(True)

    def save(self, model, folder, source):
        """The whole model, with the base's tokenizer beside it (a self-contained folder)."""
        from .models.loading import load_tokenizer, resolve_source

        super().save(model, folder, source)
        tokenizer = load_tokenizer(resolve_source(source))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder / self.saved_folder))

    def load(self, folder, source, task, **load_options):
        """The saved model; the tokenizer is the base's (runs saved before the tokenizer was
        written beside the model have none there)."""
        from .models.loading import load_model, load_tokenizer, resolve_source

        model, tokenizer = load_model(str(folder / self.saved_folder), task=task, **load_options)
        return model, tokenizer or load_tokenizer(resolve_source(source))

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        raise ConfigError("full fine-tuning adapts no matrices")


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (a name taken is an error); returns it."""
    if method.name in _REGISTRY:
        raise ConfigError(f"a method named {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    _REGISTRY.pop(name, None)


def get_method(name: str) -> Method:
    """The registry entry of ``name``; ConfigError naming the known methods."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}: method must be one of {method_names()}")
    return _REGISTRY[name]


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def display_order() -> tuple[str, ...]:
    """Cost tables and figures: the baselines first (full, then PEFT methods), LaMDA's after."""
    rank = {MemoryModel.FULL: 0, MemoryModel.LAMDA: 2}
    return tuple(sorted(_REGISTRY, key=lambda n: rank.get(_REGISTRY[n].memory, 1)))


# ---- the entries ------------------------------------------------------------------------------
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
LAMDA_PLUS = register_method(
    LamdaMethod(
        name="lamda++",
        summary="LaMDA++: LaMDA with per-matrix ranks from the spectra (Rank budget page)",
        default_rank=choices.DEFAULT_LAMDA_RANK,
        default_dropout=0.0,
        default_learning_rate=3e-3,
        default_head_learning_rate=None,
        needs_rank_pattern=True,
    )
)
# LoRA: rank 8, alpha 16 (scale 2; alpha 64 at r=8 scored lower, docs/quality.md, factor table), dropout 0.05
# (PEFT's usual). Rate (SST-2 train split, 1 seed each): 3e-4 84.1, 1e-3 84.8, 3e-3 85.2 (cls
# pooling), 84.5 / 85.7 / 86.4 (mean pooling); but 2e-3 (the old default) collapsed to the majority
# class on SST-2 in users' runs and in tests/test_quality.py -> 1e-3, below it (SST-2 validation,
# 3 seeds: 3e-3 89.1, 1e-3 89.5). On SmolLM2 (benchmarks/llm_quality.py, as for LaMDA above): 3e-4 76.0,
# 1e-3 80.0 exact match: 1e-3 serves causal LMs too.
LORA = register_method(LoraMethod(
    name="lora", summary="PEFT LoRA: A and B trained",
    default_rank=8, default_dropout=0.05, default_learning_rate=1e-3, default_head_learning_rate=None))
# Full fine-tuning: 3e-5 86.1, 1e-4 88.0, 3e-4 88.9 (1 seed) -> 1e-4 kept, the usual BERT rate (SST-2
# validation, 3 seeds: 3e-4 90.2, 1e-4 90.7). Its rank is nominal (no matrix is adapted).
FULL = register_method(FullMethod(
    name="full", summary="full fine-tuning: every weight trains",
    default_rank=8, default_dropout=0.0, default_learning_rate=1e-4, default_head_learning_rate=None))
# The PEFT family: each through PEFT's own code, its rate the best mean of the split sweeps of
# benchmarks/quality.py (SWEEPS: 10% of each train file, SST-2 300 steps / AG News 150, seed 0,
# mean pooling; docs/peft_family.md), accuracy % per rate, SST-2 / AG News -> mean:
#   DoRA  3e-4 84.5/88.8 -> 86.6, 1e-3 85.5/89.4 -> 87.5, 3e-3 85.5/89.4 -> 87.5
#         -> 1e-3 (a tie: the lower, LoRA's rate, further from collapse)
#   PiSSA 1e-4 82.8/85.4, 3e-4 85.4/89.1, 1e-3 86.9/89.0 -> 88.0, 3e-3 55.4 (collapsed to the
#         majority class)/87.9 -> 1e-3
#   VeRA  3e-3 83.3/88.2, 1e-2 84.0/88.9, 3e-2 86.4/89.1 -> 87.8, 1e-1 81.7/89.0
#         -> 3e-2 (VeRA's scaling vectors need large rates)
#   PSOFT 1e-3 85.4/88.0, 3e-3 85.9/89.1 -> 87.5, 1e-2 84.0/88.8 -> 3e-3
# At these defaults, 3 seeds on both validation files: docs/peft_family.md, "Results".
# DoRA: LoRA's rank, alpha and dropout (it is LoRA plus a magnitude vector).
DORA = register_method(DoraMethod(
    name="dora", summary="PEFT DoRA: LoRA's A and B plus a trained magnitude per output row",
    default_rank=8, default_dropout=0.05, default_learning_rate=1e-3, default_head_learning_rate=None))
# PiSSA: LoRA's rank; no dropout (its path starts as W's principal part, which dropout would perturb).
PISSA = register_method(PissaMethod(
    name="pissa", summary="PEFT PiSSA: LoRA started from W's top-r singular triplets, W replaced by the residual",
    default_rank=8, default_dropout=0.0, default_learning_rate=1e-3, default_head_learning_rate=None))
# VeRA: rank 256 (PEFT's default and the paper's smallest for GLUE; its trained count is d_out + r
# per matrix, so the rank costs little), no dropout.
VERA = register_method(VeraMethod(
    name="vera", summary="PEFT VeRA: shared frozen random A and B, trained scaling vectors per matrix",
    default_rank=256, default_dropout=0.0, default_learning_rate=3e-2, default_head_learning_rate=None))
# PSOFT: LaMDA's rank (a trained r x r core between frozen SVD factors, as LaMDA after B freezes),
# no dropout.
PSOFT = register_method(PsoftMethod(
    name="psoft", summary="PEFT PSOFT: an orthogonal r x r core between W's frozen principal factors",
    default_rank=choices.DEFAULT_LAMDA_RANK, default_dropout=0.0, default_learning_rate=3e-3,
    default_head_learning_rate=None))
