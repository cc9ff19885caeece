"""Memory benchmark: the cost estimate against measurement, and LaMDA against PEFT LoRA.

    python benchmarks/memory.py [--peft-family-only] [--llm-only]

For MiniLM (real), a tiny Llama and a tiny GPT-2 at two (batch, seq) shapes, and for full
fine-tuning, PEFT LoRA (dropout 0.05 and 0), LaMDA and LaMDA++ at the same base rank 8 (LaMDA++
ranks from the equal-energy allocation, same total rank): the estimated peak against the peak
the allocator reached in one measured steady-state training step (costs/peak.py), beside the
census (saved tensors + parameters, gradients, optimizer state) and the process's RSS growth;
the measured LaMDA / LoRA ratios of trainable adapter parameters (averaged over the freezing
schedule, eta = 0.3) and of peak memory; and the census component by component. Then PEFT's
DoRA, PiSSA, VeRA and PSOFT (rank 8, dropout 0 and 0.05) on every model and shape: estimated
against measured peak (PSOFT adapts nn.Linear only, so not GPT-2's Conv1D). Last, the embedded
SmolLM2-135M-Instruct at the app's default shape (batch x seq of choices) for LaMDA, LoRA, DoRA and
full fine-tuning, each at its defaults.
"""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import lamda_core as lc  # noqa: E402
from lamda_core.planning.estimate import CostBreakdown  # noqa: E402

MODELS = {"MiniLM-L6": ("default", "classification"), "tiny Llama": ("tiny-llama", "causal-lm"),
          "tiny GPT-2": ("tiny-gpt2", "causal-lm")}
SHAPES = [(4, 64), (16, 128)]
METHODS = [("full", "full", 0.0), ("LoRA (dropout 0.05)", "lora", 0.05), ("LoRA (dropout 0)", "lora", 0.0),
           ("LaMDA", "lamda", 0.0), ("LaMDA++", "lamda++", 0.0)]
RANK = 8
PEFT_FAMILY = ("dora", "pissa", "vera", "psoft")
# beyond the grid: other shapes (never used to read the transient formulas), bfloat16 (whose
# half-precision terms were read from MiniLM and tiny Llama at 8x96) and checkpointing (not tuned)
HELD_OUT = [("MiniLM-L6", 8, 200, "float32", False), ("MiniLM-L6", 8, 96, "bfloat16", False),
            ("tiny Llama", 8, 96, "bfloat16", False), ("tiny GPT-2", 2, 256, "float32", False),
            ("MiniLM-L6", 16, 128, "float32", True), ("tiny Llama", 16, 128, "float32", True),
            ("tiny GPT-2", 16, 128, "float32", True)]


def mib(value: float) -> str:
    return f"{value / 2 ** 20:.2f}"


def peft_family_rows() -> list[tuple]:
    """(model, shape, method, estimated, measured, error, phases) for every PEFT family method."""
    rows = []
    for model_name, (source, task) in MODELS.items():
        for batch, seq in SHAPES:
            for method in PEFT_FAMILY:
                if method == "psoft" and source == "tiny-gpt2":
                    continue
                for dropout in (0.0, 0.05):
                    query = lc.CostQuery(source, method, RANK, batch_size=batch, seq_len=seq, task=task,
                                         dropout=dropout)
                    estimate, measure = lc.estimate_costs(query), lc.measure_costs(query)
                    rows.append((model_name, f"{batch}x{seq}", f"{method} (dropout {dropout:g})", mib(estimate.peak),
                                 mib(measure.peak), f"{estimate.peak / measure.peak - 1:+.1%}",
                                 f"{estimate.peak_phase} / {measure.peak_phase}"))
    return rows


def peft_family_table() -> None:
    table("PEFT's DoRA, PiSSA, VeRA and PSOFT: estimated against measured peak (MiB; rank 8, float32, AdamW, CPU)",
          ["model", "batch x seq", "method", "estimated peak", "measured peak (allocator)", "peak error",
           "phase (estimated / measured)"], peft_family_rows())


def llm_table() -> None:
    """SmolLM2 (30 layers, GQA, SwiGLU, tied 49,152-token embedding) at the app's default shape."""
    from lamda_core import choices

    rows = []
    for method in ("lamda", "lora", "dora", "full"):
        query = lc.CostQuery("smollm2", method, task="causal-lm")  # the method's default rank and dropout
        estimate, measure = lc.estimate_costs(query), lc.measure_costs(query)
        rows.append(("SmolLM2-135M-Instruct", f"{choices.DEFAULT_BATCH_SIZE}x{choices.DEFAULT_SEQ_LEN}", method,
                     mib(estimate.peak), mib(measure.peak), f"{estimate.peak / measure.peak - 1:+.1%}",
                     f"{estimate.peak_phase} / {measure.peak_phase}"))
    table("The embedded LLM at the app's default shape, each method at its defaults (MiB, float32, AdamW, CPU)",
          ["model", "batch x seq", "method", "estimated peak", "measured peak (allocator)", "peak error",
           "phase (estimated / measured)"], rows)


