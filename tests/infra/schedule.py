"""The order tests start in: those whose setup takes tens of seconds (a Debian made by mmdebstrap, images
built by the engine) first, the longest first, so that under pytest-xdist they run beside the many short
tests instead of alone at the end. Otherwise the collection order stands (a stable sort).

pytest-xdist's `load` distribution hands the first tests out one to each worker, in this order. (Its
`loadscope` would keep a module's tests on one worker, but sends the modules with the most tests first,
which puts the one-test Debian module at the end; its `loadgroup` markers, added here, were not seen by
its own hook in our runs.)

Registered as a plugin by tests/conftest.py."""

from __future__ import annotations

import pytest

# Fixtures whose first use takes long (each 10-60 s on this machine), the longest first.
LONG_SETUP_FIXTURES = ("debian_image", "vs_docker_images", "check_images_built")


def start_rank(item: pytest.Item) -> int:
    used = set(getattr(item, "fixturenames", ()))
    return next((rank for rank, name in enumerate(LONG_SETUP_FIXTURES) if name in used), len(LONG_SETUP_FIXTURES))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=start_rank)
