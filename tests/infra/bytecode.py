"""Compiled code shared by the processes the tests start. Where the environment says not to write bytecode
(PYTHONDONTWRITEBYTECODE=1, as on the machine the suite is timed on), every `exchange` a test runs in a
process of its own compiles the package from source again: about a quarter of the CPU of a short
`exchange process`, paid again by every such run.

The controller makes one temporary directory for the session (its path in EXCHANGE_TEST_PYCACHE, which the
pytest-xdist workers inherit) and removes it at the end. In each process that runs tests, the processes
the tests start get it as PYTHONPYCACHEPREFIX: the first one compiles, the others read, and nothing is
written into the work tree. The test processes themselves keep their interpreter's settings (with an
empty prefix each worker would compile the standard library and every dependency it imports again).
A prefix the developer set is left as it is."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

SESSION_CACHE_ENV = "EXCHANGE_TEST_PYCACHE"
PREFIX_ENV = "PYTHONPYCACHEPREFIX"
NO_BYTECODE_ENV = "PYTHONDONTWRITEBYTECODE"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(SESSION_CACHE_ENV) or os.environ.get(PREFIX_ENV):
        return  # a worker, whose controller made the directory; or the developer's own prefix
    directory = tempfile.mkdtemp(prefix="exchange-pycache-")
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    os.environ[SESSION_CACHE_ENV] = directory


@pytest.fixture(scope="session", autouse=True)
def bytecode_shared_with_subprocesses() -> Iterator[None]:
    directory = os.environ.get(SESSION_CACHE_ENV)
    if not directory or os.environ.get(PREFIX_ENV):
        yield
        return
    saved = os.environ.pop(NO_BYTECODE_ENV, None)
    os.environ[PREFIX_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(PREFIX_ENV, None)
        if saved is not None:
            os.environ[NO_BYTECODE_ENV] = saved
