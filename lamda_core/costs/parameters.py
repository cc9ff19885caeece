"""Trainable-parameter arithmetic of one adapted matrix W (d_out x d_in) at rank r that more than
one layer reads (LaMDA++ budgets in spectra/, comparisons matching LaMDA's budget, the registry);
each other method's count lives in its registry entry (methods/).

    LoRA:  A (r x d_in) and B (d_out x r) train:            r (d_in + d_out)
    LaMDA: A frozen (r x d_in); S (r x r) trains always, B (d_out x r) until frozen:
           r^2 + r d_out while B trains, r^2 after, and the average over the freezing schedule.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MatrixParameters:
    """One adapted matrix's adapter parameters: frozen (never trained, e.g. LaMDA's A), trainable
    at the first step (start), after B froze (end) and averaged over the steps (average)."""

    frozen: int
    start: int
    end: int
    average: float


def lora_parameters(rank: int, d_in: int, d_out: int) -> int:
    """r (d_in + d_out): LoRA's A and B."""
    return rank * (d_in + d_out)


def lamda_parameters(rank: int, d_out: int) -> int:
    """r^2 + r d_out: LaMDA's S and B while B trains."""
    return rank * rank + rank * d_out


def average_lamda_parameters(rank: int, d_out: int, total_steps: int, fraction: float, rule: str = "linear",
                             b_counted: str = "columns") -> float:
    """r^2 + d_out x (B's trained columns averaged over the freezing schedule), counting
    b_counted="columns": its unfrozen columns before each step t = 0..T-1 (the cost model), or
    "whole": all r columns while any is unfrozen, after each step t = 1..T (the trainer's
    ``adapter_parameters``: B leaves the optimizer only when its last column freezes)."""
    from ..adapter.freezing import frozen_column_count

    if b_counted == "columns":
        trained = sum(rank - frozen_column_count(rule, rank, t, total_steps, fraction) for t in range(total_steps))
    elif b_counted == "whole":
        trained = rank * sum(frozen_column_count(rule, rank, t, total_steps, fraction) < rank
                             for t in range(1, total_steps + 1))
    else:
        raise ValueError(f"b_counted must be 'columns' or 'whole', got {b_counted!r}")
    return rank * rank + d_out * trained / total_steps


def lamda_matrix(rank: int, d_in: int, d_out: int, total_steps: int, fraction: float, rule: str) -> MatrixParameters:
    """A frozen; at the first step S and B's unfrozen columns (all of B unless eta = 0); after the
    schedule S alone (S and B under the "never" rule)."""
    from ..adapter.freezing import frozen_column_count

    start = rank * rank + d_out * (rank - frozen_column_count(rule, rank, 0, total_steps, fraction))
    end = rank * rank + d_out * (rank - frozen_column_count(rule, rank, total_steps, total_steps, fraction))
    return MatrixParameters(frozen=rank * d_in, start=start, end=end,
                            average=average_lamda_parameters(rank, d_out, total_steps, fraction, rule))
