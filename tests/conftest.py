from __future__ import annotations

# Fixture modules for the real components; each starts its component on first use, once per session.
pytest_plugins = [
    "tests.infra.gitrepo",
    "tests.infra.dockerd",
    "tests.infra.registry",
    "tests.infra.gcs",
]
