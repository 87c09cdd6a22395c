"""`exchange process` as a transaction, against real git remotes, a bucket directory and OCI-layout images."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, init_repo, run_git

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_SCHEMA = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())


@dataclass
class World:
    repo: ExchangeRepo
    remote: Path
    images: Path
    bucket: Path
    cache: Path

    def args(self, *extra: str) -> list[str]:
        return ["process", "--repo", str(self.repo.root), "--bucket", self.bucket.as_uri(), "--oci-layout",
                str(self.images), "--cache-dir", str(self.cache), "--quiet", *extra]

    def add_gear(self, org: str, name: str, version: str = "1.0.0", **changes) -> dict:
        image = f"registry.example.org/{org}/{name}:{version}"
        gear = example_gear(name=name, version=version, custom={"gear-builder": {"image": image}}, **changes)
        build_demo_image(self.images, image, gear)
        self.repo.write(f"gears/{org}/{name}.json", gear)
        return gear

    def bucket_objects(self) -> dict[str, str]:
        return {p.name: hashlib.sha384(p.read_bytes()).hexdigest()
                for p in sorted(self.bucket.iterdir()) if p.is_file() and not p.name.startswith(".")}

    def remote_head(self) -> str:
        return run_git(self.remote, "rev-parse", "master")


def process(world: World, *extra: str):
    return CliRunner().invoke(cli, world.args(*extra))


@pytest.fixture
def world(exchange_repo: ExchangeRepo, tmp_path: Path) -> World:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    images, bucket = tmp_path / "images", tmp_path / "bucket"
    images.mkdir()
    bucket.mkdir()
    w = World(exchange_repo, remote, images, bucket, tmp_path / "cache")
    w.add_gear("acme", "hello")
    w.add_gear("acme", "other", "2.0.0")
    exchange_repo.commit("add gears")
    exchange_repo.git("push", "-q", "origin", "master")
    return w


def manifests(world: World) -> dict[str, dict]:
    return {p.relative_to(world.repo.root).as_posix(): json.loads(p.read_text())
            for p in sorted((world.repo.root / "manifests").glob("*/*.json"))}


def test_clean_run_publishes_manifests_artifacts_and_commits(world: World) -> None:
    start = world.repo.git("rev-parse", "HEAD")
    result = process(world)
    assert result.exit_code == 0, result.output
    found = manifests(world)
    assert len(found) == 2
    objects = world.bucket_objects()
    for path, document in found.items():
        jsonschema.validate(document, MANIFEST_SCHEMA)
        block = document["exchange"]
        hex_digest = block["rootfs-hash"].removeprefix("sha384:")
        artifact = Path(block["rootfs-url"]).name
        assert path == f"manifests/acme/acme-{document['gear']['name']}-sha384-{hex_digest}.json"
        assert artifact == f"acme-{document['gear']['name']}-sha384-{hex_digest}.tgz"
        assert objects[artifact] == hex_digest, "the bucket object hashes to the manifest's rootfs-hash"
        assert block["git-commit"] == start
        assert block["rootfs-size"] == (world.bucket / artifact).stat().st_size
        assert block["image"] == document["gear"]["custom"]["gear-builder"]["image"]
        assert block["image-config-digest"].startswith("sha256:")
        assert block["platform"] == "linux/amd64"
        assert document["invocation-schema"]["properties"]["config"]["properties"]["name"]["type"] == "string"
    log = world.repo.git("log", "--format=%s", f"{start}..HEAD").splitlines()
    assert log == ["Process gear acme/other 2.0.0", "Process gear acme/hello 1.0.0"]
    assert (world.repo.root / ".sentinel").read_text().strip() == start
    assert world.remote_head() == world.repo.git("rev-parse", "HEAD")
    assert world.repo.git("status", "--porcelain") == ""


def test_second_run_finds_nothing_to_do(world: World) -> None:
    assert process(world).exit_code == 0
    head = world.repo.git("rev-parse", "HEAD")
    result = process(world)
    assert result.exit_code == 0 and "nothing to process" in result.output
    assert world.repo.git("rev-parse", "HEAD") == head


def test_rerun_over_the_same_images_uploads_nothing_and_writes_identical_manifests(world: World, tmp_path: Path) -> None:
    before = world.repo.git("rev-parse", "HEAD")
    clone = tmp_path / "second"
    run_git(tmp_path, "clone", "-q", str(world.remote), str(clone))
    assert process(world).exit_code == 0
    first_manifests, first_objects = manifests(world), world.bucket_objects()
    mtimes = {p.name: p.stat().st_mtime_ns for p in world.bucket.iterdir()}
    # A second exchange at the same commit (as after a crash before the push), same bucket, fresh cache.
    other_remote = init_repo(tmp_path / "other.git", bare=True)
    run_git(clone, "remote", "set-url", "origin", str(other_remote))
    run_git(clone, "config", "user.name", "T")
    run_git(clone, "config", "user.email", "t@t.invalid")
    assert run_git(clone, "rev-parse", "HEAD") == before
    second = World(ExchangeRepo(clone), other_remote, world.images, world.bucket, tmp_path / "cache2")
    result = CliRunner().invoke(cli, second.args("--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [spec["uploaded"] for spec in report["specs"]] == [False, False]
    assert manifests(second) == first_manifests
    for path in first_manifests:
        assert (clone / path).read_bytes() == (world.repo.root / path).read_bytes()
    assert world.bucket_objects() == first_objects
    assert {p.name: p.stat().st_mtime_ns for p in world.bucket.iterdir()} == mtimes


def test_validation_failure_touches_nothing(world: World) -> None:
    world.repo.write("gears/acme/broken.json", example_gear(name="broken", author=None))
    world.repo.commit("broken gear")
    head = world.repo.git("rev-parse", "HEAD")
    result = process(world)
    assert result.exit_code == 1
    assert "error[gear-schema]: 'author' is a required property" in result.output
    assert world.bucket_objects() == {}
    assert world.repo.git("rev-parse", "HEAD") == head
    assert world.repo.git("status", "--porcelain") == ""


def reject_pushes(remote: Path, script: str = "echo 'rejected by policy' >&2; exit 1") -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{script}\n")
    hook.chmod(0o755)


def test_push_failure_restores_branch_and_bucket_exactly(world: World) -> None:
    (world.bucket / "unrelated-object.tgz").write_bytes(b"was here before")
    # One artifact already in the bucket from an earlier, crashed run: it must survive the rollback.
    assert CliRunner().invoke(cli, ["export", f"oci:{world.images}:registry.example.org/acme/hello:1.0.0",
                                    "-o", str(world.bucket / "tmp.tgz"), "--quiet"]).exit_code == 0
    sha = hashlib.sha384((world.bucket / "tmp.tgz").read_bytes()).hexdigest()
    (world.bucket / "tmp.tgz").rename(world.bucket / f"acme-hello-sha384-{sha}.tgz")
    before_objects = world.bucket_objects()
    start = world.repo.git("rev-parse", "HEAD")
    remote_before = world.remote_head()
    reject_pushes(world.remote)
    result = process(world)
    assert result.exit_code == 2, "the remote refused: the environment, as for an unreachable remote"
    (line,) = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: push to origin master failed: [remote rejected] (pre-receive hook declined); ")
    assert "rejected by policy" in line and "hint:" not in result.output
    # The other gear's rootfs and SBOM, and the SBOM this run put beside the earlier run's rootfs.
    assert "deleted 3 object(s)" in result.output
    assert world.bucket_objects() == before_objects
    assert world.repo.git("rev-parse", "HEAD") == start
    assert world.repo.git("status", "--porcelain") == ""
    assert world.remote_head() == remote_before


def push_concurrent_commit(world: World, tmp_path: Path) -> str:
    other = tmp_path / "concurrent"
    run_git(tmp_path, "clone", "-q", str(world.remote), str(other))
    (other / "README.md").write_text("someone else was faster\n")
    run_git(other, "add", "README.md")
    run_git(other, "-c", "user.name=O", "-c", "user.email=o@o.invalid", "commit", "-q", "-m", "concurrent")
    run_git(other, "push", "-q", "origin", "master")
    return run_git(other, "rev-parse", "HEAD")


def test_non_fast_forward_without_retries_rolls_back(world: World, tmp_path: Path) -> None:
    start = world.repo.git("rev-parse", "HEAD")
    push_concurrent_commit(world, tmp_path)
    result = process(world)
    assert result.exit_code == 2 and "failed" in result.output
    assert world.bucket_objects() == {}
    assert world.repo.git("rev-parse", "HEAD") == start


def test_retries_win_the_race_without_exporting_again(world: World, tmp_path: Path) -> None:
    concurrent = push_concurrent_commit(world, tmp_path)
    result = CliRunner().invoke(cli, world.args("--retries", "2", "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replays"] == 1 and report["pushed"]
    head = world.remote_head()
    assert run_git(world.remote, "merge-base", "--is-ancestor", concurrent, head) == ""
    subjects = run_git(world.remote, "log", "--format=%s", f"{concurrent}..{head}").splitlines()
    assert subjects == ["Process gear acme/other 2.0.0", "Process gear acme/hello 1.0.0"]
    assert len(world.bucket_objects()) == 4  # two rootfs, each with its SBOM
    assert [spec["uploaded"] for spec in report["specs"]] == [True, True]


def test_dry_run_prints_the_plan_and_changes_nothing(world: World) -> None:
    head = world.repo.git("rev-parse", "HEAD")
    result = process(world, "--dry-run")
    assert result.exit_code == 0
    assert "would process gear acme/hello 1.0.0" in result.output
    assert "acme-hello-sha384-" in result.output
    assert world.bucket_objects() == {} and world.repo.git("rev-parse", "HEAD") == head


def test_parallel_jobs_keep_commit_order(world: World) -> None:
    for index in range(3):
        world.add_gear("zeta", f"g{index}")
    world.repo.commit("more")
    result = process(world, "--jobs", "3")
    assert result.exit_code == 0, result.output
    subjects = world.repo.git("log", "--reverse", "--format=%s", "-5").splitlines()
    assert subjects == ["Process gear acme/hello 1.0.0", "Process gear acme/other 2.0.0", "Process gear zeta/g0 1.0.0",
                        "Process gear zeta/g1 1.0.0", "Process gear zeta/g2 1.0.0"]


def test_dirty_work_tree_is_refused(world: World) -> None:
    world.repo.write("gears/acme/hello.json", example_gear(name="hello", description="uncommitted"))
    result = process(world)
    assert result.exit_code == 2 and "not clean" in result.output


def test_bad_bucket_setting_fails_before_any_work(world: World) -> None:
    result = CliRunner().invoke(cli, ["process", "--repo", str(world.repo.root), "--bucket", "s3://nope"])
    assert result.exit_code == 2
    assert world.repo.git("log", "-1", "--format=%s") == "add gears"


def test_without_git_identity_the_bot_commits_and_nothing_is_left_configured(world: World, monkeypatch) -> None:
    world.repo.git("config", "--unset", "user.name")
    world.repo.git("config", "--unset", "user.email")
    monkeypatch.setenv("HOME", str(world.bucket.parent))  # no global identity either
    monkeypatch.delenv("GIT_AUTHOR_NAME", raising=False)
    monkeypatch.delenv("GIT_AUTHOR_EMAIL", raising=False)
    result = process(world)
    assert result.exit_code == 0, result.output
    assert world.repo.git("log", "-1", "--format=%an <%ae>") == "Exchange Bot <exchange-bot@users.noreply.invalid>"
    assert subprocess.run(["git", "config", "user.name"], cwd=world.repo.root, check=False).returncode == 1


def test_boutique_is_processed(world: World) -> None:
    image = "registry.example.org/acme/wc:1.0.0"
    boutique = example_boutique(**{"container-image": {"type": "docker", "image": image}})
    build_demo_image(world.images, image, boutique)
    world.repo.write("boutiques/acme/word-count.json", boutique)
    world.repo.commit("boutique")
    assert process(world).exit_code == 0
    (path,) = [p for p in manifests(world) if "acme-word-count-" in p]
    document = manifests(world)[path]
    assert document["boutique"]["name"] == "word-count"
    subjects = world.repo.git("log", "-3", "--reverse", "--format=%s").splitlines()
    assert subjects[0] == "Process boutique acme/word-count 1.0.0", "commits follow the specs' path order"
    assert document["invocation-schema"]["properties"]["input_file"]


def test_existing_exchange_layout_needs_no_migration(world: World) -> None:
    """Old manifests (only git-commit, rootfs-hash, rootfs-url) and a .sentinel, as existing exchanges have."""
    old = example_gear(name="hello", version="0.9.0", custom={"gear-builder": {"image": "registry.example.org/acme/hello:0.9.0"}})
    world.repo.write("gears/acme/hello.json", old)
    world.repo.write("manifests/acme/acme-hello-sha384-" + "a" * 96 + ".json", {
        "gear": old, "exchange": {"git-commit": "b" * 40, "rootfs-hash": "sha384:" + "a" * 96,
                                  "rootfs-url": "https://storage.googleapis.com/old/acme-hello-sha384-" + "a" * 96 + ".tgz"},
        "invocation-schema": {}})
    world.repo.commit("history")
    world.repo.set_sentinel(world.repo.git("rev-parse", "HEAD"))
    world.repo.commit("sentinel")
    world.repo.write("gears/acme/hello.json", example_gear(name="hello", version="0.9.0", description="same version, new text",
                                                           custom={"gear-builder": {"image": "registry.example.org/acme/hello:1.0.0"}}))
    world.repo.commit("resubmitted 0.9.0")
    result = process(world)
    assert result.exit_code == 1 and "version-taken" in result.output
    world.add_gear("acme", "hello", "1.0.0")
    world.repo.commit("new version")
    result = process(world)
    assert result.exit_code == 0, result.output
    assert len(list((world.repo.root / "manifests/acme").glob("acme-hello-*.json"))) == 2


def test_sigterm_mid_push_cleans_up(world: World, tmp_path: Path) -> None:
    reject_pushes(world.remote, "sleep 60; exit 0")
    work_dirs = tmp_path / "tmpdir"  # its own, so other runs' work directories on this machine do not count
    work_dirs.mkdir()
    start = world.repo.git("rev-parse", "HEAD")
    remote_before = world.remote_head()
    exe = Path(sys.executable).with_name("exchange")
    proc = subprocess.Popen([str(exe), *world.args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(work_dirs)})
    deadline = time.monotonic() + 120
    while len(world.bucket_objects()) < 4 or not _both_committed(world):  # two rootfs and their SBOMs
        assert time.monotonic() < deadline, "process never reached the push"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "rolled back" in stderr
    assert world.bucket_objects() == {}
    assert world.repo.git("rev-parse", "HEAD") == start
    assert world.repo.git("status", "--porcelain") == ""
    assert world.remote_head() == remote_before
    assert not list(work_dirs.glob("exchange-process-*"))


def _both_committed(world: World) -> bool:
    """Both manifest commits exist locally: the run is at (or in) its push."""
    subjects = world.repo.git("log", "-2", "--format=%s").splitlines()
    return all(subject.startswith("Process gear") for subject in subjects)
