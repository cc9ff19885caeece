"""Runs as folders, and the contract between a trainer process and its watchers (CLI, app).

A run folder holds:
  run_config.json   the TrainConfig
  status.json       {"state": queued | running | stopping | stopped | finished | failed, "reason",
                     "step", "total_steps", "pid", "updated"}, written atomically
  metrics.jsonl     one JSON object per optimizer step (and eval results at eval steps)
  STOP              present when a stop was requested; the trainer checkpoints and stops
  checkpoints/      step-NNNNNN folders, the last two kept
  adapter/, peft/   the final adapter and its PEFT export;  summary.json the final metrics
  train.log         the trainer's output
Only one run trains at a time per runs root (the folder's parent): a trainer waits, in creation
order, for the root's lock.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import RunError

STATES = ("queued", "running", "stopping", "stopped", "finished", "failed")
ACTIVE_STATES = ("queued", "running", "stopping")
LOCK_FILE = ".lamda-train.lock"


@dataclass
class TrainConfig:
    """Everything a run needs; saved as run_config.json."""

    source: str = "default"
    task: str = "classification"
    train_data: str = "demo-sentiment"
    validation_data: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    method: str = "lamda"
    rank: int = 8
    ranks_file: str | None = None
    alpha: float = 16.0
    dropout: float | None = None  # None: 0 for LaMDA, 0.05 for LoRA
    init: str = "svd"
    freeze_fraction: float = 0.3
    freeze_rule: str = "linear"
    learning_rate: float | None = None  # None: the method's default (DEFAULT_LEARNING_RATES)
    lr_schedule: str = "linear"
    warmup_fraction: float = 0.06
    weight_decay: float = 0.0
    batch_size: int = 16
    grad_accumulation: int = 1
    max_steps: int | None = None
    epochs: float | None = None  # used when max_steps is None (default 3)
    eval_interval: int = 25
    checkpoint_interval: int = 25
    seq_len: int = 64
    max_grad_norm: float = 1.0
    dtype: str = "float32"
    seed: int = 0
    created: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _write_json_atomic(path: Path, data: dict) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=1))
    os.replace(staging, path)


def write_status(folder: Path, state: str, **fields) -> None:
    status = read_status(folder) if (folder / "status.json").exists() else {}
    status.update(fields, state=state, updated=time.time())
    _write_json_atomic(folder / "status.json", status)


def read_status(folder: str | Path) -> dict:
    path = Path(folder) / "status.json"
    if not path.is_file():
        raise RunError(f"{folder} is not a run folder (no status.json)")
    return json.loads(path.read_text())


def read_config(folder: str | Path) -> TrainConfig:
    path = Path(folder) / "run_config.json"
    if not path.is_file():
        raise RunError(f"{folder} is not a run folder (no run_config.json)")
    return TrainConfig.from_json(path.read_text())


def read_metrics(folder: str | Path) -> list[dict]:
    """Every complete metrics line (a line being written is skipped)."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def create_run(config: TrainConfig, folder: str | Path) -> Path:
    """A new run folder holding the config, queued."""
    folder = Path(folder)
    if (folder / "run_config.json").exists():
        raise RunError(f"{folder} already holds a run; resume it or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_config.json").write_text(config.to_json())
    write_status(folder, "queued", step=0, total_steps=None, reason=None)
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def trainer_command(folder: Path, processes: int = 1) -> list[str]:
    """The trainer, alone or under ``accelerate launch`` with N processes. accelerate's --cpu flag
    always starts a single process, so several processes go through its multi-process launcher
    (torchrun) and the trainer's Accelerator(cpu=True) makes them a gloo group when there is no GPU."""
    if processes > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port()), "-m", "lamda_core.trainer", str(folder)]
    return [sys.executable, "-m", "lamda_core.trainer", str(folder)]


def start_run(folder: str | Path, processes: int = 1) -> subprocess.Popen:
    """Start (or resume) the trainer for a run folder as a separate process, no shell; it
    outlives the caller. Output goes to train.log."""
    folder = Path(folder)
    status = read_status(folder)
    if status["state"] in ("running", "stopping") and _alive(status.get("pid")):
        raise RunError(f"{folder} is already {status['state']} (pid {status.get('pid')})")
    if status["state"] == "finished":
        raise RunError(f"{folder} has finished; start a new run")
    (folder / "STOP").unlink(missing_ok=True)
    write_status(folder, "queued", reason=None)
    with open(folder / "train.log", "ab") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen(trainer_command(folder, processes), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())


def request_stop(folder: str | Path) -> None:
    """Ask the trainer to checkpoint and stop at its next step."""
    folder = Path(folder)
    state = read_status(folder)["state"]
    if state not in ACTIVE_STATES:
        raise RunError(f"{folder} is {state}; there is nothing to stop")
    (folder / "STOP").write_text(str(time.time()))
    if state == "running":
        write_status(folder, "stopping")


def stop_requested(folder: Path) -> bool:
    return (folder / "STOP").exists()


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
        return True
    except OSError:
        return False


def list_runs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / "run_config.json").is_file()]
    return sorted(runs, key=lambda p: read_config(p).created)


class TrainingSlot:
    """The root's lock, taken by the oldest queued run first: one run trains at a time."""

    def __init__(self, folder: Path, poll_s: float = 1.0):
        self.folder, self.poll_s, self._handle = folder, poll_s, None

    def _older_waiting(self) -> bool:
        mine = read_config(self.folder).created
        for other in list_runs(self.folder.parent):
            if other == self.folder:
                continue
            status = read_status(other)
            if status["state"] == "queued" and _alive(status.get("pid")) and read_config(other).created < mine:
                return True
        return False

    def __enter__(self):
        self._handle = open(self.folder.parent / LOCK_FILE, "w")
        while True:
            if not self._older_waiting():
                try:
                    fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return self
                except BlockingIOError:
                    pass
            time.sleep(self.poll_s)

    def __exit__(self, *exc):
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
