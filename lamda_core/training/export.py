"""A finished run's fine-tuned model (for export and analysis) and its merged export: the run's
base with its trained update folded in."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RunError
from .runs import RunFolder


def fine_tuned_model(folder: str | Path):
    """(fine-tuned model, tokenizer) of a finished run: LaMDA (adapter/) and LoRA (peft/) merged
    into the run's base, full fine-tuning loaded from model/."""
    from ..adapter.persistence import load_adapter, merge_adapter
    from ..models.loading import load_model

    run, kwargs = finished_run(folder)
    source, task = run.config.source, run.config.task
    if (run.path / "model").is_dir():
        return load_model(str(run.path / "model"), task=task, **kwargs)
    model, tokenizer = load_model(source, task=task, **kwargs)
    if (run.path / "adapter").is_dir():
        return merge_adapter(load_adapter(model, run.path / "adapter")), tokenizer
    if (run.path / "peft").is_dir():
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(run.path / "peft")).merge_and_unload(), tokenizer
    raise RunError(f"{run.path} holds no adapter/, peft/ or model/ folder to analyse")


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
    target = Path(target) if target is not None else run.path / "merged"
    if (run.path / "model").is_dir():  # full fine-tuning: its saved model is the export
        shutil.copytree(run.path / "model", target, dirs_exist_ok=True)
        return target
    merged, tokenizer = fine_tuned_model(folder)
    merged.save_pretrained(target)
    if tokenizer is not None:
        tokenizer.save_pretrained(target)
    return target
