"""The one shape every image source yields, whatever it reads from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is invalid: expected os/arch[/variant], such as linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


DEFAULT_PLATFORM = Platform("linux", "amd64")
# The uncompressed size a layer may reach: far beyond any real layer, far below what a decompression bomb
# would fill a disk with.
DEFAULT_MAX_LAYER_SIZE = 64 * 1024**3


@dataclass(frozen=True)
class LayerBlob:
    """One layer, already fetched and verified: an uncompressed tar file in the blob cache.

    ``digest`` is the digest of the blob as the source stored it (compressed or not);
    ``diff_id`` is the digest of the uncompressed tar, which the image config lists.
    """

    digest: str
    diff_id: str
    media_type: str
    size: int
    tar_path: Path


# Told, from any thread and in any order, that the layer at this position (0 = bottom) is stored and
# verified: a consumer may start on it before the whole image is.
LayerStored = Callable[[int, LayerBlob], None]


@dataclass(frozen=True)
class Image:
    """A resolved image: what was asked for, what it resolved to, and its verified layers in order."""

    reference: str
    platform: Platform
    config: dict[str, Any]
    config_digest: str
    manifest_digest: str | None
    layers: list[LayerBlob] = field(default_factory=list)
    pinned_reference: str | None = None
