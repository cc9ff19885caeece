"""Groups of runs (a comparison, a sweep, a sweep's best settings): ordinary run folders under one
runs root whose TrainConfig.comparison holds the group's name, created together or not at all."""
from __future__ import annotations

from pathlib import Path

from ..errors import RunError
from .config import TrainConfig
from .folder import RunFolder, create_runs, list_runs


def check_group_name(root: str | Path, name: str, kind: str = "comparison") -> None:
    """A RunError if a group named ``name`` already has runs under ``root``."""
    if any(RunFolder(f).config.comparison == name for f in list_runs(root)):
        raise RunError(f"{root} already holds a {kind} named {name!r}; choose another name")


def create_group(root: str | Path, name: str, configs: dict[str, TrainConfig], kind: str = "comparison") -> list[Path]:
    """Check every run of the group (preflight), then create one queued run folder per label under
    ``root``, named <name>-<label> ("+" written "p"), in the order given; nothing is created when
    the name or a folder is taken or a check fails. Each config's ``comparison`` must be ``name``."""
    root = Path(root)
    check_group_name(root, name, kind)
    folders = {label: root / f"{name}-{label.replace('+', 'p')}" for label in configs}
    taken = [str(f) for f in folders.values() if f.exists()]
    if taken:
        raise RunError(f"run folders already exist: {', '.join(taken)}; choose another {kind} name")
    return create_runs([(config, folders[label]) for label, config in configs.items()])
