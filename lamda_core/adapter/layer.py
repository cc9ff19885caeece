"""The LaMDA layer: a frozen base projection plus a low-dimensional adapter path.

    y = base(x) + s * B S A dropout(x),   s = alpha / r

    A "PMA": (r, d_in)  frozen from the start
    S "LDA": (r, r)     always trained
    B "PMB": (d_out, r) trained, then frozen column by column (see freezing.py)

Because A is frozen, autograd keeps only the r-wide A(x) (and S(A(x)) while B trains) for
backward, never the d_in-wide input x.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..models.targets import linear_shape, weight_as_linear

FULL_SVD_MAX_DIM = 1024  # below this, an exact SVD is as cheap as a randomized one


def top_singular_triplets(weight: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-r SVD of W (d_out, d_in) in float32: U_r (d_out, r), sigma_r (r,), Vh_r (r, d_in),
    sigma descending. Exact below FULL_SVD_MAX_DIM, randomized (4 power iterations) above."""
    w = weight.detach().float()
    if min(w.shape) <= FULL_SVD_MAX_DIM:
        u, sigma, vh = torch.linalg.svd(w, full_matrices=False)
        return u[:, :r], sigma[:r], vh[:r]
    q = min(r + 16, min(w.shape))
    u, sigma, v = torch.svd_lowrank(w, q=q, niter=4)
    return u[:, :r], sigma[:r], v[:, :r].T


class LamdaLayer(nn.Module):
    """A base Linear / Conv1D wrapped with the LaMDA path. The base keeps its dtype; the adapter
    keeps ``adapter_dtype`` (float32 by default, see LamdaConfig)."""

    PARAMETER_NAMES = ("lamda_A", "lamda_S", "lamda_B")
    STATE_NAMES = PARAMETER_NAMES + ("lamda_B0S0", "frozen_columns")  # everything a checkpoint keeps

    def __init__(self, base: nn.Module, rank: int, alpha: float, dropout: float = 0.0,
                 adapter_dtype: torch.dtype = torch.float32):
        super().__init__()
        d_out, d_in = linear_shape(base)
        device = base.weight.device
        self.base = base
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        zeros = dict(dtype=adapter_dtype, device=device)
        self.lamda_A = nn.Parameter(torch.zeros(rank, d_in, **zeros), requires_grad=False)
        self.lamda_S = nn.Parameter(torch.zeros(rank, rank, **zeros))
        self.lamda_B = nn.Parameter(torch.zeros(d_out, rank, **zeros))
        # B S at initialization when it is not zero (svd-residual): the learned update is
        # s (B S - B0S0) A. Empty otherwise, so it costs no memory.
        self.register_buffer("lamda_B0S0", torch.zeros(0, **zeros))
        # Number of B's columns frozen so far (largest singular direction first).
        self.register_buffer("frozen_columns", torch.zeros((), dtype=torch.long, device=device))

    def adapter_params(self) -> list[str]:
        """Names of the adapter's parameters (A frozen, S trained, B trained then frozen)."""
        return list(self.PARAMETER_NAMES)

    @property
    def d_in(self) -> int:
        return self.lamda_A.shape[1]

    @property
    def d_out(self) -> int:
        return self.lamda_B.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., d_in) -> (..., d_out)."""
        result = self.base(x)
        h = self.dropout(x.to(self.lamda_A.dtype))
        update = F.linear(F.linear(F.linear(h, self.lamda_A), self.lamda_S), self.lamda_B)
        # in place: the base output is not kept for backward, so only one (..., d_out) tensor
        # besides it exists at a time (a scaled copy and a sum would add two more to the peak)
        return result.add_(update.to(result.dtype), alpha=self.scale)

    # ---- initialization -------------------------------------------------------------------
    @torch.no_grad()
    def init_svd(self) -> None:
        """A = V_r^T, B = U_r, S = 0: output unchanged, base untouched."""
        u, _, vh = top_singular_triplets(weight_as_linear(self.base), self.rank)
        self.lamda_A.copy_(vh)
        self.lamda_B.copy_(u)
        self.lamda_S.zero_()

    @torch.no_grad()
    def init_gradient(self, gradient: torch.Tensor) -> None:
        """A = V_r^T, B = U_r of the task gradient G (d_out, d_in), S = 0: output unchanged, base
        untouched, and S's first gradient is s diag(sigma_r(G)) (gradient_init.py)."""
        u, _, vh = top_singular_triplets(gradient, self.rank)
        self.lamda_A.copy_(vh)
        self.lamda_B.copy_(u)
        self.lamda_S.zero_()

    @torch.no_grad()
    def init_svd_residual(self) -> None:
        """S = I, A = diag(sqrt(sigma_r / s)) V_r^T, B = U_r diag(sqrt(sigma_r / s)), so
        s B S A = U_r diag(sigma_r) V_r^T; the base becomes the residual W - s B S A."""
        u, sigma, vh = top_singular_triplets(weight_as_linear(self.base), self.rank)
        root = torch.sqrt(sigma / self.scale)
        self.lamda_A.copy_(root[:, None] * vh)
        self.lamda_B.copy_(u * root[None, :])
        self.lamda_S.copy_(torch.eye(self.rank))
        self.lamda_B0S0 = self.lamda_B @ self.lamda_S
        self.subtract_initial_update_from_base()

    @torch.no_grad()
    def init_random(self) -> None:
        """As the authors' released code: A and S Kaiming-uniform, B = 0 (output unchanged)."""
        nn.init.kaiming_uniform_(self.lamda_A, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.lamda_S, a=math.sqrt(5))
        self.lamda_B.zero_()

    @torch.no_grad()
    def subtract_initial_update_from_base(self) -> None:
        """W <- W - s B0S0 A (the svd-residual base), in the base's dtype and orientation."""
        self._add_to_base_weight(-self.scale * (self.lamda_B0S0.float() @ self.lamda_A.float()))

    # ---- update, merge --------------------------------------------------------------------
    @torch.no_grad()
    def learned_update(self) -> torch.Tensor:
        """The update relative to the original base, (B S - B0S0), as LoRA's B: (d_out, r), fp32."""
        update = self.lamda_B.float() @ self.lamda_S.float()
        return update - self.lamda_B0S0.float() if self.lamda_B0S0.numel() else update

    @torch.no_grad()
    def merged_base(self) -> nn.Module:
        """The base module with s B S A folded into its weight (the layer's whole effect)."""
        self._add_to_base_weight(self.scale * (self.lamda_B.float() @ self.lamda_S.float() @ self.lamda_A.float()))
        return self.base

    def _add_to_base_weight(self, delta: torch.Tensor) -> None:
        weight = self.base.weight
        delta = delta.T if isinstance(self.base, Conv1D) else delta
        weight.copy_((weight.float() + delta.to(weight.device)).to(weight.dtype))

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scale={self.scale:g}, frozen_columns={int(self.frozen_columns)}"
