"""Heavy-tail metrics of a weight matrix's eigenvalue spectrum, as WeightWatcher defines them.

The eigenvalues of W^T W are lambda_i = sigma_i^2. Their tail is fitted with a continuous power law
p(lambda) ~ lambda^(-alpha) for lambda >= x_min, by maximum likelihood for every candidate x_min
(each eigenvalue above EIGENVALUE_FLOOR but the largest):

    alpha(x_min) = 1 + n / sum_{lambda_i >= x_min} ln(lambda_i / x_min)      (n: tail size)

keeping the x_min whose fit is closest to the data in the Kolmogorov-Smirnov distance

    D(x_min) = max_i | (1 - (lambda_i / x_min)^(1 - alpha)) - F_n(lambda_i) |.

alpha_weighted = alpha log10(lambda_max) and log_spectral_norm = log10(lambda_max).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EIGENVALUE_FLOOR = 1e-5  # WeightWatcher's EVALS_THRESH: smaller eigenvalues are numerical zeros
MIN_TAIL = 2


@dataclass(frozen=True)
class PowerLawFit:
    alpha: float
    x_min: float
    ks_distance: float
    tail_size: int


def fit_power_law(eigenvalues: np.ndarray) -> PowerLawFit | None:
    """The KS-optimal maximum-likelihood power-law fit of the eigenvalues' tail; None when fewer
    than MIN_TAIL + 1 eigenvalues are above EIGENVALUE_FLOOR. Every alpha(x_min) at once from
    tail sums of logs; the KS distances one candidate at a time (O(n^2) time, O(n) memory)."""
    data = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    data = data[data > EIGENVALUE_FLOOR]
    n_total = len(data)
    if n_total <= MIN_TAIL:
        return None
    logs = np.log(data)
    tail_sums = np.cumsum(logs[::-1])[::-1]  # sum_{j >= i} ln(lambda_j)
    candidates = np.arange(n_total - 1)
    sizes = (n_total - candidates).astype(np.float64)
    alphas = 1 + sizes / (tail_sums[candidates] - sizes * logs[candidates])
    distances = np.ones(n_total - 1)
    positions = np.arange(n_total, dtype=np.float64)
    for i in np.flatnonzero(alphas > 1):  # (lambda / x_min)^(1 - alpha) through the logs already taken
        size = n_total - i
        fitted = 1 - np.exp((1 - alphas[i]) * (logs[i:] - logs[i]))
        distances[i] = np.abs(fitted - positions[:size] / size).max()
    best = int(np.argmin(distances))
    return PowerLawFit(float(alphas[best]), float(data[best]), float(distances[best]), int(n_total - best))


def heavy_tail_metrics(sigma: np.ndarray) -> dict:
    """{"alpha", "alpha_weighted", "log_spectral_norm"} from all singular values of a matrix
    (alpha None when the tail cannot be fitted)."""
    eigenvalues = np.asarray(sigma, dtype=np.float64) ** 2
    fit = fit_power_law(eigenvalues)
    log_norm = float(np.log10(eigenvalues.max())) if eigenvalues.size and eigenvalues.max() > 0 else None
    alpha = fit.alpha if fit else None
    return {"alpha": alpha, "alpha_weighted": alpha * log_norm if alpha is not None and log_norm is not None else None,
            "log_spectral_norm": log_norm}
