from __future__ import annotations

import pytest
from hypothesis import settings

from tests.infra import in_ci
from tests.infra.hypothesis_storage import use_run_storage

# Property tests: a bounded, unhurried run in CI; fewer examples while iterating locally. No example
# database: a clean clone has none, and a run must not leave files behind in the work tree.
settings.register_profile("ci", max_examples=200, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", max_examples=60, deadline=None, database=None, print_blob=True)
settings.register_profile("hunt", max_examples=5000, deadline=None, database=None, print_blob=True)  # by hand
settings.load_profile("ci" if in_ci() else "dev")

# Fixture modules for the real components; each starts its component on first use, once per session.
pytest_plugins = [
    "tests.infra.gitrepo",
    "tests.infra.dockerd",
    "tests.infra.registry",
    "tests.infra.gcs",
    "tests.infra.tmpfs",
    "tests.infra.kms",
    "tests.infra.tls",
    "tests.infra.sshd",
]
# Fixtures that several test modules share (a test module never imports another: tests/test_suite_hygiene.py).
pytest_plugins += [
    "tests.infra.process_world",
    "tests.infra.provenance",
    "tests.infra.image_sources",
    "tests.infra.failure_world",
    "tests.infra.buckets",
    "tests.infra.delivery_world",
    "tests.infra.stages",
    "tests.infra.shards",
    "tests.catalog_world",
]
# The suite's own rules: markers from fixture use, a run that leaves the work tree as it found it, how
# tests are shared out among the workers; the processes tests start share one session's compiled code;
# Ctrl-C reaches the tests even when the suite was started with SIGINT ignored.
pytest_plugins += ["tests.infra.markers", "tests.infra.worktree", "tests.infra.schedule", "tests.infra.bytecode",
                   "tests.infra.interrupts"]


def pytest_configure(config: pytest.Config) -> None:
    use_run_storage(config)  # Hypothesis's caches: one temporary directory for the run and its workers
