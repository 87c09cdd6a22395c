"""Local image sources: docker-save tarballs (both layouts), OCI layouts, the Docker engine, and source choice."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from exchange_cli.image.archive import read_docker_archive, read_docker_save
from exchange_cli.image.blobcache import BlobCache, BlobError
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM, Platform
from exchange_cli.image.oci_layout import parse_oci_location, read_oci_layout
from exchange_cli.image.resolve import open_image
from tests.infra.image_files import (
    OciLayout,
    base_layer,
    entry,
    legacy_docker_save,
    oci_docker_save,
    second_layer,
    sha256,
    tar_of,
)


def layer_contents(image) -> list[bytes]:
    return [layer.tar_path.read_bytes() for layer in image.layers]


# --- docker-save tarballs ---------------------------------------------------------------------------


@pytest.mark.parametrize("config_first", [False, True])
def test_legacy_docker_save_yields_layers_in_config_order(blob_cache: BlobCache, config_first: bool) -> None:
    layers = [base_layer(), second_layer()]
    saved = read_docker_save(io.BytesIO(legacy_docker_save(layers, config_first=config_first)),
                             image="test", cache=blob_cache)
    assert [layer.diff_id for layer in saved.layers] == [sha256(layer) for layer in layers]
    assert [layer.tar_path.read_bytes() for layer in saved.layers] == layers
    assert saved.repo_tags == ["example/app:1"]
    assert saved.config["rootfs"]["diff_ids"] == [sha256(layer) for layer in layers]


def test_legacy_docker_save_follows_a_repeated_layer_symlink(blob_cache: BlobCache) -> None:
    layers = [base_layer(), second_layer()]
    saved = read_docker_save(io.BytesIO(legacy_docker_save(layers, repeat_last=True)), image="test", cache=blob_cache)
    assert [layer.diff_id for layer in saved.layers] == [sha256(layers[0]), sha256(layers[1]), sha256(layers[1])]


def test_docker_25_oci_save_yields_the_same_layers(blob_cache: BlobCache) -> None:
    layers = [base_layer(), second_layer()]
    saved = read_docker_save(io.BytesIO(oci_docker_save(layers)), image="test", cache=blob_cache)
    assert [layer.tar_path.read_bytes() for layer in saved.layers] == layers


def test_docker_save_with_a_layer_not_in_the_config_is_refused(blob_cache: BlobCache) -> None:
    tampered = legacy_docker_save([base_layer(), second_layer()]).replace(b"welcome\n", b"WELCOME\n")
    with pytest.raises(BlobError, match="layer 2's content hashes to sha256:.*config lists diff_id"):
        read_docker_save(io.BytesIO(tampered), image="test", cache=blob_cache)


def test_docker_save_without_manifest_is_refused(blob_cache: BlobCache) -> None:
    with pytest.raises(ImageError, match="no manifest.json"):
        read_docker_save(io.BytesIO(tar_of(entry("something", b"x"))), image="test", cache=blob_cache)


def test_docker_archive_file_checks_platform(tmp_path: Path, blob_cache: BlobCache) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(legacy_docker_save([base_layer()]))
    image = read_docker_archive(archive, platform=DEFAULT_PLATFORM, cache=blob_cache)
    assert layer_contents(image) == [base_layer()]
    assert image.config_digest.startswith("sha256:")
    with pytest.raises(ImageError, match=r"the image is for platform linux/amd64, not the requested linux/arm64"):
        read_docker_archive(archive, platform=Platform("linux", "arm64"), cache=blob_cache)


def test_docker_archive_picks_an_image_by_repo_tag(tmp_path: Path, blob_cache: BlobCache) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(legacy_docker_save([base_layer()]))
    image = open_image(f"docker-archive:{archive}:example/app:1", platform=DEFAULT_PLATFORM, cache=blob_cache)
    assert layer_contents(image) == [base_layer()]
    with pytest.raises(ImageError, match="no image tagged example/other:2 in the archive; it holds: example/app:1"):
        open_image(f"docker-archive:{archive}:example/other:2", platform=DEFAULT_PLATFORM, cache=blob_cache)


# --- OCI layouts ------------------------------------------------------------------------------------


def test_oci_layout_by_tag(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([base_layer()]), tag="one")
    wanted = layout.add(layout.image([base_layer(), second_layer()], compression="zstd"), tag="two")
    image = open_image(f"oci:{layout.root}:two", platform=DEFAULT_PLATFORM, cache=blob_cache)
    assert image.manifest_digest == wanted["digest"]
    assert layer_contents(image) == [base_layer(), second_layer()]
    with pytest.raises(ImageError, match="no manifest tagged 'three' in index.json; tags present: one, two"):
        open_image(f"oci:{layout.root}:three", platform=DEFAULT_PLATFORM, cache=blob_cache)
    with pytest.raises(ImageError, match="lists 2 manifests; pick one with oci:PATH:TAG"):
        open_image(f"oci:{layout.root}", platform=DEFAULT_PLATFORM, cache=blob_cache)


def test_oci_layout_selects_platform_from_a_nested_index(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    amd64 = layout.image([base_layer()])
    arm64 = layout.image([second_layer()], platform=Platform("linux", "arm64", "v8"), compression="none")
    layout.add(layout.nested_index([amd64, arm64]), tag="multi")
    image = read_oci_layout(layout.root, "multi", platform=Platform("linux", "arm64"), cache=blob_cache)
    assert (image.manifest_digest, layer_contents(image)) == (arm64["digest"], [second_layer()])
    with pytest.raises(ImageError, match="no manifest for platform linux/s390x.*linux/amd64, linux/arm64/v8"):
        read_oci_layout(layout.root, "multi", platform=Platform("linux", "s390x"), cache=blob_cache)


def test_oci_layout_refuses_a_tampered_manifest(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    descriptor = layout.add(layout.image([base_layer()]))
    blob = layout.root / "blobs" / "sha256" / descriptor["digest"].split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion": 3'))
    with pytest.raises(BlobError, match=f"blob {descriptor['digest']}: digest mismatch"):
        read_oci_layout(layout.root, None, platform=DEFAULT_PLATFORM, cache=blob_cache)


def test_oci_layout_refuses_a_layer_that_is_not_its_diff_id(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([base_layer()], diff_ids=[sha256(second_layer())]))
    with pytest.raises(BlobError, match="but the image config lists diff_id"):
        read_oci_layout(layout.root, None, platform=DEFAULT_PLATFORM, cache=blob_cache)


def test_oci_location_parsing(tmp_path: Path) -> None:
    (tmp_path / "with:colon").mkdir()
    assert parse_oci_location(str(tmp_path / "with:colon")) == (tmp_path / "with:colon", None)
    assert parse_oci_location(f"{tmp_path}/layout:v1") == (tmp_path / "layout", "v1")
    assert parse_oci_location("relative/layout") == (Path("relative/layout"), None)
    (tmp_path / "layout").mkdir()
    assert parse_oci_location(f"{tmp_path}/layout:host:5000/app:1") == (tmp_path / "layout", "host:5000/app:1")


def test_not_a_layout(tmp_path: Path, blob_cache: BlobCache) -> None:
    with pytest.raises(ImageError, match="is not an OCI image layout"):
        open_image(f"oci:{tmp_path}", platform=DEFAULT_PLATFORM, cache=blob_cache)


def test_oci_layout_option_finds_images_by_reference_name(tmp_path: Path, blob_cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([base_layer()]), tag="registry.example/app:1.0")
    image = open_image("registry.example/app:1.0", platform=DEFAULT_PLATFORM, source="registry",
                       oci_layout=layout.root, cache=blob_cache)
    assert layer_contents(image) == [base_layer()]


# --- the Docker engine ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_image(dockerd) -> str:
    dockerd.build("FROM busybox-local:1\nRUN mkdir -p /srv && echo one > /srv/one\nRUN rm /srv/one && echo two > /srv/two\n",
                  "sources/local:1")
    return "sources/local:1"


def test_docker_engine_image_matches_its_save(docker_host: str, dockerd, local_image: str, tmp_path: Path,
                                              blob_cache: BlobCache) -> None:
    from exchange_cli.image.docker_engine import fetch_docker_image

    image = fetch_docker_image(local_image, DEFAULT_PLATFORM, blob_cache)
    engine_image = dockerd.client.images.get(local_image)
    assert image.config_digest == engine_image.id
    assert [layer.diff_id for layer in image.layers] == engine_image.attrs["RootFS"]["Layers"]
    assert (image.manifest_digest, image.pinned_reference) == (None, None)  # never pushed
    archive = dockerd.save(local_image, tmp_path / "saved.tar")
    from_file = open_image(f"docker-archive:{archive}", platform=DEFAULT_PLATFORM, cache=BlobCache(tmp_path / "c2"))
    assert layer_contents(from_file) == layer_contents(image)


def test_docker_engine_errors_name_the_image(docker_host: str, local_image: str, blob_cache: BlobCache) -> None:
    with pytest.raises(ImageError, match="sources/absent:1: no such image in the Docker engine at unix://"):
        open_image("sources/absent:1", platform=DEFAULT_PLATFORM, source="docker", cache=blob_cache)
    with pytest.raises(ImageError, match="sources/local:1: the image is for platform linux/amd64, not the requested linux/arm64"):
        open_image(local_image, platform=Platform("linux", "arm64"), source="docker", cache=blob_cache)


def test_unreachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, blob_cache: BlobCache) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(ImageError, match=f"cannot reach the Docker engine at unix://{tmp_path}/no-such.sock"):
        open_image("anything:1", platform=DEFAULT_PLATFORM, source="docker", cache=blob_cache)


@pytest.fixture(scope="module")
def remote_image(registry) -> tuple[str, str]:
    """An image only a registry has: (reference, manifest digest)."""
    digest = registry.push_image("sources/remote", "1", [gzip.compress(base_layer(), mtime=0)])
    return f"{registry.host}/sources/remote:1", digest


def test_auto_reads_only_local_images_from_the_engine(docker_host: str, local_image: str, registry,
                                                      remote_image: tuple[str, str], blob_cache: BlobCache) -> None:
    image = open_image(local_image, platform=DEFAULT_PLATFORM, source="auto", cache=blob_cache)
    assert (image.reference, image.manifest_digest) == (local_image, None)
    reference, digest = remote_image
    image = open_image(reference, platform=DEFAULT_PLATFORM, source="auto", insecure_registries=[registry.host],
                       cache=blob_cache)
    assert image.manifest_digest == digest
    assert layer_contents(image) == [base_layer()]


def test_auto_without_an_engine_goes_to_the_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry,
                                                     remote_image: tuple[str, str], blob_cache: BlobCache) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    reference, digest = remote_image
    image = open_image(reference, platform=DEFAULT_PLATFORM, source="auto", insecure_registries=[registry.host],
                       cache=blob_cache)
    assert image.manifest_digest == digest
