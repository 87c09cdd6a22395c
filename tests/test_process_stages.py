"""The stages of `exchange process`, seen from outside: the run report names the stages a run entered, in
order, and a failure brought about for real in each stage (a dirty work tree, an invalid spec, a missing
image, a bucket with something in an object's way, a remote that refuses the push, an object spoilt as the push
lands) stops the run in that stage and leaves what docs/integrity.md promises."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.storage.bucket import open_bucket
from exchange_cli.storage.lease import LEASE_OBJECT, Confirming, LeaseRecord
from exchange_cli.storage.owner import Owner
from tests.infra.gitrepo import example_gear
from tests.infra.process_world import World, manifests, reject_pushes

STAGES = ["recover", "plan", "check", "artifacts", "publish", "confirm"]


def run(process_world: World, report_dir: Path, *extra: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(cli, process_world.args("--report", str(report_dir), *extra))
    report = json.loads((report_dir / "process.json").read_text())
    return result.exit_code, report, (report_dir / "process.md").read_text()


def test_a_published_run_enters_every_stage_once_in_order(process_world: World, tmp_path: Path) -> None:
    code, report, markdown = run(process_world, tmp_path / "report")
    assert code == 0 and report["result"] == "succeeded"
    assert report["stages"] == STAGES
    assert "- stages: recover, plan, check, artifacts, publish, confirm\n" in markdown


def test_a_run_with_nothing_to_do_stops_after_the_plan(process_world: World, tmp_path: Path) -> None:
    assert run(process_world, tmp_path / "first")[0] == 0
    code, report, _ = run(process_world, tmp_path / "second")
    assert code == 0 and report["stages"] == ["recover", "plan"] and report["specs"] == []


def dirty_work_tree(process_world: World) -> list[str]:
    process_world.repo.write("gears/acme/hello.json", example_gear(name="hello", description="uncommitted"))
    return []


def invalid_spec(process_world: World) -> list[str]:
    process_world.repo.write("gears/acme/broken.json", example_gear(name="broken", author=None))
    process_world.repo.commit("a broken gear")
    return []


def image_not_in_the_layout(process_world: World) -> list[str]:
    gear = example_gear(name="ghost", custom={"gear-builder": {"image": "registry.example.org/acme/ghost:1.0.0"}})
    process_world.repo.write("gears/acme/ghost.json", gear)
    process_world.repo.commit("a gear whose image is nowhere")
    return []


def object_in_the_way(process_world: World) -> list[str]:
    """The bucket holds a directory where the second spec's rootfs goes: its upload fails after the first's."""
    tarball = process_world.cache.parent / "other.tgz"
    exported = CliRunner().invoke(cli, ["export", f"oci:{process_world.images}:registry.example.org/acme/other:2.0.0",
                                        "-o", str(tarball), "--cache-dir", str(process_world.cache), "--quiet"])
    assert exported.exit_code == 0, exported.output
    (process_world.bucket / f"acme-other-sha384-{hashlib.sha384(tarball.read_bytes()).hexdigest()}.tgz").mkdir()
    return []


def push_refused(process_world: World) -> list[str]:
    reject_pushes(process_world.remote)
    return []


# Each failure: how to bring it about, the stage it stops in, the exit code.
FAILURES: dict[str, tuple[Callable[[World], list[str]], str, int]] = {
    "recover": (dirty_work_tree, "recover", 2),
    "plan": (invalid_spec, "plan", 1),
    "check": (image_not_in_the_layout, "check", 1),
    "artifacts": (object_in_the_way, "artifacts", 1),
    "publish": (push_refused, "publish", 2),
}


@pytest.mark.parametrize("stage", list(FAILURES))
def test_a_failure_in_a_stage_stops_the_run_there_and_undoes_everything(process_world: World, tmp_path: Path,
                                                                        stage: str) -> None:
    (process_world.bucket / "unrelated-object.tgz").write_bytes(b"was here before")
    cause, failing, exit_code = FAILURES[stage]
    extra = cause(process_world)
    start, remote, objects = process_world.repo.git("rev-parse", "HEAD"), process_world.remote_head(), process_world.bucket_objects()
    code, report, markdown = run(process_world, tmp_path / "report", *extra)
    assert code == exit_code, report["error"]
    assert report["result"] == "failed"
    assert report["stages"] == STAGES[: STAGES.index(failing) + 1], "stopped in the stage that failed"
    assert f"{failing} (failed here)" in markdown
    assert process_world.repo.git("rev-parse", "HEAD") == start and process_world.remote_head() == remote, "git as it was"
    assert process_world.bucket_objects() == objects, "the bucket as it was: what the run uploaded is deleted"
    assert not (process_world.bucket / LEASE_OBJECT).exists(), "the lease is released"
    uploaded = sorted(name for spec in report["specs"] if spec.get("uploaded")
                      for name in (spec["artifact"], spec["artifact"] + ".sbom.json"))  # each rootfs, its SBOM beside it
    if failing in ("artifacts", "publish"):
        assert sorted(report["rollback"]["deleted"]) == uploaded and uploaded, "exactly what this run uploaded"
        assert report["rollback"]["not-deleted"] == {} and report["rollback"]["branch-reset-to"] == start
    else:
        assert report["rollback"] is None and uploaded == [], "nothing was uploaded, so nothing to undo"
    assert (process_world.bucket / "unrelated-object.tgz").read_bytes() == b"was here before"


def test_a_failure_in_confirm_leaves_the_push_and_names_the_spoilt_object(process_world: World, tmp_path: Path) -> None:
    """Past the push nothing is rolled back: the manifests are published; the run fails naming each object
    that is not what they say, and lets go of the lease."""
    # As the push lands, something that ignores the lease (a person, an old tool) spoils every artifact.
    hook = process_world.remote / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\nfor f in '{process_world.bucket}'/*.tgz; do printf spoilt >> \"$f\"; done\n")
    hook.chmod(0o755)
    code, report, markdown = run(process_world, tmp_path / "report")
    assert code != 0 and report["result"] == "failed"
    assert report["stages"] == STAGES and "confirm (failed here)" in markdown
    assert "verify-storage" in report["error"]
    assert process_world.remote_head() == process_world.repo.git("rev-parse", "HEAD"), "pushed, and not rolled back"
    for spec in report["specs"]:
        assert f"{spec['artifact']} has {spec['rootfs-size'] + len('spoilt')} bytes" in report["error"]
    assert report["rollback"] is None
    assert not (process_world.bucket / LEASE_OBJECT).exists(), "the lease is released"


def test_a_shard_leaves_a_dead_runs_unfinished_check_to_the_run_that_can_finish_it(process_world: World,
                                                                                    tmp_path: Path) -> None:
    """A run died after its push, before checking the objects its manifests reference; one is gone. A
    shard takes no lease and has no branch to check against: it must not break that lease (and so lose
    the check) but leave it to the next publishing run, which puts the object back."""
    assert CliRunner().invoke(cli, process_world.args()).exit_code == 0
    start = process_world.repo.git("rev-parse", "HEAD~2")
    published = {path: document["exchange"]["rootfs-url"].rsplit("/", 1)[1] for path, document in manifests(process_world).items()}
    victim = sorted(published.values())[0]
    (process_world.bucket / victim).unlink()
    dead = dataclasses.replace(Owner.current(), pid=dead_pid(), started="")
    record = LeaseRecord("a-dead-run", dead, "a killed run", time.time() + 3600,
                         Confirming(start, tuple(sorted(published))))
    open_bucket(process_world.bucket.as_uri()).create_control(LEASE_OBJECT, record.as_bytes())
    shard = CliRunner().invoke(cli, process_world.args("--shard", "1/1", "--shard-dir", str(tmp_path / "shards")))
    assert shard.exit_code == 0, shard.output
    assert (process_world.bucket / LEASE_OBJECT).exists(), "the shard leaves the dead run's lease alone"
    result = CliRunner().invoke(cli, process_world.args())
    assert result.exit_code == 0, result.output
    assert f"restored {victim}" in result.output
    assert (process_world.bucket / victim).is_file() and not (process_world.bucket / LEASE_OBJECT).exists()


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
