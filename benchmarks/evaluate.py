"""Held-out evaluation against training, side by side in one run: how long `lamda evaluate`
takes on a 10,000-row file with MiniLM, against one epoch of training on the same rows.

    python benchmarks/evaluate.py [--rows 10000] [--steps 20]

A LaMDA run at its defaults (batch 16 x 64 tokens) trains ``--steps`` steps on the file; its
seconds per step (from its metrics, evaluation excluded) times the steps of one epoch
(rows / 16) is the epoch. Then evaluate_run scores all rows (batches of 64 texts of similar
length, no gradients). Data: the SST-2 phrases train file of ../shared/data when present, else the
demo sentiment file repeated.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "sst2_phrases_train.tsv"


def rows_file(rows: int, folder: Path) -> tuple[Path, str]:
    """A TSV (header sentence, label) of ``rows`` rows and where they came from."""
    from lamda_core.data.reading import DEMO_DATASETS

    source = SHARED if SHARED.is_file() else DEMO_DATASETS["demo-sentiment"][0]
    lines = source.read_text().splitlines()
    header, body = lines[0], [line for line in lines[1:] if line.strip()]
    chosen = [body[i % len(body)] for i in range(rows)]
    path = folder / "held-out.tsv"
    path.write_text("\n".join([header] + chosen) + "\n")
    return path, source.name


def main() -> None:
    from lamda_core.runs.config import TrainConfig
    from lamda_core.runs.folder import RunFolder, create_run
    from lamda_core.training.trainer import run
    from lamda_core.use.evaluation import evaluate_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    data, source = rows_file(args.rows, folder)
    config = TrainConfig(train_data=str(data), max_steps=args.steps, eval_interval=10 ** 6, checkpoint_interval=10 ** 6)
    run(create_run(config, folder / "run"))
    metrics = RunFolder(folder / "run").metrics()
    per_step = (metrics[-1]["elapsed"] - metrics[0]["elapsed"]) / (len(metrics) - 1)
    epoch = per_step * math.ceil(args.rows * 0.9 / config.batch_size)  # the run trains on 90% (10% validates)
    start = time.perf_counter()
    report = evaluate_run(folder / "run", data)
    evaluation = time.perf_counter() - start
    print(f"### Evaluating {args.rows:,} rows ({source}) against one training epoch, MiniLM, LaMDA defaults\n")
    print("| what | seconds |")
    print("|---|---:|")
    print(f"| one epoch of training ({math.ceil(args.rows * 0.9 / config.batch_size)} steps x {per_step:.3f} s, "
          f"batch {config.batch_size} x {config.seq_len}) | {epoch:.1f} |")
    print(f"| `lamda evaluate` on all {report.examples:,} rows (batches of 64, loading included) | {evaluation:.1f} |")
    print(f"\nevaluation / epoch: {evaluation / epoch:.2f}x")


if __name__ == "__main__":
    main()
