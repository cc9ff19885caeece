"""Putting adapters into a model: LaMDA layers (apply_lamda), the PEFT LoRA config, ``adapt`` for
any registered method (methods/); and counting what trains."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError, RankError, TargetError
from ..models.targets import MatrixInfo, pattern_matches, resolve_targets
from .config import LamdaConfig
from .identity import base_identity
from .layer import LamdaLayer

CLASSIFICATION_HEADS = ("classifier", "score")


@dataclass
class LamdaState:
    """What apply_lamda put on a model, kept as ``model.lamda_state``: the adapter config, the
    per-matrix ranks, the head modules trained beside it and the base's identity (identity.py)."""

    config: LamdaConfig
    ranks: dict[str, int]
    heads: list[str]
    base_identity: dict = field(default_factory=dict)


def lamda_state(model: nn.Module) -> LamdaState:
    state = getattr(model, "lamda_state", None)
    if state is None:
        raise ConfigError("the model has no LaMDA adapter (apply_lamda or load_adapter first)")
    return state


def lamda_layers(model: nn.Module) -> dict[str, LamdaLayer]:
    """{module name: LamdaLayer} of a model (names as in model.named_modules())."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LamdaLayer)}


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """{name: parameter} of every adapter parameter, trainable or not: LaMDA's A, S, B and every
    PEFT tuner layer's own (lora_A / lora_B and DoRA's magnitude, VeRA's scaling vectors, PSOFT's
    core; each layer names its own, as torchtune's adapter_params())."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    found = {}
    for module_name, module in model.named_modules():
        if isinstance(module, LamdaLayer):
            names = module.adapter_params()
        elif isinstance(module, BaseTunerLayer):
            names = list(module.adapter_layer_names)
        else:
            continue
        for local, parameter in module.named_parameters():
            if local.split(".")[0] in names:
                found[f"{module_name}.{local}" if module_name else local] = parameter
    return found


def adapter_state_names(model: nn.Module) -> set[str]:
    """state_dict names of every LaMDA tensor and buffer (A, S, B, B0S0, frozen columns)."""
    return {f"{name}.{t}" for name, layer in lamda_layers(model).items() for t in layer.STATE_NAMES}


def lora_config(config: LamdaConfig, ranks: dict[str, int], heads: list[str], conv1d: bool, **extra):
    """The PEFT LoraConfig with LaMDA's targets, ranks, alpha, dropout and heads (used to train
    LoRA and to export a LaMDA adapter as LoRA)."""
    from peft import LoraConfig

    return LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(ranks), rank_pattern={n: r for n, r in ranks.items() if r != config.rank},
                      modules_to_save=list(heads) or None, fan_in_fan_out=conv1d, **extra)


def resolve_ranks(matrices: list[MatrixInfo], config: LamdaConfig) -> dict[str, int]:
    """Per-matrix rank: rank_pattern entries (first matching pattern) override config.rank.
    Errors name patterns matching no target and ranks larger than min(d_out, d_in)."""
    unused = [p for p in config.rank_pattern if not any(pattern_matches(p, m.name) for m in matrices)]
    if unused:
        raise TargetError(f"rank_pattern entries {unused} match none of the targeted matrices")
    ranks = {}
    for m in matrices:
        ranks[m.name] = next((int(r) for p, r in config.rank_pattern.items() if pattern_matches(p, m.name)),
                             int(config.rank))
    too_big = [f"{m.name} ({m.d_out}x{m.d_in}, rank {ranks[m.name]} > {m.max_rank})"
               for m in matrices if ranks[m.name] > m.max_rank]
    if too_big:
        raise RankError("rank larger than min(d_out, d_in) for " + ", ".join(too_big[:5])
                        + (f" and {len(too_big) - 5} more" if len(too_big) > 5 else "")
                        + f"; the largest rank every targeted matrix allows is {largest_rank(matrices)[0]}")
    return ranks


def largest_rank(matrices: list[MatrixInfo]) -> tuple[int, MatrixInfo]:
    """(the largest uniform rank every matrix allows, min over matrices of min(d_out, d_in); the
    matrix that sets it)."""
    narrowest = min(matrices, key=lambda m: m.max_rank)
    return narrowest.max_rank, narrowest


def head_module_names(model: nn.Module, patterns: list[str] | None) -> list[str]:
    """Modules trained in full beside the adapter. None: the classification head, if any."""
    names = [name for name, _ in model.named_modules() if name]
    if patterns is None:
        is_classifier = type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification"))
        return [n for n in names if n in CLASSIFICATION_HEADS] if is_classifier else []
    missing = [p for p in patterns if not any(pattern_matches(p, n) for n in names)]
    if missing:
        raise TargetError(f"trainable_modules {missing} match no module of {type(model).__name__}")
    chosen = [n for n in names if any(pattern_matches(p, n) for p in patterns)]
    return [n for n in chosen if not any(n.startswith(o + ".") for o in chosen)]  # outermost only


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def apply_lamda(model: nn.Module, config: LamdaConfig | None = None, initialize: bool = True,
                gradients: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Replace each targeted projection by a LamdaLayer, in place; freeze everything but S, B and
    the head. ``initialize=False`` skips the initialization, for loading saved values. The
    ``gradient`` init needs ``gradients`` ({matrix name: dL/dW}, from estimate_gradients)."""
    config = config or LamdaConfig()
    if lamda_layers(model):
        raise ConfigError("this model already has LaMDA layers; load a fresh base to apply another adapter")
    matrices = resolve_targets(model, config.targets)
    if initialize and config.init == "gradient":
        missing = [m.name for m in matrices if m.name not in (gradients or {})]
        if missing:
            raise ConfigError(f"init 'gradient' needs the task gradient of every target ({missing[0]} has none): "
                              "pass gradients=estimate_gradients(model, config.targets, batches) "
                              "(lamda_core.adapter.gradient_init), or choose init 'svd'")
    ranks = resolve_ranks(matrices, config)
    heads = head_module_names(model, config.trainable_modules)
    identity = base_identity(model, matrices)  # before svd-residual changes the base weights

    model.requires_grad_(False)
    adapter_dtype = getattr(torch, config.adapter_dtype)
    for m in matrices:
        layer = LamdaLayer(model.get_submodule(m.name), ranks[m.name], config.alpha, config.dropout, adapter_dtype)
        if initialize and config.init == "gradient":
            layer.init_gradient(gradients[m.name])
        elif initialize:
            {"svd": layer.init_svd, "svd-residual": layer.init_svd_residual, "random": layer.init_random}[config.init]()
        set_submodule(model, m.name, layer)
    for name in heads:
        model.get_submodule(name).requires_grad_(True)

    model.lamda_state = LamdaState(config, ranks, heads, identity)
    return model


@dataclass(frozen=True)
class ParameterCount:
    """total: every parameter; trainable: requires_grad; adapter: trainable LaMDA/LoRA
    parameters; other_trainable: the rest of trainable (task head, or all for full tuning)."""

    total: int
    trainable: int
    adapter: int
    other_trainable: int


def trainable_parameters(model: nn.Module) -> ParameterCount:
    adapter_ids = {id(p) for p in adapter_parameters(model).values()}
    total = trainable = adapter = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            adapter += p.numel() if id(p) in adapter_ids else 0
    return ParameterCount(total, trainable, adapter, trainable - adapter)
