"""Saving, loading, merging and exporting LaMDA adapters.

Files of ``save_adapter``: ``lamda_config.json`` (LamdaConfig, per-matrix ranks and freeze
state, base identity) and ``lamda_adapter.safetensors`` (A, S, B per matrix, B0S0 for svd-residual, and the
trained head). ``export_peft`` writes a standard PEFT LoRA adapter: since A is frozen, the
learned update s (B S - B0S0) A is exactly rank r, so lora_A = A and lora_B = B S - B0S0.

Each writer checks its result and raises AdapterMismatchError rather than hand back something that
silently does nothing: ``load_adapter`` compares every loaded rank and tensor shape with the saved
ones, ``merge_adapter`` that every non-zero update changed its base weight (a bf16 weight can
round a small update away), ``export_peft`` that the files read back, with PEFT's own scaling,
reproduce each layer's update on a probe batch.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import AdapterMismatchError, ConfigError
from ..models.targets import resolve_targets
from .config import LamdaConfig
from .identity import base_identity, identity_mismatch
from .inject import apply_lamda, lamda_layers, lamda_state, lora_config, set_submodule

CONFIG_FILE = "lamda_config.json"
WEIGHTS_FILE = "lamda_adapter.safetensors"
FORMAT = "lamda-adapter/1"
HEAD_PREFIX = "head."
STORED_TENSORS = ("lamda_A", "lamda_S", "lamda_B", "lamda_B0S0")  # frozen_columns goes to the JSON


def _require_lamda(model: nn.Module) -> dict:
    layers = lamda_layers(model)
    if not layers:
        raise ConfigError("the model has no LaMDA layers (apply_lamda or load_adapter first)")
    return layers


def save_adapter(model: nn.Module, folder: str | Path) -> Path:
    """Write the adapter (not the base) to ``folder``; returns the folder."""
    layers = _require_lamda(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{t}": getattr(layer, t).detach().contiguous().cpu()
               for name, layer in layers.items() for t in STORED_TENSORS}
    state = lamda_state(model)
    for head in state.heads:
        for pname, p in model.get_submodule(head).named_parameters():
            tensors[f"{HEAD_PREFIX}{head}.{pname}"] = p.detach().contiguous().cpu()
    meta = {
        "format": FORMAT,
        "config": state.config.to_dict(),
        "heads": state.heads,
        "matrices": {name: {"rank": layer.rank, "d_out": layer.d_out, "d_in": layer.d_in,
                            "base_type": type(layer.base).__name__,
                            "frozen_columns": int(layer.frozen_columns),
                            "b_trainable": bool(layer.lamda_B.requires_grad)}
                     for name, layer in layers.items()},
        "base_model": state.base_identity,
    }
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def read_adapter_config(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise AdapterMismatchError(f"adapter folder {folder} does not exist")
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise AdapterMismatchError(f"{folder} is not a LaMDA adapter folder: expected {CONFIG_FILE} and {WEIGHTS_FILE}")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise AdapterMismatchError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_adapter(model: nn.Module, folder: str | Path) -> nn.Module:
    """Put a saved adapter onto a fresh base, in place. A base other than the one the adapter
    was saved from is an AdapterMismatchError that says how it differs."""
    meta = read_adapter_config(folder)
    names = list(meta["matrices"])
    saved_identity = meta["base_model"]
    try:
        matrices = resolve_targets(model, names)
    except Exception as error:  # a matrix name this model lacks
        raise AdapterMismatchError(f"adapter in {folder} does not fit {type(model).__name__}: {error}") from None
    problem = identity_mismatch(saved_identity, base_identity(model, matrices))
    if problem:
        raise AdapterMismatchError(f"cannot load the adapter in {folder}: {problem}")

    config = LamdaConfig.from_dict(meta["config"])
    config.targets = names
    config.rank_pattern = {name: m["rank"] for name, m in meta["matrices"].items()}
    config.trainable_modules = meta["heads"] or None
    apply_lamda(model, config, initialize=False)
    model.lamda_state.base_identity = saved_identity

    tensors = load_file(str(Path(folder) / WEIGHTS_FILE))
    _check_saved_shapes(lamda_layers(model), meta["matrices"], tensors, folder)
    with torch.no_grad():
        for name, layer in lamda_layers(model).items():
            for t in STORED_TENSORS:
                if t == "lamda_B0S0":  # empty unless svd-residual
                    layer.lamda_B0S0 = tensors[f"{name}.{t}"].to(layer.lamda_A.device)
                else:
                    getattr(layer, t).copy_(tensors[f"{name}.{t}"])
            if config.init == "svd-residual":
                layer.subtract_initial_update_from_base()
            layer.frozen_columns.fill_(meta["matrices"][name]["frozen_columns"])
            layer.lamda_B.requires_grad_(meta["matrices"][name]["b_trainable"])
        for key, value in tensors.items():
            if key.startswith(HEAD_PREFIX):
                model.get_parameter(key[len(HEAD_PREFIX):]).copy_(value)
    return model


def _check_saved_shapes(layers: dict, matrices: dict, tensors: dict, folder) -> None:
    """Every layer built from the config has the saved rank, and every saved tensor its shape."""
    for name, layer in layers.items():
        if layer.rank != matrices[name]["rank"]:
            raise AdapterMismatchError(
                f"{folder}: {name} loaded with rank {layer.rank}, saved with {matrices[name]['rank']}"
            )
        for t in ("lamda_A", "lamda_S", "lamda_B"):
            key = f"{name}.{t}"
            if key not in tensors:
                raise AdapterMismatchError(f"{folder}/{WEIGHTS_FILE} lacks {key}")
            if tuple(tensors[key].shape) != tuple(getattr(layer, t).shape):
                raise AdapterMismatchError(f"{folder}: {key} is saved as {tuple(tensors[key].shape)}, the model "
                                           f"needs {tuple(getattr(layer, t).shape)} (rank {layer.rank}, "
                                           f"{layer.d_out}x{layer.d_in})")


@torch.no_grad()
def merge_adapter(model: nn.Module) -> nn.Module:
    """Fold every LaMDA path into its base weight (W + s B S A) and remove the adapter layers.
    A non-zero update that leaves its weight unchanged (rounded away in a low-precision dtype)
    is an AdapterMismatchError."""
    for name, layer in _require_lamda(model).items():
        nonzero = bool(layer.learned_update().abs().sum() > 0)
        before = layer.base.weight.detach().clone()
        merged = layer.merged_base()
        if nonzero and torch.equal(before, merged.weight):
            raise AdapterMismatchError(f"merging {name} left its {merged.weight.dtype} weight unchanged: the update is "
                                       "below that dtype's precision; load the base in float32 and merge again")
        set_submodule(model, name, merged)
    del model.lamda_state
    return model


_TASK_TYPES = {"ForSequenceClassification": "SEQ_CLS", "ForCausalLM": "CAUSAL_LM",
               "LMHeadModel": "CAUSAL_LM", "ForTokenClassification": "TOKEN_CLS"}


def export_peft(model: nn.Module, folder: str | Path, base_model_name_or_path: str | None = None) -> Path:
    """Write a standard PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors) that
    ``peft.PeftModel.from_pretrained(original_base, folder)`` loads with the same outputs."""
    layers = _require_lamda(model)
    state = lamda_state(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, layer in layers.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = layer.lamda_A.detach().float().contiguous().cpu()
        tensors[f"base_model.model.{name}.lora_B.weight"] = layer.learned_update().contiguous().cpu()
    for head in state.heads:
        for pname, p in model.get_submodule(head).named_parameters():
            tensors[f"base_model.model.{head}.{pname}"] = p.detach().contiguous().cpu()
    architecture = type(model).__name__
    task_type = next((t for suffix, t in _TASK_TYPES.items() if architecture.endswith(suffix)), None)
    lora = lora_config(state.config, {name: layer.rank for name, layer in layers.items()}, state.heads,
                       conv1d=any(type(layer.base).__name__ == "Conv1D" for layer in layers.values()),
                       task_type=task_type,
                       base_model_name_or_path=base_model_name_or_path or state.base_identity["name_or_path"] or None)
    lora.save_pretrained(str(folder))
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    _check_peft_export(layers, folder)
    return folder


PROBE_ROWS = 4


@torch.no_grad()
def _check_peft_export(layers: dict, folder: Path) -> None:
    """Read the export back and compare, per layer on a seeded probe x (PROBE_ROWS, d_in), PEFT's
    update (lora_alpha / r, honouring rank_pattern and alpha_pattern) x A^T B^T with LaMDA's
    s x A^T (B S - B0S0)^T."""
    from peft import LoraConfig

    config = LoraConfig.from_pretrained(str(folder))
    saved = load_file(str(folder / "adapter_model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    for name, layer in layers.items():
        rank = next((r for p, r in config.rank_pattern.items() if name == p or name.endswith("." + p)), config.r)
        alpha = next((a for p, a in config.alpha_pattern.items() if name == p or name.endswith("." + p)),
                     config.lora_alpha)
        lora_a = saved[f"base_model.model.{name}.lora_A.weight"]
        lora_b = saved[f"base_model.model.{name}.lora_B.weight"]
        x = torch.randn(PROBE_ROWS, layer.d_in, generator=generator)
        peft_update = (alpha / rank) * (x @ lora_a.T @ lora_b.T)
        lamda_update = layer.scale * (x @ layer.lamda_A.float().cpu().T @ layer.learned_update().cpu().T)
        tolerance = 1e-4 * (1 + lamda_update.abs().max())
        if rank != layer.rank or not torch.allclose(peft_update, lamda_update, atol=float(tolerance), rtol=1e-3):
            raise AdapterMismatchError(
                f"the PEFT export in {folder} does not reproduce {name}: rank {rank} vs "
                f"{layer.rank}, largest difference {float((peft_update - lamda_update).abs().max()):.3g}"
            )
