"""PEFT methods with one rank for every matrix and frozen projections: VeRA (shared random A and
B, trained scaling vectors) and PSOFT (an orthogonal r x r core between W's frozen principal
factors, LaMDA's closest relative).

Parameters per adapted d_out x d_in matrix at rank r: VeRA d_out + r (the shared projections
counted nowhere per matrix), PSOFT r(r-1)/2 + 2r trained, r (d_in + d_out) frozen. Memory: VeRA
keeps A x (N x r) and B diag(lambda_d) A x (N x d_out) per module, PSOFT x A^T (N x r); neither
keeps x (A and B are frozen)."""
from __future__ import annotations

from dataclasses import dataclass

from .. import choices
from ..costs.memory import adapter_transients
from ..costs.parameters import MatrixParameters
from ..errors import ConfigError
from .peft import PeftMethod
from .registry import get_method, method_names, register_method


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
            able = [n for n in sorted(method_names(), key=lambda n: not get_method(n).rank_matched)
                    if not getattr(get_method(n), "linear_only", False)]  # the PEFT ones first, as LoRA users look
            raise ConfigError(f"{self.name} (PEFT {self.name.upper()}) adapts torch.nn.Linear layers only, and "
                              f"{conv1d[0]} is GPT-2's Conv1D: choose {', '.join(able[:-1])} or {able[-1]}")

    def uniform_rank(self, ranks: dict[str, int]) -> int:
        return next(iter(ranks.values()))

    def transients(self, shape, act, dropout):
        return adapter_transients(shape, act)


@dataclass(frozen=True)
class VeraMethod(UniformRankPeftMethod):
    """PEFT VeRA: W + diag(lambda_b) B diag(lambda_d) A with A (r x d_in) and B (d_out x r) random,
    frozen and shared by every matrix (from a fixed PRNG key, saved with the adapter); per matrix
    only lambda_b (d_out) and lambda_d (r) train. VeRA has no alpha."""

    def peft_config(self, config, ranks, heads, conv1d):
        from peft import VeraConfig

        return VeraConfig(r=self.uniform_rank(ranks), target_modules=list(ranks), vera_dropout=config.dropout,
                          modules_to_save=list(heads) or None, fan_in_fan_out=conv1d, save_projection=True)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        count = d_out + rank
        return MatrixParameters(frozen=0, start=count, end=count, average=float(count))

    def kept_activations(self, path):
        return path.per_module(lambda m, r: r + m.d_out) + path.dropout_masks()


@dataclass(frozen=True)
class PsoftMethod(UniformRankPeftMethod):
    """PEFT PSOFT: W + s B (R - I) A with A (r x d_in) and B (d_out x r) W's frozen principal
    singular factors and R an r x r orthogonal matrix (Cayley: r(r-1)/2 trained entries) with a
    trained scaling vector on each side (2r): LaMDA's closest relative, a trained core between
    frozen SVD factors."""

    linear_only: bool = True

    def peft_config(self, config, ranks, heads, conv1d):
        from peft import PsoftConfig

        return PsoftConfig(r=self.uniform_rank(ranks), target_modules=list(ranks), psoft_alpha=config.alpha,
                           psoft_dropout=config.dropout, modules_to_save=list(heads) or None, fan_in_fan_out=conv1d)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        count = rank * (rank - 1) // 2 + 2 * rank
        return MatrixParameters(frozen=rank * (d_in + d_out), start=count, end=count, average=float(count))

    def kept_activations(self, path):
        return path.per_module(lambda m, r: r) + path.dropout_masks()


# Rates: the best mean of benchmarks/quality.py's split sweeps (as for DoRA and PiSSA, lora.py;
# docs/peft_family.md), accuracy % per rate, SST-2 / AG News -> mean:
#   VeRA  3e-3 83.3/88.2, 1e-2 84.0/88.9, 3e-2 86.4/89.1 -> 87.8, 1e-1 81.7/89.0
#         -> 3e-2 (VeRA's scaling vectors need large rates)
#   PSOFT 1e-3 85.4/88.0, 3e-3 85.9/89.1 -> 87.5, 1e-2 84.0/88.8 -> 3e-3
# VeRA: rank 256 (PEFT's default and the paper's smallest for GLUE; its trained count is d_out + r
# per matrix, so the rank costs little), no dropout.
VERA = register_method(VeraMethod(
    name="vera", summary="PEFT VeRA: shared frozen random A and B, trained scaling vectors per matrix",
    default_rank=256, default_dropout=0.0, default_learning_rate=3e-2, default_head_learning_rate=None))
# PSOFT: LaMDA's rank (a trained r x r core between frozen SVD factors, as LaMDA after B freezes),
# no dropout.
PSOFT = register_method(PsoftMethod(
    name="psoft", summary="PEFT PSOFT: an orthogonal r x r core between W's frozen principal factors",
    default_rank=choices.DEFAULT_LAMDA_RANK,
    default_dropout=0.0, default_learning_rate=3e-3, default_head_learning_rate=None))
