"""Markers come from the fixtures a test uses: a test whose fixture closure starts dockerd is marked
`docker`, and so on, so `-m "not docker"` deselects exactly the tests that need the engine. A hand-written
`pytest.mark.docker` (or registry, gcs) is refused by tests/test_suite_hygiene.py, except on a
`pytest.param` whose fixture is looked up at run time (`request.getfixturevalue`), where no closure shows it.

Registered as a plugin by tests/conftest.py; the markers themselves are declared in pyproject.toml."""

from __future__ import annotations

import pytest

# marker -> the fixtures that start its component (tests/infra/dockerd.py, registry.py, gcs.py)
COMPONENT_FIXTURES: dict[str, frozenset[str]] = {
    "docker": frozenset({"dockerd", "private_dockerd"}),
    "registry": frozenset({"registry", "auth_registry", "token_registry"}),
    "gcs": frozenset({"gcs_emulator", "private_gcs_emulator", "gcs_bucket_uri"}),
}


def markers_for(fixture_names: list[str] | tuple[str, ...]) -> list[str]:
    used = set(fixture_names)
    return [marker for marker, fixtures in COMPONENT_FIXTURES.items() if used & fixtures]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in markers_for(tuple(getattr(item, "fixturenames", ()))):
            item.add_marker(marker)
