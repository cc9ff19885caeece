"""The noise floor that block quantization (GGUF's Q4_1, as in the embedded SmolLM2) adds to a
weight's spectrum.

Q4_1 stores each run of ``block`` = 32 consecutive weights of a row as min + step * q with
q in 0..15 and step = (max - min) / 15, so a block's rounding error is about uniform on
[-step / 2, step / 2]. The steps are read back from the de-quantized weights (each block's max and
min are its codes 15 and 0). The floor is the largest singular value of a seeded draw of such an
error (each entry uniform within its own block's step): blocks of very different steps make the
error far from identically distributed, and its norm then exceeds the Marchenko-Pastur edge
sigma * (sqrt(d_out) + sqrt(d_in)) of an i.i.d. matrix of the same mean variance (3.3x on MiniLM's
last output projection). It is an upper estimate: on MiniLM's matrices quantized here it is within
6% of the real rounding error's norm, except where blocks hold outliers (2.2x on layer 0's output
projection: weights near a block's min round almost exactly). Singular
values of W below that floor are at the level of the rounding noise: the tail of a normalized
spectrum under floor / sigma_1 says more about the 4-bit file than about the pretrained model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Q4_1_BLOCK = 32
Q4_1_LEVELS = 15


@dataclass
class NoiseFloor:
    """sigma: the rounding error's standard deviation per entry; floor: its expected largest
    singular value; relative: floor / sigma_1(W); below: the share of W's singular values under floor."""
    sigma: float
    floor: float
    relative: float
    below: float


def block_rounding_sigma(weight: torch.Tensor, block: int = Q4_1_BLOCK, levels: int = Q4_1_LEVELS) -> float:
    """Per-entry standard deviation of the rounding error of (d_out, d_in) ``weight`` quantized in
    row blocks of ``block`` values with ``levels`` + 1 codes (step = (max - min) / levels)."""
    d_out, d_in = weight.shape
    if d_in % block:
        raise ValueError(f"d_in = {d_in} is not a multiple of the block size {block}")
    blocks = weight.detach().float().reshape(d_out, d_in // block, block)
    step = (blocks.amax(-1) - blocks.amin(-1)) / levels
    return math.sqrt(float((step ** 2).mean()) / 12)


def noise_floor(weight: torch.Tensor, singular_values: torch.Tensor | None = None, block: int = Q4_1_BLOCK,
                levels: int = Q4_1_LEVELS) -> NoiseFloor:
    """The quantization noise floor of ``weight`` against its own spectrum (``singular_values``,
    computed when not given)."""
    d_out, d_in = weight.shape
    blocks = weight.detach().float().reshape(d_out, d_in // block, block)
    step = (blocks.amax(-1, keepdim=True) - blocks.amin(-1, keepdim=True)) / levels
    uniform = torch.rand(blocks.shape, generator=torch.Generator().manual_seed(0)) - 0.5
    floor = float(torch.linalg.matrix_norm((uniform * step).reshape(d_out, d_in), 2))
    sigma = block_rounding_sigma(weight, block, levels)
    values = singular_values if singular_values is not None else torch.linalg.svdvals(weight.detach().float())
    return NoiseFloor(sigma, floor, floor / float(values[0]), float((values < floor).float().mean()))


def quantize_q4_1(weight: torch.Tensor, block: int = Q4_1_BLOCK, levels: int = Q4_1_LEVELS) -> torch.Tensor:
    """``weight`` rounded as Q4_1 does (min + step * round((w - min) / step) per row block), for
    checking the floor against real rounding noise."""
    d_out, d_in = weight.shape
    blocks = weight.detach().float().reshape(d_out, d_in // block, block)
    low = blocks.amin(-1, keepdim=True)
    step = ((blocks.amax(-1, keepdim=True) - low) / levels).clamp_min(1e-12)
    return (low + step * torch.round((blocks - low) / step)).reshape(d_out, d_in)
