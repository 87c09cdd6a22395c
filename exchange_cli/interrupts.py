"""SIGTERM (a CI timeout, a cancelled job, `kill`) ends a command the way Ctrl-C does: as an exception,
so every `finally` runs (partial files removed, locks released, a run rolled back) before it exits with
128 + the signal's number."""

from __future__ import annotations

import signal
import threading


class Interrupted(KeyboardInterrupt):
    """A signal asked us to stop; `signum` says which."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def terminate_raises() -> None:
    """From now on SIGTERM raises Interrupted in the main thread (as SIGINT raises KeyboardInterrupt)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    return 128 + getattr(interrupt, "signum", signal.SIGINT)
