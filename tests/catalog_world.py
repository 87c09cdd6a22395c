"""An exchange with several orgs, gears, versions and a bucket, for the catalog and maintainer commands.

Manifests are written the way `exchange process` writes them (build_manifest, same names) and their
rootfs tarballs are uploaded through the real Bucket API, to a local directory or the GCS emulator,
so every command sees what a processed exchange holds without exporting images.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exchange_cli.manifests import ExchangeRecord, build_manifest, manifest_name, manifest_text
from exchange_cli.specs import SpecKind, SpecLocation
from exchange_cli.storage.bucket import Bucket
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, init_repo

API_KEY_INPUT = {"key": {"base": "api-key", "read-only": True}}


@dataclass(frozen=True)
class Published:
    org: str
    name: str
    version: str
    object_name: str
    sha384: str
    size: int
    manifest: str  # repository-relative


def rootfs_tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o755, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class CatalogWorld:
    repo: ExchangeRepo
    bucket: Bucket
    work: Path
    published: list[Published] = field(default_factory=list)

    def spec(self, org: str, name: str, version: str, kind: SpecKind = SpecKind.GEAR, **changes: Any) -> dict:
        spec = _spec(kind, name, version, **changes)
        self.repo.write(SpecLocation(kind, org, name).relative_path, spec)
        return spec

    def publish(self, org: str, name: str, version: str, kind: SpecKind = SpecKind.GEAR, *,
                rootfs: bytes | None = None, stem: str | None = None, **changes: Any) -> Published:
        """A processed version; its manifest and object are named after `stem` (default: the name)."""
        spec = _spec(kind, name, version, **changes)
        content = rootfs if rootfs is not None else rootfs_tarball(
            {"etc/release": f"{org}/{name} {version}\n".encode(), "bin/run": b"#!/bin/sh\necho hi\n"})
        sha384 = hashlib.sha384(content).hexdigest()
        location = SpecLocation(kind, org, stem or name)
        object_name = f"{location.artifact_base}-sha384-{sha384}.tgz"
        source = self.work / object_name
        source.write_bytes(content)
        self.bucket.upload(object_name, source, size=len(content), sha384=sha384)
        record = ExchangeRecord(git_commit="0" * 40, rootfs_hash=f"sha384:{sha384}",
                                rootfs_url=self.bucket.download_url(object_name), rootfs_size=len(content),
                                image=_image(spec, kind), image_digest_reference=None,
                                image_config_digest="sha256:" + "1" * 64, platform="linux/amd64")
        relative = f"manifests/{org}/{manifest_name(location.artifact_base, record.rootfs_hash)}"
        self.repo.write(relative, manifest_text(build_manifest(kind, spec, record, {"type": "object"})))
        published = Published(org, name, version, object_name, sha384, len(content), relative)
        self.published.append(published)
        return published

    def own_bucket(self, remote: Path) -> None:
        own_bucket(self.repo, self.bucket, remote)

    def find(self, org: str, name: str, version: str) -> Published:
        return next(p for p in self.published if (p.org, p.name, p.version) == (org, name, version))


def populate(world: CatalogWorld) -> CatalogWorld:
    """acme/hello has a prefix twin acme/hello-world and an org twin acme-labs/hello; versions need a
    version-aware order; the spec of acme/hello names a version not processed yet."""
    for version in ("0.9.0", "0.10.0", "1.0.0-rc.1"):
        world.publish("acme", "hello", version)
    world.spec("acme", "hello", "1.0.0")
    world.publish("acme", "hello-world", "2.0.0")
    world.spec("acme", "hello-world", "2.0.0")
    world.publish("acme-labs", "hello", "1.0.0")
    world.spec("acme-labs", "hello", "1.0.0")
    world.publish("neuro", "skull-strip", "2.1.0", inputs=API_KEY_INPUT, license="BSD-3-Clause")
    world.spec("neuro", "skull-strip", "2.1.0", inputs=API_KEY_INPUT, license="BSD-3-Clause")
    world.publish("acme", "word-count", "1.0.0", SpecKind.BOUTIQUE)
    world.spec("acme", "word-count", "1.0.0", SpecKind.BOUTIQUE)
    world.repo.commit("a populated exchange")
    return world


def _spec(kind: SpecKind, name: str, version: str, **changes: Any) -> dict:
    if kind is SpecKind.BOUTIQUE:
        image = f"registry.example.org/acme/{name}:{version}"
        return example_boutique(name=name, **{"tool-version": version},
                                **{"container-image": {"type": "docker", "image": image}}, **changes)
    image = f"registry.example.org/acme/{name}:{version}"
    return example_gear(name=name, version=version, label=f"{name.title()} gear",
                        custom={"gear-builder": {"category": "analysis", "image": image}}, **changes)


def _image(spec: dict, kind: SpecKind) -> str:
    return spec["container-image"]["image"] if kind is SpecKind.BOUTIQUE else spec["custom"]["gear-builder"]["image"]


def own_bucket(repo: ExchangeRepo, bucket: Bucket, remote: Path) -> None:
    """Give the exchange a remote and record it as the bucket's owner, as its first successful process run
    would (verify-storage --delete-orphans deletes only in its owner's bucket)."""
    from exchange_cli.ownership import claim, exchange_identity

    init_repo(remote, bare=True)
    repo.git("remote", "add", "origin", str(remote))
    claim(bucket, exchange_identity(repo.git_repo(), "origin", "master"), print, print)


def one_gear_world(repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    """acme/hello 1.0.0 published to a local bucket and its spec committed: the smallest processed exchange."""
    (tmp_path / "bucket").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    from exchange_cli.storage.bucket import open_bucket

    world = CatalogWorld(repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work")
    world.publish("acme", "hello", "1.0.0")
    world.spec("acme", "hello", "1.0.0")
    repo.commit("a gear")
    return world


def owned_catalog_world(repo: ExchangeRepo, tmp_path: Path, bucket_uri: str,
                        download_url: str | None = None) -> CatalogWorld:
    """The populated exchange in the bucket at `bucket_uri`, with a remote that owns the bucket."""
    from exchange_cli.storage.bucket import open_bucket

    (tmp_path / "bucket").mkdir(exist_ok=True)
    (tmp_path / "work").mkdir()
    world = populate(CatalogWorld(repo, open_bucket(bucket_uri, download_url=download_url), tmp_path / "work"))
    world.own_bucket(tmp_path / "remote.git")
    return world


def put_object(world: CatalogWorld, name: str, content: bytes) -> None:
    """Store `content` as the object `name`, as another tool writing to the bucket would."""
    source = world.work / f"upload-{name}"
    source.write_bytes(content)
    world.bucket.upload(name, source, size=len(content), sha384=hashlib.sha384(content).hexdigest())


# Fixtures (registered in tests/conftest.py) ----------------------------------------------------------

@pytest.fixture
def catalog_world(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    """Several orgs, gears and versions published to a local bucket directory; no remote."""
    from exchange_cli.storage.bucket import open_bucket

    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    return populate(CatalogWorld(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work"))


@pytest.fixture
def one_gear_catalog(exchange_repo: ExchangeRepo, tmp_path: Path) -> CatalogWorld:
    return one_gear_world(exchange_repo, tmp_path)
