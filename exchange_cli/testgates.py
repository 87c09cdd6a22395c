"""Test gates: named points where a test can hold a running `exchange` to act on it at a known moment
(kill it with its partial upload on disk), instead of racing a timer against a step of milliseconds.

Inert unless EXCHANGE_TEST_GATES names a directory: then at gate NAME, if NAME.armed exists there, the
process creates NAME.reached and waits until NAME.armed is removed. Nothing else reads the variable, and
without it a gate is one environment lookup. docs/testing.md lists the gates."""

from __future__ import annotations

import os
import time
from pathlib import Path

GATES_ENV = "EXCHANGE_TEST_GATES"
POLL_SECONDS = 0.02


def gate(name: str) -> None:
    directory = os.environ.get(GATES_ENV)
    if not directory:
        return
    armed = Path(directory) / f"{name}.armed"
    if not armed.exists():
        return
    (Path(directory) / f"{name}.reached").touch()
    while armed.exists():
        time.sleep(POLL_SECONDS)
