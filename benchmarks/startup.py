"""Startup benchmark: how soon a run trains after Start, cold against the warm launcher.

    python benchmarks/startup.py [--repeats 5] [--steps 2]

In one run, side by side on this machine: a MiniLM run (the demo data, the default LaMDA) started
REPEATS times as a cold process (``python -m lamda_core.training.trainer``: what `lamda train
--background` does) and REPEATS times forked from the warm launcher (what the app, `lamda compare`
and `lamda sweep` do; the launcher started once beforehand, untimed); median ``startup_seconds``
(Start to the first optimizer step, from each run's summary.json) and the process CPU-seconds
that the warm start skips. Then a 10-run sweep (LaMDA and LoRA x 5 rates, STEPS steps each,
queued as the app queues them) started cold and warm: total wall time from the first Start to
the last run finished.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lamda_core.runs import launcher  # noqa: E402
from lamda_core.runs.config import TrainConfig  # noqa: E402
from lamda_core.runs.folder import RunFolder, create_run, start_run  # noqa: E402
from lamda_core.runs.sweep import create_sweep  # noqa: E402


def started(folder: Path, warm: bool) -> dict:
    """Start one run, wait for it; its summary (startup_seconds, tokens_per_second, ...)."""
    start_run(folder, warm=warm).wait()
    run = RunFolder(folder)
    if run.status()["state"] != "finished":
        raise SystemExit(f"{folder.name} ended {run.status()['state']}: {run.status().get('reason')}")
    return run.summary()


def single_runs(root: Path, repeats: int, steps: int) -> dict[str, list[float]]:
    config = TrainConfig(max_steps=steps, eval_interval=steps, checkpoint_interval=steps)
    started(create_run(config, root / "warm-up"), warm=True)  # the launcher's own start, untimed
    seconds = {"cold": [], "warm": []}
    for index in range(repeats):  # interleaved, so drifts of the machine touch both alike
        for mode in ("cold", "warm"):
            summary = started(create_run(config, root / f"{mode}-{index}"), warm=mode == "warm")
            seconds[mode].append(summary["startup_seconds"])
    return seconds


def sweep_wall(root: Path, warm: bool, steps: int) -> float:
    base = TrainConfig(max_steps=steps, eval_interval=steps, checkpoint_interval=steps)
    name = "warm" if warm else "cold"
    folders = create_sweep(base, ["lamda", "lora"], root, rates=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2], name=name)
    began = time.time()
    processes = [start_run(folder, warm=warm) for folder in folders]  # they queue, one trains at a time
    for process in processes:
        process.wait()
    return time.time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lamda-startup-") as temporary:
        root = Path(temporary)
        seconds = single_runs(root / "single", args.repeats, args.steps)
        cold, warm = statistics.median(seconds["cold"]), statistics.median(seconds["warm"])
        print(f"\nStart to first optimizer step, MiniLM LaMDA, median of {args.repeats} (s)")
        print(f"{'cold process':<16} {cold:>7.2f}   runs: {', '.join(f'{s:.2f}' for s in seconds['cold'])}")
        print(f"{'warm launcher':<16} {warm:>7.2f}   runs: {', '.join(f'{s:.2f}' for s in seconds['warm'])}")
        print(f"{'cold / warm':<16} {cold / warm:>7.2f}x")
        walls = {mode: sweep_wall(root / f"sweep-{mode}", mode == "warm", args.steps) for mode in ("cold", "warm")}
        print(f"\n10-run sweep (LaMDA and LoRA x 5 rates, {args.steps} steps each), first Start to last finish (s)")
        print(f"{'cold processes':<16} {walls['cold']:>7.1f}")
        print(f"{'warm launcher':<16} {walls['warm']:>7.1f}")
        print(f"{'cold / warm':<16} {walls['cold'] / walls['warm']:>7.2f}x")
        print(f"\nlauncher pid {launcher.ping()}; machine: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
