"""What `exchange verify` is asked about: ORG/NAME[@VERSION] in an exchange, a manifest file, or a
manifest's URL; and which public keys it trusts (--key, else the exchange's `.exchange/keys/`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..catalog.lifecycle import Decision, Lifecycle, decision_warnings
from ..errors import UsageError
from ..provenance.keys import PublicKey, keys_dir, read_key_file, repository_keys
from ..provenance.verify import ManifestView, view_of
from . import manifest_source


@dataclass(frozen=True)
class Target:
    manifest: ManifestView
    shown: str  # how the result names what was verified
    root: Path | None  # the exchange it belongs to, for its keys
    relative: str | None = None  # the manifest's path in that exchange, when it is one of its files
    yank: Decision | None = None  # the version is yanked (known only inside an exchange)
    warnings: tuple[str, ...] = ()  # yanked, deprecated: for stderr


def resolve_target(target: str, repo: Path | None) -> Target:
    if manifest_source.is_manifest_url(target):
        source = manifest_source.read_manifest_url(target)
        return Target(view_of(source.manifest, source.shown, fetched_from=source.fetched_from,
                              org_known=source.org_known), source.shown, _exchange_root(repo))
    path = Path(target)
    if manifest_source.names_manifest(target):
        root = _exchange_root(repo or path.resolve().parent)
        inside = root is not None and path.resolve().is_relative_to(root.resolve())
        relative = path.resolve().relative_to(root.resolve()).as_posix() if inside and root is not None else \
            manifest_source.outside_relative(path)
        source = manifest_source.read_manifest_file(path, relative)
        manifest = source.manifest
        lifecycle = Lifecycle(root if inside else None)
        yank = lifecycle.yank(manifest.org, manifest.kind, manifest.name or "", manifest.version)
        deprecation = lifecycle.deprecation(manifest.org, manifest.kind, manifest.name or "")
        ref = f"{manifest.org}/{manifest.name}" if manifest.org else str(manifest.name)
        return Target(view_of(manifest, org_known=source.org_known), str(path), root, relative if inside else None,
                      yank, tuple(decision_warnings(ref, manifest.version, yank, deprecation)))
    from ..catalog.model import entry_warnings, load_catalog
    from ..catalog.reference import EntryReference, find_processed_version, resolve
    from ..repository import Exchange

    exchange = Exchange.open(repo)
    resolved = resolve(load_catalog(exchange), EntryReference.parse(target))
    entry = resolved.entry
    version = find_processed_version(entry, resolved.version)
    assert version.manifest is not None
    return Target(view_of(version.manifest, version.manifest.relative),
                  f"{entry.ref}@{version.version}", exchange.root, version.manifest.relative, version.yank,
                  tuple(entry_warnings(entry, version)))


def custody_of(target: Target, key_files: tuple[Path, ...], *,
               allow_unprocessed: bool) -> Callable[[PublicKey], tuple[bool, str]] | None:
    """The custody check for keys read from the repository; None when the caller pinned its own (--key)."""
    if key_files or target.root is None:
        return None
    from ..git import open_repo
    from ..provenance.custody import custody

    repo = open_repo(target.root)
    return lambda key: custody(repo, key.source or None, target.relative, allow_unprocessed=allow_unprocessed)


def trusted_keys(key_files: tuple[Path, ...], root: Path | None) -> list[PublicKey]:
    """--key files when given (a platform pins the key it got once); else the exchange's own key directory."""
    if key_files:
        return [read_key_file(path) for path in key_files]
    keys = repository_keys(root) if root is not None else []
    if not keys:
        where = f"{keys_dir(root)} holds no key" if root is not None else "not inside an exchange repository"
        raise UsageError(f"no public key to verify with: {where}; pass --key exchange.pub")
    return keys


def _exchange_root(start: Path | None) -> Path | None:
    from ..repository import Exchange

    try:
        return Exchange.open(start).root
    except UsageError:
        return None
