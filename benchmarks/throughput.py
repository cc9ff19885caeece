"""Throughput benchmark: our trainer against transformers' Trainer with PEFT LoRA, same work.

    python benchmarks/throughput.py [minilm] [smollm2] [--repeats 3]

Two sections (both by default), each all in this process and its arms interleaved REPEATS times:
  minilm   the embedded MiniLM (mean pooling) on SST-2 phrases (../shared/data), 30 steps of
           batch 32 truncated at 64 tokens;
  smollm2  the embedded SmolLM2-135M-Instruct instruction-tuned on SST-2 phrases as chat
           conversations (benchmarks/llm_quality.py's task, loss on the answer tokens), 10 steps of
           batch 8 truncated at 96 tokens.
Arms, all PEFT LoRA (rank 8, dropout 0.05) unless named: our trainer with its default
length-grouped batches and with random batches (``group_by_length=False``); transformers.Trainer
on the same model, PEFT config, rate, batch, tokenization (padding per batch) and steps, fed
exactly our batches (a sampler replaying our trainer's order, grouped and random: the
like-for-like pairs), then with its own orders: its default random sampler and its
``train_sampling_strategy="group_by_length"``; last, our trainer with LaMDA. AdamW, one process,
the machine's torch threads. Steady state: the median time between consecutive optimizer steps'
ends (ours from metrics.jsonl's elapsed, the Trainer's from a callback), so set-up and the first
step count for neither; tokens/s = the non-padding tokens the model read per step over that time.
Whole run: steps over our summary's training_seconds against the Trainer's train_runtime.
Medians over the repeats, and the ratios. Only the same-batches pairs compare steps/s directly;
across orders compare tokens/s (a sampler that serves long batches first, as the Trainer's
group_by_length does, reads more tokens per step).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from lamda_core.data.chat import ChatExample, encode_file, pad_batch  # noqa: E402
from lamda_core.data.reading import load_classification  # noqa: E402
from lamda_core.methods import get_method  # noqa: E402
from lamda_core.models.loading import load_model  # noqa: E402
from lamda_core.runs.config import TrainConfig  # noqa: E402
from lamda_core.runs.folder import RunFolder, create_run  # noqa: E402
from lamda_core.training.batches import Batches  # noqa: E402
from lamda_core.training.trainer import run  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Section:
    """One model and task: what both trainers are given."""
    title: str
    source: str
    task: str
    steps: int
    batch: int
    seq: int


SECTIONS = {"minilm": Section("MiniLM on SST-2 phrases", "default", "classification", 30, 32, 64),
            "smollm2": Section("SmolLM2-135M-Instruct on SST-2 phrases as chat", "smollm2", "causal-lm", 10, 8, 96)}


def median_step(ends: list[float]) -> float:
    """The median time between consecutive step ends, in seconds."""
    return statistics.median(b - a for a, b in zip(ends, ends[1:]))


def ours(section: Section, data: tuple[Path, Path | None], method: str, group_by_length: bool, root: Path) -> dict:
    """One run of our trainer: steady-state steps/s and tokens/s, and whole-run steps/s."""
    steps = section.steps
    train, validation = data
    config = TrainConfig(source=section.source, task=section.task, method=method, train_data=str(train),
                         validation_data=str(validation) if validation else None, max_steps=steps,
                         batch_size=section.batch, seq_len=section.seq, eval_interval=steps,
                         checkpoint_interval=steps + 1, group_by_length=group_by_length)
    folder = create_run(config, root / f"{method}-{len(list(root.glob('*')))}")
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
        if "labels" in rows[0]:  # chat examples: the answer-only labels of lamda_core.data.chat
            encoded = pad_batch([ChatExample(r["input_ids"], r["labels"]) for r in rows], self.tokenizer.pad_token_id)
        else:
            encoded = self.tokenizer.pad([{"input_ids": r["input_ids"]} for r in rows], return_tensors="pt")
            encoded["labels"] = torch.tensor([r["label"] for r in rows])
        self.tokens += int(encoded["attention_mask"].sum())
        return encoded


def trainer_rows(section: Section, data: Path, tokenizer) -> list[dict]:
    """The training examples as the Trainer is given them, tokenized beforehand as its examples
    do (ours tokenizes classification texts inside each step): the same texts and tokens ours trains on,
    each with the length our trainer groups by (characters of a text, tokens of a conversation)."""
    if section.task == "classification":
        texts = load_classification(str(data), seed=0)
        ids = tokenizer(texts.train_texts, truncation=True, max_length=section.seq)["input_ids"]
        return [{"input_ids": i, "label": label, "our_length": len(text)}
                for i, label, text in zip(ids, texts.train_labels, texts.train_texts)]
    examples = encode_file(data, tokenizer, section.seq, notes=[])  # the whole file, as ours with a validation file
    return [{"input_ids": e.input_ids, "labels": e.labels, "our_length": len(e.input_ids)} for e in examples]


class ReplayOrder(torch.utils.data.Sampler):
    """The sample order our trainer's Batches gives the first ``steps`` micro-batches (seed 0, one process)."""

    def __init__(self, rows: list[dict], section: Section, grouped: bool):
        lengths = [r["our_length"] for r in rows] if grouped else None
        batches = Batches(len(rows), section.batch, 1, 0, TrainConfig().seed, lengths)
        self.order = [i for step in range(section.steps) for i in batches.indices(step)]

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def transformers_trainer(section: Section, data: tuple[Path, Path | None], order: str, root: Path) -> dict:
    """transformers.Trainer + PEFT LoRA on the same model, data and shape, measured like ``ours``
    (it evaluates nothing; ours evaluates once, after the steps the median is taken over). order:
    "random" or "group_by_length" (the Trainer's own samplers), "ours grouped" or "ours random"
    (our trainer's batches replayed)."""
    data = data[0]
    import time

    from transformers import Trainer, TrainerCallback, TrainingArguments

    class ReplayingTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return replay if replay is not None else super()._get_train_sampler(train_dataset)

    class StepEnds(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.time())

    lora = get_method("lora")
    heads = {}
    if section.task == "classification":
        heads["num_labels"] = len(load_classification(str(data), seed=0).label_names)
    model, tokenizer = load_model(section.source, task=section.task, **heads)
    model = lora.apply(model, lora.adapter_config())
    collator, ends, rows = CountingCollator(tokenizer), StepEnds(), trainer_rows(section, data, tokenizer)
    replay = ReplayOrder(rows, section, order == "ours grouped") if order.startswith("ours") else None
    arguments = TrainingArguments(output_dir=str(root / "hf"), per_device_train_batch_size=section.batch,
                                  max_steps=section.steps, learning_rate=lora.default_learning_rate,
                                  lr_scheduler_type="linear", warmup_steps=max(1, round(0.06 * section.steps)),
                                  logging_steps=section.steps, save_strategy="no", report_to=[], use_cpu=True,
                                  dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False, seed=0,
                                  train_sampling_strategy="group_by_length" if order == "group_by_length" else "random")
    result = ReplayingTrainer(model=model, args=arguments, train_dataset=rows, data_collator=collator,
                              callbacks=[ends]).train()
    step = median_step(ends.ends)
    return {"steps/s": 1 / step, "tokens/s": collator.tokens / section.steps / step,
            "run steps/s": section.steps / result.metrics["train_runtime"]}


