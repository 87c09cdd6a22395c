"""Copy a processed image into the exchange's registry, registry to registry, with no daemon.

Each blob (config, then layers) is skipped when the target already has it, mounted across
repositories when the source is the same registry, and streamed from source to target otherwise;
the manifest goes last, byte for byte, so its digest is unchanged and a tag never points at an
image whose blobs are not all there. Tags are never moved: a tag that already names another image is
an error. Every tag this run created is recorded so a failed run can delete it again.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TypeVar

from ...errors import ExchangeError, UsageError
from ...image.metadata import Descriptor
from ...image.model import Image
from ...image.platforms import select_manifest
from ...image.registry import MANIFEST_INDEXES, RegistryClient, _ImagePull, _Manifest, with_retries
from ...progress import NullProgress
from ...reference import ImageReference, ReferenceError, parse_reference
from ...web.retries import DEFAULT_RETRY, RetryPolicy
from ..ledger import CreatedTag, RollbackResult
from .push_client import MOUNTED, PushClient, SizedStream

EXISTED, UPLOADED = "existed", "uploaded"
_TAG_UNSAFE = re.compile(r"[^\w.-]")
Client = TypeVar("Client", bound=RegistryClient)


class MirrorError(ExchangeError):
    """An image cannot be copied into the mirror registry; names the image and the target."""


@dataclass(frozen=True)
class MirroredImage:
    tag_reference: str  # <mirror>/<org>-<name>:<version>
    digest: str  # of the manifest, the same in the source and the mirror
    size: int  # bytes of the manifest's config and layers, as stored
    created: bool  # False when the tag already named this very image
    blobs: dict[str, str] = field(default_factory=dict)  # digest -> existed, mounted or uploaded

    @property
    def digest_reference(self) -> str:
        return f"{self.tag_reference.rsplit(':', 1)[0]}@{self.digest}"


def delete_tags(tags: list[CreatedTag], *, insecure_registries: Collection[str] = (),
                retry: RetryPolicy = DEFAULT_RETRY) -> RollbackResult:
    """Delete tags a run created, in the order given; the result says what was and was not removed."""
    result = RollbackResult()
    for tag in tags:
        try:
            with _client(PushClient, tag.reference, insecure_registries, retry) as push:
                # Deleting by digest removes the manifest and its tags, so only when no older tag shares it.
                push.delete_manifest(tag.reference.repository, tag.digest if tag.manifest_was_new else _tag_of(tag.reference))
            result.deleted.append(str(tag))
        except ExchangeError as error:
            result.failed[str(tag)] = str(error)
    return result


def mirror_tag(version: str) -> str:
    """A version as a tag: characters tags cannot hold (such as '+') become '_'."""
    tag = _TAG_UNSAFE.sub("_", version)[:128]
    return tag if tag[:1].isalnum() or tag[:1] == "_" else f"v{tag}"[:128]


class ImageMirror:
    """One run's copies into `target` (``HOST[/PATH]``); thread-safe, as specs are delivered in parallel."""

    def __init__(self, target: str, *, insecure_registries: Collection[str] = (), retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.target = target.rstrip("/")
        self.insecure_registries, self.retry = tuple(insecure_registries), retry
        self._lock = threading.Lock()
        self._created: list[CreatedTag] = []
        self.destination("probe", "1")  # a bad --mirror-registry fails before any work

    def destination(self, repository: str, tag: str) -> ImageReference:
        text = f"{self.target}/{repository.lower()}:{tag}"
        try:
            reference = parse_reference(text)
        except ReferenceError as error:
            raise UsageError(f"--mirror-registry {self.target}: {text} is not a valid image reference: {error}") from None
        if "/" not in self.target and reference.registry != self.target:
            raise UsageError(f"--mirror-registry {self.target}: give a registry host, such as registry.example.org/exchange")
        return reference

    def copy(self, image: Image, repository: str, version: str) -> MirroredImage:
        """Copy `image` (resolved from a registry) to ``<target>/<repository>:<version>``."""
        if not image.pinned_reference:
            raise MirrorError(f"{image.reference}: cannot mirror an image that was not read from a registry "
                              "(mirroring copies registry to registry; push the image first)")
        source = parse_reference(image.pinned_reference)
        target = self.destination(repository, mirror_tag(version))
        with self._client(RegistryClient, source) as pull, self._client(PushClient, target) as push:
            manifest = _platform_manifest(pull, source, image)
            descriptors = _blobs(manifest, image=str(source))
            if descriptors[0].digest != image.config_digest:
                raise MirrorError(f"{source}: the registry's manifest {manifest.digest} has config {descriptors[0].digest}, "
                                  f"not the {image.config_digest} that was checked and exported")
            blobs: dict[str, str] = {d.digest: self._copy_blob(pull, source, push, target, d) for d in descriptors}
            created = self._put_manifest(push, target, manifest)
        return MirroredImage(str(target), manifest.digest, sum(d.size for d in descriptors), created, blobs)

    def created_tags(self) -> list[CreatedTag]:
        with self._lock:
            return list(self._created)

    def rollback(self) -> RollbackResult:
        """Delete every tag this run created, newest first; the result says what was and was not removed."""
        with self._lock:
            created, self._created = list(reversed(self._created)), []
        return delete_tags(created, insecure_registries=self.insecure_registries, retry=self.retry)

    def _client(self, cls: type[Client], reference: ImageReference) -> Client:
        return _client(cls, reference, self.insecure_registries, self.retry)

    def _copy_blob(self, pull: RegistryClient, source: ImageReference, push: PushClient, target: ImageReference,
                   blob: Descriptor) -> str:
        if push.blob_exists(target.repository, blob.digest):
            return EXISTED
        same_registry = (pull.base_url, pull.auth.registry) == (push.base_url, push.auth.registry)

        def attempt() -> str:
            mount = {"mount": blob.digest, "mount_from": source.repository} if same_registry else {}
            state, location = push.start_upload(target.repository, **mount)
            if state == MOUNTED:
                return MOUNTED
            with pull.open_blob(source.repository, blob.digest, size=blob.size) as stream:
                push.finish_upload(target.repository, location, blob.digest, SizedStream(stream, blob.size))
            return UPLOADED

        return with_retries(self.retry, attempt, failure=f"{target}: copying blob {blob.digest}")

    def _put_manifest(self, push: PushClient, target: ImageReference, manifest: _Manifest) -> bool:
        """PUT the manifest under the tag; False when the tag already named it. Records what it created."""
        tag = _tag_of(target)
        if push.manifest_exists(target.repository, tag):
            body, _, header_digest = push.get_manifest(target.repository, tag)
            existing = header_digest or f"sha256:{hashlib.sha256(body).hexdigest()}"
            if existing == manifest.digest:
                return False
            raise MirrorError(f"{target} already names another image ({existing}); mirrored tags are never moved")
        manifest_was_new = not push.manifest_exists(target.repository, manifest.digest)
        stored = push.put_manifest(target.repository, tag, manifest.body, manifest.media_type)
        with self._lock:
            self._created.append(CreatedTag(target, manifest.digest, manifest_was_new))
        if stored and stored != manifest.digest:
            raise MirrorError(f"{target}: the registry stored the manifest as {stored}, not {manifest.digest}")
        return True


def _client(cls: type[Client], reference: ImageReference, insecure_registries: Collection[str],
            retry: RetryPolicy) -> Client:
    client = cls.for_reference(reference, insecure_registries=insecure_registries, retry=retry)
    assert isinstance(client, cls)  # for_reference makes a `cls`, though it is declared to return a RegistryClient
    return client


def _tag_of(reference: ImageReference) -> str:
    """Mirrored references always name a tag (ImageMirror.destination makes them; CreatedTag.from_json checks)."""
    assert reference.tag is not None, f"{reference} names no tag"
    return reference.tag


def _platform_manifest(pull: RegistryClient, source: ImageReference, image: Image) -> _Manifest:
    """The source's manifest for the image's platform, verified against its digest (as the pull verifies it)."""
    # No blob cache: only the pull's manifest reader is used, which never touches it.
    reader = _ImagePull(source, image.platform, None, pull, NullProgress())  # type: ignore[arg-type]
    manifest = reader._manifest(source.reference, expected=source.digest)
    if manifest.media_type in MANIFEST_INDEXES:
        entry = Descriptor.parse(select_manifest(manifest.document, image.platform, image=str(source)),
                                 image=str(source), what="manifest list entry")
        manifest = reader._manifest(entry.digest, expected=entry.digest, size=entry.size)
    return manifest


def _blobs(manifest: _Manifest, *, image: str) -> list[Descriptor]:
    config = Descriptor.parse(manifest.document.get("config"), image=image, what="manifest config")
    layers = manifest.document.get("layers")
    if not isinstance(layers, list) or manifest.media_type in MANIFEST_INDEXES:
        raise MirrorError(f"{image}: manifest {manifest.digest} lists no layers")
    return [config] + [Descriptor.parse(layer, image=image, what=f"layer {i + 1}") for i, layer in enumerate(layers)]
