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
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from exchange_cli.new_exchange import ToolRequirement, skeleton_files
from tests.circleci_model import Pipeline, Run, Simulation, accepted_statuses, workflow_units
from tests.infra.circleci_config import CONFIG_PATH, EXCHANGE, exchange_calls, load_config, runs, steps_of
from tests.infra.gitrepo import example_gear, gear_and_image, init_repo, run_git


def new_exchange_config_text() -> str:
    """The pipeline `exchange init` writes into a new exchange."""
    return skeleton_files("x", ToolRequirement("exchange-cli==0.1.0", False))[".circleci/config.yml"].decode()


@pytest.fixture(scope="module", params=["this repository", "a new exchange"])
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Both pipelines are held to every rule here."""
    return load_config() if request.param == "this repository" else yaml.safe_load(new_exchange_config_text())


def step(config: dict[str, Any], job: str, kind: str) -> dict[str, Any]:
    (found,) = [s[kind] for s in steps_of(config, job) if isinstance(s, dict) and kind in s]
    return found


def invocations(entries: list[Any]) -> dict[str, dict[str, Any]]:
    return {name: settings or {} for entry in entries
            for name, settings in ([(entry, None)] if isinstance(entry, str) else entry.items())}


def workflow_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (workflow,) = config["workflows"].values()
    return invocations(workflow["jobs"])


def process_group(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The job group that holds the master jobs, as invocations."""
    (group,) = config["job-groups"].values()
    return invocations(group["jobs"])


@pytest.mark.parametrize("which", ["this repository", "a new exchange"])
def test_the_config_validates_against_circlecis_schema(which: str, tmp_path: Path) -> None:
    path = CONFIG_PATH
    if which == "a new exchange":
        path = tmp_path / "config.yml"
        path.write_text(new_exchange_config_text())
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.circle-ci", str(path)],
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
    (group_name,) = config["job-groups"]
    assert workflow_jobs(config)[group_name]["filters"] == {"branches": {"only": "master"}}
    assert set(process_group(config)) == {"process-shards", "process-finalize"}
    assert config["jobs"]["process-shards"]["parallelism"] == "<< pipeline.parameters.process-machines >>"
    assert "parallelism" not in config["jobs"]["process-finalize"], "one writer"
    (shard_call,) = exchange_calls(config, "process-shards")
    (finalize_call,) = exchange_calls(config, "process-finalize")
    shard_dir = Path(shard_call[shard_call.index("--shard-dir") + 1])
    assert "--shard" not in shard_call, "the share comes from CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL"
    persisted = step(config, "process-shards", "persist_to_workspace")
    assert shard_dir == Path(persisted["root"]) / persisted["paths"][0]
    attached = Path(step(config, "process-finalize", "attach_workspace")["at"])
    assert Path(finalize_call[finalize_call.index("--finalize") + 1]) == attached / shard_dir.relative_to(persisted["root"])
    assert "--retries" in finalize_call


def test_finalize_runs_after_shards_that_failed_or_were_canceled(config: dict[str, Any]) -> None:
    (required,) = process_group(config)["process-finalize"]["requires"]
    assert accepted_statuses(required["process-shards"]) >= {"success", "failed", "canceled"}


def master_pipelines(config: dict[str, Any], *, second_after: int, shards: str,
                     shard_ticks: int = 3, finalize_ticks: int = 2) -> list[Run]:
    """Two master pipelines, the second created `second_after` ticks after the first; their shards end as `shards`."""
    pipelines = [Pipeline(number, created, "master", outcomes={"process-shards": shards},
                          durations={"process-shards": shard_ticks, "process-finalize": finalize_ticks})
                 for number, created in ((1, 0), (2, second_after))]
    return Simulation(workflow_units(config), pipelines).run()


PROCESS_JOBS = {"process-shards", "process-finalize"}


