"""Where Hypothesis keeps its caches (Unicode tables, the constants of the code under test) for a run:
not ./.hypothesis, so that a run writes nothing into the work tree, but a temporary directory the run's
first process (pytest, or xdist's controller) makes and removes at its end. Its workers, and the fuzz
driver a test starts, find it in the environment and share it: each worker used to make the table of what
UTF-8 encodes, which every `st.text()` draws from, for itself (1.4 s of CPU each). Hypothesis writes its
tables atomically (a temporary file, renamed), so workers that make one at once do not see half of it."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

STORAGE_ENV = "HYPOTHESIS_STORAGE_DIRECTORY"
STORAGE_PREFIX = "exchange-hypothesis-"  # then the pid of the process that made it


def use_run_storage(config: pytest.Config) -> str:
    """The run's storage directory, made here unless this is a worker of a run that made one."""
    storage = os.environ.get(STORAGE_ENV, "")
    if not (os.environ.get("PYTEST_XDIST_WORKER") and os.path.isdir(storage)):
        storage = tempfile.mkdtemp(prefix=f"{STORAGE_PREFIX}{os.getpid()}-")
        config.add_cleanup(lambda: shutil.rmtree(storage, ignore_errors=True))
        os.environ[STORAGE_ENV] = storage  # for the workers xdist starts after this, and for subprocesses
    set_hypothesis_home_dir(storage)
    return storage


def storage_maker(storage: str) -> int:
    """The pid of the process that made `storage` (a directory use_run_storage made)."""
    return int(os.path.basename(storage).removeprefix(STORAGE_PREFIX).split("-")[0])
