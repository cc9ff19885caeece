"""A finished run's fine-tuned model (for export and analysis) and its merged export: the run's
base with its trained update folded in."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RunError
from .runs import RunFolder


def fine_tuned_model(folder: str | Path):
    """(fine-tuned model, tokenizer) of a finished run, as its method's registry entry loads it:
    an adapter merged into the run's base, or the whole saved model (full fine-tuning)."""
    run, kwargs = finished_run(folder)
    config, saved = run.config, run.saved()
    if not saved.is_dir():
        raise RunError(f"{run.path} has no {saved.name}/ folder, which a finished {config.method} run saves")
    return config.method_spec.load(run.path, config.source, config.task, **kwargs)


def finished_run(folder: str | Path):
    """(RunFolder, load_model keyword arguments) of a finished run; RunError otherwise."""
    run = RunFolder(folder)
    summary = run.summary()
    if run.status()["state"] != "finished" or summary is None:
        raise RunError(f"{run.path} has not finished ({run.status()['state']}); only a finished run can be exported or analysed")
    classification = {"num_labels": len(summary["labels"]), "pooling": run.config.pooling}
    return run, (classification if run.config.task == "classification" else {})


def export_merged(folder: str | Path, target: str | Path | None = None) -> Path:
    """Load the run's base, apply its adapter (LaMDA: adapter/, LoRA: peft/) and merge it, or copy
    a fully fine-tuned model/, then save_pretrained with the tokenizer to ``target`` (default:
    the run's merged/ folder)."""
    run, _ = finished_run(folder)
    target = Path(target) if target is not None else run.merged_path
    if not run.config.method_spec.adapts_matrices:  # full fine-tuning: its saved model is the export
        shutil.copytree(run.saved(), target, dirs_exist_ok=True)
        return target
    merged, tokenizer = fine_tuned_model(folder)
    merged.save_pretrained(target)
    if tokenizer is not None:
        tokenizer.save_pretrained(target)
    return target
