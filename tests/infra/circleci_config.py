"""The exchange's CircleCI configuration, read as CircleCI reads it: jobs with their commands expanded,
and the `exchange` calls each job makes (tests run those exact calls)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

CONFIG_PATH = Path(__file__).resolve().parents[2] / ".circleci" / "config.yml"
EXCHANGE = ".venv/bin/exchange"


def load_config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG_PATH.read_text())


def steps_of(config: dict[str, Any], job: str) -> list[Any]:
    """The job's steps with the config's own commands expanded (commands may use commands)."""
    return _expanded(config, config["jobs"][job]["steps"])


def _expanded(config: dict[str, Any], steps: list[Any]) -> list[Any]:
    expanded: list[Any] = []
    for step in steps:
        name = step if isinstance(step, str) else next(iter(step))
        command = config.get("commands", {}).get(name)
        expanded += _expanded(config, command["steps"]) if command else [step]
    return expanded


def runs(config: dict[str, Any], job: str) -> list[str]:
    return [step["run"]["command"] for step in steps_of(config, job) if isinstance(step, dict) and "run" in step]


def exchange_calls(config: dict[str, Any], job: str) -> list[list[str]]:
    return [shlex.split(command)[1:] for command in runs(config, job) if command.startswith(EXCHANGE)]
