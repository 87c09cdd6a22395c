"""Options shared by the commands that export images (`export`, `process`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from ..image.model import DEFAULT_MAX_LAYER_SIZE, DEFAULT_PLATFORM, Platform
from .conventions import Command

if TYPE_CHECKING:
    from ..image.resolve import ExportOptions
    from ..storage.bucket import Bucket

_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class ByteSize(click.ParamType[int, Any]):
    """A number of bytes: ``1000000``, ``512M``, ``64G``, ``64GiB`` (units are powers of 1024)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value).strip())
        if match is None or int(match.group(1)) == 0:
            self.fail(f"{value!r} is not a positive size such as 512M or 64G", param, ctx)
        return int(match.group(1)) * _UNITS[match.group(2).upper()]


def export_options(command: Command) -> Command:
    decorators = [
        click.option("--platform", default=str(DEFAULT_PLATFORM), show_default=True, metavar="OS/ARCH[/VARIANT]",
                     help="Platform to pick from multi-platform images."),
        click.option("--source", type=click.Choice(["registry", "docker", "auto"]), default="auto", show_default=True,
                     help="Where images come from; auto: the registry, unless the image exists only in the local Docker engine."),
        click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST",
                     help="Talk plain HTTP to this registry, e.g. 127.0.0.1:5000 (repeatable)."),
        click.option("--oci-layout", "oci_layout", type=click.Path(file_okay=False, path_type=Path),
                     help="Take images from this OCI image layout, found by their reference name, instead of registries."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Layer cache [default: $EXCHANGE_CACHE_DIR or ~/.cache/exchange]."),
        click.option("--max-layer-size", type=ByteSize(), default=DEFAULT_MAX_LAYER_SIZE, metavar="SIZE",
                     help="Refuse a layer whose uncompressed tar grows past SIZE (e.g. 512M, 64G), "
                          "stopping while it decompresses  [default: 64G]."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def allow_untested_squashfs_option(command: Command) -> Command:
    """--allow-untested-squashfs-tools, spelled once for `export` and `process`."""
    return click.option("--allow-untested-squashfs-tools", is_flag=True,
                        help="Use a tar2sqfs version the exchange was not tested with (its images may differ).")(command)


def export_options_from(*, platform: str, source: str, insecure_registries: tuple[str, ...],
                        oci_layout: Path | None, cache_dir: Path | None,
                        max_layer_size: int = DEFAULT_MAX_LAYER_SIZE) -> ExportOptions:
    from ..image.blobcache import BlobCache
    from ..image.resolve import ExportOptions

    try:
        parsed = Platform.parse(platform)
    except ValueError as error:
        raise UsageError(f"--platform: {error}") from None
    cache = BlobCache(cache_dir or BlobCache.default().root, max_layer_size=max_layer_size)
    return ExportOptions(platform=parsed, source=source, insecure_registries=tuple(insecure_registries), cache=cache,
                         oci_layout=oci_layout)


def storage_bucket(bucket_uri: str | None, download_url: str | None) -> Bucket:
    from ..storage.settings import StorageSettings

    return StorageSettings.from_options(bucket_uri, download_url).open_bucket()