def main() -> None:
    import sys

    import transformers

    transformers.logging.set_verbosity_error()
    if "--peft-family-only" in sys.argv:
        peft_family_table()
        return
    if "--llm-only" in sys.argv:
        llm_table()
        return
    peaks, census, ratios = [], [], []
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
                where = (model_name, f"{batch}x{seq}", label)
                peaks.append(where + (mib(estimate.peak), mib(measure.peak), f"{estimate.peak / measure.peak - 1:+.1%}",
                                      f"{estimate.peak_phase} / {measure.peak_phase}", mib(measure.total),
                                      f"{measure.total / measure.peak - 1:+.0%}", mib(measure.rss_growth)))
                errors = {c: (getattr(estimate, c) - getattr(measure, c)) / getattr(measure, c)
                          for c in CostBreakdown.COMPONENTS + ("total",) if getattr(measure, c)}
                worst = max(errors, key=lambda c: abs(errors[c]))
                census.append(where + (mib(estimate.total), mib(measure.total), f"{errors['total']:+.2%}",
                                       f"{errors['activations_base']:+.2%}",
                                       f"{errors.get('activations_adapter', 0):+.2%}", f"{worst} {errors[worst]:+.2%}"))
            lamda = measured["LaMDA"]
            lamda_average = lamda.trainable_average - (lamda.trainable_start - lamda.adapter_start)
            for lora_label in ("LoRA (dropout 0.05)", "LoRA (dropout 0)"):
                lora = measured[lora_label]
                ratios.append((model_name, f"{batch}x{seq}", lora_label, f"{lora.adapter_start:,}",
                               f"{lamda.adapter_start:,} / {lamda_average:,.0f}",
                               f"{lora.adapter_start / lamda_average:.1f}x", mib(lora.peak), mib(lamda.peak),
                               f"{lamda.peak / lora.peak:.3f}", f"{lamda.total / lora.total:.3f}"))

    held_out = []
    for model_name, batch, seq, dtype, checkpointing in HELD_OUT:
        source, task = MODELS[model_name]
        for label, method, dropout in METHODS[:4]:
            query = lc.CostQuery(source, method, RANK, batch_size=batch, seq_len=seq, task=task, dropout=dropout,
                                 dtype=dtype, gradient_checkpointing=checkpointing)
            estimate, measure = lc.estimate_costs(query), lc.measure_costs(query)
            held_out.append((model_name, f"{batch}x{seq} {dtype}{' checkpointed' if checkpointing else ''}", label,
                             mib(estimate.peak), mib(measure.peak), f"{estimate.peak / measure.peak - 1:+.1%}",
                             f"{estimate.peak_phase} / {measure.peak_phase}"))

    table("Estimated against measured peak (MiB; one steady-state training step, float32, AdamW, CPU)",
          ["model", "batch x seq", "method", "estimated peak", "measured peak (allocator)", "peak error",
           "phase (estimated / measured)", "census total", "census vs peak", "RSS growth"], peaks)
    table("Beyond the grid: other shapes, bfloat16 and gradient checkpointing (MiB, CPU, AdamW)",
          ["model", "shape", "method", "estimated peak", "measured peak", "peak error", "phase (estimated / measured)"],
          held_out)
    table("LaMDA against PEFT LoRA, measured (rank 8; LaMDA adapter parameters at the start / averaged over the "
          "freezing schedule)", ["model", "batch x seq", "LoRA", "LoRA adapter params",
                                 "LaMDA adapter params (start / average)", "fewer parameter updates",
                                 "LoRA peak", "LaMDA peak", "LaMDA / LoRA peak", "LaMDA / LoRA census"], ratios)
    table("The census, component by component: estimated against counted (MiB)",
          ["model", "batch x seq", "method", "estimated census", "counted census", "census error",
           "base activations error", "adapter activations error", "worst component"], census)
    peft_family_table()
    llm_table()


def table(title: str, header: list[str], rows: list[tuple]) -> None:
    print(f"### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if k < 3 else "---:" for k in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


if __name__ == "__main__":
    main()