def trainer_arm(order: str):
    return lambda section, data, root: transformers_trainer(section, data, order, root)


LORA_ARMS = {"ours, length-grouped batches (our default)": lambda s, d, r: ours(s, d, "lora", True, r),
             "transformers.Trainer, our length-grouped batches": trainer_arm("ours grouped"),
             "ours, random batches": lambda s, d, r: ours(s, d, "lora", False, r),
             "transformers.Trainer, our random batches": trainer_arm("ours random"),
             "transformers.Trainer, its random sampler (its default)": trainer_arm("random"),
             "transformers.Trainer, its group_by_length": trainer_arm("group_by_length")}
ARMS = {**{f"LoRA: {name}": arm for name, arm in LORA_ARMS.items()},
        "LaMDA: ours, length-grouped batches": lambda s, d, r: ours(s, d, "lamda", True, r)}


def training_data(name: str, work: Path) -> tuple[Path, Path | None]:
    """(train file, validation file: None = our trainer's 10% split of the train file)."""
    if name == "minilm":
        return SHARED_DATA / "sst2_phrases_train.tsv", None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llm_quality import write_task

    paths = write_task("sst2", SHARED_DATA, work)
    return paths["train"], paths["validation"]  # 100 conversations: a short final evaluation


def measure(name: str, repeats: int, work: Path) -> dict[str, dict]:
    """Every arm's medians over ``repeats`` interleaved rounds (the machine's drifts touch every arm alike)."""
    section, data = SECTIONS[name], training_data(name, work)
    results = {arm: [] for arm in ARMS}
    for _ in range(repeats):
        for arm, measure_arm in ARMS.items():
            results[arm].append(measure_arm(section, data, work))
    return {arm: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for arm, rows in results.items()}


def report(name: str, medians: dict[str, dict], repeats: int) -> None:
    s = SECTIONS[name]
    print(f"\n### {s.title}: {s.steps} steps of batch {s.batch} x <= {s.seq} tokens, "
          f"{torch.get_num_threads()} threads, median of {repeats}\n")
    print("| trainer | steps/s | tokens/s | whole run steps/s |\n|---|---:|---:|---:|")
    for arm, row in medians.items():
        print(f"| {arm} | {row['steps/s']:.2f} | {row['tokens/s']:,.0f} | {row['run steps/s']:.2f} |")
    grouped, hf_same_grouped, random_, hf_same_random, plain, hf_grouped, lamda = medians.values()
    print()
    for label, mine, other in (("same batches, length-grouped", grouped, hf_same_grouped),
                               ("same batches, random", random_, hf_same_random),
                               ("each its default", grouped, plain), ("each its length grouping", grouped, hf_grouped)):
        print(f"- ours / transformers.Trainer ({label}): steps/s {mine['steps/s'] / other['steps/s']:.2f}x, "
              f"tokens/s {mine['tokens/s'] / other['tokens/s']:.2f}x, "
              f"whole run {mine['run steps/s'] / other['run steps/s']:.2f}x")
    print(f"- LaMDA / LoRA inside ours: steps/s {lamda['steps/s'] / grouped['steps/s']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    with tempfile.TemporaryDirectory(prefix="lamda-throughput-") as temporary:
        for name in args.sections or SECTIONS:
            report(name, measure(name, args.repeats, Path(temporary)), args.repeats)


if __name__ == "__main__":
    main()
