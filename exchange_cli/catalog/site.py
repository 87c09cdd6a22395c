"""`exchange index --html DIR`: a static catalog site. Every page is plain HTML with one shared
stylesheet and script (search box, copy buttons); it works from a static host or straight from disk.

The site publishes what it describes: each processed version's manifest, as committed
(``files/manifests/<org>/<file>.json``), and the exchange's public keys (``files/keys/<key id>.pub``),
so that its copy commands need no clone. Pages are static and may be hosted anywhere (a Pages branch, a
mirror, a copy on disk), so they hold no absolute URL of their own: the page's script makes each
command's URL absolute from the page's own location. Without a script, the commands name versions of the
exchange, to run in a clone of it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from ..confined import NotConfined, read_below
from ..durable import write_atomically
from ..errors import ExchangeError
from ..logs import logger
from ..manifests import MANIFESTS_DIRECTORY, MAX_MANIFEST_BYTES, ProcessedManifest
from ..names import MAX_COMPONENT_LENGTH, as_name, name_problem, path_below
from ..sbom.model import summary as sbom_summary
from ..specs import SpecKind, image_field
from .index import index_text
from .model import Catalog, CatalogEntry, CatalogVersion
from .reference import EntryReference, resolve, unique_reference
from .site_assets import CSS, JS

INDEX_PAGE = "index.html"
INDEX_JSON = "exchange.json"
CSS_PATH = "assets/catalog.css"
JS_PATH = "assets/catalog.js"
# The files a page's commands download live below one folder: a top-level manifests/ would make the published
# branch look like an exchange's source branch, which publishing refuses to replace (publish.SOURCE_MARKERS).
FILES_DIRECTORY = "files"
KEYS_DIRECTORY = f"{FILES_DIRECTORY}/keys"
SITE_TITLE = "Gear exchange catalog"
PAGE_ROOT = "../../"  # from an entry page (<kind>s/<org>/<name>.html) to the site's root

LOG = logger("index")


@dataclass(frozen=True)
class SiteKey:
    key_id: str
    pem: str

    @property
    def path(self) -> str:
        return f"{KEYS_DIRECTORY}/{self.key_id}.pub"  # a key id is lowercase hex: a NAME


@dataclass(frozen=True)
class SiteManifest:
    path: str  # below the site's root
    text: str  # the committed bytes, as UTF-8 text


@dataclass
class SiteDownloads:
    """What the site publishes besides its pages: manifests (by their repository path) and public keys."""

    manifests: dict[str, SiteManifest] = field(default_factory=dict)
    keys: list[SiteKey] = field(default_factory=list)

    def manifest_path(self, version: CatalogVersion) -> str | None:
        manifest = version.manifest
        found = self.manifests.get(manifest.relative) if manifest is not None else None
        return found.path if found is not None else None

    def keys_for(self, version: CatalogVersion) -> list[SiteKey]:
        """The key that signed it (attestation-key-id); for an older manifest that records none, every key."""
        if version.key_id is None:
            return list(self.keys)
        return [key for key in self.keys if key.key_id == version.key_id]

    def files(self) -> dict[str, str]:
        return {m.path: m.text for m in self.manifests.values()} | {key.path: key.pem for key in self.keys}


def site_files(catalog: Catalog, *, title: str | None = None, root: Path | None = None) -> dict[str, str]:
    """Relative path -> content of every file of the site; `title` from the exchange's policy file; `root`:
    the exchange, whose manifests and public keys the site then publishes."""
    title = title or SITE_TITLE
    published = site_downloads(catalog, root) if root is not None else SiteDownloads()
    files = {INDEX_PAGE: index_page(catalog, title), INDEX_JSON: index_text(catalog), CSS_PATH: CSS, JS_PATH: JS}
    files |= published.files()
    for entry in catalog.entries:
        files[entry_page_path(entry)] = entry_page(entry, title, catalog, published)
    return files


def site_downloads(catalog: Catalog, root: Path) -> SiteDownloads:
    """Each processed version's manifest as committed, and the exchange's keys. A manifest that cannot be
    read again (or whose site path another took) is left out of the site, said so, and its page names the
    version instead."""
    published = SiteDownloads(keys=_site_keys(root))
    taken: set[str] = set()
    for entry in catalog.entries:
        for version in entry.versions:
            manifest = version.manifest
            if manifest is None or manifest.relative in published.manifests:
                continue
            path, text = manifest_site_path(manifest), _committed_text(root, manifest)
            if text is None or path in taken:
                LOG.warning(f"the catalog site does not publish {manifest.relative}"
                            + ("" if text is None else f": {path} is another manifest's place there"))
                continue
            taken.add(path)
            published.manifests[manifest.relative] = SiteManifest(path, text)
    return published


def manifest_site_path(manifest: ProcessedManifest) -> str:
    """``files/manifests/<org>/<file>.json``: its place in the exchange, below files/, so that a manifest read
    from the site has its org (fetch.manifest_source). An org or file name outside the naming grammar (an old
    exchange's) is made a NAME, and deeper folders are left out."""
    name = PurePosixPath(manifest.relative).name
    if name_problem(name, MAX_COMPONENT_LENGTH) is not None:
        name = f"{as_name(PurePosixPath(name).stem)}.json"
    return "/".join([FILES_DIRECTORY, MANIFESTS_DIRECTORY, *([as_name(manifest.org)] if manifest.org else []), name])


def _committed_text(root: Path, manifest: ProcessedManifest) -> str | None:
    try:
        return read_below(root, manifest.relative, limit=MAX_MANIFEST_BYTES).decode("utf-8")
    except (NotConfined, OSError, UnicodeDecodeError, ValueError):
        return None  # the catalog read it a moment ago: replaced since, or a link now


def _site_keys(root: Path) -> list[SiteKey]:
    from ..provenance.keys import UnusableKey, repository_keys  # cryptography, only when a site is written

    try:
        return [SiteKey(key.key_id, key.pem.decode("ascii")) for key in repository_keys(root)]
    except UnusableKey as error:
        LOG.warning(f"the catalog site publishes no public key: {error}")
        return []


def write_site(files: dict[str, str], directory: Path) -> None:
    """Every file below `directory`, each path checked first (names.path_below): none is written unless
    all stay inside it, and none through a link already there."""
    paths = {relative: path_below(directory, relative) for relative in files}
    for relative, content in files.items():
        write_atomically(paths[relative], content)  # a page served meanwhile is the old one or the new one


def entry_page_path(entry: CatalogEntry) -> str:
    """``<kind>s/<org>/<name>.html``, each part passed through the naming grammar: a gear's name is a
    NAME already; a boutique's free-text name or a hostile org becomes a slug with a hash (names.as_name)."""
    return f"{entry.kind.directory}/{as_name(entry.org or '_')}/{as_name(entry.name)}.html"  # _: no org


def index_page(catalog: Catalog, title: str = SITE_TITLE) -> str:
    items = "\n".join(_index_item(entry) for entry in catalog.entries)
    total = len(catalog.entries)
    body = f"""<header>
<h1>{escape(title)}</h1>
<input id="search" type="search" placeholder="Search by name, label, author, description…" aria-label="Search the catalog" autofocus>
<p id="count" aria-live="polite">{total} shown</p>
</header>
<main>
<ul id="entries">
{items}
</ul>
<p id="empty" hidden>Nothing matches your search.</p>
</main>"""
    return _page(title, body, "")


def entry_page(entry: CatalogEntry, site_title: str = SITE_TITLE, catalog: Catalog | None = None,
               published: SiteDownloads | None = None) -> str:
    """`catalog`: the whole catalog, so each version's commands name it by a reference that resolves to
    exactly it (reference.unique_reference); without it, ``org/name@version``. `published`: what the site
    holds besides its pages, which the version sections link and their commands use."""
    published = published or SiteDownloads()
    latest = entry.latest
    spec = latest.spec if latest else {}
    title = _text(spec, "label") or entry.name
    versions = "\n".join(_version_section(entry, version, index, open_details=version is latest,
                                          reference=_reference(catalog, entry, version), published=published)
                         for index, version in enumerate(entry.versions))
    body = f"""<nav><p><a href="{PAGE_ROOT}{INDEX_PAGE}">← All gears and boutiques</a></p></nav>
<main>
<h1>{escape(title)} <small>{escape(entry.ref)} · {entry.kind.value}</small></h1>
{_deprecation_notice(entry, catalog)}<p class="description">{escape(_text(spec, "description"))}</p>
{_meta_list(_about(entry, spec))}
<h2>Versions</h2>
<noscript><p class="hint">Without JavaScript the commands below name versions of the exchange: run them in a
clone of it, or use the manifest links, which work anywhere.</p></noscript>
{versions}
</main>"""
    return _page(f"{entry.ref} · {site_title}", body, PAGE_ROOT)


def _index_item(entry: CatalogEntry) -> str:
    spec = entry.latest.spec if entry.latest else {}
    version = entry.latest.version if entry.latest else ""
    unprocessed = f" {_state_badge(entry.latest)}" if entry.latest is not None and not entry.latest.processed else ""
    unprocessed += _decision_badges(entry, entry.latest)
    newest = entry.latest_processed
    signed = f" {_signed_badge('on its page')}" if newest is not None and _signed(newest) else ""
    license_name = _text(spec, "license")
    licensed = f'<span class="license">licence: {escape(license_name)}</span> · ' if license_name else ""
    count = len(entry.versions)
    words = [entry.ref, entry.kind.value, version, license_name] + \
        [_text(spec, key) for key in ("label", "description", "author")] + (["deprecated"] if entry.deprecation else [])
    return (f'<li class="entry" data-search="{escape(" ".join(words).lower())}">'
            f'<a class="ref" href="{quote(entry_page_path(entry))}">{escape(entry.ref)}</a> '
            f'<span class="kind">{entry.kind.value}</span> <span class="latest">{escape(version)}</span>{unprocessed}'
            f'{signed}<p class="facts">{licensed}<span class="versions">{count} version{"" if count == 1 else "s"}'
            f'</span></p><p class="label">{escape(_text(spec, "label"))}</p>'
            f'<p class="description">{escape(_text(spec, "description"))}</p></li>')


def _about(entry: CatalogEntry, spec: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(key, escape(_text(spec, key))) for key in ("author", "maintainer", "license") if _text(spec, key)]
    rows += [(key, _link(_text(spec, key))) for key in ("source", "url") if _text(spec, key)]
    return rows


def _reference(catalog: Catalog | None, entry: CatalogEntry, version: CatalogVersion) -> str:
    return unique_reference(catalog, entry, version.version) if catalog is not None else \
        f"{entry.ref}@{version.version}"


def _version_section(entry: CatalogEntry, version: CatalogVersion, index: int, *, open_details: bool,
                     reference: str, published: SiteDownloads) -> str:
    state = _state_badge(version)
    if _signed(version):  # the manifest carries signed provenance; `exchange verify` is the proof, not this page
        state += f" {_signed_badge('below')}"
    image = image_field(version.spec, entry.kind)[1]
    rows = [("yanked", escape(version.yank.described()))] if version.yank else []
    state += _decision_badges(None, version)
    rows.append(("image", f"<code>{escape(str(image))}</code>" if image else ""))
    if version.processed:
        size = f"{version.rootfs_size:,} bytes" if version.rootfs_size is not None else \
            "unknown (an old manifest records no size)"
        rows += [("rootfs hash", f"<code>{escape(version.rootfs_hash or '')}</code>"),
                 ("rootfs size", size),
                 ("rootfs URL", _link(version.rootfs_url or ""))]
        rows += _download_rows(version, published)
    commands = _commands(version, index, reference, published) if version.processed else ""
    return f"""<section class="version" id="v-{escape(version.version)}">
<h3>{escape(version.version)} {state}</h3>
{_meta_list(rows)}
{commands}
<details{" open" if open_details else ""}><summary>Inputs and config options</summary>
{_inputs_table(entry.kind, version.spec)}
{_config_table(entry.kind, version.spec)}
</details>
</section>"""


def _download_rows(version: CatalogVersion, published: SiteDownloads) -> list[tuple[str, str]]:
    """The manifest the site publishes, the envelope it pins, the key that signed it."""
    rows = []
    manifest_path = published.manifest_path(version)
    if manifest_path is not None:
        name = PurePosixPath(manifest_path).name
        rows.append(("manifest", f'<a href="{_site_href(manifest_path)}" type="application/json">{escape(name)}</a>'))
    sbom = version.record.get("sbom-url")
    if isinstance(sbom, str):
        rows.append(("SBOM", f"{_link(sbom)} {escape(_sbom_summary(version.record))}"))
    squashfs, digest = version.record.get("squashfs-url"), version.record.get("squashfs-sha384")
    if isinstance(squashfs, str):  # docs/squashfs.md: mountable with Apptainer or squashfuse
        pinned = f" ({digest})" if isinstance(digest, str) else ""
        rows.append(("squashfs image", f"{_link(squashfs)}{escape(pinned)}"))
    attestation = version.record.get("attestation-url")
    if _signed(version) and isinstance(attestation, str):
        rows.append(("envelope", _link(attestation)))
        keys = published.keys_for(version)
        if keys:
            rows.append(("signing key", " ".join(f'<a href="{_site_href(key.path)}">{escape(key.key_id)}</a>'
                                                 for key in keys)))
    return rows


def _sbom_summary(record: dict[str, object]) -> str:
    """"(123 packages, debian 12)", from what the manifest records of its SBOM."""
    text = sbom_summary(record.get("sbom-packages"), record.get("sbom-os"))
    return f"({text})" if text else ""


_STATES = {
    "processed": ('processed', "processed", ""),
    "pending": ("pending", "not processed yet", "a run on the exchange's branch will process it"),
    "skipped": ("skipped", "skipped", "its spec was there when the sentinel was moved past it: no run will process it"),
}


def _decision_badges(entry: CatalogEntry | None, version: CatalogVersion | None) -> str:
    """A yanked version, a deprecated gear: a badge whose title is the reason (escaped: it is data)."""
    badges = ""
    if version is not None and version.yank is not None:
        badges += (f' <span class="badge yanked" title="{escape(version.yank.described())}">yanked</span>')
    if entry is not None and entry.deprecation is not None:
        badges += (f' <span class="badge deprecated" title="{escape(entry.deprecation.described())}">'
                   'deprecated</span>')
    return badges


def _deprecation_notice(entry: CatalogEntry, catalog: Catalog | None) -> str:
    decision = entry.deprecation
    if decision is None:
        return ""
    replaced = ""
    if decision.replaced_by is not None:
        successor = _page_of(catalog, decision.replaced_by)
        shown = escape(decision.replaced_by)
        replaced = f' Use <a href="{PAGE_ROOT}{quote(successor)}">{shown}</a> instead.' if successor else \
            f" Use {shown} instead."
    return (f'<p class="deprecated"><strong>Deprecated</strong> ({escape(decision.at)}, {escape(decision.by)}): '
            f'{escape(decision.reason.rstrip("."))}.{replaced}</p>\n')


def _page_of(catalog: Catalog | None, reference: str) -> str | None:
    """The site path of the entry `reference` names, when the catalog holds exactly one."""
    if catalog is None:
        return None
    try:
        return entry_page_path(resolve(catalog, EntryReference.parse(reference)).entry)
    except ExchangeError:
        return None


def _state_badge(version: CatalogVersion) -> str:
    css, words, title = _STATES[version.state]
    titled = f' title="{escape(title)}"' if title else ""
    return f'<span class="badge {css}"{titled}>{words}</span>'


@dataclass(frozen=True)
class Command:
    """A copy command. `text`: what the page shows without a script (a reference to the exchange, which runs
    in a clone; None: nothing to show, the box stays hidden). With a script, the page shows `before` + the
    absolute URL of `href` (a site path), shell-quoted + `after`, which runs anywhere."""

    caption: str
    text: str | None
    href: str | None = None
    before: str = ""
    after: str = ""


def _commands(version: CatalogVersion, index: int, reference: str, published: SiteDownloads) -> str:
    return "\n".join(_command_box(command, f"cmd-{index}-{number}")
                     for number, command in enumerate(_version_commands(version, reference, published)))


def _version_commands(version: CatalogVersion, reference: str, published: SiteDownloads) -> list[Command]:
    manifest = published.manifest_path(version)
    quoted = shlex.quote(reference)
    commands = [Command("Download the rootfs and check its hash", f"exchange fetch {quoted}", manifest,
                        "exchange fetch ")]
    if _signed(version):
        keys = published.keys_for(version) if manifest is not None else []
        commands += [Command("The exchange's public key (keep it: a platform pins it once)", None, key.path,
                             "curl -fsSLO ") for key in keys]
        key_options = "".join(f" --key {shlex.quote(PurePosixPath(key.path).name)}" for key in keys)
        commands.append(Command("Check its signed provenance", f"exchange verify {quoted}", manifest,
                                "exchange verify ", key_options))
    name = version.manifest.bucket_object if version.manifest is not None else None
    if name is not None and version.rootfs_url and version.rootfs_hash:
        algorithm, _, hex_digest = version.rootfs_hash.partition(":")
        commands.append(Command("Without the exchange CLI",
                                f"curl -fL -o {shlex.quote(name)} {shlex.quote(version.rootfs_url)} && "
                                f"echo {shlex.quote(f'{hex_digest}  {name}')} | {algorithm}sum -c -"))
    return commands


def _command_box(command: Command, code_id: str) -> str:
    # The script reads the URL's parts from the box: the code element holds only the command's text.
    scripted = "" if command.href is None else (
        f' data-href="{_site_href(command.href)}" data-before="{escape(command.before)}"'
        f' data-after="{escape(command.after)}"')
    hidden = " hidden" if command.text is None else ""
    return (f'<div class="command"{scripted}{hidden}><span class="caption">{escape(command.caption)}</span>'
            f'<code id="{code_id}">{escape(command.text or "")}</code>'
            f'<button class="copy" type="button" data-copy="{code_id}">Copy</button></div>')


def _site_href(site_path: str) -> str:
    """A link from an entry page to a file of the site; its parts are NAMEs already (names.path_below)."""
    return escape(PAGE_ROOT + quote(site_path))


def _signed_badge(where: str) -> str:
    return ('<span class="badge signed" title="Signed provenance (in-toto / SLSA, DSSE): check it with the '
            f'exchange verify command {where}">signed</span>')


def _signed(version: CatalogVersion) -> bool:
    return version.processed and isinstance(version.record.get("attestation-url"), str)


def _inputs_table(kind: SpecKind, spec: dict[str, Any]) -> str:
    inputs = spec.get("inputs")
    rows: list[list[str]] = []
    if kind is SpecKind.GEAR and isinstance(inputs, dict):
        for name, given in inputs.items():
            value = given if isinstance(given, dict) else {}
            rows.append([name, str(value.get("base", "")), "yes" if value.get("optional") else "no",
                         _text(value, "description")])
    elif kind is SpecKind.BOUTIQUE and isinstance(inputs, list):
        for value in (v for v in inputs if isinstance(v, dict)):
            rows.append([str(value.get("id", "")), str(value.get("type", "")), "yes" if value.get("optional") else "no",
                         _text(value, "description")])
    return _table("Inputs", ["name", "type", "optional", "description"], rows)


def _config_table(kind: SpecKind, spec: dict[str, Any]) -> str:
    config = spec.get("config")
    if kind is SpecKind.BOUTIQUE or not isinstance(config, dict):
        return ""  # Boutiques descriptors have only inputs
    rows = []
    for name, given in config.items():
        value = given if isinstance(given, dict) else {}
        default = value.get("default")
        rows.append([name, str(value.get("type", "")), "" if default is None else str(default),
                     _text(value, "description")])
    return _table("Config options", ["name", "type", "default", "description"], rows)


def _table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return f"<h4>{title}</h4><p>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h4>{title}</h4>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _meta_list(rows: list[tuple[str, str]]) -> str:
    """Values are HTML already escaped by the caller."""
    items = "".join(f"<dt>{escape(key)}</dt><dd>{value}</dd>" for key, value in rows)
    return f'<dl class="meta">{items}</dl>' if items else ""


def _link(url: str) -> str:
    # Only web links become anchors: a javascript: or data: URL in a spec must not run in the catalog.
    if urlsplit(url).scheme in ("http", "https"):
        return f'<a href="{escape(url)}" rel="nofollow noopener">{escape(url)}</a>'
    return escape(url)


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _page(title: str, body: str, root: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{root}{CSS_PATH}">
</head>
<body>
{body}
<script src="{root}{JS_PATH}"></script>
</body>
</html>
"""
