"""How the tests are shared out among pytest-xdist's workers (`--dist loadgroup`, scripts/test).

- A test using a module-scoped fixture (or a session-scoped one a test module defines) runs on the
  same worker as the module's other such tests, so that the fixture is made once per run, not once
  per worker that happens to get one of them (an exchange processed and pushed, images built by the
  engine, a Debian made by mmdebstrap): `xdist_group(<module>)`.
- Tests whose setup takes tens of seconds start first, the longest first, so that they run beside
  the many short tests instead of alone at the end. Otherwise the collection order stands.

Registered as a plugin by tests/conftest.py."""

from __future__ import annotations

import pytest

# Fixtures whose first use takes long (each 10-60 s on this machine), the longest first.
LONG_SETUP_FIXTURES = ("debian_image", "vs_docker_images", "check_images_built")
# Made once per worker for the whole run anyway: sharing a worker saves nothing.
_PER_WORKER_SCOPES = ("session",)


def start_rank(item: pytest.Item) -> int:
    used = set(getattr(item, "fixturenames", ()))
    return next((rank for rank, name in enumerate(LONG_SETUP_FIXTURES) if name in used), len(LONG_SETUP_FIXTURES))


def shares_module_setup(item: pytest.Item) -> bool:
    """Whether `item` uses a fixture made once per module, or once per session by its own module."""
    info = getattr(item, "_fixtureinfo", None)
    module = getattr(getattr(item, "module", None), "__name__", None)
    if info is None or module is None:
        return False
    for definitions in info.name2fixturedefs.values():
        for definition in definitions:
            if definition.scope == "module":
                return True
            if definition.scope in _PER_WORKER_SCOPES and getattr(definition.func, "__module__", None) == module:
                return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=start_rank)
    for item in items:
        if shares_module_setup(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))  # type: ignore[attr-defined]
