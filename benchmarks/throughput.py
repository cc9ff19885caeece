"""Throughput benchmark: our trainer against transformers' Trainer with PEFT LoRA, same work.

    python benchmarks/throughput.py [--steps 30] [--repeats 3] [--batch 32] [--seq 64]

MiniLM (the embedded model, mean pooling) on SST-2 phrases (../shared/data), STEPS optimizer steps
of BATCH examples truncated at SEQ tokens, AdamW, one process, the machine's torch threads, all in
this process and interleaved REPEATS times: (1) our trainer with PEFT LoRA (its defaults: rank
8, dropout 0.05), (2) transformers.Trainer on the same model, the same PEFT LoRA config, the same
rate, batch, tokenization (padding per batch) and steps, with its default random batches and with
``train_sampling_strategy="group_by_length"`` (ours groups batches by length by default), (3) our
trainer with LaMDA. Steady state:
the median time between consecutive optimizer steps' ends (ours from metrics.jsonl's elapsed, the
Trainer's from a callback), so set-up and the first step count for neither; tokens/s = the
non-padding tokens the model read per step over that time. Whole run: steps over our summary's
training_seconds against the Trainer's train_runtime. Medians over the repeats, and the ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from lamda_core.data.reading import load_classification  # noqa: E402
from lamda_core.methods import get_method  # noqa: E402
from lamda_core.models.loading import load_model  # noqa: E402
from lamda_core.runs.config import TrainConfig  # noqa: E402
from lamda_core.runs.folder import RunFolder, create_run  # noqa: E402
from lamda_core.training.trainer import run  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_phrases_train.tsv"


def median_step(ends: list[float]) -> float:
    """The median time between consecutive step ends, in seconds."""
    return statistics.median(b - a for a, b in zip(ends, ends[1:]))


def ours(method: str, steps: int, batch: int, seq: int, root: Path) -> dict:
    """One run of our trainer: steady-state steps/s and tokens/s, and whole-run steps/s."""
    folder = create_run(TrainConfig(method=method, train_data=str(DATA), max_steps=steps, batch_size=batch,
                                    seq_len=seq, eval_interval=steps, checkpoint_interval=steps + 1),
                        root / f"{method}-{len(list(root.glob('*')))}")
    assert run(folder) == "finished", RunFolder(folder).status()
    summary, metrics = RunFolder(folder).summary(), RunFolder(folder).metrics()
    step = median_step([m["elapsed"] for m in metrics[:-1]])  # the last row waits for the final evaluation
    tokens_per_step = summary["tokens_per_second"] * summary["training_seconds"] / steps
    return {"steps/s": 1 / step, "tokens/s": tokens_per_step / step, "run steps/s": steps / summary["training_seconds"]}


class CountingCollator:
    """Pads each batch of tokenized rows to its longest (as ours does) and counts the non-padding tokens."""

    def __init__(self, tokenizer):
        self.tokenizer, self.tokens = tokenizer, 0

    def __call__(self, rows):
        encoded = self.tokenizer.pad([{"input_ids": r["input_ids"]} for r in rows], return_tensors="pt")
        encoded["labels"] = torch.tensor([r["label"] for r in rows])
        self.tokens += int(encoded["attention_mask"].sum())
        return encoded


def transformers_trainer(steps: int, batch: int, seq: int, root: Path, group_by_length: bool) -> dict:
    """transformers.Trainer + PEFT LoRA on the same model, data and shape, measured like ``ours``
    (the texts tokenized beforehand, as its examples do; ours tokenizes inside each step)."""
    import time

    from transformers import Trainer, TrainerCallback, TrainingArguments

    class StepEnds(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.time())

    data = load_classification(str(DATA), seed=0)
    lora = get_method("lora")
    model, tokenizer = load_model("default", num_labels=len(data.label_names))
    model = lora.apply(model, lora.adapter_config())
    ids = tokenizer(data.train_texts, truncation=True, max_length=seq)["input_ids"]
    rows = [{"input_ids": i, "label": label} for i, label in zip(ids, data.train_labels)]
    collator, ends = CountingCollator(tokenizer), StepEnds()
    arguments = TrainingArguments(output_dir=str(root / "hf"), per_device_train_batch_size=batch, max_steps=steps,
                                  learning_rate=lora.default_learning_rate, lr_scheduler_type="linear",
                                  warmup_steps=max(1, round(0.06 * steps)), logging_steps=steps, save_strategy="no",
                                  report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
                                  remove_unused_columns=False, seed=0,
                                  train_sampling_strategy="group_by_length" if group_by_length else "random")
    result = Trainer(model=model, args=arguments, train_dataset=rows, data_collator=collator,
                     callbacks=[ends]).train()
    step = median_step(ends.ends)
    return {"steps/s": 1 / step, "tokens/s": collator.tokens / steps / step,
            "run steps/s": steps / result.metrics["train_runtime"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    args = parser.parse_args()
    arms = {"ours, LoRA": lambda root: ours("lora", args.steps, args.batch, args.seq, root),
            "transformers.Trainer + PEFT LoRA": lambda root: transformers_trainer(
                args.steps, args.batch, args.seq, root, group_by_length=False),
            "  the same, group_by_length": lambda root: transformers_trainer(
                args.steps, args.batch, args.seq, root, group_by_length=True),
            "ours, LaMDA": lambda root: ours("lamda", args.steps, args.batch, args.seq, root)}
    results = {name: [] for name in arms}
    with tempfile.TemporaryDirectory(prefix="lamda-throughput-") as temporary:
        for _ in range(args.repeats):  # interleaved: the machine's drifts touch every row alike
            for name, arm in arms.items():
                results[name].append(arm(Path(temporary)))
    medians = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
               for name, rows in results.items()}
    print(f"\nMiniLM on SST-2 phrases, {args.steps} steps of batch {args.batch} x <= {args.seq} tokens, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'trainer':<40} {'steps/s':>8} {'tokens/s':>9} {'whole run steps/s':>18}")
    for name, row in medians.items():
        print(f"{name:<40} {row['steps/s']:>8.2f} {row['tokens/s']:>9,.0f} {row['run steps/s']:>18.2f}")
    ours_lora, plain, grouped, lamda = (medians[name] for name in results)
    for label, other in (("transformers.Trainer", plain), ("transformers.Trainer, group_by_length", grouped)):
        print(f"ours / {label} (LoRA): steady steps/s {ours_lora['steps/s'] / other['steps/s']:.2f}x, "
              f"tokens/s {ours_lora['tokens/s'] / other['tokens/s']:.2f}x, "
              f"whole run {ours_lora['run steps/s'] / other['run steps/s']:.2f}x")
    print(f"LaMDA / LoRA inside ours: steady steps/s {lamda['steps/s'] / ours_lora['steps/s']:.2f}x")


if __name__ == "__main__":
    main()
