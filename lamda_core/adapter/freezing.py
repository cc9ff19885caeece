"""Gradual freezing of B (PMB), for any training loop (``trainer_callback`` runs it in transformers.Trainer).

Column j of B belongs to singular direction j; columns freeze largest singular value first.
With T optimizer steps, t_i = ceil(eta * T) and after optimizer step t:

    linear (default):      k(t) = min(r, floor(r * t / t_i))  columns frozen
    grad-mask-stepwise:    k(t) = min(r, floor(t / t_i))      (the authors' released rule)
    never:                 k(t) = 0                           (B trains to the end, like LoRA's B)

eta = 0 freezes all of B before the first step (B never trains: a trained r x r core between
frozen factors, as LoRA-XS and PSOFT do); the warm-up study in docs/quality.md compares both ends.

"linear" freezes for real: the frozen columns' gradients are masked and their values are
restored bit for bit after every optimizer step (AdamW momentum and weight decay would move
them otherwise); at k = r, B stops requiring gradients and leaves the optimizer with its state.
"grad-mask-stepwise" does what the authors' code does: it only zeroes gradients.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .inject import lamda_layers, lamda_state
from .layer import LamdaLayer


def frozen_column_count(rule: str, rank: int, step: int, total_steps: int, fraction: float) -> int:
    """Number of B columns frozen after ``step`` optimizer steps out of ``total_steps``."""
    if rule == "never":
        return 0
    if fraction == 0:  # frozen before the first step
        return rank
    freeze_steps = max(1, math.ceil(fraction * total_steps))
    if rule == "linear":
        return min(rank, rank * step // freeze_steps)
    if rule == "grad-mask-stepwise":
        return min(rank, step // freeze_steps)
    raise ConfigError(f"unknown freeze rule {rule!r}")


def _unwrap_optimizer(optimizer):
    """The torch optimizer inside wrappers such as accelerate's AcceleratedOptimizer."""
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    return optimizer


class PMBFreezer:
    """Call ``step(optimizer)`` right after every ``optimizer.step()``.

    Resumes from the layers' ``frozen_columns`` buffers when ``completed_steps`` > 0.
    """

    def __init__(self, model: nn.Module, total_steps: int, fraction: float | None = None,
                 rule: str | None = None, completed_steps: int = 0):
        self.layers: list[LamdaLayer] = list(lamda_layers(model).values())
        if not self.layers:
            raise ConfigError("the model has no LaMDA layers to freeze; call apply_lamda first")
        if total_steps < 1:
            raise ConfigError(f"total_steps must be at least 1, got {total_steps}")
        config = lamda_state(model).config
        self.fraction = fraction if fraction is not None else config.freeze_fraction
        self.rule = rule or config.freeze_rule
        self.total_steps = total_steps
        self.completed_steps = completed_steps
        self._frozen_values: dict[int, torch.Tensor] = {}
        self._hooks = {}
        for layer in self.layers:
            if layer.lamda_B.requires_grad and self.columns_for(layer, completed_steps) == layer.rank:
                layer.frozen_columns.fill_(layer.rank)  # eta = 0: B frozen before the first step
                layer.lamda_B.requires_grad_(False)
        for layer in self.layers:
            if layer.lamda_B.requires_grad:
                self._hooks[id(layer)] = layer.lamda_B.register_hook(self._mask_for(layer))
            if int(layer.frozen_columns) > 0:
                self._frozen_values[id(layer)] = layer.lamda_B.detach().clone()

    def columns_for(self, layer: LamdaLayer, step: int) -> int:
        return frozen_column_count(self.rule, layer.rank, step, self.total_steps, self.fraction)

    @staticmethod
    def _mask_for(layer: LamdaLayer):
        def mask(grad: torch.Tensor) -> torch.Tensor:
            k = int(layer.frozen_columns)
            if k == 0:
                return grad
            grad = grad.clone()
            grad[:, :k] = 0
            return grad
        return mask

    @torch.no_grad()
    def step(self, optimizer=None) -> bool:
        """Freeze this step's columns; True when a B stopped training (the trainable set changed)."""
        self.completed_steps += 1
        dropped = False
        for layer in self.layers:
            previous = int(layer.frozen_columns)
            if self.rule == "linear" and previous > 0 and layer.lamda_B.requires_grad:
                layer.lamda_B[:, :previous].copy_(self._frozen_values[id(layer)][:, :previous])
            k = self.columns_for(layer, self.completed_steps)
            if k <= previous:
                continue
            layer.frozen_columns.fill_(k)
            if self.rule != "linear":
                continue
            values = self._frozen_values.setdefault(id(layer), layer.lamda_B.detach().clone())
            values[:, previous:k] = layer.lamda_B[:, previous:k]
            if k == layer.rank:
                self._drop_b(layer, optimizer)
                dropped = True
        return dropped

    def _drop_b(self, layer: LamdaLayer, optimizer) -> None:
        """B fully frozen: no gradient, out of the optimizer, its state freed."""
        b = layer.lamda_B
        b.requires_grad_(False)
        b.grad = None
        self._hooks.pop(id(layer)).remove()
        self._frozen_values.pop(id(layer), None)
        if optimizer is not None:
            inner = _unwrap_optimizer(optimizer)
            for group in inner.param_groups:
                group["params"] = [p for p in group["params"] if p is not b]
            inner.state.pop(b, None)

    def trainable_b_layers(self) -> int:
        return sum(layer.lamda_B.requires_grad for layer in self.layers)
