"""Memory benchmark: the cost estimate against measurement, and LaMDA against PEFT LoRA.

    python benchmarks/memory.py

For MiniLM (real), a tiny Llama and a tiny GPT-2 at two (batch, seq) shapes, and for full
fine-tuning, PEFT LoRA (dropout 0.05 and 0), LaMDA and LaMDA++ at the same base rank 8 (LaMDA++
ranks from the equal-energy allocation, same total rank): every component estimated from the
config against one measured training step, and the measured LaMDA / LoRA ratios of trainable
adapter parameters (averaged over the freezing schedule, eta = 0.3) and training memory.
"""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import lamda_core as lc  # noqa: E402
from lamda_core.costs.estimate import CostBreakdown  # noqa: E402

MODELS = {"MiniLM-L6": ("default", "classification"), "tiny Llama": ("tiny-llama", "causal-lm"),
          "tiny GPT-2": ("tiny-gpt2", "causal-lm")}
SHAPES = [(4, 64), (16, 128)]
METHODS = [("full", "full", 0.0), ("LoRA (dropout 0.05)", "lora", 0.05), ("LoRA (dropout 0)", "lora", 0.0),
           ("LaMDA", "lamda", 0.0), ("LaMDA++", "lamda++", 0.0)]
RANK = 8


def mib(value: float) -> str:
    return f"{value / 2 ** 20:.2f}"


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    accuracy, ratios = [], []
    for model_name, (source, task) in MODELS.items():
        report = lc.scan_spectra(source, top_k=4 * RANK if source != "tiny-llama" else 32)
        pattern = lc.allocate_ranks(report, base_rank=RANK).rank_pattern
        for batch, seq in SHAPES:
            measured = {}
            for label, method, dropout in METHODS:
                query = lc.CostQuery(source, method, RANK, pattern if method == "lamda++" else None,
                                     batch_size=batch, seq_len=seq, task=task, dropout=dropout)
                estimate = lc.estimate_costs(query)
                measure = lc.measure_costs(query)
                measured[label] = measure
                errors = {c: (getattr(estimate, c) - getattr(measure, c)) / getattr(measure, c)
                          for c in CostBreakdown.COMPONENTS + ("total",) if getattr(measure, c)}
                worst = max(errors, key=lambda c: abs(errors[c]))
                accuracy.append((model_name, f"{batch}x{seq}", label, mib(estimate.total), mib(measure.total),
                                 f"{errors['total']:+.2%}", f"{errors['activations_base']:+.2%}",
                                 f"{errors.get('activations_adapter', 0):+.2%}", f"{worst} {errors[worst]:+.2%}"))
            lamda = measured["LaMDA"]
            for lora_label in ("LoRA (dropout 0.05)", "LoRA (dropout 0)"):
                lora = measured[lora_label]
                ratios.append((model_name, f"{batch}x{seq}", lora_label, f"{lora.adapter_start:,}",
                               f"{lamda.adapter_start:,} / {lamda.trainable_average - (lamda.trainable_start - lamda.adapter_start):,.0f}",
                               f"{lora.adapter_start / (lamda.trainable_average - (lamda.trainable_start - lamda.adapter_start)):.1f}x",
                               mib(lora.total), mib(lamda.total), f"{lamda.total / lora.total:.3f}",
                               mib(lora.activations_adapter), mib(lamda.activations_adapter)))

    print("### Estimated against measured training memory (MiB; one training step, float32, AdamW, CPU)\n")
    print("| model | batch x seq | method | estimated total | measured total | total error | base activations error "
          "| adapter activations error | worst component |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for row in accuracy:
        print("| " + " | ".join(row) + " |")
    print("\n### LaMDA against PEFT LoRA, measured (rank 8; LaMDA adapter parameters at the start / averaged "
          "over the freezing schedule)\n")
    print("| model | batch x seq | LoRA | LoRA adapter params | LaMDA adapter params (start / average) "
          "| fewer parameter updates | LoRA memory | LaMDA memory | LaMDA / LoRA memory "
          "| LoRA adapter activations | LaMDA adapter activations |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in ratios:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
