"""The processes the tool starts (git and its helpers) live in sessions of their own, so the terminal's
Ctrl-C reaches only us, and we end them: a git fetch cut by the terminal's SIGINT mid-run would leave the
rollback unable to read the remote, and a `git cat-file --batch` that GitPython keeps open would answer the
next question with a broken pipe."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import time


def children() -> set[int]:
    """This process's direct children (Linux: /proc/self/task/*/children); empty where unknown."""
    found: set[int] = set()
    for listing in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with contextlib.suppress(OSError), open(listing) as children_of_thread:
            found.update(int(pid) for pid in children_of_thread.read().split())
    return found


def end_sessions(pids: set[int], *, grace: float = 2.0) -> None:
    """SIGTERM each child's process group (it leads its own session: git and its ssh or https helper),
    then SIGKILL what is left after `grace` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if _running(pid)}
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished == 0