def unit_problems(runs: list[Run]) -> list[str]:
    """What goes wrong for the exchange when master pipelines overlap: a fan-out whose finalize never
    runs (its objects are neither published nor deleted), or another pipeline's jobs in between."""
    problems = []
    ran = [run for run in runs if run.job in PROCESS_JOBS and run.start is not None]
    for pipeline in {run.pipeline for run in ran}:
        jobs = {run.job: run for run in runs if run.pipeline == pipeline}
        if jobs["process-shards"].start is not None and jobs["process-finalize"].start is None:
            problems.append(f"pipeline {pipeline}: shards ran, finalize ended {jobs['process-finalize'].status}")
    spans = {}
    for run in ran:
        start, end = spans.get(run.pipeline, (run.start, run.end))
        spans[run.pipeline] = (min(start, run.start), max(end, run.end))
    for first, (start, end) in spans.items():
        for second, (other_start, other_end) in spans.items():
            if first < second and start < other_end and other_start < end:
                problems.append(f"pipelines {first} and {second} process at once: {start}-{end} and {other_start}-{other_end}")
    return problems


@pytest.mark.parametrize("shards", ["success", "failed", "canceled"])
def test_two_overlapping_master_pipelines_never_interleave_their_fan_out_and_fan_in(config: dict[str, Any],
                                                                                      shards: str) -> None:
    for second_after in range(9):
        runs = master_pipelines(config, second_after=second_after, shards=shards)
        assert unit_problems(runs) == [], (second_after, runs)
        finalized = [run.pipeline for run in runs if run.job == "process-finalize" and run.start is not None]
        assert finalized, "at least one pipeline publishes or cleans up"


def test_the_model_catches_a_serial_group_on_each_job(config: dict[str, Any]) -> None:
    """The previous config: each job in the serial group on its own. The model must see it fail, or it proves nothing."""
    per_job = {**config, "job-groups": {}, "workflows": {"exchange": {"jobs": [
        "validate",
        {"process-shards": {"requires": ["validate"], "filters": {"branches": {"only": "master"}},
                            "serial-group": "slug/exchange-process"}},
        {"process-finalize": {"requires": [{"process-shards": ["success", "failed"]}],
                              "filters": {"branches": {"only": "master"}}, "serial-group": "slug/exchange-process"}},
    ]}}}
    found = {problem for second_after in range(9) for shards in ("success", "failed", "canceled")
             for problem in unit_problems(master_pipelines(per_job, second_after=second_after, shards=shards))}
    assert any("finalize ended not_run" in problem for problem in found), found


def test_branches_only_validate_and_a_maintainers_approval_validates_again(config: dict[str, Any]) -> None:
    held = Simulation(workflow_units(config), [Pipeline(1, 0, "add-gear",
                                                        outcomes={"approve-protected-change": "canceled"})]).run()
    assert {(run.job, run.status) for run in held} == {
        ("validate", "success"), ("approve-protected-change", "canceled"), ("validate-approved", "not_run")}
    approved = Simulation(workflow_units(config), [Pipeline(1, 0, "add-gear")]).run()
    assert {(run.job, run.status) for run in approved} == {
        ("validate", "success"), ("approve-protected-change", "success"), ("validate-approved", "success")}
    master = Simulation(workflow_units(config), [Pipeline(1, 0, "master")]).run()
    assert "approve-protected-change" not in {run.job for run in master}


def test_the_change_is_judged_by_master_and_approval_needs_the_maintainers_context(config: dict[str, Any]) -> None:
    for job in ("validate", "validate-approved"):
        (call,) = exchange_calls(config, job)
        assert call[call.index("--base") + 1] == "origin/master", call
        fetches = [command for command in runs(config, job) if command.startswith("git fetch")]
        assert fetches and "refs/remotes/origin/master" in fetches[0]
    jobs = workflow_jobs(config)
    assert "context" not in jobs["validate"], "a contributor's pull request gets no secrets"
    assert jobs["validate-approved"]["context"] == "exchange-maintainers"
    assert jobs["validate-approved"]["requires"] == ["approve-protected-change"]
    assert jobs["approve-protected-change"]["type"] == "approval"
    assert {name: job.get("context") for name, job in process_group(config).items()} == {
        "process-shards": "exchange-publish", "process-finalize": "exchange-publish"}


