""".circleci/config.yml: valid against CircleCI's schema, and wired the way the exchange needs."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from exchange_cli.cli import cli

CONFIG_PATH = Path(__file__).resolve().parents[1] / ".circleci" / "config.yml"
EXCHANGE = ".venv/bin/exchange"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG_PATH.read_text())


def steps_of(config: dict[str, Any], job: str) -> list[Any]:
    """The job's steps with the config's own commands expanded."""
    expanded: list[Any] = []
    for step in config["jobs"][job]["steps"]:
        name = step if isinstance(step, str) else next(iter(step))
        expanded += config.get("commands", {}).get(name, {}).get("steps", [step])
    return expanded


def runs(config: dict[str, Any], job: str) -> list[str]:
    return [step["run"]["command"] for step in steps_of(config, job) if isinstance(step, dict) and "run" in step]


def exchange_calls(config: dict[str, Any], job: str) -> list[list[str]]:
    return [shlex.split(command)[1:] for command in runs(config, job) if command.startswith(EXCHANGE)]


def step(config: dict[str, Any], job: str, kind: str) -> dict[str, Any]:
    (found,) = [s[kind] for s in steps_of(config, job) if isinstance(s, dict) and kind in s]
    return found


def workflow_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (workflow,) = config["workflows"].values()
    return {name: settings or {} for entry in workflow["jobs"]
            for name, settings in ([(entry, None)] if isinstance(entry, str) else entry.items())}


def test_the_config_validates_against_circlecis_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.circle-ci", str(CONFIG_PATH)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_branch_validates_with_junit_stored_as_test_results(config: dict[str, Any]) -> None:
    assert "filters" not in workflow_jobs(config)["validate"], "validate runs on every branch and pull request"
    (call,) = exchange_calls(config, "validate")
    assert call[0] == "validate"
    junit = Path(call[call.index("--junit-xml") + 1])
    results = step(config, "validate", "store_test_results")
    assert junit.is_relative_to(results["path"]) and results["when"] == "always"


def test_master_fans_out_over_one_parallelism_setting_then_fans_in(config: dict[str, Any]) -> None:
    jobs = workflow_jobs(config)
    for name in ("process-shards", "process-finalize"):
        assert jobs[name]["filters"] == {"branches": {"only": "master"}}
    assert config["jobs"]["process-shards"]["parallelism"] == "<< pipeline.parameters.process-machines >>"
    assert "parallelism" not in config["jobs"]["process-finalize"], "one writer"
    assert jobs["process-finalize"]["requires"] == [{"process-shards": ["success", "failed"]}], \
        "finalize also runs after a failed shard, to remove the other shards' objects"
    (shard_call,) = exchange_calls(config, "process-shards")
    (finalize_call,) = exchange_calls(config, "process-finalize")
    shard_dir = Path(shard_call[shard_call.index("--shard-dir") + 1])
    assert "--shard" not in shard_call, "the share comes from CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL"
    persisted = step(config, "process-shards", "persist_to_workspace")
    assert shard_dir == Path(persisted["root"]) / persisted["paths"][0]
    attached = Path(step(config, "process-finalize", "attach_workspace")["at"])
    assert Path(finalize_call[finalize_call.index("--finalize") + 1]) == attached / shard_dir.relative_to(persisted["root"])
    assert "--retries" in finalize_call


def test_two_master_runs_never_process_at_once(config: dict[str, Any]) -> None:
    jobs = workflow_jobs(config)
    groups = {jobs[name].get("serial-group") for name in ("process-shards", "process-finalize")}
    assert len(groups) == 1 and None not in groups and "pipeline.project.slug" in groups.pop()


def test_reports_are_stored_and_pip_is_cached(config: dict[str, Any]) -> None:
    report_dir = config["executors"]["python"]["environment"]["EXCHANGE_REPORT_DIR"]
    for job in ("process-shards", "process-finalize"):
        stored = step(config, job, "store_artifacts")
        assert stored["path"] == report_dir and stored["when"] == "always"
        assert config["jobs"][job]["executor"] == "python"
    for job in config["jobs"]:
        restored, saved = step(config, job, "restore_cache"), step(config, job, "save_cache")
        assert saved["key"] in restored["keys"] and "~/.cache/pip" in saved["paths"]


def test_jobs_run_only_exchange_commands_without_a_docker_daemon(config: dict[str, Any]) -> None:
    for job in config["jobs"]:
        for command in runs(config, job):
            assert command.startswith((EXCHANGE, "python -m venv .venv && .venv/bin/pip install")), command
        names = {next(iter(s)) if isinstance(s, dict) else s for s in steps_of(config, job)}
        assert "setup_remote_docker" not in names
        assert "machine" not in config["jobs"][job]
        for call in exchange_calls(config, job):
            assert "--source" not in call or call[call.index("--source") + 1] != "docker"


def test_every_exchange_call_parses(config: dict[str, Any]) -> None:
    """Options the config passes exist and take the values given (a renamed option fails here, not in CI)."""
    for job in config["jobs"]:
        for call in exchange_calls(config, job):
            command = cli.get_command(click.Context(cli), call[0])
            assert command is not None, call
            command.make_context(call[0], call[1:], resilient_parsing=False)
