"""Adopting a years-old exchange as it is (tests/legacy_exchange.py): every command reads every old
manifest, or names the one it cannot read, and they all agree on what a gear is called."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.manifests import load_manifests, manifests_at_commit, read_manifest_blobs
from exchange_cli.storage.bucket import open_bucket
from tests.infra.gitrepo import ExchangeRepo
from tests.legacy_exchange import ORPHAN, LegacyExchange, build_legacy_exchange


@pytest.fixture
def legacy(exchange_repo: ExchangeRepo, tmp_path: Path) -> LegacyExchange:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "work").mkdir()
    return build_legacy_exchange(exchange_repo, open_bucket((tmp_path / "bucket").as_uri()), tmp_path / "work")


def run(legacy: LegacyExchange, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, [*args, "--repo", str(legacy.repo.root)], input=stdin)


def bucket_names(legacy: LegacyExchange) -> set[str]:
    return {info.name for info in legacy.bucket.list()}


# Every manifest is read --------------------------------------------------------------------------

def test_every_manifest_is_read_at_any_depth_from_disk_and_from_git(legacy: LegacyExchange) -> None:
    expected = {m.relative for m in legacy.manifests}
    on_disk = load_manifests(legacy.repo.root / "manifests")
    assert {m.relative for m in on_disk.manifests} == expected and on_disk.problems == []
    at_commit = manifests_at_commit_of(legacy)
    assert {m.relative for m in at_commit.manifests} == expected
    assert on_disk.referenced_objects() == legacy.referenced_objects == at_commit.referenced_objects()
    orgs = {m.relative: m.org for m in on_disk.manifests}
    assert {orgs[m.relative] for m in legacy.manifests} == {None, "acme", "neuro"}
    assert all(orgs[m.relative] == m.org for m in legacy.manifests)


def manifests_at_commit_of(legacy: LegacyExchange):
    import git

    with git.Repo(legacy.repo.root) as repo:
        return manifests_at_commit(repo, legacy.commits[-1])


def test_blob_reader_names_each_file_it_cannot_read() -> None:
    scan = read_manifest_blobs([
        ("manifests/acme/broken.json", b'{"gear": '),
        ("manifests/acme/latin1.json", '{"gear": {"name": "caf\xe9"}}'.encode("latin-1")),
        ("manifests/acme/not-a-manifest.json", b'{"hello": 1}'),
        ("manifests/acme/bad-url.json", b'{"gear": {}, "exchange": {"rootfs-url": 7}}'),
        ("manifests/README.md", b"not json, not a manifest"),
        ("gears/acme/x.json", b"{}"),
        ("manifests/ok.json", b'{"gear": {"name": "ok", "version": "1"}, "exchange": {"rootfs-url": "file:///b/ok.tgz"}}'),
    ])
    assert [m.relative for m in scan.manifests] == ["manifests/ok.json"]
    assert scan.referenced_objects() == {"ok.tgz"}
    reasons = {p.path: p.reason for p in scan.problems}
    assert set(reasons) == {"manifests/acme/broken.json", "manifests/acme/latin1.json",
                            "manifests/acme/not-a-manifest.json", "manifests/acme/bad-url.json"}
    assert "not valid JSON" in reasons["manifests/acme/broken.json"]
    assert "UTF-8" in reasons["manifests/acme/latin1.json"]
    assert "rootfs-url" in reasons["manifests/acme/bad-url.json"]


# verify-storage ----------------------------------------------------------------------------------

def test_delete_orphans_deletes_only_the_orphan_on_a_legacy_exchange(legacy: LegacyExchange) -> None:
    audit = run(legacy, "verify-storage", "--bucket", legacy.bucket.uri, "--json")
    report = json.loads(audit.output)
    assert [o["object"] for o in report["orphans"]] == [ORPHAN]
    assert report["missing"] == [] and report["damaged"] == [] and report["unreadable-manifests"] == []

    result = run(legacy, "verify-storage", "--bucket", legacy.bucket.uri, "--delete-orphans", "--yes")
    assert result.exit_code == 0, result.output
    assert bucket_names(legacy) == legacy.referenced_objects


def test_an_unreadable_manifest_stops_any_deletion(legacy: LegacyExchange) -> None:
    legacy.repo.write("manifests/acme/acme-half-written.json", '{"gear": {"name": "half"')
    result = run(legacy, "verify-storage", "--bucket", legacy.bucket.uri, "--delete-orphans", "--yes")
    assert result.exit_code == 1
    assert "unreadable manifest: manifests/acme/acme-half-written.json: not valid JSON" in result.output
    assert "refusing to delete any object" in result.output
    assert bucket_names(legacy) == legacy.referenced_objects | {ORPHAN}


# One identity for a gear ---------------------------------------------------------------------------

# What the legacy exchange holds, by the one model: org/name, the entry when it differs, versions newest first.
EXPECTED_LIST = [
    (None, "gear", "bids-app", "bids-app", ["0.2.1_0.6.0"]),
    ("acme", "gear", "beta", "acme/beta", ["v1.0"]),
    ("acme", "gear", "cpac", "acme/c-pac", ["1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "0.9.0"]),
    ("acme", "boutique", "word-count", "acme/word-count", ["1.0.0"]),
    ("acme", "gear", "xcpengine-fw", "acme/xcpengine", ["1.4.4"]),
    ("neuro", "gear", "fmriprep", "neuro/legacy-fmriprep", ["2.1.5-1"]),
]


def test_list_reads_every_manifest_names_the_gear_and_its_entry_and_warns_about_the_rest(
        legacy: LegacyExchange) -> None:
    result = run(legacy, "list", "--json")
    assert result.exit_code == 0, result.output
    listed = [(e["org"], e["kind"], e["name"], e["entry"], [v["version"] for v in e["versions"]])
              for e in json.loads(result.stdout)]
    assert listed == EXPECTED_LIST
    odd = legacy.manifest("odd", 2).relative
    assert f"warning: not listed: {odd}: its embedded gear's version is 2, not a string" in result.stderr
    text = run(legacy, "list").stdout
    assert "acme/cpac (gear, entry acme/c-pac)\n  1.0.0_7.1.1  " in text
    assert "acme/manifest" not in text and "acme/c-pac (" not in text


@pytest.mark.parametrize("reference", ["acme/cpac", "acme/c-pac", "cpac", "gear:acme/cpac", "acme/manifest"])
def test_show_accepts_the_name_or_any_file_stem(legacy: LegacyExchange, reference: str) -> None:
    result = run(legacy, "show", reference, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["name"], shown["entry"], shown["version"]) == ("cpac", "acme/c-pac", "1.0.0_7.1.1")
    assert shown["versions"] == ["1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "0.9.0"]


def test_show_reads_old_shape_manifests_and_those_without_an_org(legacy: LegacyExchange) -> None:
    old = json.loads(run(legacy, "show", "acme/xcpengine", "--json").stdout)
    assert (old["name"], old["version"], old["image"], old["rootfs-size"]) == ("xcpengine-fw", "1.4.4", None, None)
    assert old["rootfs-hash"] == "sha384:" + legacy.manifest("xcpengine-fw", "1.4.4").sha384
    no_org = json.loads(run(legacy, "show", "bids-app@0.2.1_0.6.0", "--json").stdout)
    assert no_org["org"] is None and no_org["manifest"] == legacy.manifest("bids-app", "0.2.1_0.6.0").relative


def test_an_ambiguous_reference_is_refused_with_the_candidates(legacy: LegacyExchange) -> None:
    # A second gear whose *file* is called cpac: acme/cpac now names two gears.
    legacy.repo.write("gears/acme/cpac.json", legacy.gear("cpac-ng", "1.0.0"))
    result = run(legacy, "show", "acme/cpac")
    assert result.exit_code == 2
    assert ("acme/cpac is ambiguous; it names 2 entries: gear:acme/cpac, stored as acme/c-pac; "
            "gear:acme/cpac-ng, stored as acme/cpac") in result.output


def test_inventory_index_and_history_agree_with_list(legacy: LegacyExchange) -> None:
    listed = {(e["org"], e["name"], e["entry"]) for e in json.loads(run(legacy, "list", "--json").stdout)}
    rows = run(legacy, "inventory", "--csv", "-").stdout.splitlines()
    assert rows[0].startswith("org,name,entry,label,latest_version")
    inventory = {tuple(row.split(",")[:3]) for row in rows[1:]}
    assert inventory == {(org or "", name, entry) for org, name, entry in listed if name != "word-count"}
    index = json.loads(run(legacy, "index", "-o", "-").stdout)
    assert {(e["org"], e["name"], e["entry"]) for e in index["entries"]} == listed
    history = run(legacy, "history", "--format", "json")
    assert history.exit_code == 0, history.output
    rows = json.loads(history.stdout)
    assert {(r["org"] or None, r["name"], r["entry"]) for r in rows} == {
        (org, name, entry) for org, name, entry in listed} | {("acme", "cpac", "acme/manifest")}
    assert {r["manifest"] for r in rows} == {m.relative for m in legacy.manifests} - {legacy.manifest("odd", 2).relative}
    assert f"warning: not listed: {legacy.manifest('odd', 2).relative}" in history.stderr


# validate and add-gear on entries ------------------------------------------------------------------

def validate_json(legacy: LegacyExchange, *args: str) -> dict:
    return json.loads(run(legacy, "validate", "--format", "json", *args).stdout)


def test_an_established_file_named_otherwise_is_a_warning_a_new_one_an_error(legacy: LegacyExchange) -> None:
    report = validate_json(legacy, "--all")
    assert report["ok"], report
    problems = {r["path"].rsplit("/", 2)[-2] + "/" + r["path"].rsplit("/", 1)[-1]:
                {(p["rule"], p["severity"]) for p in r["problems"]} for r in report["results"]}
    assert problems["acme/c-pac.json"] == {("file-name", "warning"), ("already-processed", "info")}
    assert problems["acme/xcpengine.json"] == {("file-name", "warning"), ("already-processed", "info")}
    assert problems["acme/beta.json"] == {("already-processed", "info")}

    legacy.repo.write("gears/acme/new-thing.json", legacy.gear("brand-new", "1.0.0"))
    new = validate_json(legacy, str(legacy.repo.root / "gears/acme/new-thing.json"))["results"][0]["problems"]
    assert [(p["rule"], p["severity"]) for p in new] == [("file-name", "error")]
    assert "must be stored as gears/acme/brand-new.json" in new[0]["message"]


def test_two_files_holding_one_gear_are_an_error(legacy: LegacyExchange) -> None:
    legacy.repo.write("gears/acme/cpac.json", legacy.gear("cpac", "2.0.0"))
    report = validate_json(legacy, "--all")
    rules = {r["path"].rsplit("/", 1)[-1]: {p["rule"] for p in r["problems"] if p["severity"] == "error"}
             for r in report["results"]}
    assert rules["cpac.json"] == {"duplicate-name"} and rules["c-pac.json"] == {"duplicate-name"}


def test_add_gear_updates_the_entry_that_holds_the_gear(legacy: LegacyExchange, tmp_path: Path) -> None:
    source = tmp_path / "manifest.json"
    source.write_text(json.dumps(legacy.gear("cpac", "1.0.1")))
    for extra in ([], ["--org", "acme"]):
        result = run(legacy, "add-gear", str(source), "--no-commit", *extra)
        assert result.exit_code == 0, result.output
        assert "+++ b/gears/acme/c-pac.json" in result.output or "already exactly this spec" in result.output
    assert not (legacy.repo.root / "gears/acme/cpac.json").exists()
    assert json.loads((legacy.repo.root / "gears/acme/c-pac.json").read_text())["version"] == "1.0.1"
    assert validate_json(legacy, "--all")["ok"]


# Hidden files --------------------------------------------------------------------------------------

def test_hidden_files_are_skipped_alike_by_all_the_sentinel_and_since(legacy: LegacyExchange) -> None:
    for hidden in ("gears/acme/.placeholder", "boutiques/acme/.gitkeep", "gears/.hidden/x.json"):
        legacy.repo.write(hidden, "not a spec")
    legacy.repo.write("gears/acme/xcpengine.json", legacy.gear("xcpengine-fw", "1.4.5"))
    legacy.repo.commit("hidden files and a new version")
    for args in (["--all"], [], ["--since", legacy.commits[-1]]):
        paths = {r["path"].split("exchange/", 1)[-1] for r in validate_json(legacy, *args)["results"]}
        assert not any("/." in path for path in paths), (args, paths)
        assert "gears/acme/xcpengine.json" in paths