def test_reports_are_stored_and_pip_is_cached(config: dict[str, Any]) -> None:
    report_dir = config["executors"]["python"]["environment"]["EXCHANGE_REPORT_DIR"]
    for job in ("process-shards", "process-finalize"):
        stored = step(config, job, "store_artifacts")
        assert stored["path"] == report_dir and stored["when"] == "always"
        assert config["jobs"][job]["executor"] == "python"
    for job in config["jobs"]:
        restored, saved = step(config, job, "restore_cache"), step(config, job, "save_cache")
        assert saved["key"] in restored["keys"] and "~/.cache/pip" in saved["paths"]
        assert '{{ checksum "requirements/runtime.txt" }}' in saved["key"], "a new lock, a new cache"


def test_every_job_installs_the_hashed_lock(config: dict[str, Any]) -> None:
    for job in config["jobs"]:
        (install,) = [command for command in runs(config, job) if "pip install" in command]
        pip_calls = [shlex.split(call) for call in install.split("&&") if "pip install" in call]
        assert pip_calls[0][-3:] == ["--require-hashes", "-r", "requirements/runtime.txt"], install
        assert all("--no-deps" in call for call in pip_calls[1:]), "nothing unpinned comes in after the lock"


def test_jobs_run_only_exchange_commands_without_a_docker_daemon(config: dict[str, Any]) -> None:
    for job in config["jobs"]:
        for command in runs(config, job):
            assert command.startswith((EXCHANGE, "git fetch --no-tags origin ",
                                       "python -m venv .venv && .venv/bin/pip install --disable-pip-version-check --require-hashes")), command
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


def circleci_starts_a_pipeline(head_commit_message: str) -> bool:
    """CircleCI skips a push whose head commit has [skip ci] or [ci skip] in its title or description."""
    return not any(marker in head_commit_message.lower() for marker in ("[skip ci]", "[ci skip]"))


def test_the_bots_commits_start_no_pipeline_and_a_contributors_next_commit_does(exchange_repo, tmp_path: Path) -> None:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    images = tmp_path / "images"
    for name in ("hello", "other"):
        gear, image = gear_and_image("acme", name)
        build_demo_image(images, image, gear)
        exchange_repo.write(f"gears/acme/{name}.json", gear)
    contributor_head = exchange_repo.commit("Add hello and other gears")
    exchange_repo.git("push", "-q", "origin", "master")
    assert circleci_starts_a_pipeline(run_git(remote, "log", "-1", "--format=%B", "master"))

    (tmp_path / "bucket").mkdir()
    result = CliRunner().invoke(cli, ["process", "--repo", str(exchange_repo.root), "--bucket",
                                      (tmp_path / "bucket").as_uri(), "--oci-layout", str(images),
                                      "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert result.exit_code == 0, result.output
    bot_commits = run_git(remote, "rev-list", f"{contributor_head}..master").split()
    assert len(bot_commits) == 2
    for commit in bot_commits:  # any of them can be the head of a push, after a replay
        message = run_git(remote, "log", "-1", "--format=%B", commit)
        assert not circleci_starts_a_pipeline(message), message
        assert run_git(remote, "log", "-1", "--format=%s", commit).startswith("Process gear acme/"), "subject unchanged"

    exchange_repo.git("pull", "-q", "--ff-only", "origin", "master")
    exchange_repo.write("gears/acme/third.json", example_gear(name="third", version="1.0.0"))
    exchange_repo.commit("Add third gear")
    exchange_repo.git("push", "-q", "origin", "master")
    assert circleci_starts_a_pipeline(run_git(remote, "log", "-1", "--format=%B", "master"))
