"""Local image sources: docker-save tarballs (both layouts), OCI layouts, the Docker engine, and source choice."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard

from exchange_cli.image.archive import read_docker_archive, read_docker_save
from exchange_cli.image.blobcache import BlobCache, BlobError
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM, Platform
from exchange_cli.image.oci_layout import parse_oci_location, read_oci_layout
from exchange_cli.image.resolve import open_image

# --- helpers shared with test_export.py and test_export_vs_docker.py -------------------------------


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def tar_of(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A layer tar from (header, content) pairs, written exactly as given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def entry(name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
          linkname: str = "", uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.uid, info.gid, info.mtime = kind, mode, linkname, uid, gid, 1_600_000_000
    if kind != tarfile.REGTYPE:
        data = None
    elif data is None:
        data = b""
    return info, data


def directory(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    return entry(name, kind=tarfile.DIRTYPE, mode=mode)  # type: ignore[return-value]


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "none": "application/vnd.oci.image.layer.v1.tar"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class OciLayout:
    """Writes an OCI image layout by hand, so tests can put anything in it, hostile content included."""

    root: Path
    manifests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.flush()

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers: list[bytes], *, compression: str = "gzip", platform: Platform = DEFAULT_PLATFORM,
              diff_ids: list[str] | None = None) -> dict:
        """Write config, layers and manifest; returns the manifest's descriptor (not yet in index.json)."""
        config = {"architecture": platform.architecture, "os": platform.os,
                  "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha256(layer) for layer in layers]},
                  "config": {"Env": ["PATH=/bin"]}}
        if platform.variant:
            config["variant"] = platform.variant
        config_descriptor = self.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        layer_descriptors = [self.blob(compress(layer, compression), LAYER_TYPES[compression]) for layer in layers]
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                    "layers": layer_descriptors}
        descriptor = self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        descriptor["platform"] = {"os": platform.os, "architecture": platform.architecture,
                                  **({"variant": platform.variant} if platform.variant else {})}
        return descriptor

    def nested_index(self, descriptors: list[dict]) -> dict:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return self.blob(json.dumps(index).encode(), OCI_INDEX)

    def add(self, descriptor: dict, tag: str | None = None) -> dict:
        descriptor = dict(descriptor)
        if tag is not None:
            descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.manifests.append(descriptor)
        self.flush()
        return descriptor

    def flush(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.manifests}
        (self.root / "index.json").write_text(json.dumps(index))


def base_layer() -> bytes:
    return tar_of(directory("bin"), entry("bin/hello", b"hello\n", mode=0o755), directory("etc"),
                  entry("etc/os-release", b"ID=test\n"))


def second_layer() -> bytes:
    return tar_of(directory("etc"), entry("etc/motd", b"welcome\n"), entry("etc/.wh.os-release"))


def legacy_docker_save(layers: list[bytes], *, config_first: bool = False, repeat_last: bool = False,
                       repo_tags: list[str] | None = None) -> bytes:
    """A docker-save tarball in Docker 20.10's legacy layout, members in the order a test asks for."""
    layer_list = layers + ([layers[-1]] if repeat_last else [])
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layer_list]}}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layer_dirs = [f"{index:064x}" for index in range(1, len(layer_list) + 1)]
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for position, layer_dir in enumerate(layer_dirs):
        members.append(directory(layer_dir))
        members.append(entry(f"{layer_dir}/VERSION", b"1.0"))
        members.append(entry(f"{layer_dir}/json", b"{}"))
        if repeat_last and position == len(layer_dirs) - 1:
            members.append(entry(f"{layer_dir}/layer.tar", kind=tarfile.SYMTYPE,
                                 linkname=f"../{layer_dirs[position - 1]}/layer.tar"))
        else:
            members.append(entry(f"{layer_dir}/layer.tar", layer_list[position]))
    manifest = json.dumps([{"Config": config_name, "RepoTags": repo_tags or ["example/app:1"],
                            "Layers": [f"{d}/layer.tar" for d in layer_dirs]}]).encode()
    config_member = [entry(config_name, config)]
    tail = [entry("manifest.json", manifest), entry("repositories", b"{}")]
    return tar_of(*(config_member + members + tail if config_first else members + config_member + tail))


