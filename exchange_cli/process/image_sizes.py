"""How big each image is, as its registry tells it (the manifest's layer sizes), to balance shards.

Only manifests are read, never layers. Any image whose size the registry cannot tell (another
source, an unreachable registry, a malformed manifest) is None, and the split falls back to counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import CredentialsError
from ..image.errors import ImageError
from ..image.metadata import parse_json_object
from ..image.platforms import select_manifest
from ..image.resolve import DOCKER_ARCHIVE_PREFIX, OCI_PREFIX, ExportOptions
from ..reference import ReferenceError, parse_reference
from .plan import SpecJob

if TYPE_CHECKING:  # imported where used: start-up does not load the registry client
    from ..image.registry import RegistryClient

LOOKUP_WORKERS = 8


def image_sizes(jobs: Sequence[SpecJob], options: ExportOptions) -> dict[str, int | None]:
    """Spec path -> compressed size of its image's layers for `options.platform`, or None."""
    if options.oci_layout is not None or options.source == "docker":
        return {job.relative_path: None for job in jobs}
    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS, thread_name_prefix="image-size") as pool:
        sizes = pool.map(lambda job: registry_image_size(job.image, options), jobs)
        return {job.relative_path: size for job, size in zip(jobs, sizes, strict=True)}


def registry_image_size(image: str, options: ExportOptions) -> int | None:
    if image.startswith((DOCKER_ARCHIVE_PREFIX, OCI_PREFIX)):
        return None
    from ..image.registry import MANIFEST_INDEXES, RegistryClient

    try:
        ref = parse_reference(image)
        with RegistryClient.for_reference(ref, insecure_registries=options.insecure_registries) as client:
            manifest = _manifest(client, ref.repository, ref.reference)
            if manifest.get("mediaType") in MANIFEST_INDEXES or "manifests" in manifest:
                entry = select_manifest(manifest, options.platform, image=image)
                manifest = _manifest(client, ref.repository, str(entry["digest"]))
            return _layers_size(manifest)
    except (ImageError, CredentialsError, ReferenceError, OSError, ValueError, KeyError, TypeError):  # OSError: requests' errors
        return None


def _manifest(client: RegistryClient, repository: str, reference: str) -> dict[str, Any]:
    body, _, _ = client.get_manifest(repository, reference)
    return parse_json_object(body, image=f"{repository}:{reference}", what="the manifest")


def _layers_size(manifest: dict[str, Any]) -> int | None:
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        return None
    sizes = [layer.get("size") if isinstance(layer, dict) else None for layer in layers]
    counted = [size for size in sizes if isinstance(size, int) and size >= 0]
    if len(counted) != len(sizes):
        return None
    return sum(counted)
