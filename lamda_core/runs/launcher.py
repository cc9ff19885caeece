"""The warm launcher's client: start a run folder's trainer as a fork of a process that has
already imported the training stack (training/warm.py), instead of a cold ``python -m
lamda_core.training.trainer`` that imports it first (about 6 CPU-seconds).

One launcher serves every caller with the same Python, the same lamda_core code and the same
import-time environment (``launcher_key``); it is started on first use, detached in its own
session, and exits after ``LAMDA_LAUNCHER_IDLE_S`` seconds (default 900) without a request. A
run it starts is an ordinary run: its own process and session, its own pid in status.json, its
output in train.log, stopped, resumed and killed like a cold one. ``LAMDA_LAUNCHER=off`` turns
warm starts off; a launcher that cannot be reached is a LauncherError, and the caller starts the
run cold (RunFolder.start)."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import RunError
from .processes import alive

PACKAGE = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120  # the launcher's imports; on a busy 2-core machine they take several seconds
IMPORT_TIME_ENV = ("HF_", "TRANSFORMERS_", "TORCH", "OMP_", "MKL_", "CUDA_", "PYTORCH_", "TOKENIZERS_", "PYTHON")


class LauncherError(RunError):
    """The warm launcher could not be reached or started."""


def enabled() -> bool:
    return os.environ.get("LAMDA_LAUNCHER", "on").lower() not in ("off", "0", "no", "false")


def launcher_key() -> str:
    """What a launcher's preloaded modules depend on: the interpreter, lamda_core's source files
    (path, size and modification time) and the environment variables read at import time."""
    digest = hashlib.sha256(sys.executable.encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for name in sorted(os.environ):
        if name.startswith(IMPORT_TIME_ENV):
            digest.update(f"{name}={os.environ[name]}".encode())
    return digest.hexdigest()[:16]


def socket_path() -> Path:
    return Path(tempfile.gettempdir()) / f"lamda-launcher-{os.getuid()}-{launcher_key()}.sock"


def _request(path: Path, message: dict, timeout: float = 30.0) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(path))
        connection.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = connection.recv(65536)
            if not chunk:
                raise LauncherError("the warm launcher closed the connection without an answer")
            data += chunk
    return json.loads(data)


def ping(path: Path | None = None) -> int | None:
    """The pid of the launcher listening on ``path`` (default: this caller's), or None."""
    try:
        return int(_request(path or socket_path(), {}, timeout=5)["pid"])
    except (OSError, ValueError, KeyError, LauncherError):
        return None


def ensure_launcher() -> Path:
    """The socket of a ready launcher for this caller, started (and waited for) if none answers;
    one caller at a time starts it (a lock beside the socket)."""
    path = socket_path()
    if ping(path):
        return path
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ping(path):
            return path
        idle = os.environ.get("LAMDA_LAUNCHER_IDLE_S", "900")
        with open(path.with_suffix(".log"), "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "lamda_core.training.warm", str(path), idle],
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=str(PACKAGE.parent))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LauncherError(f"the warm launcher exited with code {process.returncode} while starting "
                                    f"(its log: {path.with_suffix('.log')})")
            if ping(path):
                return path
            time.sleep(0.1)
        process.kill()
        raise LauncherError(f"the warm launcher was not ready within {READY_TIMEOUT_S} s")


class WarmProcess:
    """A run started by the launcher (not a child of this process): its pid, and waiting for it."""

    def __init__(self, pid: int):
        self.pid = pid

    def poll(self) -> bool:
        """Whether the run's process is still there."""
        return alive(self.pid)

    def wait(self, poll_s: float = 0.2) -> None:
        while self.poll():
            time.sleep(poll_s)


def start_warm(folder: Path, log: Path) -> WarmProcess:
    """Fork ``folder``'s trainer from the warm launcher (started if needed); LauncherError when
    that fails twice (a launcher that stopped listening between the check and the request is
    replaced once)."""
    message = {"folder": str(Path(folder).resolve()), "cwd": os.getcwd(), "env": dict(os.environ),
               "log": str(Path(log).resolve())}  # absolute: the launcher's own directory is not the caller's
    error = None
    for _ in range(2):
        try:
            return WarmProcess(int(_request(ensure_launcher(), message)["pid"]))
        except (OSError, ValueError, KeyError, LauncherError) as failure:
            error = failure
    raise LauncherError(f"the warm launcher did not start {folder.name}: {error}")
