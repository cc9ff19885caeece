"""Exports of a finished run: the run's base with its trained update folded in."""
from __future__ import annotations

import shutil
from pathlib import Path



def export_merged(folder: str | Path, target: str | Path | None = None) -> Path:
    """Load the run's base, apply its adapter (LaMDA: adapter/, LoRA: peft/) and merge it, or copy
    a fully fine-tuned model/, then save_pretrained with the tokenizer to ``target`` (default:
    the run's merged/ folder)."""
    from ..analysis import finished_run, fine_tuned_model

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
