"""The published catalog works without a clone (issue 22): its pages publish the manifests they describe,
their copy commands name them by absolute URL, and those commands run in an empty directory that no
exchange is around. The site and the bucket are served over http on 127.0.0.1, as a Pages host and a
bucket's public URL would serve them, and each page is read after its script ran in headless Chromium."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from exchange_cli.storage.bucket import open_bucket
from tests.catalog_world import CatalogWorld, one_gear_world
from tests.infra import require_executable
from tests.infra.chromium import chromium_dom, laid_out_at, screenshot_path
from tests.infra.commands import exchange_here
from tests.infra.gitrepo import ExchangeRepo, example_gear
from tests.infra.publication import publish
from tests.infra.static_http import serving

EXCHANGE = Path(sys.executable).parent / "exchange"  # the venv's
SITE_DIRECTORY = "the catalog's site"  # a quote and a space in the page's URL: the commands must quote it


@dataclass
class Served:
    """A directory served over http: the exchange's bucket and its catalog site both live below it."""

    directory: Path
    base: str

    def url(self, relative: str) -> str:
        """As a browser writes it: a space percent-encoded, a quote left as it is."""
        return self.base + "/" + quote(relative, safe="/'")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    directory = tmp_path / "www"
    (directory / "bucket").mkdir(parents=True)
    with serving(directory) as base:
        yield Served(directory, base)


@pytest.fixture
def served_catalog(exchange_repo: ExchangeRepo, served: Served, tmp_path: Path) -> CatalogWorld:
    """Processed gears whose rootfs URLs are the served bucket's http URLs."""
    (tmp_path / "work").mkdir()
    bucket = open_bucket((served.directory / "bucket").as_uri(), download_url=served.url("bucket"))
    world = CatalogWorld(exchange_repo, bucket, tmp_path / "work")
    for version in ("1.0.0", "1.1.0"):
        world.publish("acme", "hello", version)
    world.spec("acme", "hello", "1.1.0")
    world.publish("neuro", "skull-strip", "2.1.0", license="BSD-3-Clause")
    world.spec("neuro", "skull-strip", "2.1.0", license="BSD-3-Clause")
    exchange_repo.commit("a processed exchange")
    return world


def write_site(repo: ExchangeRepo, site: Path) -> Result:
    result = CliRunner().invoke(cli, ["index", "--html", str(site), "-o", str(site.parent / "exchange.json"),
                                      "--repo", str(repo.root)])
    assert result.exit_code == 0, result.output
    return result


