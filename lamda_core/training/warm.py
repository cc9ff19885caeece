"""The warm launcher's server: ``python -m lamda_core.training.warm SOCKET IDLE_SECONDS``.

It imports the training stack once (torch, transformers' model code, PEFT, accelerate and
torch.distributed, lamda_core's trainer and everything it imports on the way: about 6 CPU-seconds
that every cold trainer process pays), then listens on a Unix socket. Each request (one JSON line:
the run folder, the caller's working directory, environment and the run's train.log) is answered
by forking one child that becomes the run's trainer: a new session (it outlives the launcher and
the caller, and `kill` reaches it alone), stdin from /dev/null, stdout and stderr appended to the
run's train.log, the caller's directory and environment, then ``trainer.main([folder])``. The
reply is the child's pid. The server runs no torch computation itself, so no thread pool exists
when it forks; each run sets its own threads as a cold one does. Children are reaped by the
kernel (SIGCHLD ignored here, restored in the child). A child that crashes takes nothing else
down; the server exits after IDLE_SECONDS without a request. runs/launcher.py is the client.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import traceback


def preload() -> None:
    """Import what a trainer imports before its first step (the cost a warm start skips)."""
    import accelerate  # noqa: F401  (torch.distributed comes with it)
    import peft  # noqa: F401
    import torch  # noqa: F401
    from transformers import (  # noqa: F401  (the lazy module imports the model code on access)
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertForSequenceClassification,
        GPT2LMHeadModel,
        LlamaForCausalLM,
    )

    from ..adapter import freezing, gradient_init, inject, persistence  # noqa: F401
    from ..data import chat, reading  # noqa: F401
    from ..methods import adapt  # noqa: F401
    from ..models import loading, pooling, targets  # noqa: F401
    from ..runs import checkpoint, folder  # noqa: F401
    from . import batches, metrics, optim, passes, trainer  # noqa: F401


def read_line(connection: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data or b"{}")


def become_trainer(request: dict) -> None:
    """In the forked child: detach, take the run's log, the caller's directory and environment,
    and train; never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        from .trainer import main

        code = main([request["folder"]])
    except BaseException as error:  # the log and the run's status say why; the launcher is untouched
        traceback.print_exc()
        fail_run(request.get("folder"), error)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def fail_run(folder: str | None, error: BaseException) -> None:
    """Mark a run whose trainer never took over as failed (a trainer that did marks its own)."""
    from ..runs.folder import RunFolder

    try:
        run = RunFolder(folder)
        if run.exists() and run.status()["state"] == "queued":
            run.write_status("failed", reason=f"the warm launcher could not start its trainer: {error!r}")
    except Exception:  # noqa: BLE001  (the traceback above is the report)
        traceback.print_exc()


def serve(path: str, idle_seconds: float) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):  # a dead launcher's socket (the client holds the spawn lock)
        os.unlink(path)
    server.bind(path)
    bound = os.stat(path).st_ino  # a successor may bind the same path after this one stops listening
    server.listen(16)
    server.settimeout(idle_seconds)
    print(f"warm launcher {os.getpid()} ready on {path}", flush=True)
    try:
        while True:
            try:
                connection, _ = server.accept()
            except socket.timeout:
                break
            with connection:
                connection.settimeout(30)
                request = read_line(connection)
                if "folder" not in request:  # a ping
                    connection.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    server.close()
                    connection.close()
                    become_trainer(request)
                connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    finally:
        server.close()
        if os.path.exists(path) and os.stat(path).st_ino == bound:
            os.unlink(path)
        print(f"warm launcher {os.getpid()} idle for {idle_seconds:g} s: exiting", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m lamda_core.training.warm SOCKET IDLE_SECONDS", file=sys.stderr)
        return 2
    preload()
    serve(argv[0], float(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
