"""Runs as folders: the contract between a trainer process and its watchers (CLI, app).

A run folder holds:
  run_config.json   the whole TrainConfig (adapter config and per-matrix ranks inline)
  status.json       {"state": queued | running | stopping | stopped | finished | failed, "reason",
                     "step", "total_steps", "pid", "updated", "launched"}, written atomically
  metrics.jsonl     one JSON object per optimizer step (and eval results at eval steps)
  STOP              present when a stop was requested; the trainer checkpoints and stops
  checkpoints/      step-NNNNNN folders, the last two kept
  adapter/, peft/   the final adapter and its PEFT export (model/ for full fine-tuning): what the
                    method's registry entry saves (methods/, Method.saved_folder)
  summary.json      the final metrics;  merged/ a merged export;  train.log the trainer's output
  downloads/        zips of the saved folders, built on request (the app's downloads)
``RunFolder`` is the only code that knows these paths. Only one run trains at a time
per runs root (the folder's parent): a trainer waits, in creation order, for the root's lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import RunError
from .config import TrainConfig
from .processes import alive

SAVED_FOLDERS = ("adapter", "peft", "model")  # what a finished run can hold, in the order shown
QUEUED_STOP_REASON = "stopped while queued; it never started"
STATES = ("queued", "running", "stopping", "stopped", "finished", "failed")
ACTIVE_STATES = ("queued", "running", "stopping")
LOCK_FILE = ".lamda-train.lock"
KEEP_CHECKPOINTS = 2


def _write_json_atomic(path: Path, data: dict) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=1))
    os.replace(staging, path)


class RunFolder:
    """One run folder. Construction checks nothing; every read names the missing file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config: TrainConfig | None = None

    @classmethod
    def create(cls, config: TrainConfig, path: str | Path) -> "RunFolder":
        """A new run folder holding the config, queued."""
        run = cls(path)
        if (run.path / "run_config.json").exists():
            raise RunError(f"{run.path} already holds a run; resume it or choose another folder")
        run.path.mkdir(parents=True, exist_ok=True)
        (run.path / "run_config.json").write_text(config.to_json())
        run.write_status("queued", step=0, total_steps=None, reason=None)
        return run

    @property
    def name(self) -> str:
        return self.path.name

    # ---- paths ----------------------------------------------------------------------------
    def saved(self, name: str | None = None) -> Path:
        """A saved folder of a finished run: ``name`` (adapter, peft or model) or, by default, the
        one its method saves first (methods/)."""
        return self.path / (name or self.config.method_spec.saved_folder)

    def saved_folders(self) -> list[Path]:
        """The saved folders present, adapter / peft / model in that order."""
        return [self.path / name for name in SAVED_FOLDERS if (self.path / name).is_dir()]

    @property
    def merged_path(self) -> Path:
        return self.path / "merged"

    def download_path(self, name: str) -> Path:
        """Where the zip of the saved folder ``name`` goes."""
        return self.path / "downloads" / f"{name}.zip"

    def download(self, name: str) -> Path:
        """The zip of the saved folder ``name`` (download_path), built on first request only
        (staged, then renamed into place)."""
        import zipfile

        target = self.download_path(name)
        if not target.is_file():
            target.parent.mkdir(exist_ok=True)
            staging = target.with_suffix(".tmp")
            with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted((self.path / name).rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(self.path))
            staging.replace(target)
        return target

    # ---- config and status ----------------------------------------------------------------
    @property
    def config(self) -> TrainConfig:
        if self._config is None:
            path = self.path / "run_config.json"
            if not path.is_file():
                raise RunError(f"{self.path} is not a run folder (no run_config.json)")
            self._config = TrainConfig.from_json(path.read_text())
        return self._config

    def config_text(self) -> str:
        """run_config.json as written (a cache key for what is computed from the config)."""
        return (self.path / "run_config.json").read_text()

    def exists(self) -> bool:
        """Whether the folder holds a run (its status file)."""
        return (self.path / "status.json").is_file()

    def files(self) -> list[tuple[str, int]]:
        """(path inside the folder, bytes) of every file the run wrote, sorted."""
        return [(str(p.relative_to(self.path)), p.stat().st_size) for p in sorted(self.path.rglob("*")) if p.is_file()]

    def changed_at(self, what: str = "status") -> float:
        """When the run's status (or its summary: ``what="summary"``) was last written, for caches
        of what is computed from a run; 0 when it is not there yet."""
        path = self.path / {"status": "status.json", "summary": "summary.json"}[what]
        return path.stat().st_mtime if path.is_file() else 0.0

    def config_digest(self) -> str:
        """sha256 of run_config.json: checkpoints record it so a resume can tell the config changed."""
        return hashlib.sha256((self.path / "run_config.json").read_bytes()).hexdigest()

    def status(self) -> dict:
        path = self.path / "status.json"
        if not path.is_file():
            raise RunError(f"{self.path} is not a run folder (no status.json)")
        return json.loads(path.read_text())

    def write_status(self, state: str, **fields) -> None:
        status = self.status() if (self.path / "status.json").exists() else {}
        status.update(fields, state=state, updated=time.time())
        _write_json_atomic(self.path / "status.json", status)

    def is_active(self) -> bool:
        return self.status()["state"] in ACTIVE_STATES

    def is_live(self) -> bool:
        """Queued and not yet started, or queued or training in a process that is still alive (a
        killed trainer leaves its run "running", or "queued" if it died before its first step, with
        a dead pid)."""
        status = self.status()
        if status["state"] == "queued" and not status.get("pid"):
            return True
        return status["state"] in ACTIVE_STATES and alive(status.get("pid"))

    # ---- metrics, summary -----------------------------------------------------------------
    def metrics(self) -> list[dict]:
        """Every complete metrics line (a line being written is skipped)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def append_metrics(self, row: dict) -> None:
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop the lines after ``step`` (a resume repeats those steps)."""
        kept = [row for row in self.metrics() if row["step"] <= step]
        (self.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))

    def last_eval(self) -> dict:
        evals = [row for row in self.metrics() if "eval_loss" in row]
        return {k: v for k, v in evals[-1].items() if k.startswith("eval_")} if evals else {}

    def summary(self) -> dict | None:
        path = self.path / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def write_summary(self, summary: dict) -> None:
        _write_json_atomic(self.path / "summary.json", summary)

    # ---- stop -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the trainer to checkpoint and stop at its next step. A queued run is stopped at
        once (its waiting trainer sees STOP and exits, see TrainingSlot)."""
        state = self.status()["state"]
        if state not in ACTIVE_STATES:
            raise RunError(f"{self.path} is {state}; there is nothing to stop")
        (self.path / "STOP").write_text(str(time.time()))
        if state == "running":
            self.write_status("stopping")
        elif state == "queued":
            self.write_status("stopped", reason=QUEUED_STOP_REASON)

    def waiting_for(self) -> list[str]:
        """Names of the runs of this folder's root that train before this queued run: the one
        training now and the older queued ones (one run trains at a time per root)."""
        mine = self.config.created
        ahead = []
        for other in list_runs(self.path.parent):
            if other == self.path:
                continue
            run = RunFolder(other)
            status = run.status()
            if status["state"] in ("running", "stopping") and alive(status.get("pid")):
                ahead.append(f"{other.name} ({status['state']})")
            elif status["state"] == "queued" and alive(status.get("pid")) and run.config.created < mine:
                ahead.append(f"{other.name} (queued)")
        return ahead

    def wait_for_stop(self, poll_s: float = 0.5) -> bool:
        """Block while a requested stop is under way (state stopping, its trainer alive); True if
        there was one to wait for."""
        waited = False
        while self.status()["state"] == "stopping" and alive(self.status().get("pid")):
            waited = True
            time.sleep(poll_s)
        return waited

    def clear_stop_request(self) -> None:
        """Forget an earlier stop request (a resume trains on)."""
        (self.path / "STOP").unlink(missing_ok=True)

    def stop_requested(self) -> bool:
        return (self.path / "STOP").exists()

    # ---- checkpoints ----------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        folder = self.path / "checkpoints"
        return sorted(folder.glob("step-*")) if folder.is_dir() else []

    def resume_checkpoint(self) -> Path | None:
        """The checkpoint a resume starts from, verified (checkpoint.verify_checkpoint), or None
        for a run that has not trained a step. A stopped run must resume at the step it stopped
        at; a killed or failed run resumes at its last checkpoint and repeats the steps after it
        with the same data order and RNG (their metrics lines are dropped first). Refused: a
        finished run, steps done but no checkpoint, a checkpoint ahead of the status."""
        from .checkpoint import verify_checkpoint

        status = self.status()
        step = status.get("step") or 0
        if status["state"] == "finished":
            raise RunError(f"{self.path} has finished; start a new run")
        checkpoints = self.checkpoints()
        if not checkpoints:
            if step > 0:
                raise RunError(f"{self.path} trained {step} steps but holds no checkpoint (the first is written at "
                               f"step {self.config.checkpoint_interval}); start a new run")
            return None
        state = verify_checkpoint(checkpoints[-1], self.config_digest())
        if state["step"] > step:
            raise RunError(f"{self.path}: checkpoint {checkpoints[-1].name} is ahead of the status (step {step})")
        if status["state"] == "stopped" and state["step"] != step:
            raise RunError(f"{self.path} stopped at step {step} but its last checkpoint is {checkpoints[-1].name}; "
                           "resuming would repeat steps")
        return checkpoints[-1]

    def save_checkpoint(self, step: int, write) -> Path:
        """``write(folder)`` fills a staging folder, which then replaces step-NNNNNN at once;
        only the last KEEP_CHECKPOINTS are kept."""
        root = self.path / "checkpoints"
        root.mkdir(exist_ok=True)
        final, staging = root / f"step-{step:06d}", root / f".step-{step:06d}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        write(staging)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for old in self.checkpoints()[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    # ---- lifetime -------------------------------------------------------------------------
    def start(self, processes: int = 1, warm: bool = False):
        """Start (or resume) the trainer as a separate process, no shell; it outlives the caller.
        Output goes to train.log. ``warm``: forked from the warm launcher (runs/launcher.py: the
        training stack already imported) when it is on and reachable, else a cold process;
        several processes are always a cold ``accelerate launch``. Returns the process
        (subprocess.Popen, or launcher.WarmProcess: ``pid``, ``wait()``)."""
        from . import launcher

        status = self.status()
        if status["state"] in ("running", "stopping") and alive(status.get("pid")):
            raise RunError(f"{self.path} is already {status['state']} (pid {status.get('pid')})")
        self.resume_checkpoint()  # refuses a finished run and a checkpoint it cannot trust
        self.clear_stop_request()
        self.write_status("queued", reason=None, launched=time.time())  # startup_seconds counts from here
        process = None
        if warm and processes == 1 and launcher.enabled():
            try:
                process = launcher.start_warm(self.path, self.path / "train.log")
            except launcher.LauncherError as error:
                print(f"note: {error}; starting {self.name} cold", file=sys.stderr)
        if process is None:
            with open(self.path / "train.log", "ab") as log:  # the child keeps its own copy of the handle
                process = subprocess.Popen(trainer_command(self.path, processes), stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, cwd=os.getcwd())
        # the pid at once, so a run started right after this one sees it queued ahead (TrainingSlot);
        # the child rewrites the same pid when it starts
        self.write_status("queued", pid=process.pid)
        return process

    def delete(self) -> None:
        """Remove the folder and everything in it; refused while the run is queued or training."""
        if self.is_active() and alive(self.status().get("pid")):
            raise RunError(f"{self.path} is {self.status()['state']}; stop it before deleting it")
        shutil.rmtree(self.path)


# ---- the functional API over RunFolder (what the CLI, the app and the tests call) ----------
def create_run(config: TrainConfig, folder: str | Path, notes: list | None = None) -> Path:
    """Check the run (preflight.check_run: data, model, ranks), then create its folder; what the
    check detected (e.g. a file without a header line) is appended to ``notes``."""
    return create_runs([(config, folder)], notes)[0]


def create_runs(runs: list[tuple[TrainConfig, str | Path]], notes: list | None = None) -> list[Path]:
    """Check every (config, folder) first, then create the folders: nothing is created when one
    check fails (a comparison's runs)."""
    from .preflight import check_run

    for config, _ in runs:
        found = check_run(config)
        if notes is not None:
            notes.extend(n for n in found if n not in notes)
    return [RunFolder.create(config, folder).path for config, folder in runs]


def new_run_folder(root: str | Path, method: str) -> Path:
    """A folder name not yet taken under ``root``: <date>-<time>-<method>[-n]."""
    root, stamp = Path(root), time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = root / (f"{stamp}-{method.replace('+', 'p')}" + (f"-{n}" if n else ""))
        if not folder.exists():
            return folder
    raise RunError(f"{root} has no free run folder name left for {stamp}")


def read_config(folder: str | Path) -> TrainConfig:
    return RunFolder(folder).config


def read_status(folder: str | Path) -> dict:
    return RunFolder(folder).status()


def read_metrics(folder: str | Path) -> list[dict]:
    return RunFolder(folder).metrics()


def read_last_eval(folder: str | Path) -> dict:
    return RunFolder(folder).last_eval()


def request_stop(folder: str | Path) -> None:
    RunFolder(folder).request_stop()


def start_run(folder: str | Path, processes: int = 1, warm: bool = False):
    return RunFolder(folder).start(processes, warm)


def delete_run(folder: str | Path) -> None:
    RunFolder(folder).delete()


def any_live(folders: list[Path]) -> bool:
    """Whether any of ``folders`` is queued or training in a live process (what a page follows)."""
    return any(RunFolder(folder).is_live() for folder in folders)


def list_runs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / "run_config.json").is_file()]
    return sorted(runs, key=lambda p: read_config(p).created)


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
                "--main_process_port", str(_free_port()), "-m", "lamda_core.training.trainer", str(folder)]
    return [sys.executable, "-m", "lamda_core.training.trainer", str(folder)]


class StoppedWhileQueued(RunError):
    """A stop request reached a run still waiting for the training slot."""


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
            if status["state"] == "queued" and alive(status.get("pid")) and read_config(other).created < mine:
                return True
        return False

    def __enter__(self):
        self._handle = open(self.folder.parent / LOCK_FILE, "w")
        while True:
            if (self.folder / "STOP").exists():
                self._handle.close()
                raise StoppedWhileQueued(QUEUED_STOP_REASON)
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
