"""The optimizer's parameter groups and the learning-rate schedule."""
from __future__ import annotations

import math

from torch import nn


def parameter_groups(model: nn.Module, heads: list[str], lr: float, core_lr: float, head_lr: float) -> list[dict]:
    """AdamW groups: trainable parameters of the modules named in ``heads`` (the task head, also
    inside PEFT's modules_to_save copies) at ``head_lr``, LaMDA's cores S at ``core_lr``, every
    other trainable one (B, LoRA's A and B, the body in full fine-tuning) at ``lr``."""
    body, core, head = [], [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            in_head = any(f".{h}." in f".{name}" for h in heads)
            (head if in_head else core if name.endswith("lamda_S") else body).append(parameter)
    # always three groups, empty ones too: a checkpoint's optimizer state then fits the optimizer
    # of a resume whatever the freezer has emptied since (B leaves the first group)
    return [{"params": body, "lr": lr}, {"params": core, "lr": core_lr}, {"params": head, "lr": head_lr}]


def lr_lambda(schedule: str, total_steps: int, warmup_fraction: float):
    """The LambdaLR factor at step t: linear warm-up over warmup_fraction * T steps, then
    "linear" decay to 0, "cosine" decay to 0 or "constant"."""
    warmup = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0
    return factor
