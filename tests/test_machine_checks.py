"""The machine checks, run by the suite so that CI (`.ci/run`, the README's test command) runs them: mypy
strict on the package and ruff's documented rule set (both configured in pyproject.toml), at zero. The
import contract is tests/test_import_contract.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.infra import require_executable

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / name
    found = str(tool) if tool.exists() else require_executable(name)  # missing: a failure under CI=true
    return subprocess.run([found, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)


def test_mypy_strict_finds_nothing() -> None:
    # Like ruff's --no-cache: the run writes nothing into the work tree (a fresh clone has no cache anyway).
    result = run_tool("mypy", "--cache-dir=/dev/null")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing() -> None:
    result = run_tool("ruff", "check", "--no-cache", "exchange_cli", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr
