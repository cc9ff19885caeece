"""LaMDA++ rank allocation, computed once before training: from normalized spectra (data-free) or
from the task's gradient on a few batches (data-driven).

Strategies (a budget is a total rank, by default base_rank x matrices, the same as uniform LaMDA,
or a number of trainable LaMDA parameters, sum of r^2 + r d_out):

  equal-energy (default): one threshold tau gives each matrix r_l = min{k : E_l(k) >= tau},
      on the grid of multiples of ``multiple`` within [r_min, r_max]. tau is the largest value
      (found by bisection) whose allocation fits the budget; the units left over go to the
      matrices whose next step costs the least energy threshold (ties by model order), so a rank
      budget is met exactly. Flat spectra need more rank to reach tau and so get more.
  energy-deficit: r_l proportional to 1 - E_l(base_rank), the energy uniform LaMDA would leave
      out, scaled by bisection to the budget; leftovers by largest remainder.
  gradient (data-driven, needs ``importance``): r_l proportional to ||G_l||_F, the norm of the
      task's gradient dL/dW_l summed over a few batches (spectra/importance.py), scaled and
      rounded like energy-deficit: the matrices the task pulls on hardest get the most rank.

E_l(k) is known for k up to the number of singular values scanned, so a top-k scan caps r_max
at k.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..choices import ALLOCATION_STRATEGIES
from ..costs.parameters import lamda_parameters
from ..errors import AllocationError
from .spectrum import SpectrumReport

STRATEGIES = ALLOCATION_STRATEGIES
BUDGET_KINDS = ("rank", "params")
BISECTION_STEPS = 60


@dataclass
class Allocation:
    """Per-matrix ranks and what they cost and keep; ``ranks`` is LamdaConfig.rank_pattern."""

    strategy: str
    base_rank: int
    budget: int
    budget_kind: str
    r_min: int
    r_max: int
    multiple: int
    threshold: float
    ranks: dict[str, int]
    d_out: dict[str, int]
    energy_kept: dict[str, float]
    uniform_energy: dict[str, float]

    @property
    def total_rank(self) -> int:
        return sum(self.ranks.values())

    @property
    def rank_pattern(self) -> dict[str, int]:
        return dict(self.ranks)

    @property
    def parameters(self) -> int:
        """Trainable adapter parameters while B trains (after B freezes: sum r^2)."""
        return sum(lamda_parameters(r, self.d_out[n]) for n, r in self.ranks.items())

    @property
    def uniform_parameters(self) -> int:
        return sum(lamda_parameters(self.base_rank, d) for d in self.d_out.values())

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(asdict(self), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "Allocation":
        path = Path(str(text_or_path))
        text = path.read_text() if path.is_file() else str(text_or_path)
        return cls(**json.loads(text))


def _grid_energy(report: SpectrumReport, lower: int, upper: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank grid (G,) = lower, lower + multiple, ... and E_l at each grid rank, (L, G); grid
    ranks above a matrix's upper bound get +inf energy so they are never chosen."""
    grid = np.arange(lower, int(upper.max()) + 1, multiple)
    energy = np.full((len(report.matrices), len(grid)), np.inf)
    for row, m in enumerate(report.matrices):
        e = m.energy()
        usable = grid <= upper[row]
        energy[row, usable] = e[grid[usable] - 1]
    return grid, energy


