"""The method registry: entries by name (PEFT's ``register_peft_method`` is the model), and
``adapt``, the one way a method goes onto a model. Every module of this package registers its
entries when the package is imported (``methods/__init__.py`` imports them all)."""
from __future__ import annotations

import torch
from torch import nn

from ..adapter.config import LamdaConfig
from ..errors import ConfigError
from .base import Method

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
    """Every registered method: LaMDA's first, then the others in the order they registered."""
    return tuple(sorted(_REGISTRY, key=lambda n: -_REGISTRY[n].display_rank))


def display_order() -> tuple[str, ...]:
    """Cost tables and figures: the baselines first (full, then PEFT methods), LaMDA's after."""
    return tuple(sorted(_REGISTRY, key=lambda n: _REGISTRY[n].display_rank))


def adapt(model: nn.Module, method: str = "lamda", config: LamdaConfig | None = None, initialize: bool = True,
          gradients: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """One entry point for every registered method: the method's ``apply`` with ``config``
    (None: the method's defaults). ``initialize`` and ``gradients``: see adapter.inject.apply_lamda
    (LaMDA only); lamda++ without config.rank_pattern gets ranks from the spectra (Method.with_ranks)."""
    spec = get_method(method)
    return spec.apply(model, config or spec.adapter_config(), initialize, gradients)
