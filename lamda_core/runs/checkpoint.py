"""What a checkpoint holds and how it goes back into a model: the trainable tensors and every
LaMDA tensor and buffer (trainable.safetensors), optimizer, scheduler, RNG and trainer state."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..adapter.inject import adapter_state_names, lamda_layers
from ..errors import RunError

CHECKPOINT_FILES = ("trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters plus every LaMDA tensor and buffer (A, S, B, B0S0, frozen columns)."""
    state = {name: tensor for name, tensor in model.state_dict().items() if name in adapter_state_names(model)}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            state[name] = parameter.detach()
    return {k: v.contiguous().cpu() for k, v in state.items()}


def write_checkpoint(folder: Path, model: nn.Module, optimizer, scheduler, trainer_state: dict) -> None:
    from safetensors.torch import save_file

    save_file(trainable_state(model), str(folder / "trainable.safetensors"))
    torch.save(getattr(optimizer, "optimizer", optimizer).state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    torch.save(torch.get_rng_state(), folder / "rng.pt")
    (folder / "trainer_state.json").write_text(json.dumps(trainer_state))


def verify_checkpoint(folder: Path, config_digest: str) -> dict:
    """Check a checkpoint before resuming from it: every file present, the trainer state readable
    and at the step its folder names, every saved tensor readable and finite, and the run's
    config unchanged since it was written (``config_digest``, see RunFolder.config_digest).
    Returns the trainer state; raises RunError naming the problem."""
    from safetensors.torch import load_file

    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise RunError(f"checkpoint {folder} is incomplete: {', '.join(missing)} missing")
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
        tensors = load_file(str(folder / "trainable.safetensors"))
    except Exception as error:  # JSON or safetensors: damaged bytes
        raise RunError(f"checkpoint {folder} is unreadable: {error}") from None
    named_step = int(folder.name.removeprefix("step-"))
    if state.get("step") != named_step:
        raise RunError(f"checkpoint {folder} holds step {state.get('step')}, its folder says {named_step}")
    broken = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise RunError(f"checkpoint {folder} holds non-finite values in {', '.join(broken[:3])}"
                       f"{' and more' if len(broken) > 3 else ''}; resume from an earlier run or start again")
    if state.get("config_digest", config_digest) != config_digest:
        raise RunError(f"run_config.json of {folder.parent.parent} changed after checkpoint {folder.name} was "
                       "written; a resume must train the same run: put the config back or start a new run")
    return state


@torch.no_grad()
def restore_model(folder: Path, model: nn.Module) -> dict:
    """Load a checkpoint's tensors into ``model`` and the RNG state; returns the trainer state."""
    from safetensors.torch import load_file

    state = json.loads((folder / "trainer_state.json").read_text())
    parameters = dict(model.named_parameters())
    for name, value in load_file(str(folder / "trainable.safetensors")).items():
        if name in parameters:
            parameters[name].copy_(value)
            continue
        owner, _, attribute = name.rpartition(".")
        module = model.get_submodule(owner)
        if attribute == "lamda_B0S0":  # empty unless svd-residual: take its saved shape
            setattr(module, attribute, value.to(module.lamda_A.device))
        else:
            getattr(module, attribute).copy_(value)
    for layer in lamda_layers(model).values():
        if int(layer.frozen_columns) == layer.rank and state.get("freeze_rule", "linear") == "linear":
            layer.lamda_B.requires_grad_(False)
    torch.set_rng_state(torch.load(folder / "rng.pt", weights_only=True))
    return state


def restore_optimizer(folder: Path, optimizer, scheduler) -> None:
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
