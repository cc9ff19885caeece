"""Singular values of one weight matrix, by the fastest adequate route.

exact_singular_values: all min(d_out, d_in) values. Route "gram" (default): eigenvalues of the
    smaller Gram matrix W^T W or W W^T in float64, sigma_i = sqrt(lambda_i). On this 2-core CPU it
    is 2-4x faster than torch.linalg.svdvals in float32 and, for condition numbers below ~1e6,
    more accurate (float64 eps squared by the condition number stays below float32's eps).
    Route "svd": torch.linalg.svdvals in float32.
top_singular_values: the k largest by randomized block Krylov iteration (see its docstring);
    singular_values picks the exact route instead when that is as cheap.
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
    # torch, not numpy: alternating numpy's OpenBLAS threads with torch's OpenMP threads makes
    # them contend for the cores and slowed a scan by 1.5x here.
    eigenvalues = torch.linalg.eigvalsh(gram)
    return eigenvalues.clamp_min(0).sqrt().flip(0)


def krylov_dimension(k: int, oversample: int = 16, depth: int = 5) -> int:
    """Columns of the block Krylov basis top_singular_values builds for k values."""
    return (depth + 1) * (k + oversample)


def top_singular_values(weight: torch.Tensor, k: int, oversample: int = 16, depth: int = 5,
                        seed: int = 0) -> torch.Tensor:
    """The k largest singular values of W (d_out, d_in), descending, float64.

    Randomized block Krylov iteration (Musco & Musco 2015): with Omega (d_in, b) Gaussian,
    b = k + oversample, the basis K = orth[W Omega, (W W^T) W Omega, ..., (W W^T)^depth W Omega]
    (each block re-orthonormalized for stability) has (depth + 1) b columns, and the Ritz values
    svdvals(K^T W) (through the small float64 Gram matrix) approximate the top singular values. With
    depth 5 the relative error on the
    top k is below 1e-4 on MiniLM's flat spectra and ~1e-6 on decaying ones, for fewer flops than
    subspace iteration reaching the same accuracy.
    """
    w = weight.float()
    b = k + oversample
    generator = torch.Generator(device="cpu").manual_seed(seed)
    omega = torch.randn(w.shape[1], b, generator=generator).to(w.device)
    block, _ = torch.linalg.qr(w @ omega)
    blocks = [block]
    for _ in range(depth):
        right, _ = torch.linalg.qr(w.T @ blocks[-1])
        block, _ = torch.linalg.qr(w @ right)
        blocks.append(block)
    basis, _ = torch.linalg.qr(torch.cat(blocks, dim=1))
    projected = (basis.T @ w).double()  # ((depth + 1) b, d_in)
    ritz = torch.linalg.eigvalsh(projected @ projected.T).clamp_min(0).sqrt().flip(0)
    return ritz[:k]


def singular_values(weight: torch.Tensor, top_k: int | None = None, exact_route: str = "gram") -> torch.Tensor:
    """All singular values (top_k None) or the top k, by the cheaper adequate route: exact when
    the Krylov basis would span most of the smaller dimension anyway."""
    if top_k is None or krylov_dimension(top_k) >= min(weight.shape) // 2:
        values = exact_singular_values(weight, exact_route)
        return values if top_k is None else values[:top_k]
    return top_singular_values(weight, top_k)
