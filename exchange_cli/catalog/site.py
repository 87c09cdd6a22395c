"""`exchange index --html DIR`: a static catalog site. Every page is plain HTML with one shared
stylesheet and script (search box, copy buttons); it works from a static host or straight from disk."""

from __future__ import annotations

import shlex
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..names import as_name, path_below
from ..specs import SpecKind, image_field
from .index import index_text
from .model import Catalog, CatalogEntry, CatalogVersion
from .reference import unique_reference
from .site_assets import CSS, JS

INDEX_PAGE = "index.html"
INDEX_JSON = "exchange.json"
CSS_PATH = "assets/catalog.css"
JS_PATH = "assets/catalog.js"
SITE_TITLE = "Gear exchange catalog"


def site_files(catalog: Catalog, *, title: str | None = None) -> dict[str, str]:
    """Relative path -> content of every file of the site; `title` from the exchange's policy file."""
    title = title or SITE_TITLE
    files = {INDEX_PAGE: index_page(catalog, title), INDEX_JSON: index_text(catalog), CSS_PATH: CSS, JS_PATH: JS}
    for entry in catalog.entries:
        files[entry_page_path(entry)] = entry_page(entry, title, catalog)
    return files


def write_site(files: dict[str, str], directory: Path) -> None:
    """Every file below `directory`, each path checked first (names.path_below): none is written unless
    all stay inside it, and none through a link already there."""
    paths = {relative: path_below(directory, relative) for relative in files}
    for relative, content in files.items():
        path = paths[relative]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


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


def entry_page(entry: CatalogEntry, site_title: str = SITE_TITLE, catalog: Catalog | None = None) -> str:
    """`catalog`: the whole catalog, so each version's commands name it by a reference that resolves to
    exactly it (reference.unique_reference); without it, ``org/name@version``."""
    latest = entry.latest
    spec = latest.spec if latest else {}
    title = _text(spec, "label") or entry.name
    versions = "\n".join(_version_section(entry, version, index, open_details=index == 0,
                                          reference=_reference(catalog, entry, version))
                         for index, version in enumerate(entry.versions))
    body = f"""<nav><p><a href="../../{INDEX_PAGE}">← All gears and boutiques</a></p></nav>
<main>
<h1>{escape(title)} <small>{escape(entry.ref)} · {entry.kind.value}</small></h1>
<p class="description">{escape(_text(spec, "description"))}</p>
{_meta_list(_about(entry, spec))}
<h2>Versions</h2>
{versions}
</main>"""
    return _page(f"{entry.ref} · {site_title}", body, "../../")


def _index_item(entry: CatalogEntry) -> str:
    spec = entry.latest.spec if entry.latest else {}
    version = entry.latest.version if entry.latest else ""
    unprocessed = f" {_state_badge(entry.latest)}" if entry.latest is not None and not entry.latest.processed else ""
    words = [entry.ref, entry.kind.value, version] + [_text(spec, key) for key in ("label", "description", "author")]
    return (f'<li class="entry" data-search="{escape(" ".join(words).lower())}">'
            f'<a class="ref" href="{quote(entry_page_path(entry))}">{escape(entry.ref)}</a> '
            f'<span class="kind">{entry.kind.value}</span> <span class="latest">{escape(version)}</span>{unprocessed}'
            f'<p class="label">{escape(_text(spec, "label"))}</p>'
            f'<p class="description">{escape(_text(spec, "description"))}</p></li>')


def _about(entry: CatalogEntry, spec: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(key, escape(_text(spec, key))) for key in ("author", "maintainer", "license") if _text(spec, key)]
    rows += [(key, _link(_text(spec, key))) for key in ("source", "url") if _text(spec, key)]
    return rows


def _reference(catalog: Catalog | None, entry: CatalogEntry, version: CatalogVersion) -> str:
    return unique_reference(catalog, entry, version.version) if catalog is not None else \
        f"{entry.ref}@{version.version}"


def _version_section(entry: CatalogEntry, version: CatalogVersion, index: int, *, open_details: bool,
                     reference: str) -> str:
    state = _state_badge(version)
    if _signed(version):  # the manifest carries signed provenance; `exchange verify` is the proof, not this page
        state += (' <span class="badge signed" title="Signed provenance (in-toto / SLSA, DSSE): check it with the '
                  'exchange verify command below">signed</span>')
    image = image_field(version.spec, entry.kind)[1]
    rows = [("image", f"<code>{escape(str(image))}</code>" if image else "")]
    if version.processed:
        size = f"{version.rootfs_size:,} bytes" if version.rootfs_size is not None else \
            "unknown (an old manifest records no size)"
        rows += [("rootfs hash", f"<code>{escape(version.rootfs_hash or '')}</code>"),
                 ("rootfs size", size),
                 ("rootfs URL", _link(version.rootfs_url or ""))]
    commands = _fetch_commands(version, index, reference) if version.processed else ""
    return f"""<section class="version" id="v-{escape(version.version)}">
<h3>{escape(version.version)} {state}</h3>
{_meta_list(rows)}
{commands}
<details{" open" if open_details else ""}><summary>Inputs and config options</summary>
{_inputs_table(entry.kind, version.spec)}
{_config_table(entry.kind, version.spec)}
</details>
</section>"""


_STATES = {
    "processed": ('processed', "processed", ""),
    "pending": ("pending", "not processed yet", "a run on the exchange's branch will process it"),
    "skipped": ("skipped", "skipped", "its spec was there when the sentinel was moved past it: no run will process it"),
}


def _state_badge(version: CatalogVersion) -> str:
    css, words, title = _STATES[version.state]
    titled = f' title="{escape(title)}"' if title else ""
    return f'<span class="badge {css}"{titled}>{words}</span>'


def _fetch_commands(version: CatalogVersion, index: int, reference: str) -> str:
    commands = [f"exchange fetch {shlex.quote(reference)}"]
    if _signed(version):
        commands.append(f"exchange verify {shlex.quote(reference)}")
    name = version.manifest.bucket_object if version.manifest is not None else None
    if name is not None and version.rootfs_url and version.rootfs_hash:
        algorithm, _, hex_digest = version.rootfs_hash.partition(":")
        commands.append(f"curl -fL -o {shlex.quote(name)} {shlex.quote(version.rootfs_url)} && "
                        f"echo {shlex.quote(f'{hex_digest}  {name}')} | {algorithm}sum -c -")
    return "\n".join(
        f'<div class="command"><code id="cmd-{index}-{number}">{escape(command)}</code>'
        f'<button class="copy" type="button" data-copy="cmd-{index}-{number}">Copy</button></div>'
        for number, command in enumerate(commands))


def _signed(version: CatalogVersion) -> bool:
    return version.processed and isinstance(version.record.get("attestation-url"), str)


def _inputs_table(kind: SpecKind, spec: dict[str, Any]) -> str:
    inputs = spec.get("inputs")
    rows: list[list[str]] = []
    if kind is SpecKind.GEAR and isinstance(inputs, dict):
        for name, value in inputs.items():
            value = value if isinstance(value, dict) else {}
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
    for name, value in config.items():
        value = value if isinstance(value, dict) else {}
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
