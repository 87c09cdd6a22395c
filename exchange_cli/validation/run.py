"""Which specs a run looks at, and the one call that validates them."""

from __future__ import annotations

from pathlib import Path
from typing import Collection

from ..catalog.model import EntryClaims
from ..errors import ExchangeError, UsageError
from ..manifests import ManifestIndex
from ..reference import ImageReference
from ..repository import Exchange
from .checker import Checker, ImageLookup, RegistryAnswer
from .policy import load_policy
from .problems import Report


def select_spec_paths(exchange: Exchange, paths: Collection[Path], *, all_specs: bool, since: str | None) -> list[Path]:
    """Explicit paths; or every spec (--all); or the specs changed since --since / the sentinel."""
    if paths and (all_specs or since):
        raise UsageError("give PATHs, or --all, or --since, not a mix")
    if all_specs and since:
        raise UsageError("--all and --since exclude each other")
    if paths:
        return exchange.expand(list(paths))
    if all_specs:
        return exchange.all_spec_paths()
    return exchange.changed_spec_paths(since)


def validate_specs(exchange: Exchange, paths: Collection[Path], *, check_images: bool = False,
                   insecure_registries: Collection[str] = (), jobs: int = 1) -> Report:
    manifests = ManifestIndex.load(exchange.manifests_dir)
    checker = Checker(manifests, image_lookup=registry_lookup(insecure_registries) if check_images else None,
                      policy=load_policy(exchange.root), lookup_workers=jobs,
                      entries=EntryClaims.load(exchange, manifests.manifests))
    return checker.check_paths(paths, root=exchange.root)


def registry_lookup(insecure_registries: Collection[str]) -> ImageLookup:
    from ..image.registry import manifest_exists

    def lookup(reference: ImageReference) -> RegistryAnswer:
        try:
            return RegistryAnswer(manifest_exists(reference, insecure_registries=insecure_registries))
        except ExchangeError as error:  # unreachable, refusing us, failing: the registry cannot say
            return RegistryAnswer(None, str(error))

    return lookup
