"""The task gradient that the ``gradient`` initialization aligns LaMDA's frozen projections with.

For every targeted matrix W_l (d_out, d_in) of the *base* model (head attached, nothing trained):

    G_l = sum over k micro-batches of dL/dW_l          (d_out, d_in), float32

``LamdaLayer.init_gradient`` then sets A = V_r^T and B = U_r from G_l's top-r singular triplets,
S = 0: the first gradient of S is s U_r^T G_l V_r = s diag(sigma_r(G_l)), the best rank-r part of
what full fine-tuning would have done first, where the svd init only reaches the part of G_l that
lies in W_l's principal subspace. (The idea of aligning a low-rank adapter with the first
gradient is LoRA-GA's, Wang et al. 2024; LaMDA keeps A frozen, so it matters more here.)

Cost: k forward / backward passes, and one float32 gradient per targeted matrix held until the
SVD (the size of those weights, once, before the optimizer exists).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..models.targets import resolve_targets

DEFAULT_GRADIENT_BATCHES = 8


def estimate_gradients(model: nn.Module, targets: list[str] | None, batches: Iterable[dict]) -> dict[str, torch.Tensor]:
    """{matrix name: G (d_out, d_in)}: the summed gradient of the model's loss (``model(**batch).loss``)
    over ``batches`` with respect to every targeted weight, in eval mode (no dropout). The model's
    parameters are left exactly as they were, requires_grad flags included."""
    matrices = resolve_targets(model, targets)
    was_training = model.training
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    weights = {m.name: model.get_submodule(m.name).weight for m in matrices}
    model.eval()
    model.requires_grad_(False)
    for weight in weights.values():
        weight.requires_grad_(True)
        weight.grad = None
    try:
        seen = 0
        for batch in batches:
            model(**batch).loss.backward()
            seen += 1
        if not seen:
            raise ValueError("the gradient initialization needs at least one batch")
        gradients = {}
        for name, weight in weights.items():
            gradient = weight.grad.float()
            conv1d = isinstance(model.get_submodule(name), Conv1D)  # stores (d_in, d_out)
            gradients[name] = gradient.T.contiguous() if conv1d else gradient
    finally:
        for name, p in model.named_parameters():
            p.grad = None
            p.requires_grad_(flags[name])
        model.train(was_training)
    return gradients

