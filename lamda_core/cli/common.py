"""What the `lamda` commands share: progress bars, number formats, the run options of train / compare /
sweep and the TrainConfig they build."""
from __future__ import annotations

import argparse
import sys

from .. import choices
from ..errors import LamdaError
from ..methods import get_method, method_names


def progress_bar(description: str):
    """A tqdm bar driven by the (done, total, name) progress callback of long scans."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="matrix", file=sys.stderr)

    def update(done: int, total: int, name: str) -> None:
        bar.total = total
        bar.set_postfix_str(name[-40:], refresh=False)
        bar.update(done - bar.n)
        if done == total:
            bar.close()
    return update


def format_number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def mib(value: float) -> str:
    return f"{value / 2 ** 20:,.2f}"


def format_count(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def fraction_bar(description: str):
    """A tqdm bar driven by a (done, total) progress callback."""
    from tqdm import tqdm

    bar = tqdm(desc=description, file=sys.stderr, unit="ex")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done == total:
            bar.close()
    return update


def per_method(value_of, none: str | None = None) -> str:
    """"lamda 40, lora 8, ..." of ``value_of(entry)`` for every registered method; a None value
    reads ``none`` (left out when ``none`` is None)."""
    values = {name: value_of(get_method(name)) for name in method_names()}
    return ", ".join(f"{m} {v:g}" if v is not None else f"{m} {none}" for m, v in values.items()
                     if v is not None or none is not None)


def cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def read_ranks(path: str | None) -> dict | None:
    """Per-matrix ranks from a `lamda allocate` file, or None."""
    if not path:
        return None
    from pathlib import Path

    from ..spectra.allocation import Allocation

    if not Path(path).is_file():
        raise LamdaError(f"no such ranks file: {path} (write one with `lamda allocate ... --json {path}`)")
    return Allocation.from_json(path).rank_pattern


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, data, adapter and shape options that `train` and `compare` share."""
    parser.add_argument(
        "--source", default="default", help="model: 'default', 'smollm2', 'tiny-llama', 'tiny-gpt2', a folder or hub id"
    )
    parser.add_argument("--task", default="classification", choices=choices.TRAIN_TASKS)
    parser.add_argument("--data", default="demo-sentiment",
                        help="'demo-sentiment', 'demo-corpus', 'demo-chat' or a .csv/.tsv/.jsonl/.parquet file "
                             "(causal-lm: .txt, "
                             "or instruction .jsonl/.parquet: messages, prompt/completion or instruction/output)")
    parser.add_argument("--validation", help="validation file (default: 10%% of the data, seeded)")
    parser.add_argument("--text-column")
    parser.add_argument("--label-column")
    parser.add_argument("--rank", type=int, help="r of every adapted matrix (default: the method's, "
                        + per_method(lambda m: m.default_rank if m.adapts_matrices else None) + ")")
    parser.add_argument("--alpha", type=float, help=f"update scale s = alpha / r (default: alpha = "
                        f"{choices.DEFAULT_SCALE:g} x rank)")
    parser.add_argument("--init", default=choices.DEFAULT_INIT, choices=choices.INIT_VARIANTS)
    parser.add_argument("--freeze-fraction", type=float, default=choices.DEFAULT_FREEZE_FRACTION)
    parser.add_argument("--freeze-rule", default=choices.DEFAULT_FREEZE_RULE, choices=choices.FREEZE_RULES)
    parser.add_argument("--head-modules", nargs="+", default=None,
                        help="modules trained in full beside the adapter (default: the classification head)")
    parser.add_argument("--schedule", default=choices.DEFAULT_LR_SCHEDULE, choices=choices.LR_SCHEDULES)
    parser.add_argument("--warmup", type=float, default=0.06, help="warm-up fraction of the steps")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=choices.DEFAULT_BATCH_SIZE, help="micro-batch size")
    parser.add_argument("--accumulation", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--eval-interval", type=int, default=25)
    parser.add_argument("--checkpoint-interval", type=int, default=25)
    parser.add_argument("--seq", type=int, default=choices.DEFAULT_SEQ_LEN,
                        help="maximum tokens per example (block size for causal-lm)")
    parser.add_argument("--dtype", default="float32", choices=choices.MODEL_DTYPES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pooling", default=choices.DEFAULT_POOLING, choices=choices.POOLINGS,
                        help="classification: the model's own head (cls), the masked mean of the token "
                             "states (mean), or what the model was trained with (auto: mean for MiniLM)")


def run_config(args, method: str, **changes):
    """A TrainConfig from the options `train` and `compare` share (add_run_arguments)."""
    from ..runs.config import TrainConfig
    from ..runs.preflight import fitted_default_rank

    rank, rank_pattern = args.rank, read_ranks(getattr(args, "ranks", None))
    if rank is None and not rank_pattern:
        rank, note = fitted_default_rank(method, args.source, args.task)
        if note:
            print(f"note: {note}")
    spec = get_method(method)
    adapter = spec.adapter_config(
        rank, rank_pattern, getattr(args, "dropout", None), alpha=args.alpha,
        init=args.init, freeze_fraction=args.freeze_fraction, freeze_rule=args.freeze_rule,
        trainable_modules=args.head_modules)
    adapter, note = spec.with_ranks(adapter, args.source)  # LaMDA++ without --ranks: from the spectra
    if note:
        print(f"note: {note}")
    return TrainConfig(
        source=args.source, task=args.task, train_data=args.data, validation_data=args.validation,
        text_column=args.text_column, label_column=args.label_column, method=method, adapter=adapter,
        lr_schedule=args.schedule, warmup_fraction=args.warmup, weight_decay=args.weight_decay, batch_size=args.batch,
        grad_accumulation=args.accumulation, eval_interval=args.eval_interval,
        checkpoint_interval=args.checkpoint_interval, seq_len=args.seq, dtype=args.dtype, seed=args.seed,
        pooling=args.pooling, **changes)
