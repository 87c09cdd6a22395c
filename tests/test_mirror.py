"""Mirroring registry to registry: real registries on 127.0.0.1, images pulled back by digest and compared byte for byte."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests

from exchange_cli.image.blobcache import BlobCache
from exchange_cli.image.credentials import host_env_var
from exchange_cli.image.errors import ImageError
from exchange_cli.image.model import DEFAULT_PLATFORM, Image
from exchange_cli.image.resolve import open_image
from exchange_cli.process.delivery.mirror import EXISTED, UPLOADED, CreatedTag, ImageMirror, MirrorError
from exchange_cli.process.delivery.push_client import MOUNTED
from tests.infra.image_files import gz, layer_tar
from tests.infra.registry import ALL_MANIFESTS, AuthRegistry, RegistryServer

pytestmark = pytest.mark.usefixtures("no_credentials")  # tests/infra/image_sources.py


def source_image(registry: RegistryServer, tmp_path: Path) -> Image:
    """A two-layer image under a fresh repository of `registry`, resolved as process resolves it."""
    repository = f"acme/tool-{secrets.token_hex(4)}"
    layers = [gz(layer_tar({"bin/tool": secrets.token_bytes(64)})), gz(layer_tar({"etc/conf": b"x=1\n"}))]
    registry.push_image(repository, "1.0", layers)
    return open_image(f"{registry.host}/{repository}:1.0", platform=DEFAULT_PLATFORM, source="registry",
                      insecure_registries=(registry.host,), cache=BlobCache(tmp_path / "cache"))


def fetch(registry: RegistryServer, repository: str, kind: str, reference: str, auth=None) -> requests.Response:
    response = requests.get(f"{registry.url}/v2/{repository}/{kind}/{reference}", auth=auth,
                            headers={"Accept": ALL_MANIFESTS})
    response.raise_for_status()
    return response


def assert_identical(source: RegistryServer, image: Image, target: RegistryServer, repository: str, digest: str,
                     auth=None) -> None:
    """The mirror serves, by digest, exactly the source's manifest bytes and every blob's bytes."""
    src_repository = image.pinned_reference.split("/", 1)[1].split("@")[0]
    manifest = fetch(source, src_repository, "manifests", digest)
    assert fetch(target, repository, "manifests", digest, auth).content == manifest.content
    document = manifest.json()
    for blob in [document["config"], *document["layers"]]:
        assert fetch(target, repository, "blobs", blob["digest"], auth).content == \
            fetch(source, src_repository, "blobs", blob["digest"]).content


def uploads_dir(registry: RegistryServer, repository: str) -> Path:
    """Where the registry keeps upload sessions: a mount creates none, an upload does."""
    return registry.storage_dir / "docker/registry/v2/repositories" / repository / "_uploads"


def test_mirror_between_two_registries_streams_blobs_with_the_target_credentials(
        registry: RegistryServer, auth_registry: AuthRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(host_env_var(auth_registry.host), f"{auth_registry.username}:{auth_registry.password}")
    image = source_image(registry, tmp_path)
    target = f"mirror-{secrets.token_hex(3)}"
    mirror = ImageMirror(f"{auth_registry.host}/{target}", insecure_registries=(registry.host, auth_registry.host))
    copied = mirror.copy(image, "acme-tool", "1.0.0+build.7")
    assert copied.tag_reference == f"{auth_registry.host}/{target}/acme-tool:1.0.0_build.7"
    assert copied.digest == image.manifest_digest
    assert copied.digest_reference == f"{auth_registry.host}/{target}/acme-tool@{image.manifest_digest}"
    assert copied.created and set(copied.blobs.values()) == {UPLOADED} and len(copied.blobs) == 3
    assert uploads_dir(auth_registry, f"{target}/acme-tool").is_dir()
    credentials = (auth_registry.username, auth_registry.password)
    assert_identical(registry, image, auth_registry, f"{target}/acme-tool", copied.digest, credentials)
    tagged = fetch(auth_registry, f"{target}/acme-tool", "manifests", "1.0.0_build.7", credentials)
    assert tagged.headers["Docker-Content-Digest"] == copied.digest

    again = mirror.copy(image, "acme-tool", "1.0.0+build.7")
    assert not again.created and set(again.blobs.values()) == {EXISTED}


def test_mirror_within_one_registry_mounts_every_blob(registry: RegistryServer, tmp_path: Path) -> None:
    image = source_image(registry, tmp_path)
    target = f"mirror-{secrets.token_hex(3)}"
    copied = ImageMirror(f"{registry.host}/{target}", insecure_registries=(registry.host,)).copy(image, "acme-tool", "2.0")
    assert set(copied.blobs.values()) == {MOUNTED}
    assert (registry.storage_dir / "docker/registry/v2/repositories" / target / "acme-tool" / "_layers").is_dir()
    assert not uploads_dir(registry, f"{target}/acme-tool").exists(), "the registry started no upload session"
    assert_identical(registry, image, registry, f"{target}/acme-tool", copied.digest)


def manifest_status(registry: RegistryServer, repository: str, reference: str) -> int:
    return requests.head(f"{registry.url}/v2/{repository}/manifests/{reference}",
                         headers={"Accept": ALL_MANIFESTS}).status_code


def test_rollback_deletes_the_tags_it_created_and_names_those_it_cannot(registry: RegistryServer, tmp_path: Path) -> None:
    image = source_image(registry, tmp_path)
    target = f"mirror-{secrets.token_hex(3)}"
    repository = f"{target}/acme-tool"
    ImageMirror(f"{registry.host}/{target}", insecure_registries=(registry.host,)).copy(image, "acme-tool", "0.9")
    mirror = ImageMirror(f"{registry.host}/{target}", insecure_registries=(registry.host,))
    other = source_image(registry, tmp_path)
    mirror.copy(other, "acme-tool", "1.0")  # a new manifest: deleted by digest
    mirror.copy(image, "acme-tool", "1.1")  # 0.9 already names this manifest: only the tag may go
    result = mirror.rollback()
    assert result.deleted == [f"docker://{registry.host}/{repository}:1.0"]
    assert list(result.failed) == [f"docker://{registry.host}/{repository}:1.1"]
    assert "deletes manifests only by digest" in result.failed[f"docker://{registry.host}/{repository}:1.1"]
    assert manifest_status(registry, repository, "1.0") == 404
    assert manifest_status(registry, repository, other.manifest_digest) == 404
    assert manifest_status(registry, repository, "0.9") == 200, "a tag from before the run survives"


def test_a_tag_is_never_moved(registry: RegistryServer, tmp_path: Path) -> None:
    target = f"{registry.host}/mirror-{secrets.token_hex(3)}"
    mirror = ImageMirror(target, insecure_registries=(registry.host,))
    mirror.copy(source_image(registry, tmp_path), "acme-tool", "1.0")
    with pytest.raises(MirrorError, match="already names another image"):
        mirror.copy(source_image(registry, tmp_path), "acme-tool", "1.0")


def test_rejected_credentials_are_named_by_source_never_shown(
        registry: RegistryServer, auth_registry: AuthRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    monkeypatch.setenv(host_env_var(auth_registry.host), f"{auth_registry.username}:{wrong}")
    mirror = ImageMirror(f"{auth_registry.host}/mirror", insecure_registries=(registry.host, auth_registry.host))
    with pytest.raises(ImageError) as failure:
        mirror.copy(source_image(registry, tmp_path), "acme-tool", "1.0")
    message = str(failure.value)
    assert host_env_var(auth_registry.host) in message and "not accepted" in message
    assert wrong not in message and auth_registry.password not in message


def test_an_image_not_from_a_registry_cannot_be_mirrored(registry: RegistryServer) -> None:
    image = Image("local:1", DEFAULT_PLATFORM, {}, "sha256:" + "0" * 64, None)
    with pytest.raises(MirrorError, match="not read from a registry"):
        ImageMirror(f"{registry.host}/mirror").copy(image, "acme-tool", "1.0")


def test_a_recorded_tag_must_name_a_tag() -> None:
    """A shard record's created tag is rolled back by its tag: one naming none (the record was edited) is
    refused when read, instead of a rollback asking the registry to delete manifest "None"."""
    digest = "sha256:" + "0" * 64
    recorded = {"reference": "registry.example.org/mirror/acme-tool:1.0", "digest": digest, "manifest-was-new": False}
    assert CreatedTag.from_json(recorded).reference.tag == "1.0"
    with pytest.raises(ValueError, match="names no tag"):
        CreatedTag.from_json({**recorded, "reference": f"registry.example.org/mirror/acme-tool@{digest}"})
