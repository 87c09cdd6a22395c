"""Real components the tests start themselves: dockerd, a registry, the GCS emulator, git remotes."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_component(reason: str) -> None:
    """Skip locally, but under CI=true a missing component is a failure, never a silent skip."""
    if in_ci():
        pytest.fail(f"required test component is missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def require_executable(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        missing_component(f"{name} is not installed (scripts/test installs it)")
    return path  # type: ignore[return-value]


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that must be told its port. Another process may take it
    before the server binds it: the callers start again on a new one when that happens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
