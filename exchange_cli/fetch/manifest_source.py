"""A manifest named by its file or its URL instead of by ORG/NAME@VERSION: what `exchange fetch` and
`exchange verify` read when no exchange is around (the copy commands of a published catalog page).

One reader for both commands, so both accept the same documents and refuse them with the same words. A
manifest read from a URL remembers it (`fetched_from`): whatever the document names is then opened only
within what a remote document may name (remote.refusal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..bounded import Limit
from ..confined import NotConfined, TooLarge, read_small_file
from ..errors import ExchangeError, UsageError, redact
from ..manifests import MANIFESTS_DIRECTORY, MAX_MANIFEST_BYTES, ManifestProblem, ProcessedManifest, parse_manifest

URL_SCHEMES = ("http", "https", "file", "gs")
MANIFEST_SUFFIX = ".json"


@dataclass(frozen=True)
class ManifestSource:
    manifest: ProcessedManifest
    shown: str  # how messages name it: the path as given, or the URL without credentials
    fetched_from: str | None = None  # the URL it was read from; None: a local file
    # Its org is the folder below a `manifests` folder; a manifest saved anywhere else (a platform's
    # download, `manifest.json`) says no org, and its folder's name is not one.
    org_known: bool = True


def is_manifest_url(target: str) -> bool:
    return urlsplit(target).scheme in URL_SCHEMES


def names_manifest(target: str) -> bool:
    """A URL, or an existing ``*.json`` file: a manifest rather than a catalog reference (a manifest's bare
    file name that is no file here still names a version of the exchange, catalog.reference)."""
    return is_manifest_url(target) or (target.endswith(MANIFEST_SUFFIX) and Path(target).is_file())


def read_manifest(target: str) -> ManifestSource:
    """The manifest at a URL or in a file (names_manifest), wherever it is (layout_relative gives its org)."""
    return read_manifest_url(target) if is_manifest_url(target) else \
        read_manifest_file(Path(target), outside_relative(Path(target)))


def read_manifest_url(url: str) -> ManifestSource:
    """The manifest at `url`, read whole within MAX_MANIFEST_BYTES. Its org is the URL's last folder when
    that lies in a `manifests` folder, as in an exchange or a catalog site (``…/manifests/<org>/<file>.json``)."""
    from ..remote import open_url  # requests is imported only when a URL is read

    shown = redact(url)
    with open_url(url, Limit(MAX_MANIFEST_BYTES, "a manifest")) as stream:
        data = stream.read_all()
    parts = [unquote(part) for part in PurePosixPath(urlsplit(url).path).parts]
    relative = layout_relative(parts)
    name = parts[-1] if parts else "manifest.json"
    manifest = _parsed(parse_manifest(relative, data, Path(name)), shown, ExchangeError)
    if not manifest.exchange:
        raise ExchangeError(f"{shown}: not an exchange manifest (no \"gear\" or \"boutique\" and \"exchange\" blocks)")
    return ManifestSource(manifest, shown, fetched_from=url, org_known=_org_known(relative))


def read_manifest_file(path: Path, relative: str) -> ManifestSource:
    """The manifest in the file `path`, read as if it were `relative` (``manifests/<org>/<file>.json``)
    in an exchange: `relative` gives it its org."""
    try:
        data = read_small_file(path, limit=MAX_MANIFEST_BYTES)
    except TooLarge as error:
        raise UsageError(f"{path}: {error.size:,} bytes, more than {MAX_MANIFEST_BYTES:,} for a manifest") from None
    except NotConfined as error:
        raise UsageError(f"{path}: cannot read: {error.reason}") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    return ManifestSource(_parsed(parse_manifest(relative, data, path), str(path), UsageError), str(path),
                          org_known=_org_known(relative))


def outside_relative(path: Path) -> str:
    """Where a manifest file found outside any exchange would be in one (layout_relative)."""
    return layout_relative(path.resolve().parts)


def layout_relative(parts: Sequence[str]) -> str:
    """``manifests/<org>/<file>`` when the location ends so (an exchange's checkout, a catalog site's
    files, a raw URL of the repository), else ``<file>`` alone: a manifest saved anywhere else names no org,
    and the folder it happens to sit in must not pass for one."""
    name = parts[-1] if parts else "manifest.json"
    if len(parts) >= 3 and parts[-3] == MANIFESTS_DIRECTORY and parts[-2]:
        return f"{MANIFESTS_DIRECTORY}/{parts[-2]}/{name}"
    return name


def _org_known(relative: str) -> bool:
    return relative.startswith(f"{MANIFESTS_DIRECTORY}/")


def _parsed(read: ProcessedManifest | ManifestProblem, shown: str, error: type[ExchangeError]) -> ProcessedManifest:
    if isinstance(read, ManifestProblem):
        raise error(f"{shown}: {read.reason}")
    return read
