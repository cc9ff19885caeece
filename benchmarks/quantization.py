"""How much of a spectrum is quantization noise: the Q4_1 noise floor (spectra/quantization.py)
of every adapted matrix, for the embedded SmolLM2 (de-quantized Q4_1 weights), for MiniLM
quantized here the same way, and for the tiny random Llama (whose whole spectrum is noise of
another kind: Marchenko-Pastur-like). First, the floor against the real rounding error of
MiniLM's matrices quantized here.

    python benchmarks/quantization.py
"""
from __future__ import annotations

import os
import statistics

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import lamda_core as lc  # noqa: E402
from lamda_core.models.targets import resolve_targets  # noqa: E402
from lamda_core.spectra.quantization import noise_floor, quantize_q4_1  # noqa: E402

MODELS = {"SmolLM2-135M-Instruct (Q4_1 file)": ("smollm2", "causal-lm", False),
          "MiniLM-L6 (float, quantized here)": ("default", "encoder", True),
          "tiny Llama (random, quantized here)": ("tiny-llama", "causal-lm", True)}


def weights(source: str, task: str) -> dict[str, tuple[str, torch.Tensor]]:
    """{matrix name: (its kind, its weight)} of every default target."""
    model, _ = lc.load_model(source, task=task)
    return {m.name: (m.kind, model.get_submodule(m.name).weight.detach()) for m in resolve_targets(model, None)}


def main() -> None:
    print("### The floor against real Q4_1 rounding (MiniLM's matrices quantized here)\n")
    print("| matrix | shape | floor (estimated) | sigma_1 of the real rounding error | error |")
    print("|---|---|---:|---:|---:|")
    for name, (_, w) in list(weights("default", "encoder").items())[:6]:
        quantized = quantize_q4_1(w)
        real = float(torch.linalg.matrix_norm(quantized - w, 2))
        floor = noise_floor(quantized).floor
        print(f"| {name} | {tuple(w.shape)} | {floor:.4f} | {real:.4f} | {floor / real - 1:+.1%} |")
    print("\n### Share of each spectrum at the noise level (median over matrices of a kind)\n")
    print("| model | kind | matrices | floor / sigma_1 | singular values below the floor (median, max) |")
    print("|---|---|---:|---:|---:|")
    for label, (source, task, quantize) in MODELS.items():
        by_kind: dict[str, list] = {}
        for kind, w in weights(source, task).values():
            if w.shape[1] % 32:
                continue
            by_kind.setdefault(kind, []).append(noise_floor(quantize_q4_1(w) if quantize else w))
        for kind, floors in by_kind.items():
            below = [f.below for f in floors]
            print(f"| {label} | {kind} | {len(floors)} | {statistics.median(f.relative for f in floors):.3f} | "
                  f"{statistics.median(below):.1%}, {max(below):.1%} |")


if __name__ == "__main__":
    main()
