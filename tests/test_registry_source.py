"""The registry image source against a real docker-registry, with hand-crafted images."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zstandard

from exchange_cli.errors import UsageError
from exchange_cli.image.blobcache import BlobCache, BlobError
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM, Platform
from exchange_cli.image.platforms import select_manifest
from exchange_cli.image.registry import fetch_registry_image, manifest_exists
from exchange_cli.reference import parse_reference
from exchange_cli.web.retries import DEFAULT_RETRY, RETRY_SECONDS_ENV, RetryPolicy
from tests.infra.image_files import gz, layer_tar
from tests.infra.registry import (
    DOCKER_MANIFEST,
    Fault,
    RegistryServer,
    default_config,
    sha256_digest,
)

pytestmark = pytest.mark.usefixtures("no_credentials")  # tests/infra/image_sources.py

QUICK_RETRY = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05)
ARM64 = Platform("linux", "arm64", "v8")


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


class RecordingProgress:
    def __init__(self) -> None:
        self.tasks: list[dict] = []

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[RecordingProgress]:
        record = {"description": description, "total": total, "done": 0}
        self.tasks.append(record)

        class Task:
            def advance(self, amount: int) -> None:
                record["done"] += amount

        yield Task()  # type: ignore[misc]


def pull(host: str, name: str, cache: BlobCache, platform: Platform = DEFAULT_PLATFORM, **options):
    return fetch_registry_image(parse_reference(f"{host}/{name}"), platform, cache,
                                insecure_registries=[host], retry=QUICK_RETRY, **options)


@pytest.mark.parametrize("style", ["docker", "oci"])
def test_pulls_a_single_platform_image_with_gzip_zstd_and_plain_layers(registry, blob_cache, style):
    tars = [layer_tar({f"{style}/gzip": b"g"}), layer_tar({f"{style}/zstd": b"z" * 5000}),
            layer_tar({f"{style}/plain": b"p"})]
    blobs = [gz(tars[0]), zst(tars[1]), tars[2]]
    digest = registry.push_image(f"source/single-{style}", "v1", blobs, style=style)
    progress = RecordingProgress()

    image = pull(registry.host, f"source/single-{style}:v1", blob_cache, progress=progress)

    assert image.reference == f"{registry.host}/source/single-{style}:v1"
    assert image.manifest_digest == digest
    assert image.pinned_reference == f"{registry.host}/source/single-{style}@{digest}"
    assert image.platform == DEFAULT_PLATFORM
    assert image.config["rootfs"]["diff_ids"] == [sha256_digest(t) for t in tars]
    assert [layer.diff_id for layer in image.layers] == [sha256_digest(t) for t in tars]
    assert [layer.digest for layer in image.layers] == [sha256_digest(b) for b in blobs]
    assert [layer.tar_path.read_bytes() for layer in image.layers] == tars
    # Layers download side by side, so tasks may start in any order; each must be complete.
    assert sorted((task["total"], task["done"]) for task in progress.tasks) == sorted((len(b), len(b)) for b in blobs)


def test_pulls_by_digest(registry, blob_cache):
    digest = registry.push_image("source/by-digest", None, [gz(layer_tar({"by-digest": b"d"}))])

    image = pull(registry.host, f"source/by-digest@{digest}", blob_cache)

    assert image.manifest_digest == digest
    assert image.reference == f"{registry.host}/source/by-digest@{digest}"


def test_a_digest_the_registry_lacks_is_not_found(registry, blob_cache):
    registry.push_image("source/missing-digest", "v1", [gz(layer_tar({"x": b"x"}))])
    absent = sha256_digest(b"no such manifest")

    with pytest.raises(ImageError, match=rf"manifest {absent} not found on registry {registry.host}"):
        pull(registry.host, f"source/missing-digest@{absent}", blob_cache)


def push_two_platforms(registry: RegistryServer, repository: str, style: str) -> tuple[str, str, str]:
    amd64 = registry.push_image(repository, None, [gz(layer_tar({"amd64": b"a"}))], style=style)
    arm64 = registry.push_image(repository, None, [gz(layer_tar({"arm64": b"b"}))], style=style, platform=ARM64)
    index = registry.push_index(repository, "multi", {DEFAULT_PLATFORM: amd64, ARM64: arm64}, style=style)
    return amd64, arm64, index


@pytest.mark.parametrize("style", ["docker", "oci"])
def test_picks_the_requested_platform_from_a_manifest_list_or_index(registry, blob_cache, style):
    amd64, arm64, _ = push_two_platforms(registry, f"source/multi-{style}", style)

    arm_image = pull(registry.host, f"source/multi-{style}:multi", blob_cache, Platform("linux", "arm64"))
    amd_image = pull(registry.host, f"source/multi-{style}:multi", blob_cache, DEFAULT_PLATFORM)

    assert (arm_image.platform, arm_image.manifest_digest) == (ARM64, arm64)
    assert arm_image.layers[0].tar_path.read_bytes() == layer_tar({"arm64": b"b"})
    assert arm_image.pinned_reference == f"{registry.host}/source/multi-{style}@{arm64}"
    assert (amd_image.platform, amd_image.manifest_digest) == (DEFAULT_PLATFORM, amd64)


def test_a_platform_missing_from_the_index_is_an_error_listing_those_available(registry, blob_cache):
    push_two_platforms(registry, "source/multi-missing", "oci")

    with pytest.raises(ImageError) as failure:
        pull(registry.host, "source/multi-missing:multi", blob_cache, Platform("linux", "s390x"))

    message = str(failure.value)
    assert "no manifest for platform linux/s390x" in message
    assert "available for: linux/amd64, linux/arm64/v8" in message
    assert not list(blob_cache.root.rglob("*.tar"))


def test_select_manifest_matches_variants_as_docker_does():
    index = {"manifests": [
        {"digest": "sha256:v6", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "sha256:v7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "sha256:arm64", "platform": {"os": "linux", "architecture": "arm64"}},
    ]}

    assert select_manifest(index, Platform("linux", "arm"), image="i")["digest"] == "sha256:v7"
    assert select_manifest(index, Platform("linux", "arm", "v6"), image="i")["digest"] == "sha256:v6"
    assert select_manifest(index, Platform("linux", "arm64", "v8"), image="i")["digest"] == "sha256:arm64"
    with pytest.raises(ImageError, match=r"available for: linux/arm/v6, linux/arm/v7, linux/arm64$"):
        select_manifest(index, Platform("linux", "arm", "v5"), image="i")


def test_a_manifest_that_does_not_hash_to_the_pinned_digest_is_refused(registry, blob_cache, registry_proxy):
    digest = registry.push_image("source/tampered", "v1", [gz(layer_tar({"genuine": b"g"}))])
    impostor = registry.push_image("source/tampered", "v2", [gz(layer_tar({"impostor": b"i"}))])
    impostor_body = registry.session.get(f"{registry.url}/v2/source/tampered/manifests/{impostor}",
                                         headers={"Accept": DOCKER_MANIFEST}).content
    registry_proxy.faults.append(Fault(f"/manifests/{digest}", times=1, body=impostor_body))

    with pytest.raises(ImageError, match=rf"manifest {digest} hashes to {impostor}, not the requested digest"):
        pull(registry_proxy.host, f"source/tampered@{digest}", blob_cache)


def test_a_manifest_that_does_not_hash_to_the_registry_digest_header_is_refused(registry, blob_cache, registry_proxy):
    digest = registry.push_image("source/tampered-tag", "v1", [gz(layer_tar({"genuine-tag": b"g"}))])
    registry_proxy.faults.append(Fault("/manifests/v1", times=1, body=b'{"schemaVersion": 2}'))

    with pytest.raises(ImageError, match=rf"manifest v1 hashes to sha256:\w+, but the registry says its digest is {digest}"):
        pull(registry_proxy.host, "source/tampered-tag:v1", blob_cache)


def test_a_single_platform_image_for_another_platform_is_refused(registry, blob_cache):
    registry.push_image("source/arm-only", "v1", [gz(layer_tar({"arm-only": b"a"}))], platform=ARM64)

    with pytest.raises(ImageError, match=r"image is for linux/arm64/v8 only, not for the requested linux/amd64"):
        pull(registry.host, "source/arm-only:v1", blob_cache)


def test_a_corrupted_blob_fails_verification_and_leaves_nothing_in_the_cache(registry, blob_cache):
    blob = gz(layer_tar({"corrupt-me": b"precious data " * 100}))
    registry.push_image("source/corrupt", "v1", [blob])
    stored = registry.blob_data_path(sha256_digest(blob))
    stored.write_bytes(bytes(b ^ 0xFF for b in blob))  # same length, different content

    with pytest.raises(BlobError) as failure:
        pull(registry.host, "source/corrupt:v1", blob_cache)

    assert failure.value.digest == sha256_digest(blob)
    assert "source/corrupt:v1" in str(failure.value)
    assert [p for p in blob_cache.root.rglob("*") if p.is_file()] == []


def test_an_unknown_tag_is_a_clear_error_and_is_not_retried(registry, blob_cache, registry_proxy):
    registry.push_image("source/known", "v1", [gz(layer_tar({"known": b"k"}))])

    with pytest.raises(ImageError) as failure:
        pull(registry_proxy.host, "source/known:nope", blob_cache)

    assert str(failure.value).startswith(f"{registry_proxy.host}/source/known:nope: manifest nope not found on registry")
    assert "MANIFEST_UNKNOWN" in str(failure.value)
    assert registry_proxy.count("GET", "/manifests/") == 1


def test_transient_server_errors_are_retried(registry, blob_cache, registry_proxy):
    blob = gz(layer_tar({"flaky": b"f"}))
    registry.push_image("source/flaky", "v1", [blob])
    registry_proxy.faults.append(Fault("/blobs/", times=3, status=503))

    image = pull(registry_proxy.host, "source/flaky:v1", blob_cache)

    assert image.layers[0].digest == sha256_digest(blob)
    assert registry_proxy.count("GET", "/blobs/") == 2 + 3  # config and layer, plus the three refused


def test_a_download_that_breaks_off_restarts_from_the_first_byte(registry, blob_cache, registry_proxy):
    tar = layer_tar({"truncated": bytes(range(256)) * 2000})
    blob = gz(tar)
    registry.push_image("source/truncated", "v1", [blob])
    registry_proxy.faults.append(Fault(f"/blobs/{sha256_digest(blob)}", times=2, truncate=True))
    progress = RecordingProgress()

    image = pull(registry_proxy.host, "source/truncated:v1", blob_cache, progress=progress)

    assert image.layers[0].tar_path.read_bytes() == tar
    assert registry_proxy.count("GET", f"/blobs/{sha256_digest(blob)}") == 3
    assert progress.tasks[-1]["done"] == len(blob)
    tar_path = image.layers[0].tar_path
    assert sorted(p.name for p in blob_cache.layers_dir.iterdir()) == [tar_path.name, tar_path.with_suffix(".verified").name]


def test_persistent_failure_gives_up_after_the_last_attempt(registry, blob_cache, registry_proxy):
    registry.push_image("source/down", "v1", [gz(layer_tar({"down": b"d"}))])
    registry_proxy.faults.append(Fault("/manifests/", times=100, status=502))

    with pytest.raises(ImageError, match=r"fetching manifest v1: gave up after 5 attempts: .*502"):
        pull(registry_proxy.host, "source/down:v1", blob_cache)

    assert registry_proxy.count("GET", "/manifests/") == 5


def test_the_default_pauses_add_up_to_the_retry_budget_the_environment_sets(monkeypatch):
    monkeypatch.delenv(RETRY_SECONDS_ENV, raising=False)
    assert [DEFAULT_RETRY.delay(attempt) for attempt in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]  # unset: 7.5 s
    assert DEFAULT_RETRY.delay(1, retry_after=30) == 8.0  # a Retry-After is honoured up to the longest pause
    monkeypatch.setenv(RETRY_SECONDS_ENV, "0.15")
    assert sum(DEFAULT_RETRY.delay(attempt) for attempt in range(1, 5)) == pytest.approx(0.15)
    assert DEFAULT_RETRY.delay(1, retry_after=30) == pytest.approx(0.16)
    assert QUICK_RETRY.delay(1) == 0.01  # a policy given explicitly is not the environment's


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_retry_budget_that_is_no_number_of_seconds_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(RETRY_SECONDS_ENV, value)
    with pytest.raises(UsageError) as refused:
        DEFAULT_RETRY.delay(1)
    assert str(refused.value) == f"{RETRY_SECONDS_ENV}={value!r}: give a number of seconds, 0 or more"


def test_a_failing_registry_is_given_up_within_the_budget_the_environment_sets(registry, blob_cache, registry_proxy, monkeypatch):
    registry.push_image("source/budget", "v1", [gz(layer_tar({"budget": b"b"}))])
    registry_proxy.faults.append(Fault("/manifests/", times=100, status=503))
    monkeypatch.setenv(RETRY_SECONDS_ENV, "0.2")
    started = time.monotonic()

    with pytest.raises(ImageError, match=r"fetching manifest v1: gave up after 5 attempts: .*503"):
        fetch_registry_image(parse_reference(f"{registry_proxy.host}/source/budget:v1"), DEFAULT_PLATFORM, blob_cache,
                             insecure_registries=[registry_proxy.host])  # the default policy

    assert registry_proxy.count("GET", "/manifests/") == 5
    assert time.monotonic() - started < 5  # not the 7.5 s of pauses unset gives


def test_layers_already_cached_are_not_downloaded_again(registry, blob_cache, registry_proxy):
    registry.push_image("source/cached", "v1", [gz(layer_tar({"cached": b"c"})), zst(layer_tar({"again": b"a"}))])
    first = pull(registry_proxy.host, "source/cached:v1", blob_cache)
    blob_requests = registry_proxy.count("GET", "/blobs/")

    second = pull(registry_proxy.host, "source/cached:v1", blob_cache)

    assert second.layers == first.layers
    assert blob_requests == 3
    assert registry_proxy.count("GET", "/blobs/") == blob_requests + 1  # the config only


def test_foreign_layers_are_refused(registry, blob_cache):
    # Shaped like a Windows base image: the base layer lives on the vendor's servers, not in the registry.
    local = gz(layer_tar({"local": b"l"}))
    foreign = gz(layer_tar({"foreign": b"f"}))
    config_bytes = json.dumps(default_config([foreign, local])).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config_bytes),
                   "digest": registry.push_blob("source/foreign", config_bytes)},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": len(foreign),
             "digest": sha256_digest(foreign), "urls": ["https://example.invalid/layer.tar.gz"]},
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(local),
             "digest": registry.push_blob("source/foreign", local)},
        ],
    }
    registry.push_manifest("source/foreign", "v1", manifest, DOCKER_MANIFEST)

    with pytest.raises(ImageError, match=r"non-distributable \(foreign\) layer hosted at https://example.invalid"):
        pull(registry.host, "source/foreign:v1", blob_cache)


def test_a_config_listing_more_diff_ids_than_the_manifest_has_layers_is_refused(registry, blob_cache):
    layer = gz(layer_tar({"short": b"s"}))
    config = default_config([layer, layer_tar({"phantom": b"p"})])

    registry.push_image("source/mismatch", "v1", [layer], config=config)

    with pytest.raises(ImageError, match=r"lists 1 layers but its config lists 2 diff_ids"):
        pull(registry.host, "source/mismatch:v1", blob_cache)


def test_manifest_exists(registry):
    registry.push_image("source/exists", "v1", [gz(layer_tar({"exists": b"e"}))])

    assert manifest_exists(parse_reference(f"{registry.host}/source/exists:v1"), insecure_registries=[registry.host])
    assert not manifest_exists(parse_reference(f"{registry.host}/source/exists:v2"),
                               insecure_registries=[registry.host])
    assert not manifest_exists(parse_reference(f"{registry.host}/source/never-pushed:v1"),
                               insecure_registries=[registry.host])


def test_registries_not_listed_as_insecure_are_spoken_to_over_https(registry, blob_cache):
    registry.push_image("source/https", "v1", [gz(layer_tar({"https": b"h"}))])

    with pytest.raises(ImageError, match=r"TLS failure talking to .*list it as an insecure registry"):
        fetch_registry_image(parse_reference(f"{registry.host}/source/https:v1"), DEFAULT_PLATFORM, blob_cache,
                             retry=QUICK_RETRY)
