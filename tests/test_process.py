"""`exchange process` as a transaction, against real git remotes, a bucket directory and OCI-layout images."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, init_repo, run_git
from tests.infra.process_world import MANIFEST_SCHEMA, World, manifests, process, reject_pushes


def test_clean_run_publishes_manifests_artifacts_and_commits(process_world: World) -> None:
    start = process_world.repo.git("rev-parse", "HEAD")
    result = process(process_world)
    assert result.exit_code == 0, result.output
    found = manifests(process_world)
    assert len(found) == 2
    objects = process_world.bucket_objects()
    for path, document in found.items():
        jsonschema.validate(document, MANIFEST_SCHEMA)
        block = document["exchange"]
        hex_digest = block["rootfs-hash"].removeprefix("sha384:")
        artifact = Path(block["rootfs-url"]).name
        assert path == f"manifests/acme/acme-{document['gear']['name']}-sha384-{hex_digest}.json"
        assert artifact == f"acme-{document['gear']['name']}-sha384-{hex_digest}.tgz"
        assert objects[artifact] == hex_digest, "the bucket object hashes to the manifest's rootfs-hash"
        assert block["git-commit"] == start
        assert block["rootfs-size"] == (process_world.bucket / artifact).stat().st_size
        assert block["image"] == document["gear"]["custom"]["gear-builder"]["image"]
        assert block["image-config-digest"].startswith("sha256:")
        assert block["platform"] == "linux/amd64"
        assert document["invocation-schema"]["properties"]["config"]["properties"]["name"]["type"] == "string"
    log = process_world.repo.git("log", "--format=%s", f"{start}..HEAD").splitlines()
    assert log == ["Process gear acme/other 2.0.0", "Process gear acme/hello 1.0.0"]
    assert (process_world.repo.root / ".sentinel").read_text().strip() == start
    assert process_world.remote_head() == process_world.repo.git("rev-parse", "HEAD")
    assert process_world.repo.git("status", "--porcelain") == ""


def test_second_run_finds_nothing_to_do(process_world: World) -> None:
    assert process(process_world).exit_code == 0
    head = process_world.repo.git("rev-parse", "HEAD")
    result = process(process_world)
    assert result.exit_code == 0 and "nothing to process" in result.output
    assert process_world.repo.git("rev-parse", "HEAD") == head


def test_rerun_over_the_same_images_uploads_nothing_and_writes_identical_manifests(process_world: World, tmp_path: Path) -> None:
    before = process_world.repo.git("rev-parse", "HEAD")
    clone = tmp_path / "second"
    run_git(tmp_path, "clone", "-q", str(process_world.remote), str(clone))
    assert process(process_world).exit_code == 0
    first_manifests, first_objects = manifests(process_world), process_world.bucket_objects()
    mtimes = {p.name: p.stat().st_mtime_ns for p in process_world.bucket.iterdir()}
    # A second exchange at the same commit (as after a crash before the push), same bucket, fresh cache.
    other_remote = init_repo(tmp_path / "other.git", bare=True)
    run_git(clone, "remote", "set-url", "origin", str(other_remote))
    run_git(clone, "config", "user.name", "T")
    run_git(clone, "config", "user.email", "t@t.invalid")
    assert run_git(clone, "rev-parse", "HEAD") == before
    second = World(ExchangeRepo(clone), other_remote, process_world.images, process_world.bucket, tmp_path / "cache2")
    result = CliRunner().invoke(cli, second.args("--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [spec["uploaded"] for spec in report["specs"]] == [False, False]
    assert manifests(second) == first_manifests
    for path in first_manifests:
        assert (clone / path).read_bytes() == (process_world.repo.root / path).read_bytes()
    assert process_world.bucket_objects() == first_objects
    assert {p.name: p.stat().st_mtime_ns for p in process_world.bucket.iterdir()} == mtimes


def test_validation_failure_touches_nothing(process_world: World) -> None:
    process_world.repo.write("gears/acme/broken.json", example_gear(name="broken", author=None))
    process_world.repo.commit("broken gear")
    head = process_world.repo.git("rev-parse", "HEAD")
    result = process(process_world)
    assert result.exit_code == 1
    assert "error[gear-schema]: 'author' is a required property" in result.output
    assert process_world.bucket_objects() == {}
    assert process_world.repo.git("rev-parse", "HEAD") == head
    assert process_world.repo.git("status", "--porcelain") == ""


def test_push_failure_restores_branch_and_bucket_exactly(process_world: World) -> None:
    (process_world.bucket / "unrelated-object.tgz").write_bytes(b"was here before")
    # One artifact already in the bucket from an earlier, crashed run: it must survive the rollback.
    assert CliRunner().invoke(cli, ["export", f"oci:{process_world.images}:registry.example.org/acme/hello:1.0.0",
                                    "-o", str(process_world.bucket / "tmp.tgz"), "--quiet"]).exit_code == 0
    sha = hashlib.sha384((process_world.bucket / "tmp.tgz").read_bytes()).hexdigest()
    (process_world.bucket / "tmp.tgz").rename(process_world.bucket / f"acme-hello-sha384-{sha}.tgz")
    before_objects = process_world.bucket_objects()
    start = process_world.repo.git("rev-parse", "HEAD")
    remote_before = process_world.remote_head()
    reject_pushes(process_world.remote)
    result = process(process_world)
    assert result.exit_code == 2, "the remote refused: the environment, as for an unreachable remote"
    (line,) = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: push to origin master failed: [remote rejected] (pre-receive hook declined); ")
    assert "rejected by policy" in line and "hint:" not in result.output
    # The other gear's rootfs and SBOM, and the SBOM this run put beside the earlier run's rootfs.
    assert "deleted 3 object(s)" in result.output
    assert process_world.bucket_objects() == before_objects
    assert process_world.repo.git("rev-parse", "HEAD") == start
    assert process_world.repo.git("status", "--porcelain") == ""
    assert process_world.remote_head() == remote_before


def push_concurrent_commit(world: World, tmp_path: Path) -> str:
    other = tmp_path / "concurrent"
    run_git(tmp_path, "clone", "-q", str(world.remote), str(other))
    (other / "README.md").write_text("someone else was faster\n")
    run_git(other, "add", "README.md")
    run_git(other, "-c", "user.name=O", "-c", "user.email=o@o.invalid", "commit", "-q", "-m", "concurrent")
    run_git(other, "push", "-q", "origin", "master")
    return run_git(other, "rev-parse", "HEAD")


def test_non_fast_forward_without_retries_rolls_back(process_world: World, tmp_path: Path) -> None:
    start = process_world.repo.git("rev-parse", "HEAD")
    push_concurrent_commit(process_world, tmp_path)
    result = process(process_world)
    assert result.exit_code == 2 and "failed" in result.output
    assert process_world.bucket_objects() == {}
    assert process_world.repo.git("rev-parse", "HEAD") == start


def test_retries_win_the_race_without_exporting_again(process_world: World, tmp_path: Path) -> None:
    concurrent = push_concurrent_commit(process_world, tmp_path)
    result = CliRunner().invoke(cli, process_world.args("--retries", "2", "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replays"] == 1 and report["pushed"]
    head = process_world.remote_head()
    assert run_git(process_world.remote, "merge-base", "--is-ancestor", concurrent, head) == ""
    subjects = run_git(process_world.remote, "log", "--format=%s", f"{concurrent}..{head}").splitlines()
    assert subjects == ["Process gear acme/other 2.0.0", "Process gear acme/hello 1.0.0"]
    assert len(process_world.bucket_objects()) == 4  # two rootfs, each with its SBOM
    assert [spec["uploaded"] for spec in report["specs"]] == [True, True]


def test_dry_run_prints_the_plan_and_changes_nothing(process_world: World) -> None:
    head = process_world.repo.git("rev-parse", "HEAD")
    result = process(process_world, "--dry-run")
    assert result.exit_code == 0
    assert "would process gear acme/hello 1.0.0" in result.output
    assert "acme-hello-sha384-" in result.output
    assert process_world.bucket_objects() == {} and process_world.repo.git("rev-parse", "HEAD") == head


def test_parallel_jobs_keep_commit_order(process_world: World) -> None:
    for index in range(3):
        process_world.add_gear("zeta", f"g{index}")
    process_world.repo.commit("more")
    result = process(process_world, "--jobs", "3")
    assert result.exit_code == 0, result.output
    subjects = process_world.repo.git("log", "--reverse", "--format=%s", "-5").splitlines()
    assert subjects == ["Process gear acme/hello 1.0.0", "Process gear acme/other 2.0.0", "Process gear zeta/g0 1.0.0",
                        "Process gear zeta/g1 1.0.0", "Process gear zeta/g2 1.0.0"]


def test_dirty_work_tree_is_refused(process_world: World) -> None:
    process_world.repo.write("gears/acme/hello.json", example_gear(name="hello", description="uncommitted"))
    result = process(process_world)
    assert result.exit_code == 2 and "not clean" in result.output


def test_bad_bucket_setting_fails_before_any_work(process_world: World) -> None:
    result = CliRunner().invoke(cli, ["process", "--repo", str(process_world.repo.root), "--bucket", "s3://nope"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unsupported bucket URI s3://nope (scheme 's3'); use gs://"), result.output
    assert process_world.repo.git("log", "-1", "--format=%s") == "add gears"


def test_without_git_identity_the_bot_commits_and_nothing_is_left_configured(process_world: World, monkeypatch) -> None:
    process_world.repo.git("config", "--unset", "user.name")
    process_world.repo.git("config", "--unset", "user.email")
    monkeypatch.setenv("HOME", str(process_world.bucket.parent))  # no global identity either
    monkeypatch.delenv("GIT_AUTHOR_NAME", raising=False)
    monkeypatch.delenv("GIT_AUTHOR_EMAIL", raising=False)
    result = process(process_world)
    assert result.exit_code == 0, result.output
    assert process_world.repo.git("log", "-1", "--format=%an <%ae>") == "Exchange Bot <exchange-bot@users.noreply.invalid>"
    name = subprocess.run(["git", "config", "user.name"], cwd=process_world.repo.root, capture_output=True, text=True,
                          check=False)
    assert (name.returncode, name.stdout) == (1, ""), "git config has no user.name"


@pytest.mark.parametrize(("config", "environment", "identified"), [
    ({"user.name": "Ann", "user.email": "ann@example.org"}, {}, True),
    ({"user.name": "Ann"}, {}, False),
    ({"user.email": "ann@example.org"}, {"GIT_AUTHOR_NAME": "Ann"}, True),
    ({"user.name": "Ann"}, {"GIT_AUTHOR_EMAIL": "ann@example.org"}, True),
    ({}, {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@example.org"}, True),
    ({"user.name": "", "user.email": "ann@example.org"}, {}, False),
], ids=["both", "name-only", "email-from-env", "name-from-env", "env-only", "empty-name"])
def test_an_identity_counts_when_git_would_commit_with_it(tmp_path: Path, monkeypatch, config: dict[str, str],
                                                        environment: dict[str, str], identified: bool) -> None:
    from exchange_cli import git

    root = tmp_path / "repo"
    root.mkdir()
    run_git(root, "init", "-q")  # no identity of the suite's: only what the case sets
    monkeypatch.setenv("HOME", str(tmp_path))  # nor a global one
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if "user.name" in config:  # a global name overridden by the repository's own, as git reads them
        run_git(tmp_path, "config", "--global", "user.name", "Global Name")
    for key, value in config.items():
        run_git(root, "config", key, value)
    assert git.has_identity(git.open_repo(root)) is identified


def test_boutique_is_processed(process_world: World) -> None:
    image = "registry.example.org/acme/wc:1.0.0"
    boutique = example_boutique(**{"container-image": {"type": "docker", "image": image}})
    build_demo_image(process_world.images, image, boutique)
    process_world.repo.write("boutiques/acme/word-count.json", boutique)
    process_world.repo.commit("boutique")
    assert process(process_world).exit_code == 0
    (path,) = [p for p in manifests(process_world) if "acme-word-count-" in p]
    document = manifests(process_world)[path]
    assert document["boutique"]["name"] == "word-count"
    subjects = process_world.repo.git("log", "-3", "--reverse", "--format=%s").splitlines()
    assert subjects[0] == "Process boutique acme/word-count 1.0.0", "commits follow the specs' path order"
    assert document["invocation-schema"]["properties"]["input_file"]


def test_existing_exchange_layout_needs_no_migration(process_world: World) -> None:
    """Old manifests (only git-commit, rootfs-hash, rootfs-url) and a .sentinel, as existing exchanges have."""
    old = example_gear(name="hello", version="0.9.0", custom={"gear-builder": {"image": "registry.example.org/acme/hello:0.9.0"}})
    process_world.repo.write("gears/acme/hello.json", old)
    process_world.repo.write("manifests/acme/acme-hello-sha384-" + "a" * 96 + ".json", {
        "gear": old, "exchange": {"git-commit": "b" * 40, "rootfs-hash": "sha384:" + "a" * 96,
                                  "rootfs-url": "https://storage.googleapis.com/old/acme-hello-sha384-" + "a" * 96 + ".tgz"},
        "invocation-schema": {}})
    process_world.repo.commit("history")
    process_world.repo.set_sentinel(process_world.repo.git("rev-parse", "HEAD"))
    process_world.repo.commit("sentinel")
    process_world.repo.write("gears/acme/hello.json", example_gear(name="hello", version="0.9.0", description="same version, new text",
                                                           custom={"gear-builder": {"image": "registry.example.org/acme/hello:1.0.0"}}))
    process_world.repo.commit("resubmitted 0.9.0")
    result = process(process_world)
    assert result.exit_code == 1 and "version-taken" in result.output
    process_world.add_gear("acme", "hello", "1.0.0")
    process_world.repo.commit("new version")
    result = process(process_world)
    assert result.exit_code == 0, result.output
    assert len(list((process_world.repo.root / "manifests/acme").glob("acme-hello-*.json"))) == 2


def test_sigterm_mid_push_cleans_up(process_world: World, tmp_path: Path) -> None:
    reject_pushes(process_world.remote, "sleep 60; exit 0")
    work_dirs = tmp_path / "tmpdir"  # its own, so other runs' work directories on this machine do not count
    work_dirs.mkdir()
    start = process_world.repo.git("rev-parse", "HEAD")
    remote_before = process_world.remote_head()
    exe = Path(sys.executable).with_name("exchange")
    proc = subprocess.Popen([str(exe), *process_world.args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(work_dirs)})
    deadline = time.monotonic() + 120
    while len(process_world.bucket_objects()) < 4 or not _both_committed(process_world):  # two rootfs and their SBOMs
        assert time.monotonic() < deadline, "process never reached the push"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "rolled back" in stderr
    assert process_world.bucket_objects() == {}
    assert process_world.repo.git("rev-parse", "HEAD") == start
    assert process_world.repo.git("status", "--porcelain") == ""
    assert process_world.remote_head() == remote_before
    assert not list(work_dirs.glob("exchange-process-*"))


def _both_committed(world: World) -> bool:
    """Both manifest commits exist locally: the run is at (or in) its push."""
    subjects = world.repo.git("log", "-2", "--format=%s").splitlines()
    return all(subject.startswith("Process gear") for subject in subjects)