def oci_docker_save(layers: list[bytes]) -> bytes:
    """A docker-save tarball as Docker 25 and later write it: an OCI layout plus a legacy manifest.json."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]}}).encode()
    blobs = {sha256(data).split(":")[1]: data for data in [config, *layers]}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                           "size": len(config)},
                "layers": [{"mediaType": LAYER_TYPES["none"], "digest": sha256(layer), "size": len(layer)}
                           for layer in layers]}
    manifest_bytes = json.dumps(manifest).encode()
    blobs[sha256(manifest_bytes).split(":")[1]] = manifest_bytes
    members = [directory("blobs"), directory("blobs/sha256")]
    members += [entry(f"blobs/sha256/{hex_digest}", data) for hex_digest, data in sorted(blobs.items())]
    members.append(entry("index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(manifest_bytes), "size": len(manifest_bytes)}]}).encode()))
    members.append(entry("manifest.json", json.dumps([{
        "Config": f"blobs/sha256/{sha256(config).split(':')[1]}", "RepoTags": ["example/app:1"],
        "Layers": [f"blobs/sha256/{sha256(layer).split(':')[1]}" for layer in layers]}]).encode()))
    members.append(entry("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'))
    return tar_of(*members)


@pytest.fixture
def cache(tmp_path: Path) -> BlobCache:
    return BlobCache(tmp_path / "cache")


def layer_contents(image) -> list[bytes]:
    return [layer.tar_path.read_bytes() for layer in image.layers]


# --- docker-save tarballs ---------------------------------------------------------------------------


@pytest.mark.parametrize("config_first", [False, True])
def test_legacy_docker_save_yields_layers_in_config_order(cache: BlobCache, config_first: bool) -> None:
    layers = [base_layer(), second_layer()]
    saved = read_docker_save(io.BytesIO(legacy_docker_save(layers, config_first=config_first)),
                             image="test", cache=cache)
    assert [layer.diff_id for layer in saved.layers] == [sha256(layer) for layer in layers]
    assert [layer.tar_path.read_bytes() for layer in saved.layers] == layers
    assert saved.repo_tags == ["example/app:1"]
    assert saved.config["rootfs"]["diff_ids"] == [sha256(layer) for layer in layers]


def test_legacy_docker_save_follows_a_repeated_layer_symlink(cache: BlobCache) -> None:
    layers = [base_layer(), second_layer()]
    saved = read_docker_save(io.BytesIO(legacy_docker_save(layers, repeat_last=True)), image="test", cache=cache)
    assert [layer.diff_id for layer in saved.layers] == [sha256(layers[0]), sha256(layers[1]), sha256(layers[1])]


def test_docker_25_oci_save_yields_the_same_layers(cache: BlobCache) -> None:
    layers = [base_layer(), second_layer()]
    saved = read_docker_save(io.BytesIO(oci_docker_save(layers)), image="test", cache=cache)
    assert [layer.tar_path.read_bytes() for layer in saved.layers] == layers


def test_docker_save_with_a_layer_not_in_the_config_is_refused(cache: BlobCache) -> None:
    tampered = legacy_docker_save([base_layer(), second_layer()]).replace(b"welcome\n", b"WELCOME\n")
    with pytest.raises(BlobError, match="layer 2's content hashes to sha256:.*config lists diff_id"):
        read_docker_save(io.BytesIO(tampered), image="test", cache=cache)


def test_docker_save_without_manifest_is_refused(cache: BlobCache) -> None:
    with pytest.raises(ImageError, match="no manifest.json"):
        read_docker_save(io.BytesIO(tar_of(entry("something", b"x"))), image="test", cache=cache)


def test_docker_archive_file_checks_platform(tmp_path: Path, cache: BlobCache) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(legacy_docker_save([base_layer()]))
    image = read_docker_archive(archive, platform=DEFAULT_PLATFORM, cache=cache)
    assert layer_contents(image) == [base_layer()]
    assert image.config_digest.startswith("sha256:")
    with pytest.raises(ImageError, match=r"the image is for platform linux/amd64, not the requested linux/arm64"):
        read_docker_archive(archive, platform=Platform("linux", "arm64"), cache=cache)


def test_docker_archive_picks_an_image_by_repo_tag(tmp_path: Path, cache: BlobCache) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(legacy_docker_save([base_layer()]))
    image = open_image(f"docker-archive:{archive}:example/app:1", platform=DEFAULT_PLATFORM, cache=cache)
    assert layer_contents(image) == [base_layer()]
    with pytest.raises(ImageError, match="no image tagged example/other:2 in the archive; it holds: example/app:1"):
        open_image(f"docker-archive:{archive}:example/other:2", platform=DEFAULT_PLATFORM, cache=cache)


# --- OCI layouts ------------------------------------------------------------------------------------


def test_oci_layout_by_tag(tmp_path: Path, cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([base_layer()]), tag="one")
    wanted = layout.add(layout.image([base_layer(), second_layer()], compression="zstd"), tag="two")
    image = open_image(f"oci:{layout.root}:two", platform=DEFAULT_PLATFORM, cache=cache)
    assert image.manifest_digest == wanted["digest"]
    assert layer_contents(image) == [base_layer(), second_layer()]
    with pytest.raises(ImageError, match="no manifest tagged 'three' in index.json; tags present: one, two"):
        open_image(f"oci:{layout.root}:three", platform=DEFAULT_PLATFORM, cache=cache)
    with pytest.raises(ImageError, match="lists 2 manifests; pick one with oci:PATH:TAG"):
        open_image(f"oci:{layout.root}", platform=DEFAULT_PLATFORM, cache=cache)


def test_oci_layout_selects_platform_from_a_nested_index(tmp_path: Path, cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    amd64 = layout.image([base_layer()])
    arm64 = layout.image([second_layer()], platform=Platform("linux", "arm64", "v8"), compression="none")
    layout.add(layout.nested_index([amd64, arm64]), tag="multi")
    image = read_oci_layout(layout.root, "multi", platform=Platform("linux", "arm64"), cache=cache)
    assert (image.manifest_digest, layer_contents(image)) == (arm64["digest"], [second_layer()])
    with pytest.raises(ImageError, match="no manifest for platform linux/s390x.*linux/amd64, linux/arm64/v8"):
        read_oci_layout(layout.root, "multi", platform=Platform("linux", "s390x"), cache=cache)


def test_oci_layout_refuses_a_tampered_manifest(tmp_path: Path, cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    descriptor = layout.add(layout.image([base_layer()]))
    blob = layout.root / "blobs" / "sha256" / descriptor["digest"].split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion": 3'))
    with pytest.raises(BlobError, match=f"blob {descriptor['digest']}: digest mismatch"):
        read_oci_layout(layout.root, None, platform=DEFAULT_PLATFORM, cache=cache)


def test_oci_layout_refuses_a_layer_that_is_not_its_diff_id(tmp_path: Path, cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([base_layer()], diff_ids=[sha256(second_layer())]))
    with pytest.raises(BlobError, match="but the image config lists diff_id"):
        read_oci_layout(layout.root, None, platform=DEFAULT_PLATFORM, cache=cache)


def test_oci_location_parsing(tmp_path: Path) -> None:
    (tmp_path / "with:colon").mkdir()
    assert parse_oci_location(str(tmp_path / "with:colon")) == (tmp_path / "with:colon", None)
    assert parse_oci_location(f"{tmp_path}/layout:v1") == (tmp_path / "layout", "v1")
    assert parse_oci_location("relative/layout") == (Path("relative/layout"), None)
    (tmp_path / "layout").mkdir()
    assert parse_oci_location(f"{tmp_path}/layout:host:5000/app:1") == (tmp_path / "layout", "host:5000/app:1")


def test_not_a_layout(tmp_path: Path, cache: BlobCache) -> None:
    with pytest.raises(ImageError, match="is not an OCI image layout"):
        open_image(f"oci:{tmp_path}", platform=DEFAULT_PLATFORM, cache=cache)


def test_oci_layout_option_finds_images_by_reference_name(tmp_path: Path, cache: BlobCache) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([base_layer()]), tag="registry.example/app:1.0")
    image = open_image("registry.example/app:1.0", platform=DEFAULT_PLATFORM, source="registry",
                       oci_layout=layout.root, cache=cache)
    assert layer_contents(image) == [base_layer()]


# --- the Docker engine ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_image(dockerd) -> str:
    dockerd.build("FROM busybox-local:1\nRUN mkdir -p /srv && echo one > /srv/one\nRUN rm /srv/one && echo two > /srv/two\n",
                  "sources/local:1")
    return "sources/local:1"


@pytest.mark.docker
def test_docker_engine_image_matches_its_save(docker_host: str, dockerd, local_image: str, tmp_path: Path,
                                              cache: BlobCache) -> None:
    from exchange_cli.image.docker_engine import fetch_docker_image

    image = fetch_docker_image(local_image, DEFAULT_PLATFORM, cache)
    engine_image = dockerd.client.images.get(local_image)
    assert image.config_digest == engine_image.id
    assert [layer.diff_id for layer in image.layers] == engine_image.attrs["RootFS"]["Layers"]
    assert (image.manifest_digest, image.pinned_reference) == (None, None)  # never pushed
    archive = dockerd.save(local_image, tmp_path / "saved.tar")
    from_file = open_image(f"docker-archive:{archive}", platform=DEFAULT_PLATFORM, cache=BlobCache(tmp_path / "c2"))
    assert layer_contents(from_file) == layer_contents(image)


@pytest.mark.docker
def test_docker_engine_errors_name_the_image(docker_host: str, local_image: str, cache: BlobCache) -> None:
    with pytest.raises(ImageError, match="sources/absent:1: no such image in the Docker engine at unix://"):
        open_image("sources/absent:1", platform=DEFAULT_PLATFORM, source="docker", cache=cache)
    with pytest.raises(ImageError, match="sources/local:1: the image is for platform linux/amd64, not the requested linux/arm64"):
        open_image(local_image, platform=Platform("linux", "arm64"), source="docker", cache=cache)


def test_unreachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: BlobCache) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(ImageError, match=f"cannot reach the Docker engine at unix://{tmp_path}/no-such.sock"):
        open_image("anything:1", platform=DEFAULT_PLATFORM, source="docker", cache=cache)


@pytest.fixture(scope="module")
def remote_image(registry) -> tuple[str, str]:
    """An image only a registry has: (reference, manifest digest)."""
    digest = registry.push_image("sources/remote", "1", [gzip.compress(base_layer(), mtime=0)])
    return f"{registry.host}/sources/remote:1", digest


@pytest.mark.docker
@pytest.mark.registry
def test_auto_reads_only_local_images_from_the_engine(docker_host: str, local_image: str, registry,
                                                      remote_image: tuple[str, str], cache: BlobCache) -> None:
    image = open_image(local_image, platform=DEFAULT_PLATFORM, source="auto", cache=cache)
    assert (image.reference, image.manifest_digest) == (local_image, None)
    reference, digest = remote_image
    image = open_image(reference, platform=DEFAULT_PLATFORM, source="auto", insecure_registries=[registry.host],
                       cache=cache)
    assert image.manifest_digest == digest
    assert layer_contents(image) == [base_layer()]


@pytest.mark.registry
def test_auto_without_an_engine_goes_to_the_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry,
                                                     remote_image: tuple[str, str], cache: BlobCache) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    reference, digest = remote_image
    image = open_image(reference, platform=DEFAULT_PLATFORM, source="auto", insecure_registries=[registry.host],
                       cache=cache)
    assert image.manifest_digest == digest
