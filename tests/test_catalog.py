"""Looking things up in an exchange: version order, list, show, inventory, the JSON index, the HTML
catalog in a real headless Chromium, and publishing the catalog to its own branch."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.storage.bucket import open_bucket
from tests.catalog_world import CatalogWorld
from tests.infra.chromium import doms_after_scripts, screenshot_path
from tests.infra.gitrepo import ExchangeRepo, init_repo, run_git


def run(world: CatalogWorld, *args: str):
    return CliRunner().invoke(cli, [*args, "--repo", str(world.repo.root)])


# list and show -----------------------------------------------------------------------------------

def test_list_json_orders_versions_and_marks_what_is_processed(catalog_world: CatalogWorld) -> None:
    result = run(catalog_world, "list", "--json")
    assert result.exit_code == 0, result.output
    entries = {(e["org"], e["name"], e["kind"]): e for e in json.loads(result.output)}
    assert set(entries) == {("acme", "hello", "gear"), ("acme", "hello-world", "gear"), ("acme-labs", "hello", "gear"),
                            ("neuro", "skull-strip", "gear"), ("acme", "word-count", "boutique")}
    hello = entries["acme", "hello", "gear"]["versions"]
    unsigned = {"signed": False, "key-id": None, "yanked": None}
    assert hello == [{"version": "1.0.0", "processed": False, "state": "pending", **unsigned},
                     {"version": "1.0.0-rc.1", "processed": True, "state": "processed", **unsigned},
                     {"version": "0.10.0", "processed": True, "state": "processed", **unsigned},
                     {"version": "0.9.0", "processed": True, "state": "processed", **unsigned}]


def test_list_org_filter_is_exact(catalog_world: CatalogWorld) -> None:
    result = run(catalog_world, "list", "--org", "acme")
    assert result.exit_code == 0, result.output
    assert "acme/hello (gear)" in result.output and "acme/word-count (boutique)" in result.output
    assert "acme-labs" not in result.output and "neuro" not in result.output
    assert re.search(r"acme/hello \(gear\)\n  1\.0\.0 +not processed\n  1\.0\.0-rc\.1 +processed", result.output)


def test_show_defaults_to_the_newest_processed_version(catalog_world: CatalogWorld) -> None:
    result = run(catalog_world, "show", "acme/hello", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    published = catalog_world.find("acme", "hello", "1.0.0-rc.1")
    assert details["version"] == "1.0.0-rc.1"
    assert details["rootfs-hash"] == f"sha384:{published.sha384}"
    assert details["rootfs-size"] == published.size
    assert details["rootfs-url"].endswith(published.object_name)
    assert details["image"] == "registry.example.org/acme/hello:1.0.0-rc.1"
    assert details["git-commit"] == "0" * 40


def test_show_table_names_the_version_asked_for(catalog_world: CatalogWorld) -> None:
    result = run(catalog_world, "show", "acme/hello@0.10.0")
    assert result.exit_code == 0, result.output
    published = catalog_world.find("acme", "hello", "0.10.0")
    assert f"sha384:{published.sha384}" in result.output
    assert "registry.example.org/acme/hello:0.10.0" in result.output
    assert re.search(r"^signed +no$", result.output, re.MULTILINE), "yes or no, not Python's False"


@pytest.mark.parametrize(("reference", "message"), [
    ("acme/hello@1.0.0", "not processed yet"),
    ("acme/hello@3.0.0", "has no version 3.0.0"),
    ("acme/hell", "no gear or boutique acme/hell in this exchange (did you mean acme/hello"),
    ("acme/hello/x", "is not [ORG/]NAME"),
    ("hello", "hello is ambiguous; it names 2 entries: gear:acme/hello; gear:acme-labs/hello"),
])
def test_show_explains_what_it_cannot_find(catalog_world: CatalogWorld, reference: str, message: str) -> None:
    result = run(catalog_world, "show", reference)
    assert result.exit_code == 2, "naming what the exchange does not hold is a usage error"
    assert message in result.output


# inventory ---------------------------------------------------------------------------------------

def test_inventory_csv_has_one_row_per_gear(catalog_world: CatalogWorld, tmp_path: Path) -> None:
    target = tmp_path / "inventory.csv"
    result = run(catalog_world, "inventory", "--csv", str(target))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [(r["org"], r["name"]) for r in rows] == [("acme", "hello"), ("acme", "hello-world"), ("acme-labs", "hello"),
                                                     ("neuro", "skull-strip")]
    by_name = {(r["org"], r["name"]): r for r in rows}
    assert by_name["acme", "hello"]["latest_version"] == "1.0.0"
    assert by_name["neuro", "skull-strip"]["api_key"] == "read-only"
    assert by_name["neuro", "skull-strip"]["license"] == "BSD-3-Clause"
    assert by_name["acme", "hello"]["api_key"] == "no"
    assert by_name["acme", "hello"]["image"] == "registry.example.org/acme/hello:1.0.0"
    assert by_name["acme", "hello"]["maintainer"] == "Exchange Maintainers <exchange@example.org>"


# index -------------------------------------------------------------------------------------------

def test_index_json_lists_versions_newest_first_without_inputs_or_config(catalog_world: CatalogWorld, tmp_path: Path) -> None:
    target = tmp_path / "exchange.json"
    result = run(catalog_world, "index", "-o", str(target))
    assert result.exit_code == 0, result.output
    index = json.loads(target.read_text())
    hello = next(e for e in index["entries"] if e["ref"] == "acme/hello")
    assert [v["version"] for v in hello["versions"]] == ["1.0.0", "1.0.0-rc.1", "0.10.0", "0.9.0"]
    rc = hello["versions"][1]
    assert rc["rootfs-hash"] == f"sha384:{catalog_world.find('acme', 'hello', '1.0.0-rc.1').sha384}"
    assert rc["label"] == "Hello gear" and rc["license"] == "MIT" and rc["author"] == "Exchange Maintainers"
    assert rc["image"] == "registry.example.org/acme/hello:1.0.0-rc.1"
    assert all("inputs" not in v and "config" not in v for e in index["entries"] for v in e["versions"])


def test_html_catalog_has_a_page_per_entry_with_fetch_commands(catalog_world: CatalogWorld, tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = run(catalog_world, "index", "-o", str(tmp_path / "exchange.json"), "--html", str(site))
    assert result.exit_code == 0, result.output
    page = (site / "gears" / "acme" / "hello.html").read_text()
    for version in ("1.0.0", "1.0.0-rc.1", "0.10.0", "0.9.0"):
        assert f'id="v-{version}"' in page
    assert "exchange fetch acme/hello@0.10.0" in page
    assert f"{catalog_world.find('acme', 'hello', '0.9.0').sha384}  " in page, "a curl command that checks the hash"
    assert "Config options" in page and "Who to greet." in page
    assert (site / "boutiques" / "acme" / "word-count.html").is_file()
    assert "<script src=\"../../assets/catalog.js\">" in page
    loaded = re.findall(r'src="([^"]*)"', page) + re.findall(r'<link [^>]*href="([^"]*)"', page)
    assert loaded and all(url.startswith("../../assets/") for url in loaded), "the site loads nothing from elsewhere"


def test_html_catalog_escapes_spec_text_and_links_only_web_urls(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    world = CatalogWorld(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work")
    world.spec("evil", "xss", "1.0.0", description="<script>alert(1)</script>", source="javascript:alert(1)")
    exchange_repo.commit("evil")
    result = run(world, "index", "-o", str(tmp_path / "x.json"), "--html", str(tmp_path / "site"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "site" / "gears" / "evil" / "xss.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page


def test_html_search_filters_the_list_in_a_real_browser(catalog_world: CatalogWorld, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert run(catalog_world, "index", "-o", str(tmp_path / "x.json"), "--html", str(site)).exit_code == 0
    index_url = (site / "index.html").as_uri()
    screenshot = screenshot_path("catalog-search-and-gear-page.png", tmp_path)
    # One start of the browser for the four (each start costs about a second of CPU), each page in a frame.
    unfiltered, filtered, nothing, page = doms_after_scripts(
        [index_url, index_url + "?q=hello+acme-labs", index_url + "?q=no-such-gear",
         (site / "gears" / "acme" / "hello.html").as_uri()],
        tmp_path / "pages.html", tmp_path / "profile", screenshot=screenshot)
    assert len(re.findall(r'<li class="entry"', unfiltered)) == 5
    assert "hidden" not in re.findall(r"<li [^>]*>", unfiltered)[0]
    assert "5 of 5 shown" in unfiltered, "the script ran"

    items = re.findall(r"<li [^>]*>.*?</li>", filtered, re.DOTALL)
    visible = [re.search(r'class="ref"[^>]*>([^<]+)<', item)[1] for item in items if " hidden" not in item.split(">")[0]]
    assert visible == ["acme-labs/hello"]
    assert "1 of 5 shown" in filtered
    assert screenshot.stat().st_size > 1000

    assert re.search(r'<p id="empty">', nothing), "the 'nothing matches' note is shown"

    assert re.findall(r'<section class="version" id="v-([^"]+)"', page) == ["1.0.0", "1.0.0-rc.1", "0.10.0", "0.9.0"]


# publishing --------------------------------------------------------------------------------------

def test_publish_branch_commits_an_orphan_and_pushes_without_touching_the_work_tree(
        catalog_world: CatalogWorld, tmp_path: Path) -> None:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    catalog_world.repo.git("remote", "add", "origin", str(remote))
    catalog_world.repo.write("gears/acme/draft.json", "{}\n")  # an untracked file
    catalog_world.repo.write("gears/acme/hello.json", catalog_world.repo.root.joinpath("gears/acme/hello.json").read_text() + " ")
    catalog_world.repo.git("add", "gears/acme/hello.json")  # something staged
    head, status = catalog_world.repo.git("rev-parse", "HEAD"), catalog_world.repo.git("status", "--porcelain")
    staged = catalog_world.repo.git("diff", "--cached")

    result = run(catalog_world, "index", "-o", str(tmp_path / "exchange.json"), "--publish-branch", "catalog")
    assert result.exit_code == 0, result.output
    assert catalog_world.repo.git("rev-parse", "HEAD") == head
    assert catalog_world.repo.git("rev-parse", "--abbrev-ref", "HEAD") == "master"
    assert catalog_world.repo.git("status", "--porcelain") == status
    assert catalog_world.repo.git("diff", "--cached") == staged
    published = run_git(remote, "rev-parse", "catalog")
    assert run_git(remote, "rev-list", "--count", "catalog") == "1", "an orphan branch: no parent"
    files = run_git(remote, "ls-tree", "-r", "--name-only", "catalog").splitlines()
    assert {"index.html", "exchange.json", "gears/acme/hello.html", "assets/catalog.js"} <= set(files)
    assert json.loads(run_git(remote, "show", "catalog:exchange.json"))["entries"][0]["ref"] == "acme/hello"

    again = run(catalog_world, "index", "-o", str(tmp_path / "exchange.json"), "--publish-branch", "catalog")
    assert again.exit_code == 0 and "unchanged" in again.output
    assert run_git(remote, "rev-parse", "catalog") == published

    catalog_world.publish("acme", "hello", "1.0.0")
    catalog_world.repo.git("reset", "-q")
    catalog_world.repo.git("add", "manifests")
    catalog_world.repo.git("commit", "-q", "-m", "process hello 1.0.0")
    third = run(catalog_world, "index", "-o", str(tmp_path / "exchange.json"), "--publish-branch", "catalog")
    assert third.exit_code == 0, third.output
    assert run_git(remote, "rev-parse", "catalog^") == published, "the branch's history continues"


def test_publish_refuses_the_checked_out_branch(catalog_world: CatalogWorld, tmp_path: Path) -> None:
    catalog_world.repo.git("remote", "add", "origin", str(init_repo(tmp_path / "remote.git", bare=True)))
    result = run(catalog_world, "index", "-o", str(tmp_path / "x.json"), "--publish-branch", "master")
    assert result.exit_code == 2 and "checked-out branch" in result.output
