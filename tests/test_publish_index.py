"""`exchange process --publish-index BRANCH` against a bare remote: the old pipeline's exchange.json
published after a successful push, without touching the branch or work tree, and a failed publication
that never rolls the run back and is retried by the next run. Also `process --format json` on every path."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.gitrepo import example_gear, run_git
from tests.infra.process_world import World, manifests, process, reject_pushes

BRANCH = "gh-pages-json"


def remote_catalog(world: World) -> list:
    return json.loads(run_git(world.remote, "show", f"{BRANCH}:exchange.json"))


def test_publish_index_commits_exchange_json_to_its_branch_after_the_push(process_world: World) -> None:
    start_branch = process_world.repo.git("rev-parse", "--abbrev-ref", "HEAD")
    result = process(process_world, "--publish-index", BRANCH, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["pushed"] and report["catalog"]["published"] and report["catalog"]["pushed"]
    catalog = remote_catalog(process_world)
    assert [[item["name"] for item in group] for group in catalog] == [["hello"], ["other"]]
    assert all("custom" not in item and "config" not in item and "inputs" not in item for g in catalog for item in g)
    # One commit on the catalog branch, whose tree is exchange.json; the work tree and branch untouched.
    assert run_git(process_world.remote, "rev-list", "--count", BRANCH) == "1"
    assert run_git(process_world.remote, "ls-tree", "--name-only", BRANCH) == "exchange.json"
    assert process_world.repo.git("rev-parse", "--abbrev-ref", "HEAD") == start_branch
    assert process_world.repo.git("status", "--porcelain") == ""
    assert process_world.remote_head() == process_world.repo.git("rev-parse", "HEAD")
    # The same exchange again: nothing to process, nothing new on the catalog branch.
    again = process(process_world, "--publish-index", BRANCH)
    assert again.exit_code == 0, again.output
    assert run_git(process_world.remote, "rev-list", "--count", BRANCH) == "1"


def test_a_rejected_catalog_push_keeps_the_run_and_the_next_run_publishes(process_world: World) -> None:
    # Only the catalog ref is refused: the processing push to master goes through.
    reject_pushes(process_world.remote, f'while read old new ref; do [ "$ref" = refs/heads/{BRANCH} ] && '
                                "{ echo 'catalog branch is locked' >&2; exit 1; }; done; exit 0")
    result = process(process_world, "--publish-index", BRANCH, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["pushed"]
    assert report["catalog"]["published"] is False and "catalog branch is locked" in report["catalog"]["error"]
    assert "catalog NOT published to gh-pages-json" in result.stderr and "the next run retries" in result.stderr
    pushed = process_world.remote_head()
    assert pushed == process_world.repo.git("rev-parse", "HEAD") and len(manifests(process_world)) == 2  # nothing rolled back
    assert len(process_world.bucket_objects()) == 4  # two rootfs, each with its SBOM
    assert run_git(process_world.remote, "branch", "--list", BRANCH) == ""

    (process_world.remote / "hooks" / "pre-receive").unlink()
    retry = process(process_world, "--publish-index", BRANCH)
    assert retry.exit_code == 0, retry.output
    assert "nothing to process" in retry.stdout and f"catalog exchange.json on {BRANCH}: " in retry.stdout
    assert [[item["name"] for item in group] for group in remote_catalog(process_world)] == [["hello"], ["other"]]
    assert process_world.remote_head() == pushed


def test_the_catalog_branch_keeps_its_other_files_and_grows_one_commit_per_change(process_world: World,
                                                                                 tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    run_git(tmp_path, "clone", "-q", str(process_world.remote), str(pages))
    run_git(pages, "checkout", "-q", "--orphan", BRANCH)
    run_git(pages, "rm", "-rfq", ".")
    (pages / "index.html").write_text("<p>the catalog</p>\n")
    run_git(pages, "add", "index.html")
    run_git(pages, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "pages")
    run_git(pages, "push", "-q", "origin", BRANCH)
    assert process(process_world, "--publish-index", BRANCH).exit_code == 0
    assert run_git(process_world.remote, "ls-tree", "--name-only", BRANCH).splitlines() == ["exchange.json", "index.html"]
    assert run_git(process_world.remote, "rev-list", "--count", BRANCH) == "2"


def test_publish_index_refuses_the_checked_out_branch_before_any_work(process_world: World) -> None:
    result = process(process_world, "--publish-index", "master")
    assert result.exit_code == 2 and "--publish-index master is the checked-out branch" in result.output
    assert process_world.bucket_objects() == {}


def test_format_json_prints_json_when_validation_fails(process_world: World) -> None:
    process_world.repo.write("gears/acme/broken.json", example_gear(name="broken", author=None))
    process_world.repo.commit("broken")
    result = CliRunner().invoke(cli, process_world.args("--format", "json"))
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False and "failed validation" in document["error"]
    (failed,) = [r for r in document["validation"]["results"] if r["status"] == "failed"]
    assert failed["path"].endswith("gears/acme/broken.json")
    assert {p["rule"] for p in failed["problems"]} == {"gear-schema"}
