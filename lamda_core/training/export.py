"""Exports of a finished run: the run's base with its trained update folded in."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RunError
from .runs import RunFolder


def export_merged(folder: str | Path, target: str | Path | None = None) -> Path:
    """Load the run's base, apply its adapter (LaMDA: adapter/, LoRA: peft/) and merge it, or copy
    a fully fine-tuned model/, then save_pretrained with the tokenizer to ``target`` (default:
    the run's merged/ folder)."""
    from ..adapter.persistence import load_adapter, merge_adapter
    from ..models.loading import load_model

    run = RunFolder(folder)
    summary = run.summary()
    if run.status()["state"] != "finished" or summary is None:
        raise RunError(f"{run.path} has not finished ({run.status()['state']}); only a finished run can be exported")
    config = run.config
    target = Path(target) if target is not None else run.path / "merged"
    kwargs = {"num_labels": len(summary["labels"])} if config.task == "classification" else {}
    model, tokenizer = load_model(config.source, task=config.task, **kwargs)
    if (run.path / "adapter").is_dir():
        merged = merge_adapter(load_adapter(model, run.path / "adapter"))
    elif (run.path / "peft").is_dir():
        from peft import PeftModel

        merged = PeftModel.from_pretrained(model, str(run.path / "peft")).merge_and_unload()
    else:
        shutil.copytree(run.path / "model", target, dirs_exist_ok=True)
        return target
    merged.save_pretrained(target)
    if tokenizer is not None:
        tokenizer.save_pretrained(target)
    return target
