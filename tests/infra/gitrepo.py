"""Fixtures: see tests/infra/__init__.py."""
