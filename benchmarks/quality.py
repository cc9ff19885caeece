"""Quality benchmark on the demo sentiment data with the default MiniLM.

    python benchmarks/quality.py [--steps 100] [--seeds 3]

LaMDA r=8, LaMDA++ at the same total rank, PEFT LoRA r=8 (dropout 0.05) and full fine-tuning, the
same number of steps and batch size for all. Learning rates are tuned per method on seed 0 over a
small grid (picked by validation accuracy, ties by eval loss: the demo set has no separate test split, so these
numbers are optimistic for every method alike), then three seeds are run at the chosen rate.
Also LaMDA per init variant, so the default init is chosen by measurement. Prints markdown tables.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import lamda_core as lc  # noqa: E402
from lamda_core.runs import TrainConfig, create_run, read_metrics  # noqa: E402
from lamda_core.trainer import run  # noqa: E402

GRID = {"lamda": [5e-3, 1e-2, 2e-2], "lamda++": [5e-3, 1e-2, 2e-2], "lora": [5e-4, 1e-3, 2e-3],
        "full": [5e-5, 1e-4, 2e-4]}
LABELS = {"lamda": "LaMDA r=8", "lamda++": "LaMDA++ (same total rank)", "lora": "PEFT LoRA r=8", "full": "full fine-tuning"}
BATCH, SEQ, RANK = 16, 64, 8


def train(root: Path, method: str, lr: float, seed: int, steps: int, ranks_file: str | None, init: str = "svd") -> dict:
    folder = root / f"{method}-{init}-{lr:g}-{seed}"
    create_run(TrainConfig(method=method, learning_rate=lr, seed=seed, max_steps=steps, batch_size=BATCH, seq_len=SEQ,
                           rank=RANK, ranks_file=ranks_file if method == "lamda++" else None, init=init,
                           eval_interval=steps, checkpoint_interval=10 * steps), folder)
    if run(folder) != "finished":
        raise RuntimeError((folder / "status.json").read_text())
    metrics = read_metrics(folder)
    summary = json.loads((folder / "summary.json").read_text())
    return {"accuracy": summary["eval_accuracy"], "eval_loss": summary["eval_loss"], "seconds_per_step": metrics[-1]["elapsed"] / steps,
            "adapter_start": metrics[0]["adapter_parameters"], "adapter_end": metrics[-1]["adapter_parameters"],
            "trainable_start": metrics[0]["trainable_parameters"], "trainable_end": metrics[-1]["trainable_parameters"]}


def mean_spread(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.1f} ± {100 * (statistics.stdev(values) if len(values) > 1 else 0):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        allocation = lc.allocate_ranks(lc.scan_spectra("default"), base_rank=RANK)
        ranks_file = str(root / "ranks.json")
        allocation.to_json(ranks_file)
        results, chosen, sweep = {}, {}, []
        for method, grid in GRID.items():
            scores = {lr: train(root, method, lr, 0, args.steps, ranks_file) for lr in grid}
            # best validation accuracy; ties (frequent on this easy set) go to the lower eval loss
            chosen[method] = max(grid, key=lambda lr: (scores[lr]["accuracy"], -scores[lr]["eval_loss"]))
            sweep.append((LABELS[method], ", ".join(f"{lr:g}: {100 * s['accuracy']:.0f}" for lr, s in scores.items())))
            results[method] = [scores[chosen[method]]] + [train(root, method, chosen[method], seed, args.steps, ranks_file)
                                                          for seed in range(1, args.seeds)]
        inits = {"svd": results["lamda"]}
        for init in ("svd-residual", "random"):
            inits[init] = [train(root, "lamda", chosen["lamda"], seed, args.steps, ranks_file, init)
                           for seed in range(args.seeds)]
        memory = {m: lc.measure_costs("default", m, RANK, allocation.rank_pattern if m == "lamda++" else None,
                                      batch_size=BATCH, seq_len=SEQ, dropout=0.05 if m == "lora" else 0.0)
                  for m in GRID}

    print(f"### Demo sentiment (400 train / 100 validation), MiniLM, {args.steps} steps of batch {BATCH}, "
          f"{args.seeds} seeds\n")
    print("| method | learning rate | accuracy % (mean ± sd) | adapter params start / end / averaged "
          "| with the head (770) | s per step | training memory (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method, runs in results.items():
        first = runs[0]
        cost = memory[method]
        head = first["trainable_start"] - first["adapter_start"]
        average = cost.trainable_average - head
        print(f"| {LABELS[method]} | {chosen[method]:g} | {mean_spread([r['accuracy'] for r in runs])} "
              f"| {first['adapter_start']:,} / {first['adapter_end']:,} / {average:,.0f} "
              f"| {cost.trainable_average:,.0f} | {statistics.mean(r['seconds_per_step'] for r in runs):.3f} "
              f"| {cost.total / 2 ** 20:.1f} |")
    lamda, lora = memory["lamda"], memory["lora"]
    head = lamda.trainable_start - lamda.adapter_start
    print(f"\nAveraged adapter parameters, LoRA / LaMDA: {lora.adapter_start / (lamda.trainable_average - head):.1f}x; "
          f"accuracy gap LoRA - LaMDA: "
          f"{100 * (statistics.mean(r['accuracy'] for r in results['lora']) - statistics.mean(r['accuracy'] for r in results['lamda'])):.1f} points.")
    print("\nLearning-rate sweep on seed 0 (validation accuracy %):\n")
    print("| method | lr: accuracy |")
    print("|---|---|")
    for label, text in sweep:
        print(f"| {label} | {text} |")
    print(f"\n### LaMDA r=8 by init variant (lr {chosen['lamda']:g}, {args.seeds} seeds)\n")
    print("| init | accuracy % (mean ± sd) |")
    print("|---|---:|")
    for init, runs in inits.items():
        print(f"| {init} | {mean_spread([r['accuracy'] for r in runs])} |")


if __name__ == "__main__":
    main()
