"""Contributor strings are data, for any string: arbitrary Unicode orgs, file stems, names and versions
(control characters, '/', '..', NUL, newlines, very long) either fail validation with one clear line, or
become catalog files that all stay below the output directory and published tree entries that are exactly
the files intended."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exchange_cli.catalog.model import Catalog, CatalogEntry, CatalogVersion
from exchange_cli.catalog.publish import _write_tree
from exchange_cli.catalog.site import entry_page_path, site_files, write_site
from exchange_cli.git import open_repo
from exchange_cli.manifests import manifest_name
from exchange_cli.names import is_name
from exchange_cli.quoting import printable
from exchange_cli.specs import SpecKind, locate, location_problem
from exchange_cli.validation.checker import Checker
from exchange_cli.validation.reporter import problem_line
from tests.infra.gitrepo import example_boutique, example_gear, init_repo

HOSTILE = ["", ".", "..", "../x", "a/b", "/abs", "x\x00y", "\n", "a\nb", "\t", "x" * 300, ".git", "-rf", "x.lock",
           "%2e%2e", "a@1.0", "\x1b]0;t\x07", "\u202eevil", "é", "CON", "a b", "~", "*", "a\\b", "_", "0"]
texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40), st.text(max_size=300),
                  st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE), st.text(max_size=10)))
# Most orgs and stems follow the grammar, so both outcomes are explored.
grammatical = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,30}(\.[a-z0-9]{1,5})?", fullmatch=True)
places = st.one_of(grammatical, texts)
SLOW = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory: pytest.TempPathFactory):
    return open_repo(init_repo(tmp_path_factory.mktemp("tree")))


def spec_for(kind: SpecKind, name: str, version: str) -> dict:
    if kind is SpecKind.GEAR:
        return example_gear(name=name, version=version, label=name, description=version)
    return example_boutique(name=name, description=version, **{"tool-version": version})


@SLOW
@given(org=texts, name=texts, version=texts, other=texts, kind=st.sampled_from(list(SpecKind)))
def test_catalog_files_stay_below_the_site_and_tree_entries_are_exactly_them(git_repo, org: str, name: str,
                                                                             version: str, other: str,
                                                                             kind: SpecKind) -> None:
    entries = [CatalogEntry(org or None, kind, name, versions=[CatalogVersion(version, spec_for(kind, name, version),
                                                                              None)]),
               CatalogEntry("acme", SpecKind.BOUTIQUE, other,
                            versions=[CatalogVersion("1.0", spec_for(SpecKind.BOUTIQUE, other, "1.0"), None)])]
    files = site_files(Catalog(entries))
    parent = Path(tempfile.mkdtemp(prefix="exchange-site-"))
    try:
        site = parent / "site"
        write_site(files, site)
        written = {p.relative_to(parent).as_posix() for p in parent.rglob("*") if not p.is_dir()}
        assert written == {f"site/{relative}" for relative in files}, "every file below the site, none elsewhere"
        assert len(files) == 4 + len({entry_page_path(entry) for entry in entries}), "no page replaced another"
    finally:
        shutil.rmtree(parent)
    tree = _write_tree(git_repo, files)
    entries_in_tree = {p for p in git_repo.git.ls_tree("-r", "-z", "--name-only", tree).split("\0") if p}
    assert entries_in_tree == set(files)


@settings(SLOW, max_examples=150)
@given(org=places, stem=places, name=texts, version=texts, kind=st.sampled_from(list(SpecKind)))
def test_a_spec_anywhere_either_fails_in_one_line_or_names_everything_by_the_grammar(
        tmp_path: Path, org: str, stem: str, name: str, version: str, kind: SpecKind) -> None:
    relative = f"{kind.directory}/{org}/{stem}.json"
    location = locate(relative)
    event("refused" if location is None else "located")
    if location is None:
        problem = location_problem(relative)
        assert problem == printable(problem) and "\n" not in problem
        return
    assert is_name(location.org) and is_name(location.stem)
    made = manifest_name(location.artifact_base, "sha384:" + "0" * 96)
    assert is_name(made.removesuffix(".json")) or len(made) > 100  # only NAME characters, whatever its length
    root = Path(tempfile.mkdtemp(prefix="exchange-spec-", dir=tmp_path))
    path = root / relative
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(spec_for(kind, name, version)))
    report = Checker(manifests=_no_manifests()).check_paths([path], root=root)
    for result in report.results:
        for problem in result.problems:
            line = printable(problem_line(result.display_path, problem))
            assert "\n" not in line and "\x1b" not in line and "\u202e" not in line


def _no_manifests():
    from exchange_cli.manifests import ManifestIndex

    return ManifestIndex([])


def test_the_grammar_refuses_what_paths_urls_and_git_read_specially() -> None:
    accepted = {"_", "0", "CON"}
    assert [text for text in HOSTILE if is_name(text)] == [text for text in HOSTILE if text in accepted]
    assert all(is_name(text) for text in ("bids-hcp", "c-pac", "fsl_bet.v2", "manifest", "HCP.Pipelines"))
