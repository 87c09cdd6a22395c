"""Docker-save tarballs: what `docker save` writes, read in one streaming pass.

Two layouts exist. Docker up to 24 writes the legacy layout: ``manifest.json``, ``<config-hex>.json``
and ``<v1-id>/layer.tar`` (an uncompressed tar whose sha256 is its diff_id; a layer that repeats is a
symlink to the first copy). Docker 25 and later write an OCI image layout inside the tar, plus a
``manifest.json`` in the legacy shape whose paths point into ``blobs/sha256/``. Members come in
whatever order the writer chose, so layers go into the blob cache as they pass, small members are
kept until the end, and everything is matched up against ``manifest.json`` once the stream is done.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from ..progress import NullProgress, Progress, Task
from .blobcache import CHUNK, BlobCache, BlobError
from .digest import Digest, parse_digest
from .errors import ImageError
from .metadata import config_diff_ids, parse_json
from .model import Image, LayerBlob, Platform
from .platforms import satisfies

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
# Members up to this size are held in memory until the manifest says what they are (configs, indexes).
SMALL_MEMBER = 1 << 20
SMALL_MEMBERS_TOTAL = 64 << 20
METADATA_LIMIT = 16 << 20


@dataclass
class SavedImage:
    """One image out of a docker-save tarball, its layers already in the blob cache."""

    config: dict[str, Any]
    config_digest: str
    layers: list[LayerBlob]
    repo_tags: list[str]


@dataclass
class _Members:
    """What the stream held, by normalised member path."""

    small: dict[str, bytes] = field(default_factory=dict)
    stored: dict[str, LayerBlob] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    small_total: int = 0

    def resolve(self, path: str) -> str:
        seen = set()
        while path in self.links and path not in seen:
            seen.add(path)
            path = self.links[path]
        return path


def read_docker_archive(path: Path, *, platform: Platform, cache: BlobCache,
                        progress: Progress = NullProgress(), reference: str | None = None) -> Image:
    """`docker-archive:PATH[:REF]`: the image in a file written by `docker save`."""
    image = f"docker-archive:{path}" + (f":{reference}" if reference else "")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the `with` below; opening alone is what can fail here
    except OSError as exc:
        raise ImageError(f"{image}: cannot open the archive: {exc.strerror}") from exc
    with handle, progress.task(f"Reading {image}", total=os.fstat(handle.fileno()).st_size) as task:
        saved = read_docker_save(handle, image=image, cache=cache, task=task, repo_tag=reference)
    check_config_platform(saved.config, platform, image=image)
    return Image(reference=image, platform=platform, config=saved.config, config_digest=saved.config_digest,
                 manifest_digest=None, layers=saved.layers)


def read_docker_save(stream: BinaryIO, *, image: str, cache: BlobCache, task: Task | None = None,
                     repo_tag: str | None = None) -> SavedImage:
    """Parse a docker-save stream without seeking; `repo_tag` picks one image when the tarball holds several."""
    members = _collect_members(stream, image=image, cache=cache, task=task)
    entry = _select_entry(_read_json(members, "manifest.json", image=image), image=image, repo_tag=repo_tag)
    config_path, config_digest = _config_location(entry, image=image)
    config_bytes = _member_bytes(members, config_path, image=image)
    _verify_bytes(config_bytes, config_digest, image=image, what="config")
    config = parse_json(config_bytes, image=image, what=f"config {config_digest}")
    layers = _entry_layers(members, entry, image=image, cache=cache)
    check_diff_ids(layers, config, image=image)
    return SavedImage(config=config, config_digest=config_digest, layers=layers,
                      repo_tags=list(entry.get("RepoTags") or []))


def check_config_platform(config: dict[str, Any], platform: Platform, *, image: str) -> None:
    """The image's own os/architecture must be the one asked for; the error says what the image is."""
    offered = Platform(str(config.get("os") or "?"), str(config.get("architecture") or "?"), config.get("variant") or None)
    if not satisfies(offered, platform):
        raise ImageError(f"{image}: the image is for platform {offered}, not the requested {platform}")


def check_diff_ids(layers: list[LayerBlob], config: dict[str, Any], *, image: str) -> None:
    """Each layer's content must be, in order, the diff_id the config lists for it."""
    diff_ids = config_diff_ids(config, image=image)
    if len(diff_ids) != len(layers):
        raise ImageError(f"{image}: the image config lists {len(diff_ids)} layers (rootfs.diff_ids), "
                         f"but the image has {len(layers)}")
    for position, (layer, expected) in enumerate(zip(layers, diff_ids, strict=True), start=1):
        if layer.diff_id != expected:
            raise BlobError(image, layer.digest, f"layer {position}'s content hashes to {layer.diff_id}, "
                                                 f"but the image config lists diff_id {expected}")


def _collect_members(stream: BinaryIO, *, image: str, cache: BlobCache, task: Task | None) -> _Members:
    members = _Members()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                _collect_member(archive, member, members, image=image, cache=cache, task=task)
    except tarfile.TarError as exc:
        raise ImageError(f"{image}: not a readable docker-save tarball: {exc}") from exc
    return members


