"""Compare methods on one dataset: matched run configs, a comparison's runs, their results and the
Pareto front.

A comparison is a set of ordinary run folders under one runs root whose TrainConfig.comparison
holds the comparison's name; they queue one after another like any runs (runs.TrainingSlot).
Every method trains on the same data, seed, steps, batch and sequence length, at its own default
learning rate and dropout, with a budget set by ``match``:
  match="defaults"    LoRA (any PEFT-style method) at its default rank and scale, LaMDA at rank r
                      (default: its own), LaMDA++ at LaMDA's total rank: each method as a user
                      gets it, as benchmarks/quality.py compares them;
  match="rank"        every adapter at rank r; LaMDA++ at the same total rank (allocate_ranks);
  match="parameters"  LaMDA at rank r sets the budget, its averaged adapter parameters over the
                      freezing schedule; LoRA takes the rank whose parameters come closest to it
                      and LaMDA++ the same trainable LaMDA parameters as uniform rank r.
What sets a method apart here is read from its registry entry (methods/): rank_matched marks the
LoRA-like ones (the PEFT methods), needs_rank_pattern LaMDA++.
Full fine-tuning, when asked for, is the unmatched reference (every weight trains).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from .. import choices
from ..costs.parameters import average_lamda_parameters
from ..errors import ConfigError, RunError
from ..methods import get_method
from .config import TrainConfig
from .folder import RunFolder, list_runs
from .groups import check_group_name, create_group

# higher or lower is better, per metric in a run's summary (without the "eval_" prefix)
METRIC_DIRECTIONS = {"accuracy": "higher", "f1": "higher", "perplexity": "lower", "loss": "lower"}
METRIC_LABELS = {"accuracy": "accuracy (%)", "f1": "macro F1 (%)", "perplexity": "perplexity",
                 "loss": "validation loss"}
# the costs a point can be placed against, and whether their axis is logarithmic
COST_AXES = {"trainable_average": "averaged trainable parameters (adapter + head, or the whole model)",
             "adapter_average": "averaged trainable adapter parameters",
             "peak_memory_mib": "peak training memory (MiB)",
             "seconds": "training time (s)"}
LOG_AXES = ("trainable_average", "adapter_average")


def _target_matrices(base: TrainConfig) -> list:
    from ..models.loading import load_config, meta_model
    from ..models.targets import resolve_targets

    return resolve_targets(meta_model(load_config(base.source), base.task), base.adapter.targets)


def matched_configs(
    base: TrainConfig, methods: list[str], match: str = "defaults", report=None
) -> dict[str, TrainConfig]:
    """One TrainConfig per method (in the order given), equal to ``base`` in data, seed, steps and
    shape, each at its method's default rate and dropout with budgets matched by ``match`` (module
    docstring). base.adapter.rank is LaMDA's rank; ``report`` (a SpectrumReport, scanned when None)
    gives LaMDA++'s ranks."""
    choices.check_choice(match, choices.COMPARE_MATCHES, "match")
    specs = {method: get_method(method) for method in methods}
    peft_like = [m for m, spec in specs.items() if spec.rank_matched]  # LoRA, DoRA, PiSSA, VeRA, PSOFT
    if len(set(methods)) < 2:
        raise ConfigError(f"a comparison needs at least two different methods, got {methods}")
    if base.max_steps is None:
        raise ConfigError("a comparison needs a fixed step budget (max_steps), the same for every method")
    rank, adapter = base.adapter.rank, base.adapter
    ranks = {method: rank for method in methods}
    alphas = {method: adapter.alpha for method in methods}
    pattern = {}
    for method in peft_like if match == "defaults" else []:
        ranks[method] = specs[method].default_rank
        alphas[method] = choices.DEFAULT_SCALE * ranks[method]
    if match == "parameters" and peft_like:
        matrices = _target_matrices(base)
        budget = sum(average_lamda_parameters(rank, m.d_out, base.max_steps, adapter.freeze_fraction,
                                              adapter.freeze_rule, b_counted="whole") for m in matrices)
        for method in peft_like:
            spec, config = specs[method], adapter
            ranks[method] = min(range(1, 4 * rank + 1), key=lambda r: abs(sum(
                spec.matrix_parameters(r, m.d_in, m.d_out, base.max_steps, config).average for m in matrices) - budget))
            alphas[method] = adapter.alpha * ranks[method] / rank  # LaMDA's scale
    if any(spec.needs_rank_pattern for spec in specs.values()):
        from ..spectra.allocation import allocate_ranks
        from ..spectra.spectrum import scan_spectra

        report = report if report is not None else scan_spectra(base.source)
        pattern = allocate_ranks(report, base_rank=rank,
                                 budget_kind="params" if match == "parameters" else "rank").rank_pattern
    configs, now = {}, time.time()
    for index, method in enumerate(methods):
        method_adapter = replace(adapter, rank=ranks[method], alpha=alphas[method],
                                 rank_pattern=pattern if specs[method].needs_rank_pattern else {},
                                 dropout=specs[method].default_dropout)
        configs[method] = replace(base, method=method, adapter=method_adapter, learning_rate=None,
                                  head_learning_rate=None, core_learning_rate=None,
                                  created=now + index * 1e-3)  # the queue's order: the order given
    return configs