def dom_commands(dom: str) -> list[str]:
    """The text of every copy command the page shows after its script ran (hidden boxes left out)."""
    boxes = re.findall(r'<div class="command"([^>]*)>.*?<code id="cmd-[^"]*">(.*?)</code>', dom, re.DOTALL)
    return [html.unescape(text) for attributes, text in boxes if " hidden" not in attributes]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty directory in no repository: git looks no higher than its parent, so not at /work/main."""
    directory = tmp_path / "elsewhere" / "cwd"
    directory.mkdir(parents=True)
    probe = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=directory, env=outside_env(directory),
                           capture_output=True, text=True, check=False)
    assert probe.returncode != 0, f"{directory} is inside a repository: {probe.stdout}"
    return directory


def outside_env(directory: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EXCHANGE_")}
    return env | {"GIT_CEILING_DIRECTORIES": str(directory.parent), "PATH": f"{EXCHANGE.parent}:{env['PATH']}"}


def run_copied(command: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """As a user pasting it would: an `exchange …` command split as a shell splits it (run by the CLI in
    this process: tests/infra/commands.py, exchange_here), a pipeline through the shell (the venv's
    executable first on its PATH)."""
    pipeline = "&&" in command or "|" in command
    if command.startswith("exchange ") and not pipeline:
        return exchange_here(*shlex.split(command)[1:], env=outside_env(directory), cwd=directory)
    argv = ["sh", "-c", command] if pipeline else shlex.split(command)
    return subprocess.run(argv, cwd=directory, env=outside_env(directory), capture_output=True, text=True,
                          timeout=300, check=False)


def sha384_of(path: Path) -> str:
    return hashlib.sha384(path.read_bytes()).hexdigest()


# Copy commands that need no clone ---------------------------------------------------------------

def test_every_copy_command_on_a_served_gear_page_runs_outside_any_clone(served_catalog: CatalogWorld, served: Served,
                                                                        elsewhere: Path, tmp_path: Path) -> None:
    require_executable("curl")
    write_site(served_catalog.repo, served.directory / SITE_DIRECTORY)
    dom = chromium_dom(served.url(f"{SITE_DIRECTORY}/gears/acme/hello.html"), tmp_path / "profile")
    commands = dom_commands(dom)
    newest, older = served_catalog.find("acme", "hello", "1.1.0"), served_catalog.find("acme", "hello", "1.0.0")
    manifest_url = served.url(f"{SITE_DIRECTORY}/files/{newest.manifest}")
    assert commands[0] == f"exchange fetch {shlex.quote(manifest_url)}", commands
    assert "'" in commands[0], "the page's URL holds a quote: the command quotes it as a shell needs"
    assert len([c for c in commands if c.startswith("exchange fetch ")]) == 2, "one per processed version"

    for number, command in enumerate(commands):
        directory = elsewhere / f"command-{number}"
        directory.mkdir()
        result = run_copied(command, directory)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        (fetched,) = list(directory.iterdir())
        published = next(p for p in (newest, older) if p.object_name == fetched.name)
        manifest = json.loads((served_catalog.repo.root / published.manifest).read_text())
        assert f"sha384:{sha384_of(fetched)}" == manifest["exchange"]["rootfs-hash"], command
    assert {p.name for p in elsewhere.rglob("*.tgz")} == {newest.object_name, older.object_name}


def test_a_site_opened_from_disk_gives_commands_that_run_too(exchange_repo: ExchangeRepo, elsewhere: Path,
                                                             tmp_path: Path) -> None:
    """From disk, the manifest's URL is a file:// one; a local document may name the local bucket's file://
    rootfs URL (catalog_world's), which a served one may not."""
    world = one_gear_world(exchange_repo, tmp_path)
    site = tmp_path / "site"
    write_site(world.repo, site)
    commands = dom_commands(chromium_dom((site / "gears" / "acme" / "hello.html").as_uri(), tmp_path / "profile"))
    published = world.find("acme", "hello", "1.0.0")
    assert commands[0] == f"exchange fetch {(site / 'files' / published.manifest).as_uri()}"
    result = run_copied(commands[0], elsewhere)
    assert result.returncode == 0, result.stderr
    assert sha384_of(elsewhere / published.object_name) == published.sha384


def test_fetch_takes_a_manifest_file_with_no_exchange_around(served_catalog: CatalogWorld, elsewhere: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    published = served_catalog.find("neuro", "skull-strip", "2.1.0")
    copy = elsewhere / "downloads" / "manifests" / "neuro" / Path(published.manifest).name  # as the site lays it out
    copy.parent.mkdir(parents=True)
    copy.write_bytes((served_catalog.repo.root / published.manifest).read_bytes())
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(elsewhere.parent))
    result = CliRunner().invoke(cli, ["fetch", str(copy), "--extract", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert Path(report["path"]).name == published.object_name
    assert sha384_of(elsewhere / published.object_name) == published.sha384
    assert report["rootfs-hash"] == f"sha384:{published.sha384}"
    assert Path(report["extracted-to"]).name == "neuro-skull-strip-2.1.0", "manifests/<org>/ names its org"
    assert (elsewhere / "neuro-skull-strip-2.1.0" / "etc" / "release").read_text() == "neuro/skull-strip 2.1.0\n"


# What a served manifest may make fetch do --------------------------------------------------------

def serve_manifest(served: Served, exchange: dict) -> str:
    relative = "elsewhere/manifests/acme/acme-x-sha384-" + "0" * 96 + ".json"
    (served.directory / relative).parent.mkdir(parents=True, exist_ok=True)
    (served.directory / relative).write_text(json.dumps({"gear": example_gear(name="x"), "exchange": exchange}))
    return served.url(relative)


@pytest.mark.parametrize("rootfs_url", ["file", "gs://someone-elses-bucket/acme-x.tgz"])
def test_a_served_manifest_cannot_make_fetch_read_this_machines_files(served: Served, elsewhere: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      rootfs_url: str) -> None:
    """`fetch URL` opens what the manifest names only as `verify URL` does (remote.refusal): a served
    manifest naming file:///<a private file> would otherwise copy it, once its hash was guessed right."""
    private = tmp_path / "home" / "secret.tgz"
    private.parent.mkdir()
    private.write_bytes(b"private bytes")
    url = serve_manifest(served, {"rootfs-hash": f"sha384:{sha384_of(private)}", "rootfs-size": 13,
                                  "rootfs-url": private.as_uri() if rootfs_url == "file" else rootfs_url})
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(cli, ["fetch", url])
    assert result.exit_code != 0
    assert "a document from elsewhere" in result.output, result.output
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", [".bashrc", "Makefile"])
def test_a_served_manifest_cannot_choose_which_file_fetch_replaces(served: Served, elsewhere: Path, name: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"#!/bin/sh\necho owned\n"
    (served.directory / "bucket" / name).write_bytes(content)
    url = serve_manifest(served, {"rootfs-hash": f"sha384:{hashlib.sha384(content).hexdigest()}",
                                  "rootfs-size": len(content), "rootfs-url": served.url(f"bucket/{name}")})
    (elsewhere / name).write_text("mine\n")
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(cli, ["fetch", url])
    assert result.exit_code != 0 and "not a tarball's name" in result.output, result.output
    assert (elsewhere / name).read_text() == "mine\n"
    chosen = CliRunner().invoke(cli, ["fetch", url, "-o", "chosen.tgz"])
    assert chosen.exit_code == 0, chosen.output
    assert (elsewhere / "chosen.tgz").read_bytes() == content, "a file the user names is fine"


# The site publishes what it describes ------------------------------------------------------------

Signed = tuple[ExchangeRepo, LocalKeySigner, str]


@pytest.fixture
def served_signed(exchange_repo: ExchangeRepo, served: Served) -> Signed:
    """acme/hello 1.0.0 published with signed provenance, its rootfs and envelope at http URLs, and the
    exchange's public key committed; returns the manifest's repository path."""
    signer = LocalKeySigner.from_pem(generate_private_key("ed25519"), "test key")
    made = publish(served.directory / "signed", signer)
    document = json.loads(made.manifest.read_text())
    document["exchange"] |= {"rootfs-url": served.url(f"signed/bucket/{made.rootfs.name}"),
                             "attestation-url": served.url(f"signed/bucket/{made.envelope.name}"),
                             "attestation-key-id": signer.public_key.key_id}
    relative = f"manifests/acme/{made.manifest.name}"
    exchange_repo.write(relative, json.dumps(document, indent=2) + "\n")
    exchange_repo.write("gears/acme/hello.json", document["gear"])
    exchange_repo.write(f".exchange/keys/{signer.public_key.key_id}.pub", signer.public_key.pem.decode())
    exchange_repo.commit("a signed version")
    return exchange_repo, signer, relative


def test_a_signed_version_is_verified_from_its_page_outside_any_clone(served_signed: Signed,
                                                                     served: Served, elsewhere: Path,
                                                                     tmp_path: Path) -> None:
    require_executable("curl")
    repo, signer, relative = served_signed
    write_site(repo, served.directory / "site")
    key_id = signer.public_key.key_id
    published_key = served.directory / "site" / "files" / "keys" / f"{key_id}.pub"
    assert published_key.read_bytes() == signer.public_key.pem
    commands = dom_commands(chromium_dom(served.url("site/gears/acme/hello.html"), tmp_path / "profile"))
    manifest_url = served.url(f"site/files/{relative}")
    assert f"curl -fsSLO {served.url(f'site/files/keys/{key_id}.pub')}" in commands, commands
    assert f"exchange verify {manifest_url} --key {key_id}.pub" in commands, commands
    outputs = {}
    for command in commands:  # in page order: the key is downloaded before verify uses it
        result = run_copied(command, elsewhere)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        outputs[command.split()[1]] = result.stdout
    assert outputs["verify"].splitlines()[-1] == f"verified: {manifest_url}"


def test_the_site_holds_each_manifest_as_committed_and_each_page_links_it(served_signed: Signed,
                                                                         served: Served) -> None:
    repo, signer, relative = served_signed
    site = served.directory / "site"
    write_site(repo, site)
    assert (site / "files" / relative).read_bytes() == (repo.root / relative).read_bytes()
    page = (site / "gears" / "acme" / "hello.html").read_text()
    assert f'href="../../files/{relative}"' in page
    envelope = json.loads((repo.root / relative).read_text())["exchange"]["attestation-url"]
    assert f'<a href="{html.escape(envelope)}" rel="nofollow noopener">' in page, "the envelope is linked"
    assert f'href="../../files/keys/{signer.public_key.key_id}.pub"' in page
    assert "exchange verify acme/hello@1.0.0" in page, "without a script: a command to run in a clone"


def test_an_envelope_url_that_is_no_web_link_is_shown_not_linked(served_signed: Signed,
                                                                 served: Served) -> None:
    repo, _, relative = served_signed
    document = json.loads((repo.root / relative).read_text())
    document["exchange"]["attestation-url"] = "javascript:alert(document.domain)//x.intoto.jsonl"
    repo.write(relative, json.dumps(document, indent=2) + "\n")
    repo.commit("a hostile envelope URL")
    write_site(repo, served.directory / "site")
    page = (served.directory / "site" / "gears" / "acme" / "hello.html").read_text()
    assert "javascript:alert(document.domain)//x.intoto.jsonl" in page and 'href="javascript:' not in page


# The list page -----------------------------------------------------------------------------------

def entry_item(index: str, ref: str) -> str:
    items = re.findall(r'<li class="entry".*?</li>', index, re.DOTALL)
    (item,) = [item for item in items if f">{ref}</a>" in item]
    return item


def test_the_list_shows_signed_licence_and_version_count_and_searches_by_licence(
        served_signed: Signed, served: Served, tmp_path: Path) -> None:
    repo, _, _ = served_signed
    hostile = '<img src=x onerror="document.title=1">'
    for name, license_name in (("tool", "BSD-3-Clause"), ("odd", hostile)):
        repo.write(f"gears/acme/{name}.json", example_gear(name=name, version="0.1.0", license=license_name))
    repo.commit("two unprocessed gears")
    site = served.directory / "site"
    write_site(repo, site)
    index = (site / "index.html").read_text()
    hello, tool = entry_item(index, "acme/hello"), entry_item(index, "acme/tool")
    assert '<span class="badge signed"' in hello and "badge signed" not in tool
    assert "licence: MIT" in hello and "licence: BSD-3-Clause" in tool
    assert ">1 version<" in hello and ">1 version<" in tool
    assert hostile not in index and html.escape(hostile) in index

    filtered = chromium_dom(served.url("site/index.html") + "?q=bsd-3-clause", tmp_path / "profile")
    items = re.findall(r"<li [^>]*>.*?</li>", filtered, re.DOTALL)
    visible = [re.search(r'class="ref"[^>]*>([^<]+)<', item)[1] for item in items
               if " hidden" not in item.split(">")[0]]
    assert visible == ["acme/tool"] and "1 of 3 shown" in filtered


def test_the_list_counts_every_version(served_catalog: CatalogWorld, served: Served) -> None:
    served_catalog.spec("acme", "hello", "1.2.0")
    served_catalog.repo.commit("a version to process")
    write_site(served_catalog.repo, served.directory / "site")
    index = (served.directory / "site" / "index.html").read_text()
    assert ">3 versions<" in entry_item(index, "acme/hello")
    assert "licence: BSD-3-Clause" in entry_item(index, "neuro/skull-strip")


# No sideways scroll ------------------------------------------------------------------------------

LONG_ORG = "neuroimaging-" + "o" * 40
LONG_NAME = "skull-stripping-" + "x" * 60


def test_pages_with_long_values_never_scroll_sideways(served_catalog: CatalogWorld, served: Served,
                                                     tmp_path: Path) -> None:
    wide = {f"option-{n}-{'x' * 40}": {"type": "string", "default": "/a/very/long/path/" + "segment" * 30,
                                        "description": "word " * 60} for n in range(4)}
    # The image is registry.example.org/acme/<name>:<version>: long too.
    gear = {"license": "LicenseRef-" + "L" * 90, "author": "W" * 120, "config": wide,
            "source": "https://example.org/" + "p" * 200}
    served_catalog.publish(LONG_ORG, LONG_NAME, "1.0.0-" + "v" * 50, **gear)
    served_catalog.spec(LONG_ORG, LONG_NAME, "1.0.0-" + "v" * 50, **gear)
    served_catalog.repo.commit("a gear with long values")
    site = served.directory / "site"
    write_site(served_catalog.repo, site)
    page = site / "gears" / LONG_ORG / f"{LONG_NAME}.html"
    assert re.search(r"sha384:[0-9a-f]{96}", page.read_text()), "the 96-hex hash is on the page"
    assert f"registry.example.org/acme/{LONG_NAME}:1.0.0-{'v' * 50}" in page.read_text()
    pages = [site / "index.html", page]
    measured = laid_out_at(pages, served.directory, served.base, [390, 1024], tmp_path / "profile",
                           screenshot_path("catalog-long-values-390px-1024px.png", tmp_path))
    for width, sizes in measured.items():
        for shown, (scroll, inner, dom) in zip(pages, sizes, strict=True):
            assert inner == width and scroll <= inner, (shown.name, width, scroll, inner)
            if shown == page:
                long_url = served.url(f"site/files/manifests/{LONG_ORG}/")
                assert any(long_url in command for command in dom_commands(dom)), "the long manifest URL is shown"
