"""Ctrl-C reaches the tests however the suite was started.

A shell without job control starts a background command (`./scripts/test &` in a script) with SIGINT
ignored, and an ignored signal stays ignored in every process started from it: the tests that press
Ctrl-C (on a thread of this process, on a run they started) would then see nothing happen and fail for
the wrong reason. Python's own handler, put back here, is reset to the default by exec, so the processes
the tests start take Ctrl-C as a terminal's user's would. exchange itself keeps an ignored SIGINT ignored,
as a program should.
"""

from __future__ import annotations

import signal

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
