"""Image metadata (manifests, indexes, configs) as JSON, with errors that name the image and the document.

Every source reads the same three shapes, and reads them here: a descriptor (media type, digest,
size), the entries of an index, and a config's ``rootfs.diff_ids``. Each digest goes through
`Digest.parse` before anything else sees it, and a document of the wrong shape is an `ImageError`
naming the image and the field, never an AttributeError from deep inside a source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..jsonpos import NotStrictJson, strict_data
from .digest import Digest, parse_digest
from .errors import ImageError

# Registries refuse manifests over 4 MiB; anything bigger than these is not what we asked for. One limit per
# document, whatever the source (a registry, an OCI layout).
MAX_IMAGE_MANIFEST_BYTES = 4 * 1024**2  # a manifest or an index
MAX_IMAGE_CONFIG_BYTES = 64 * 1024**2


def parse_json(data: bytes, *, image: str, what: str) -> Any:
    """`data` read by the one strict reader (jsonpos.strict_data): no NaN, no duplicate key, no nesting past
    MAX_DEPTH (never a RecursionError), else an ImageError naming the image, the document and the place."""
    try:
        return strict_data(data)
    except NotStrictJson as refused:
        raise ImageError(f"{image}: {what} is not valid JSON: {refused}") from None


def parse_json_object(data: bytes, *, image: str, what: str) -> dict[str, Any]:
    parsed = parse_json(data, image=image, what=what)
    if not isinstance(parsed, dict):
        raise ImageError(f"{image}: {what} is not a JSON object")
    return parsed


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor whose digest and size have been checked; `fields` is the whole object."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, value: Any, *, image: str, what: str) -> Descriptor:
        if not isinstance(value, dict):
            raise ImageError(f"{image}: {what} is not a descriptor object")
        digest = parse_digest(value.get("digest"), image=image, what=f"{what} digest")
        size = value.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{image}: {what} {digest}: size {size!r} is not a byte count")
        media_type = value.get("mediaType", "")
        urls = value.get("urls") or ()
        if not isinstance(media_type, str) or not isinstance(urls, list | tuple) \
                or not all(isinstance(url, str) for url in urls):
            raise ImageError(f"{image}: {what} {digest}: mediaType or urls is malformed")
        return cls(media_type, digest, size, tuple(urls), value)

    @property
    def annotations(self) -> dict[str, Any]:
        annotations = self.fields.get("annotations")
        return annotations if isinstance(annotations, dict) else {}


def index_entries(index: dict[str, Any], *, image: str, what: str) -> list[Descriptor]:
    """Every entry of an image index or manifest list, each checked as a descriptor."""
    return _descriptors(index, "manifests", image=image, what=what, each="entry")


def manifest_layers(manifest: dict[str, Any], *, image: str, what: str) -> list[Descriptor]:
    """Every layer descriptor of an image manifest, in order."""
    return _descriptors(manifest, "layers", image=image, what=what, each="layer")


def _descriptors(document: dict[str, Any], key: str, *, image: str, what: str, each: str) -> list[Descriptor]:
    values = document.get(key)
    if not isinstance(values, list):
        raise ImageError(f"{image}: {what} has no list of {key}")
    return [Descriptor.parse(value, image=image, what=f"{what} {each} {position}")
            for position, value in enumerate(values, start=1)]


def config_diff_ids(config: dict[str, Any], *, image: str, what: str = "config") -> list[Digest]:
    """The config's ``rootfs.diff_ids``, each a valid digest."""
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageError(f"{image}: {what} has no rootfs.diff_ids list")
    return [parse_digest(diff_id, image=image, what=f"{what} rootfs.diff_ids[{position}]")
            for position, diff_id in enumerate(diff_ids)]
