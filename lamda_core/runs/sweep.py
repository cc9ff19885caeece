"""Sweeps: a grid of run settings per method, judged on a split of the train file, and the best
setting of each method compared on the validation file.

A sweep is a comparison (TrainConfig.comparison holds the sweep's name) whose runs are the grid
methods x learning rates x ranks. Every sweep run trains on the train file minus a seeded 10% that
it is judged on (validation_data=None, data.py), never on a validation file, so the choice of
settings cannot leak the validation score. ``best_settings`` picks each method's best run by the
task's metric (accuracy, or perplexity for a causal LM); ``create_best_comparison`` queues each
method at its best setting on the whole train file, evaluated on the validation file. The grid is
plain (no search library): it is small, it runs offline, and every point is an ordinary run folder
that queues, stops and resumes like any other.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

from ..data.reading import DEMO_DATASETS
from ..errors import ConfigError, RunError
from ..methods import get_method
from .compare import METRIC_DIRECTIONS, comparison_table, quality_metric
from .config import TrainConfig
from .folder import RunFolder
from .groups import create_group
from .preflight import fitted_default_rank


def sweep_configs(base: TrainConfig, methods: list[str], rates: list[float] | None = None,
                  ranks: list[int] | None = None) -> dict[str, TrainConfig]:
    """{run name suffix: TrainConfig} for every (method, rate, rank) of the grid, on ``base``'s
    train file with its 10% split as the judge. ``rates`` None: the method's default; ``ranks``
    None: its default (ranks are ignored by methods that adapt no matrix)."""
    if not methods:
        raise ConfigError("a sweep needs at least one method")
    if any(r <= 0 for r in rates or []) or any(r < 1 for r in ranks or []):
        raise ConfigError(f"learning rates must be positive and ranks at least 1, got {rates} and {ranks}")
    train = base.train_data
    if str(train) in DEMO_DATASETS:  # a demo name means its validation file too: use the train file alone
        train = str(DEMO_DATASETS[str(train)][0])
    configs, now = {}, time.time()
    scale = base.adapter.alpha / base.adapter.rank  # the run's update scale s = alpha / r, kept at every rank
    for method in dict.fromkeys(methods):
        spec = get_method(method)
        if spec.needs_rank_pattern:
            raise ConfigError(f"{method} needs per-matrix ranks; sweep lamda's rank instead")
        default_rank = fitted_default_rank(method, base.source, base.task, base.adapter.targets)[0]
        method_ranks = ranks if ranks and spec.adapts_matrices else [default_rank or spec.default_rank]
        for rate, rank in itertools.product(rates or [None], method_ranks):
            adapter = replace(base.adapter, rank=rank, alpha=scale * rank, rank_pattern={},
                              dropout=spec.default_dropout)
            label = "-".join([method, f"lr{rate or spec.default_learning_rate:g}",
                              *([f"r{rank}"] if spec.adapts_matrices else [])])
            configs[label] = replace(base, method=method, adapter=adapter, train_data=train, validation_data=None,
                                     learning_rate=rate, head_learning_rate=None, core_learning_rate=None,
                                     created=now + len(configs) * 1e-3)
    return configs


def create_sweep(base: TrainConfig, methods: list[str], root: str | Path, rates: list[float] | None = None,
                 ranks: list[int] | None = None, name: str | None = None) -> list[Path]:
    """Check every run of the grid (preflight, in create_runs), then queue one run folder per point under
    ``root``, named <sweep>-<method>-lr<rate>[-r<rank>]; nothing is created when a check fails."""
    name = name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    return create_group(root, name, sweep_configs(replace(base, comparison=name), methods, rates, ranks),
                        kind="sweep or comparison")


def best_settings(root: str | Path, name: str) -> dict[str, dict]:
    """{method: the comparison_table row of its best finished run} by the task's metric on the
    train file's split; methods with no finished run are left out."""
    rows = comparison_table(root, name)
    metric = quality_metric(RunFolder(Path(root) / rows[0]["run"]).config.task)
    sign = 1 if METRIC_DIRECTIONS[metric] == "higher" else -1
    best: dict[str, dict] = {}
    for row in rows:
        if row["state"] != "finished" or row[metric] is None:
            continue
        if row["method"] not in best or sign * row[metric] > sign * best[row["method"]][metric]:
            best[row["method"]] = row
    return best


def create_best_comparison(root: str | Path, name: str, validation: str, comparison: str | None = None) -> list[Path]:
    """Queue each method's best sweep setting (best_settings) on the whole train file, evaluated on
    ``validation``, as a comparison named ``comparison`` (default <sweep>-best)."""
    root = Path(root)
    best = best_settings(root, name)
    if not best:
        raise RunError(f"sweep {name!r} has no finished run yet; nothing to compare")
    comparison = comparison or f"{name}-best"
    now = time.time()
    configs = {}
    for index, (method, row) in enumerate(best.items()):
        config = RunFolder(root / row["run"]).config
        configs[method] = replace(config, validation_data=str(validation), comparison=comparison,
                                  created=now + index * 1e-3)
    return create_group(root, comparison, configs)
