"""A base model's identity, so that an adapter is never silently loaded onto the wrong base.

The fingerprint samples each targeted weight (up to 64 evenly strided values, in nn.Linear
orientation) and records their mean magnitude: cheap on a 7B model, robust to the base being
loaded in another dtype (compared with a relative tolerance), and different for any other
pretrained model.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.targets import MatrixInfo, weight_as_linear

SAMPLES_PER_MATRIX = 64
TOLERANCE = 2e-2  # relative, generous enough for a bf16/fp16 copy of the same weights


def _sample(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.detach().reshape(-1)
    stride = max(1, flat.numel() // SAMPLES_PER_MATRIX)
    return flat[::stride][:SAMPLES_PER_MATRIX].float().cpu()


def base_identity(model: nn.Module, matrices: list[MatrixInfo]) -> dict:
    """{name_or_path, model_type, architecture, matrices: {name: [d_out, d_in, mean |w|, samples]}}."""
    modules = dict(model.named_modules())
    fingerprint = {}
    for m in matrices:
        sample = _sample(weight_as_linear(modules[m.name]))
        fingerprint[m.name] = [m.d_out, m.d_in, float(sample.abs().mean()), [round(float(v), 6) for v in sample[:8]]]
    config = getattr(model, "config", None)
    return {
        "name_or_path": str(getattr(config, "_name_or_path", "") or ""),
        "model_type": str(getattr(config, "model_type", "") or ""),
        "architecture": type(model).__name__,
        "matrices": fingerprint,
    }


def identity_mismatch(saved: dict, current: dict) -> str | None:
    """A sentence saying how ``current`` differs from ``saved``, or None when they agree."""
    where = f"saved for {saved.get('name_or_path') or saved.get('model_type')!r}"
    missing = sorted(set(saved["matrices"]) - set(current["matrices"]))
    if missing:
        return f"the adapter ({where}) adapts matrices this model lacks: {missing[:3]}"
    for name, (d_out, d_in, scale, values) in saved["matrices"].items():
        cur_out, cur_in, cur_scale, cur_values = current["matrices"][name]
        if (d_out, d_in) != (cur_out, cur_in):
            return f"{name} is {cur_out}x{cur_in} here but {d_out}x{d_in} in the adapter ({where})"
        close = abs(cur_scale - scale) <= TOLERANCE * max(scale, 1e-12) and all(
            abs(a - b) <= TOLERANCE * max(scale, 1e-12) * 10 for a, b in zip(values, cur_values))
        if not close:
            return f"the weights of {name} differ from those the adapter was trained on ({where})"
    return None
