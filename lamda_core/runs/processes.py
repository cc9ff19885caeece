"""Whether a run's process is still there, by pid (a run may not be this process's child)."""
from __future__ import annotations

import os
from pathlib import Path


def alive(pid) -> bool:
    """True while ``pid`` names a process that has not exited. A zombie (exited, not yet reaped:
    an orphan under an init that does not reap, or a child its parent has not waited for) counts
    as gone; a child of this process is reaped here."""
    if not pid:
        return False
    pid = int(pid)
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not this process's child
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is the answer
    return state not in ("Z", "X")
