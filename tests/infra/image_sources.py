"""Fixtures of the tests that read images: a blob cache of their own, no credentials from the machine, and
a fault-injecting proxy in front of the session's registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange_cli.image.blobcache import BlobCache
from tests.infra.registry import FaultInjectingProxy, RegistryServer

# Settings a test must not inherit from the machine that runs it: registry logins, a maintainer's
# identity, a base image override.
_INHERITED = ("EXCHANGE_REGISTRY_", "EXCHANGE_MAINTAINER_", "EXCHANGE_BASE")


@pytest.fixture
def blob_cache(tmp_path: Path) -> BlobCache:
    return BlobCache(tmp_path / "cache")


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the machine's Docker login nor the environment may leak into a test (modules that need this
    name it in `pytestmark = pytest.mark.usefixtures("no_credentials")`)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    for name in list(os.environ):
        if name.startswith(_INHERITED):
            monkeypatch.delenv(name)


@pytest.fixture
def registry_proxy(registry: RegistryServer) -> Iterator[FaultInjectingProxy]:
    front = FaultInjectingProxy(registry.url)
    yield front
    front.stop()
