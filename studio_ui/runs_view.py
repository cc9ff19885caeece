"""Run-folder helpers for the Fine-tune and Runs pages: archives and merged exports."""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

from lamda_core.runs import ACTIVE_STATES, list_runs, read_config, read_status


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()


def active_run(root: Path) -> Path | None:
    """The newest queued, running or stopping run under root, to re-attach to after a reload."""
    active = [run for run in list_runs(root) if read_status(run)["state"] in ACTIVE_STATES]
    return active[-1] if active else None


def export_merged(folder: Path) -> Path:
    """The run's base with its trained adapter folded in, saved with save_pretrained."""
    from lamda_core import load_adapter, load_model, merge_adapter

    config = read_config(folder)
    target = folder / "merged"
    summary = json.loads((folder / "summary.json").read_text())
    kwargs = {"num_labels": len(summary["labels"])} if config.task == "classification" else {}
    model, tokenizer = load_model(config.source, task=config.task, **kwargs)
    if (folder / "adapter").is_dir():
        merged = merge_adapter(load_adapter(model, folder / "adapter"))
    elif (folder / "peft").is_dir():
        from peft import PeftModel

        merged = PeftModel.from_pretrained(model, str(folder / "peft")).merge_and_unload()
    else:
        shutil.copytree(folder / "model", target, dirs_exist_ok=True)
        return target
    merged.save_pretrained(target)
    if tokenizer is not None:
        tokenizer.save_pretrained(target)
    return target