def _rank_limits(report: SpectrumReport, r_min: int, r_max: int, multiple: int) -> tuple[int, np.ndarray]:
    """(lowest rank, per-matrix highest rank): r_min rounded up and min(r_max, min(d_out, d_in),
    singular values scanned) rounded down to the multiple; an empty range is an AllocationError."""
    lower = -(-max(r_min, 1) // multiple) * multiple
    upper = np.array([min(r_max, m.max_rank, len(m.sigma)) // multiple * multiple for m in report.matrices])
    if (upper < lower).any():
        worst = report.matrices[int(np.argmin(upper))]
        raise AllocationError(f"no rank fits [{r_min}, {r_max}] in multiples of {multiple} for {worst.name} "
                              f"(rank limit {worst.max_rank}, {len(worst.sigma)} singular values scanned)")
    return lower, upper


def _cost(ranks: np.ndarray, d_out: np.ndarray, budget_kind: str) -> int:
    """Total rank, or trainable adapter parameters sum(r^2 + r d_out)."""
    return int(ranks.sum()) if budget_kind == "rank" else int((ranks * ranks + ranks * d_out).sum())


def budget_bounds(
    report: SpectrumReport, budget_kind: str, r_min: int, r_max: int, multiple: int = 1
) -> tuple[int, int]:
    """The feasible budgets (total rank or parameters): every matrix at its lowest rank, and every
    matrix at its highest (see _rank_limits)."""
    lower, upper = _rank_limits(report, r_min, r_max, multiple)
    d_out = np.array([m.d_out for m in report.matrices])
    return _cost(np.full(len(upper), lower), d_out, budget_kind), _cost(upper, d_out, budget_kind)


def allocate_ranks(report: SpectrumReport, base_rank: int = 8, budget: int | None = None,
                   budget_kind: str = "rank", strategy: str = "equal-energy", r_min: int | None = None,
                   r_max: int | None = None, multiple: int = 1,
                   importance: dict[str, float] | None = None) -> Allocation:
    """Per-matrix ranks for LaMDA++. Defaults: budget = base_rank x matrices (or the parameters of
    uniform LaMDA at base_rank), r_min = max(1, base_rank // 4), r_max = 4 base_rank.
    ``importance``: {matrix name: score}, what the gradient strategy allocates by."""
    _check_request(report, strategy, budget_kind, base_rank, multiple, importance)
    r_min = max(1, base_rank // 4) if r_min is None else r_min
    r_max = 4 * base_rank if r_max is None else r_max
    lower, upper = _rank_limits(report, r_min, r_max, multiple)
    names = [m.name for m in report.matrices]
    d_out = np.array([m.d_out for m in report.matrices])

    def cost(ranks: np.ndarray) -> int:
        return _cost(ranks, d_out, budget_kind)

    budget = cost(np.full(len(names), base_rank)) if budget is None else int(budget)
    floor_cost, ceiling_cost = cost(np.full(len(names), lower)), cost(upper)
    if budget < floor_cost or (budget_kind == "rank" and budget > ceiling_cost):
        raise AllocationError(f"a {budget_kind} budget of {budget} is outside what [{r_min}, {r_max}] allows "
                              f"for {len(names)} matrices: {floor_cost} to {ceiling_cost}")
    if budget_kind == "rank" and (budget - floor_cost) % multiple:
        raise AllocationError(f"a rank budget of {budget} cannot be met in multiples of {multiple}")

    ranks_at, priority, bracket = _strategy_rule(strategy, report, base_rank, lower, upper, multiple, importance)
    ranks, threshold = _spend(ranks_at, priority, bracket, cost, budget, upper, multiple)
    return Allocation(
        strategy=strategy, base_rank=base_rank, budget=budget, budget_kind=budget_kind, r_min=r_min, r_max=r_max,
        multiple=multiple, threshold=threshold, ranks=dict(zip(names, map(int, ranks))),
        d_out=dict(zip(names, map(int, d_out))),
        energy_kept={m.name: m.energy_at(int(r)) for m, r in zip(report.matrices, ranks)},
        uniform_energy={m.name: m.energy_at(min(base_rank, len(m.sigma))) for m in report.matrices},
    )


def spectral_rank_pattern(source, rank: int, targets=None) -> dict[str, int]:
    """LaMDA++'s ranks when none are given: allocate_ranks with base rank ``rank`` (a total rank of
    rank x matrices, the default strategy and bounds) from the spectra of ``source`` (a model
    object or a source name; scanned once, then read from the disk cache), as `lamda compare` does."""
    from .spectrum import scan_spectra

    return allocate_ranks(scan_spectra(source, targets=targets), base_rank=rank).rank_pattern


def _check_request(report: SpectrumReport, strategy: str, budget_kind: str, base_rank: int, multiple: int,
                   importance: dict[str, float] | None) -> None:
    if strategy not in STRATEGIES:
        raise AllocationError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if strategy == "gradient":
        missing = [m.name for m in report.matrices if m.name not in (importance or {})]
        if missing:
            raise AllocationError(f"the gradient strategy needs an importance score for every matrix (from "
                                  f"gradient_importance on your training data); missing: {', '.join(missing[:3])}"
                                  + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    if budget_kind not in BUDGET_KINDS:
        raise AllocationError(f"unknown budget kind {budget_kind!r}; choose one of {BUDGET_KINDS}")
    if not report.matrices:
        raise AllocationError("the spectrum report has no matrices")
    if base_rank < 1 or multiple < 1:
        raise AllocationError(f"base_rank and multiple must be at least 1, got {base_rank} and {multiple}")


def _strategy_rule(strategy: str, report: SpectrumReport, base_rank: int, lower: int, upper: np.ndarray,
                   multiple: int, importance: dict[str, float] | None = None):
    """(ranks_at(t), priority(ranks, t), (t_lo, t_hi)) of a strategy, t its one parameter.
    equal-energy: t = tau, each matrix's smallest rank with E(r) >= tau; a lower E(r) is served
    first. energy-deficit and gradient: t = scale, r_i = scale w_i rounded down, w_i = 1 - E_i(r0)
    or the importance; the largest shortfall scale w_i - r_i is served first."""
    if strategy == "equal-energy":
        grid, energy = _grid_energy(report, lower, upper, multiple)
        rows = np.arange(len(report.matrices))

        def ranks_at(tau: float) -> np.ndarray:
            reached = energy >= tau  # (L, G); +inf entries past upper always "reach"
            first = np.where(reached.any(axis=1), reached.argmax(axis=1), len(grid) - 1)
            return np.minimum(grid[first], upper)

        def priority(ranks: np.ndarray, tau: float) -> np.ndarray:  # lower is served first
            return energy[rows, (ranks - lower) // multiple]
        return ranks_at, priority, (0.0, 1.0 + 1e-9)
    if strategy == "gradient":
        weight = np.array([float(importance[m.name]) for m in report.matrices])
        weight = weight / max(weight.max(), 1e-30) + 1e-12
    else:
        weight = np.array([1.0 - m.energy_at(min(base_rank, len(m.sigma))) for m in report.matrices]) + 1e-12
    return _proportional_rule(weight, lower, upper, multiple)


def _proportional_rule(weight: np.ndarray, lower: int, upper: np.ndarray, multiple: int):
    """r_l = scale x weight_l rounded down to the multiple within [lower, upper_l]; the largest
    shortfall scale w_l - r_l is served first."""
    def scaled_ranks(scale: float) -> np.ndarray:
        return np.clip(np.floor(scale * weight / multiple) * multiple, lower, upper).astype(int)

    def shortfall(ranks: np.ndarray, scale: float) -> np.ndarray:
        return -(scale * weight - ranks)
    return scaled_ranks, shortfall, (0.0, float(upper.max()) / weight.min() + multiple)


def _spend(ranks_at, priority, bracket: tuple[float, float], cost, budget: int, upper: np.ndarray,
           multiple: int) -> tuple[np.ndarray, float]:
    """(ranks, t): bisect the rule's parameter t to the largest one within ``budget``, then hand
    out what it leaves ``multiple`` at a time, best priority first, ties in model order."""
    lo, hi = bracket
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost(ranks_at(mid)) <= budget else (lo, mid)
    ranks = ranks_at(lo)
    while True:
        open_rows = np.flatnonzero(ranks < upper)
        if len(open_rows) == 0:
            break
        best = open_rows[np.argmin(priority(ranks, lo)[open_rows])]  # first index wins ties
        step = ranks.copy()
        step[best] += multiple
        if cost(step) > budget:
            break
        ranks = step
    return ranks, float(lo)
