"""What `exchange verify` is asked about: ORG/NAME[@VERSION] in an exchange, a manifest file, or a
manifest's URL; and which public keys it trusts (--key, else the exchange's `.exchange/keys/`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..bounded import Limit
from ..errors import ExchangeError, UsageError
from ..git import redact
from ..jsonpos import strict_document
from ..manifests import MAX_MANIFEST_BYTES, ManifestProblem, ProcessedManifest, embedded_spec, parse_manifest
from ..repository import MANIFESTS
from .keys import PublicKey, keys_dir, read_key_file, repository_keys
from .verify import ManifestView

URL_SCHEMES = ("http", "https", "file", "gs")


@dataclass(frozen=True)
class Target:
    manifest: ManifestView
    shown: str  # how the result names what was verified
    root: Path | None  # the exchange it belongs to, for its keys
    relative: str | None = None  # the manifest's path in that exchange, when it is one of its files


def resolve_target(target: str, repo: Path | None) -> Target:
    if urlsplit(target).scheme in URL_SCHEMES:
        return Target(_manifest_from_url(target), redact(target), _exchange_root(repo))
    path = Path(target)
    if target.endswith(".json") and path.is_file():
        root = _exchange_root(repo or path.resolve().parent)
        inside = root is not None and path.resolve().is_relative_to(root.resolve())
        relative = path.resolve().relative_to(root.resolve()).as_posix() if inside else \
            f"{MANIFESTS}/{path.resolve().parent.name}/{path.name}"  # type: ignore[union-attr]
        manifest = parse_manifest(relative, path.read_bytes(), path)
        if isinstance(manifest, ManifestProblem):
            raise UsageError(f"{path}: {manifest.reason}")
        return Target(view_of(manifest), str(path), root, relative if inside else None)
    from ..catalog.model import load_catalog
    from ..catalog.reference import EntryReference, find_processed_version, resolve
    from ..repository import Exchange

    exchange = Exchange.open(repo)
    resolved = resolve(load_catalog(exchange), EntryReference.parse(target))
    entry = resolved.entry
    version = find_processed_version(entry, resolved.version)
    assert version.manifest is not None
    return Target(view_of(version.manifest, version.manifest.relative),
                  f"{entry.ref}@{version.version}", exchange.root, version.manifest.relative)


def view_of(manifest: ProcessedManifest, shown: str | None = None) -> ManifestView:
    return ManifestView(shown or str(manifest.path), manifest.org or "", manifest.kind.value, manifest.spec,
                        manifest.exchange)


def custody_of(target: Target, key_files: tuple[Path, ...], *,
               allow_unprocessed: bool) -> Callable[[PublicKey], tuple[bool, str]] | None:
    """The custody check for keys read from the repository; None when the caller pinned its own (--key)."""
    if key_files or target.root is None:
        return None
    from ..git import open_repo
    from .custody import custody

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


def _manifest_from_url(url: str) -> ManifestView:
    from ..fetch.sources import open_url

    shown = redact(url)
    with open_url(url, Limit(MAX_MANIFEST_BYTES, "a manifest")) as stream:
        data = b"".join(iter(lambda: stream.read(1024 * 1024), b""))
    document = strict_document(data, shown, ExchangeError)
    found = embedded_spec(document)
    if found is None or not isinstance(document.get("exchange"), dict):
        raise ExchangeError(f"{shown}: not an exchange manifest (no \"gear\" or \"boutique\" and \"exchange\" blocks)")
    kind, spec = found
    org = unquote(PurePosixPath(urlsplit(url).path).parent.name)  # manifests/<org>/<file>.json
    return ManifestView(shown, org, kind.value, spec, document["exchange"], fetched_from=url)