def create_comparison(base: TrainConfig, methods: list[str], root: str | Path, match: str = "defaults",
                      name: str | None = None, report=None) -> list[Path]:
    """Check every run (preflight), then create one queued run folder per method under ``root``,
    named <comparison>-<method>; nothing is created when a check fails."""
    name = name or f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    check_group_name(root, name)  # before the configs: LaMDA++'s may need a spectrum scan
    return create_group(root, name, matched_configs(replace(base, comparison=name), methods, match, report))


def list_comparisons(root: str | Path) -> list[str]:
    """The comparison names under ``root``, oldest first."""
    return list(dict.fromkeys(c for c in (RunFolder(f).config.comparison for f in list_runs(root)) if c))


def comparison_runs(root: str | Path, name: str) -> list[Path]:
    runs = [f for f in list_runs(root) if RunFolder(f).config.comparison == name]
    if not runs:
        raise RunError(f"no comparison named {name!r} in {root}")
    return runs


def training_seconds(metrics: list[dict]) -> float:
    """Seconds spent training, summed over the sessions of a run (``elapsed`` restarts at a resume)."""
    total, previous = 0.0, 0.0
    for row in metrics:
        elapsed = row.get("elapsed", 0.0)
        total += elapsed - previous if elapsed >= previous else elapsed
        previous = elapsed
    return total


def run_result(folder: str | Path) -> dict:
    """One run as a comparison point: method, rank, state, metrics (accuracy and F1 as fractions,
    or perplexity), adapter / trainable parameters averaged over its steps, the trainer's peak
    memory and its training time; metrics are None until the run has evaluated."""
    run = RunFolder(folder)
    config, status, metrics = run.config, run.status(), run.metrics()
    summary = run.summary() or {}
    evaluation = run.last_eval()
    steps = len(metrics)
    return {
        "run": run.name, "method": config.method,
        "rank": config.rank_label,
        "learning_rate": config.method_spec.rates(config.learning_rate, None, None)[0],
        "state": status["state"],
        "step": status.get("step") or 0, "total_steps": status.get("total_steps") or config.max_steps,
        **{metric: evaluation.get(f"eval_{metric}") for metric in METRIC_DIRECTIONS},
        "adapter_average": sum(r["adapter_parameters"] for r in metrics) / steps if steps else None,
        "trainable_average": sum(r["trainable_parameters"] for r in metrics) / steps if steps else None,
        "peak_memory_mib": summary.get("peak_memory_mib"), "peak_memory_kind": summary.get("peak_memory_kind"),
        "seconds": training_seconds(metrics) if steps else None,
    }


def pareto_front(points: list[dict], x: str, metric: str) -> list[int]:
    """Indices of the points no other point beats: none is at most as costly in ``x`` and at least
    as good in ``metric`` while strictly better in one. Points lacking either value are left out."""
    sign = 1 if METRIC_DIRECTIONS[metric] == "higher" else -1
    valid = [i for i, p in enumerate(points) if p.get(x) is not None and p.get(metric) is not None]

    def beats(a: dict, b: dict) -> bool:
        no_worse = a[x] <= b[x] and sign * a[metric] >= sign * b[metric]
        return no_worse and (a[x] < b[x] or sign * a[metric] > sign * b[metric])

    return [i for i in valid if not any(beats(points[j], points[i]) for j in valid if j != i)]


def quality_metric(task: str) -> str:
    """The metric a comparison is judged by: accuracy for classification, perplexity for a causal LM."""
    return "accuracy" if task == "classification" else "perplexity"


def comparison_table(
    root: str | Path, name: str, metric: str | None = None, x: str = "trainable_average"
) -> list[dict]:
    """run_result of every run of a comparison, with "pareto" (on the front of ``metric``, by
    default quality_metric, against ``x``)."""
    runs = comparison_runs(root, name)
    metric = metric or quality_metric(RunFolder(runs[0]).config.task)
    rows = [run_result(f) for f in runs]
    front = set(pareto_front(rows, x, metric))
    return [{**row, "pareto": i in front} for i, row in enumerate(rows)]