def _collect_member(archive: tarfile.TarFile, member: tarfile.TarInfo, members: _Members, *, image: str,
                    cache: BlobCache, task: Task | None) -> None:
    name = _normalise(member.name)
    if member.issym():
        members.links[name] = _normalise(posixpath.join(posixpath.dirname(name), member.linkname))
        return
    if member.islnk():
        members.links[name] = _normalise(member.linkname)
        return
    if not member.isfile():
        return
    # tarfile's ExFileObject, a BufferedReader: its stub says IO[bytes], which has no `readinto`.
    content = cast("io.BufferedReader | None", archive.extractfile(member))
    assert content is not None  # a regular file always has content
    if name.endswith("/layer.tar"):
        members.stored[name] = cache.store_tar(content, image=image, name=name, media_type=DOCKER_LAYER_TAR,
                                               task=task)
    elif name.startswith("blobs/") and not _fits_in_memory(member, members):
        digest = _blob_digest(name, image=image)
        members.stored[name] = cache.store_layer(content, image=image, digest=digest, size=member.size,
                                                 media_type=OCI_LAYER_TAR, diff_id=None, task=task)
    elif name.startswith("blobs/") or _is_metadata(name):
        if member.size > METADATA_LIMIT and not name.startswith("blobs/"):
            raise ImageError(f"{image}: {name} is {member.size} bytes, too large for image metadata")
        members.small[name] = content.read()
        members.small_total += member.size
        if task is not None:
            task.advance(member.size)


def _fits_in_memory(member: tarfile.TarInfo, members: _Members) -> bool:
    return member.size <= SMALL_MEMBER and members.small_total + member.size <= SMALL_MEMBERS_TOTAL


def _is_metadata(name: str) -> bool:
    # manifest.json, index.json, <config-hex>.json; a v1 layer's own json and VERSION are of no use.
    return "/" not in name and name.endswith(".json")


def _normalise(name: str) -> str:
    return posixpath.normpath(name).lstrip("/")


def _blob_digest(name: str, *, image: str) -> Digest:
    parts = name.split("/")
    if len(parts) != 3:
        raise ImageError(f"{image}: {name} is not a blob path of the form blobs/<algorithm>/<hex>")
    return parse_digest(f"{parts[1]}:{parts[2]}", image=image, what=f"blob path {name}")


def _read_json(members: _Members, name: str, *, image: str) -> Any:
    if name not in members.small:
        raise ImageError(f"{image}: no {name} in the tarball; is this the output of `docker save`?")
    return parse_json(members.small[name], image=image, what=name)


def _select_entry(manifest: Any, *, image: str, repo_tag: str | None) -> dict[str, Any]:
    if not isinstance(manifest, list) or not manifest or not all(isinstance(e, dict) for e in manifest):
        raise ImageError(f"{image}: manifest.json is not a non-empty list of images")
    entries: list[dict[str, Any]] = manifest
    if repo_tag is not None:
        wanted = {repo_tag, f"{repo_tag}:latest"}
        matching = [e for e in entries if wanted & set(e.get("RepoTags") or [])]
        if not matching:
            raise ImageError(f"{image}: no image tagged {repo_tag} in the archive; it holds: {_describe(entries)}")
        return matching[0]
    if len(entries) > 1:
        raise ImageError(f"{image}: the archive holds {len(entries)} images ({_describe(entries)}); "
                         "name one as docker-archive:PATH:REPO:TAG")
    return entries[0]


def _describe(manifest: list[dict[str, Any]]) -> str:
    return ", ".join(", ".join(e.get("RepoTags") or []) or str(e.get("Config")) for e in manifest)


def _config_location(entry: dict[str, Any], *, image: str) -> tuple[str, Digest]:
    config_path = entry.get("Config")
    if not isinstance(config_path, str):
        raise ImageError(f"{image}: manifest.json names no Config")
    config_path = _normalise(config_path)
    if config_path.startswith("blobs/"):
        return config_path, _blob_digest(config_path, image=image)
    return config_path, parse_digest(f"sha256:{config_path.removesuffix('.json')}", image=image,
                                     what=f"manifest.json Config {config_path} (named by its sha256)")


def _member_bytes(members: _Members, path: str, *, image: str) -> bytes:
    path = members.resolve(path)
    if path in members.small:
        return members.small[path]
    if path in members.stored:  # a large blob went to the cache before we knew it was not a layer
        return members.stored[path].tar_path.read_bytes()
    raise ImageError(f"{image}: manifest.json names {path}, which is not in the tarball")


def _verify_bytes(data: bytes, digest: Digest, *, image: str, what: str) -> None:
    actual = Digest.of(data, digest.algorithm)
    if actual != digest:
        raise BlobError(image, digest, f"{what} digest mismatch: content hashes to {actual}")


def _entry_layers(members: _Members, entry: dict[str, Any], *, image: str, cache: BlobCache) -> list[LayerBlob]:
    paths = entry.get("Layers")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ImageError(f"{image}: manifest.json's Layers is not a list of paths")
    return [_layer_at(members, _normalise(p), image=image, cache=cache) for p in paths]


def _layer_at(members: _Members, path: str, *, image: str, cache: BlobCache) -> LayerBlob:
    resolved = members.resolve(path)
    if resolved in members.stored:
        return members.stored[resolved]
    if resolved not in members.small:
        raise ImageError(f"{image}: manifest.json names layer {path}, which is not in the tarball")
    data = io.BytesIO(members.small[resolved])
    if resolved.startswith("blobs/"):
        layer = cache.store_layer(data, image=image, digest=_blob_digest(resolved, image=image),
                                  size=len(members.small[resolved]), media_type=OCI_LAYER_TAR, diff_id=None)
    else:
        layer = cache.store_tar(data, image=image, name=resolved, media_type=DOCKER_LAYER_TAR)
    members.stored[resolved] = layer
    return layer


def iter_chunks_as_stream(chunks: Iterable[bytes]) -> BinaryIO:
    """A file object over a generator of byte chunks, for tarfile's streaming mode."""
    return io.BufferedReader(_ChunkReader(iter(chunks)), CHUNK)


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = memoryview(chunk)
        with memoryview(buffer) as view:
            size = min(len(view), len(self.pending))
            view[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size
