"""`exchange process` with its real services: the GCS emulator as the bucket, and a registry holding
images that a real dockerd built and pushed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.cloud import storage

from exchange_cli.cli import cli
from tests.infra.gcs import gcs_objects
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo, run_git


@pytest.fixture
def repo_with_remote(exchange_repo: ExchangeRepo, tmp_path: Path) -> ExchangeRepo:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    exchange_repo.git("push", "-q", "origin", "master")
    return exchange_repo


def test_images_built_by_dockerd_pushed_to_a_registry_published_to_gcs(
        repo_with_remote: ExchangeRepo, dockerd, registry, gcs_bucket_uri: str, tmp_path: Path) -> None:
    repo = repo_with_remote
    references = []
    for name, payload in (("alpha", "first"), ("beta", "second")):
        tag = f"{registry.host}/acme/{name}:1.0.0"
        dockerd.build(f"FROM busybox-local:1\nRUN mkdir -p /flywheel/v0 && echo {payload} > /flywheel/v0/run "
                      "&& chmod 0755 /flywheel/v0/run && ln -s busybox /bin/bash\nRUN rm -f /bin/mkfifo\n", tag)
        dockerd.push(tag)
        references.append(tag)
        repo.write(f"gears/acme/{name}.json", example_gear(name=name, custom={"gear-builder": {"image": tag}}))
    repo.commit("two gears")
    def args(source: str, cache: str) -> list[str]:
        return ["process", "--repo", str(repo.root), "--bucket", f"{gcs_bucket_uri}/rootfs", "--insecure-registry",
                registry.host, "--source", source, "--cache-dir", str(tmp_path / cache), "--quiet", "--format", "json"]

    result = CliRunner().invoke(cli, args("registry", "cache"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    objects = gcs_objects(gcs_bucket_uri)
    assert sorted(objects) == sorted(f"rootfs/{spec['artifact']}{suffix}" for spec in report["specs"]
                                     for suffix in ("", ".sbom.json"))  # each rootfs with its SBOM
    for spec in report["specs"]:
        content = objects[f"rootfs/{spec['artifact']}"]
        assert spec["rootfs-hash"] == "sha384:" + hashlib.sha384(content).hexdigest()
        assert spec["rootfs-url"] == f"https://storage.googleapis.com/{gcs_bucket_uri.removeprefix('gs://')}/rootfs/{spec['artifact']}"
        assert spec["image-digest-reference"].startswith(f"{registry.host}/acme/{spec['name']}@sha256:")
        manifest = json.loads((repo.root / spec["manifest"]).read_text())
        assert manifest["exchange"]["image-digest-reference"] == spec["image-digest-reference"]
    # The same images from the docker engine give the same artifacts: nothing new is uploaded.
    repo.git("reset", "-q", "--hard", "HEAD~2")
    run_git(repo.root, "push", "-q", "-f", "origin", "master")
    result = CliRunner().invoke(cli, args("docker", "cache2"), env={"DOCKER_HOST": dockerd.host})
    assert result.exit_code == 0, result.output
    assert [spec["uploaded"] for spec in json.loads(result.stdout)["specs"]] == [False, False]
    assert gcs_objects(gcs_bucket_uri) == objects


def test_push_failure_with_gcs_deletes_exactly_what_the_run_created(
        repo_with_remote: ExchangeRepo, gcs_bucket_uri: str, tmp_path: Path) -> None:
    repo = repo_with_remote
    images = tmp_path / "images"
    repo.add_gear_with_image(images, "acme", "hello")
    repo.commit("gear")
    client = storage.Client.create_anonymous_client()
    client.project = "test"
    client.bucket(gcs_bucket_uri.removeprefix("gs://")).blob("keep/me.txt").upload_from_string(b"already here")
    before = gcs_objects(gcs_bucket_uri)
    hook = Path(run_git(repo.root, "remote", "get-url", "origin")) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho no >&2\nexit 1\n")
    hook.chmod(0o755)
    start = repo.git("rev-parse", "HEAD")
    result = CliRunner().invoke(cli, ["process", "--repo", str(repo.root), "--bucket", gcs_bucket_uri, "--oci-layout",
                                      str(images), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "deleted 2 object(s)" in result.output  # the rootfs and its SBOM
    assert gcs_objects(gcs_bucket_uri) == before
    assert repo.git("rev-parse", "HEAD") == start
